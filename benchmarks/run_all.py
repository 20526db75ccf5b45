"""Run every benchmark in sequence (`make bench`); each appends one JSON line per record to results/.

    python benchmarks/run_all.py [--quick] [--only machine training ...] [--skip pipeline ...]

Each benchmark runs in its own process (no torch state such as thread counts or deterministic
flags leaks from one into the next) and is runnable alone: `python benchmarks/bench_<name>.py`.
Without `--quick` the pipeline benchmark also reproduces the default profile (many minutes on
2 cores). The book's Performance appendix (hipaug.book.perfpage) shows the latest record of each.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# In order: the machine reference first (the utilisation denominator), the long pipeline last.
BENCHMARKS = ("machine", "paper_cost", "phantom_gen", "inference", "training", "levers", "scaling", "pipeline", "grid")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a fast pass (fewer steps, smoke pipeline only)")
    ap.add_argument("--only", nargs="+", choices=BENCHMARKS, help="run only these")
    ap.add_argument("--skip", nargs="+", choices=BENCHMARKS, default=(), help="skip these")
    ap.add_argument("--results", type=Path, default=None, help="results folder (default: benchmarks/results)")
    ap.add_argument("--max-wait", type=float, default=120.0, help="seconds each benchmark waits for a quiet machine")
    a = ap.parse_args(argv)
    names = [b for b in (a.only or BENCHMARKS) if b not in a.skip]
    common = (["--quick"] if a.quick else []) + ["--max-wait", str(a.max_wait)]
    if a.results is not None:
        common += ["--results", str(a.results)]
    failed = []
    t_all = time.perf_counter()
    for name in names:
        t0 = time.perf_counter()
        print(f"\n[run_all] bench_{name}.py {' '.join(common)}", flush=True)
        rc = subprocess.run([sys.executable, str(HERE / f"bench_{name}.py"), *common]).returncode
        print(f"[run_all] bench_{name}.py: {'ok' if rc == 0 else f'FAILED ({rc})'} in {time.perf_counter() - t0:.0f}s",
              flush=True)
        if rc != 0:
            failed.append(name)
    print(f"\n[run_all] {len(names) - len(failed)}/{len(names)} benchmarks ok in {time.perf_counter() - t_all:.0f}s"
          + (f"; failed: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
