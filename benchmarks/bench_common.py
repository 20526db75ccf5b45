"""Shared helpers of the benchmarks: machine description, load checks, timing, JSONL records.

Every benchmark appends ONE JSON object per run to `benchmarks/results/<name>.jsonl`, the format
`hipaug.book.perfpage` renders:
`{"benchmark", "title", "date" (ISO), "machine", "cpu", "torch", "threads", "loadavg", "rows": [{col: value}], "notes"}`.
This module is not a benchmark itself (run_all.py lists the benchmarks explicitly).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parents[1]
RESULTS = Path(os.environ.get("HIPAUG_BENCH_RESULTS", ROOT / "benchmarks" / "results"))
if str(ROOT) not in sys.path:  # run as `python benchmarks/bench_x.py` from anywhere
    sys.path.insert(0, str(ROOT))

BUSY_LOAD = 0.5  # 1-minute load average above which a record says the box was busy
BUSY_CPU = 0.15  # share of the CPUs other processes used just before a measurement that counts as busy
LAST_BUSY: float | None = None  # CPU share in use when wait_for_quiet() last returned


def cpu_model() -> str:
    """`model name` from /proc/cpuinfo (platform.processor() otherwise)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    """Short machine description: OS, architecture, logical CPUs."""
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} logical CPUs"


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def cpu_busy(window: float = 3.0) -> float:
    """Fraction of all CPUs busy (not idle/iowait) over `window` seconds, from /proc/stat."""
    def snap():
        v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
        return sum(v), v[3] + v[4]

    try:
        t0, i0 = snap()
        time.sleep(window)
        t1, i1 = snap()
    except OSError:
        return 0.0
    return 1.0 - (i1 - i0) / max(1, t1 - t0)


def wait_for_quiet(max_wait: float = 120.0, threshold: float = BUSY_LOAD, poll: float = 10.0,
                   quiet: bool = False, busy_threshold: float = 0.15) -> list[float]:
    """Wait (at most `max_wait` s) until the machine is quiet; return the load averages then.

    Quiet: the 1-minute load average is <= threshold, or the CPUs were less than `busy_threshold`
    busy over the last few seconds (the load average lags by a minute or more). Other jobs on a
    2-core box halve a benchmark's throughput; this waits a little, then measures anyway (the
    record carries the load and its notes say so).
    """
    global LAST_BUSY
    t0 = time.monotonic()
    while True:
        la = loadavg()
        busy = cpu_busy()
        LAST_BUSY = busy
        if la[0] <= threshold or busy < busy_threshold or time.monotonic() - t0 >= max_wait:
            return la
        if not quiet:
            print(f"[bench] load average {la[0]:.2f}, CPUs {busy:.0%} busy: waiting ...", file=sys.stderr, flush=True)
        time.sleep(poll)


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size in MiB (Linux ru_maxrss is in KiB).

    Caveat: a forked child starts with its parent's resident size as ru_maxrss (Linux keeps the
    maximum across fork + exec), so measure children from a small launcher process, or read
    `vm_hwm_mb()` inside the child.
    """
    return resource.getrusage(who).ru_maxrss / 1024.0


def vm_hwm_mb() -> float:
    """This process's own peak RSS since exec (VmHWM of /proc/self/status), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return peak_rss_mb()


