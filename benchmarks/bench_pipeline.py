"""The whole pipeline per profile and the book build: wall time and peak RSS, cold and cached.

    python benchmarks/bench_pipeline.py [--quick] [--profiles smoke default] [--no-book]

`hipaug reproduce --profile P` runs first from an empty artifact cache (a temporary
HIPAUG_ARTIFACTS folder) and then again on the filled cache. `python -m hipaug.book --profile
P` (smoke and default) runs once with an empty notebook cache (`_build/nbcache/P` moved aside and
restored afterwards; temporary artifacts) and once cached. Each command runs under a small
wrapper process, so `getrusage(RUSAGE_CHILDREN).ru_maxrss` is the peak RSS of that command's
largest process (papermill kernels are grandchildren and are included when they are waited for).
`--quick` runs the smoke profile only. The default profile takes many minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import bench_common as bc

_WRAP = ("import json, resource, subprocess, sys, time; t = time.perf_counter(); "
         "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True); "
         "dt = time.perf_counter() - t; ru = resource.getrusage(resource.RUSAGE_CHILDREN); "
         "print(json.dumps({'rc': r.returncode, 'seconds': dt, 'peak_mb': ru.ru_maxrss / 1024.0, "
         "'cpu_s': ru.ru_utime + ru.ru_stime, 'err': r.stderr[-2000:]}))")


def run(cmd: list[str], env: dict) -> dict:
    e = dict(os.environ)
    e.update(env)
    e.setdefault("HIPAUG_PROGRESS", "0")
    p = subprocess.run([sys.executable, "-c", _WRAP, *cmd], capture_output=True, text=True, env=e, cwd=bc.ROOT)
    out = json.loads(p.stdout.strip().splitlines()[-1])
    if out["rc"] != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({out['rc']}):\n{out['err']}")
    return out


def _temp_env(tmp: str) -> dict:
    """Artifacts, results and the data cache in a temporary folder (nothing of the user's is reused)."""
    return {"HIPAUG_ARTIFACTS": str(Path(tmp) / "artifacts"), "HIPAUG_RESULTS": str(Path(tmp) / "results"),
            "HIPAUG_CACHE": str(Path(tmp) / "datacache")}


def _cold_then_cached(label: str, cmd: list[str], env: dict, cold: str) -> list[dict]:
    """Run `cmd` twice (`cold`, then with what the first run cached); one row per run."""
    rows = []
    for state in (cold, "cached"):
        print(f"[bench] {label}: {state} ...", file=sys.stderr, flush=True)
        r = run(cmd, env)
        rows.append({"command": label, "cache": state,
                     "wall s": r["seconds"], "CPU s": r["cpu_s"], "peak RSS MB": r["peak_mb"]})
        print(f"[bench]   {r['seconds']:.1f} s, peak {r['peak_mb']:.0f} MB", file=sys.stderr, flush=True)
    return rows


def book_record(prof: str, notes: str, a) -> dict:
    """Build the book of `prof` from an empty notebook + artifact cache, then again cached."""
    la = bc.wait_for_quiet(a.max_wait)
    nbcache = bc.ROOT / "_build" / "nbcache" / prof
    backup = nbcache.with_name(f".{prof}-bench-backup-{os.getpid()}")
    with tempfile.TemporaryDirectory(prefix="hipaug-book-") as tmp:
        if nbcache.exists():
            nbcache.rename(backup)
        try:
            rows = _cold_then_cached(f"python -m hipaug.book --profile {prof}",
                                     [sys.executable, "-m", "hipaug.book", "--profile", prof], _temp_env(tmp),
                                     "cold (empty notebook + artifact cache)")
        finally:
            if backup.exists():  # put the user's executed notebooks back
                shutil.rmtree(nbcache, ignore_errors=True)
                backup.rename(nbcache)
    return bc.record(f"book_{prof}", f"Book build: python -m hipaug.book --profile {prof}", rows,
                     notes + " The book build executes the chapter notebooks (papermill) and runs jupyter-book; the "
                     "cached run re-uses the executed notebooks.", load=la, results_dir=a.results)


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bc.common_args(ap)
    ap.add_argument("--profiles", nargs="+", default=None, help="profiles to reproduce (default: smoke default)")
    ap.add_argument("--no-book", action="store_true", help="skip the book build timing")
    ap.add_argument("--book-profiles", nargs="+", default=None, help="books to build (default: smoke default)")
    a = ap.parse_args(argv)
    profiles = a.profiles or (["smoke"] if a.quick else ["smoke", "default"])
    recs = []
    notes = ("Wall time and peak RSS of one command (its largest process) from a fresh temporary artifact cache, "
             "then again with the cache filled. CPU s = user + system time of the command and its children "
             f"({os.cpu_count()} cores).")
    for prof in profiles:
        la = bc.wait_for_quiet(a.max_wait)
        with tempfile.TemporaryDirectory(prefix=f"hipaug-pipe-{prof}-") as tmp:
            env = _temp_env(tmp)
            cmd = [sys.executable, "-m", "hipaug", "reproduce", "--profile", prof, "--artifacts", env["HIPAUG_ARTIFACTS"],
                   "--out", env["HIPAUG_RESULTS"]]
            rows = _cold_then_cached(f"hipaug reproduce --profile {prof}", cmd, env, "cold (empty artifact cache)")
        recs.append(bc.record(f"pipeline_{prof}", f"Whole pipeline: hipaug reproduce --profile {prof}", rows, notes,
                              load=la, results_dir=a.results))
    books = [] if a.no_book else (a.book_profiles or (["smoke"] if a.quick else ["smoke", "default"]))
    for prof in books:
        recs.append(book_record(prof, notes, a))
    return recs


if __name__ == "__main__":
    main()
