"""The experiment grid on Dask: wall time serially and on 1 and 2 workers; the `paper` profile's predicted scaling.

    python benchmarks/bench_grid.py [--quick] [--profiles smoke default] [--max-wait S]

Each run is `hipaug reproduce --profile P` from an empty temporary artifact cache, in its own
process (under bench_pipeline's wrapper: wall time, CPU time of the process and its children,
peak RSS): serially with torch's default threads and with one thread, then on a local Dask
cluster of 1 and of 2 workers (`--workers N`; each worker gets cores / N torch threads). Every
run's results folder is compared byte for byte with the serial run of the same threads per task
(on CPU the thread count changes a kernel's summation order, nothing else may change a byte).
The predicted speed-up beside each Dask run comes from the dry run's task FLOPs.

The `paper` profile needs GPUs this machine lacks: its scaling on 1, 4 and 8 GPUs is predicted
from the dry run (`hipaug reproduce --profile paper --dry-run --ablations`: task FLOPs, list
scheduling with the longest remaining chain first, 50 TFLOP/s sustained per GPU), not timed.

Records: `grid_<profile>` (timed) and `grid_paper` (predicted). `--quick` runs the smoke
profile only; the default profile takes about half an hour on an idle 2-core machine.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import bench_common as bc
from bench_pipeline import _temp_env, run

from hipaug.pipeline.plan import PREDICT_WORKERS, SUSTAINED_TFLOPS


def _digest(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


def _plan(profile: str, workers=PREDICT_WORKERS):
    """The dry run of a profile's whole table (every result and the ablations), on an empty store."""
    from hipaug.pipeline import Pipeline

    with tempfile.TemporaryDirectory(prefix="hipaug-plan-") as tmp:
        pipe = Pipeline(profile, artifacts=Path(tmp) / "a", results=Path(tmp) / "r")
        return pipe.plan(("results", "ablations"), workers)


def timed_rows(profile: str) -> list[dict]:
    """Cold `hipaug reproduce` serially (default and one thread) and on 1 and 2 Dask workers."""
    import torch

    threads = torch.get_num_threads()
    predicted = _plan(profile, (1, 2)).makespans
    configs = [("serial", None, threads), ("serial", None, 1)]
    configs += [("dask", w, max(1, threads // w)) for w in (1, 2)]
    rows, digests = [], {}
    for how, workers, t in configs:
        with tempfile.TemporaryDirectory(prefix=f"hipaug-grid-{profile}-") as tmp:
            env = _temp_env(tmp)
            cmd = [sys.executable, "-m", "hipaug", "reproduce", "--profile", profile, "--artifacts",
                   env["HIPAUG_ARTIFACTS"], "--out", env["HIPAUG_RESULTS"], "--threads", str(t)]
            cmd += ["--workers", str(workers)] if workers else []
            label = f"{how}" + (f", {workers} worker{'s' if workers > 1 else ''}" if workers else "")
            print(f"[bench] {profile}: {label}, {t} thread(s) per task ...", file=sys.stderr, flush=True)
            r = run(cmd, env)
            digest = _digest(Path(env["HIPAUG_RESULTS"]) / profile / "phantom")
        ref = digests.get(t)
        digests.setdefault(t, digest)
        base = rows[0]["wall s"] if rows else r["seconds"]
        rows.append({"profile": profile, "run": label, "torch threads per task": t, "wall s": r["seconds"],
                     "CPU s": r["cpu_s"], "peak RSS MB": r["peak_mb"], "speed-up vs serial": base / r["seconds"],
                     "predicted speed-up": predicted[1] / predicted[workers] if workers else None,
                     "results": "reference" if ref is None else ("same bytes" if ref == digest else "DIFFER")})
        print(f"[bench]   {r['seconds']:.1f} s; results: {rows[-1]['results']}", file=sys.stderr, flush=True)
    return rows


def paper_record(a) -> dict:
    pl = _plan("paper")
    rows = pl.scaling_rows(SUSTAINED_TFLOPS)
    head = " > ".join(pl.path)
    notes = (f"Predicted from the dry run of `hipaug reproduce --profile paper --ablations` (not timed: no GPU here): "
             f"{len(pl.tasks)} tasks, {pl.total / 1e15:,.0f} PFLOP in all (counted on the meta device, no early "
             f"stopping). The critical path is {pl.path_flops / 1e15:,.0f} PFLOP ({pl.path_flops / pl.total:.0%} of "
             f"the total): {head}; no number of GPUs finishes sooner than it. Makespan by list scheduling (the task "
             f"with the longest remaining chain first), {SUSTAINED_TFLOPS:g} TFLOP/s sustained per GPU, data loading "
             "and start-up not counted.")
    return bc.record("grid_paper", "The paper profile's grid on 1, 4 and 8 GPUs (predicted from task FLOPs)", rows,
                     notes, load=bc.loadavg(), results_dir=a.results, timed=False)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bc.common_args(ap)
    ap.add_argument("--profiles", nargs="+", default=None, help="profiles to time (default: smoke default)")
    ap.add_argument("--no-paper", action="store_true", help="skip the paper profile's prediction")
    a = ap.parse_args(argv)
    recs = [] if a.no_paper else [paper_record(a)]
    for prof in a.profiles or (["smoke"] if a.quick else ["smoke", "default"]):
        la = bc.wait_for_quiet(a.max_wait)
        rows = timed_rows(prof)
        notes = (f"`hipaug reproduce --profile {prof}` from an empty artifact cache, each run in a fresh process on "
                 f"{os.cpu_count()} cores: serially, then on a local Dask cluster (`--workers N`, cores / N torch "
                 "threads per worker). 'results' compares the results folder byte for byte with the serial run of the "
                 "same threads per task. The predicted speed-up is the dry run's, from task FLOPs alone (no start-up, "
                 "no data loading, no contention for memory bandwidth).")
        recs.append(bc.record(f"grid_{prof}", f"The grid of `{prof}` serially and on Dask workers", rows, notes,
                              load=la, results_dir=a.results))
    return recs


if __name__ == "__main__":
    main()