def timed(fn: Callable[[], Any], repeats: int = 1, warmup: int = 0) -> tuple[float, Any]:
    """Best wall time of `repeats` calls after `warmup` calls, and the last result."""
    out = None
    for _ in range(warmup):
        out = fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def print_table(title: str, rows: list[dict]) -> None:
    """Print rows as an aligned plain-text table."""
    print(f"\n== {title}")
    if not rows:
        print("(no rows)")
        return
    cols = list(dict.fromkeys(k for r in rows for k in r))

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    cells = [[fmt(r.get(c, "")) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]
    print("  ".join(c.rjust(w) for c, w in zip(cols, widths)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))


def _clean(v: Any) -> Any:
    if isinstance(v, float):
        return float(f"{v:.6g}") if v == v and abs(v) != float("inf") else None
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if hasattr(v, "item") and callable(v.item):  # numpy / torch scalars
        return _clean(v.item())
    return v


def record(name: str, title: str, rows: list[dict], notes: str = "", load: list[float] | None = None,
           threads: int | None = None, results_dir: Path | None = None, timed: bool = True) -> dict:
    """Print the table and append one record to `<results>/<name>.jsonl`; return the record.

    `load` is the load average when the measurement started (default: now; the load at the end would
    count the benchmark itself). A load above BUSY_LOAD is stated in the notes, with how busy other
    processes kept the CPUs just before the measurement (`timed=False`: a computed record, where the
    load does not matter).
    """
    import torch

    la = load if load is not None else loadavg()
    if timed and la[0] > BUSY_LOAD:
        if LAST_BUSY is not None and LAST_BUSY < BUSY_CPU:
            msg = (f"The 1-min load average was {la[0]:.2f} at the start ({os.cpu_count()} cores); it lags and still "
                   f"counted just-finished work (such as the preceding benchmark): the CPUs were {LAST_BUSY:.0%} "
                   "busy just before the measurement.")
        else:
            other = f" (CPUs {LAST_BUSY:.0%} busy just before it)" if LAST_BUSY is not None else ""
            msg = (f"Measured while the machine was busy: 1-min load average {la[0]:.2f} on {os.cpu_count()} "
                   f"cores{other}; throughput figures are lower bounds.")
        notes = f"{notes} {msg}".strip()
    rec = {
        "benchmark": name,
        "title": title,
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "machine": machine(),
        "cpu": cpu_model(),
        "torch": torch.__version__,
        "threads": int(threads if threads is not None else torch.get_num_threads()),
        "loadavg": la,
        "rows": _clean(rows),
        "notes": notes,
        # Which profiles the measurement ran with: the book's appendix marks a record stale once a
        # profile it depends on has changed.
        "profiles": profile_hashes(),
    }
    print_table(title, rows)
    if notes:
        print(notes)
    out_dir = Path(results_dir) if results_dir is not None else RESULTS
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / f"{name}.jsonl", "a", encoding="utf-8") as fh:
        fh.write(json.dumps(rec, sort_keys=False) + "\n")
    return rec


def profile_hashes() -> dict[str, str]:
    """SHA-256 of each built-in profile's YAML file."""
    from hipaug.book.perfpage import profile_hashes as hashes

    return hashes()


def latest(name: str, results_dir: Path | None = None) -> dict | None:
    """The most recent record of benchmark `name` (None if there is none)."""
    f = (Path(results_dir) if results_dir is not None else RESULTS) / f"{name}.jsonl"
    if not f.is_file():
        return None
    recs = [json.loads(line) for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
    return max(recs, key=lambda r: str(r.get("date", ""))) if recs else None


REF_KERNEL = "conv3x3 64->128 32px b64"  # the utilisation denominator's kernel, measured by bench_machine


def utilisation_note(ref: float) -> str:
    """The sentence each record's notes give on how utilisation is normalised."""
    return (f"Utilisation denominator: {REF_KERNEL} forward (faster of NCHW/NHWC), {ref:.1f} GFLOP/s "
            "(max of this run and the latest machine record).")


def conv_reference_gflops(results_dir: Path | None = None) -> float | None:
    """The measured conv GFLOP/s of the latest `machine` record (the utilisation denominator)."""
    rec = latest("machine", results_dir)
    if not rec:
        return None
    vals = [float(r["GFLOP/s"]) for r in rec.get("rows", [])
            if r.get("kernel", "").startswith(REF_KERNEL) and r.get("pass") == "forward"]
    return max(vals) if vals else None


def fresh_python(code: str, env: dict | None = None, timeout: float = 3600) -> dict:
    """Run `code` in a fresh interpreter; it must print one JSON object on its last stdout line."""
    import subprocess

    e = dict(os.environ)
    e.setdefault("HIPAUG_PROGRESS", "0")
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    if env:
        e.update(env)
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=e, timeout=timeout)
    if p.returncode != 0:
        raise RuntimeError(f"subprocess failed ({p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def common_args(ap) -> None:
    ap.add_argument("--quick", action="store_true", help="a fast pass with fewer steps/points")
    ap.add_argument("--results", type=Path, default=None, help="results folder (default: benchmarks/results)")
    ap.add_argument("--max-wait", type=float, default=120.0, help="seconds to wait for a quiet machine")
