"""How far results move on another CPU: the experiment under this machine's kernels and under a second kernel set.

    python benchmarks/bench_kernels.py [--profiles smoke default]

Each profile's `hipaug reproduce` runs twice from empty stores: as this machine computes, and
under `hipaug.core.machine.SECOND_KERNEL_SET` (ATen's default kernels, oneDNN at SSE4.1, MKL at
SSE4.2, OpenBLAS's Haswell kernels, numpy without AVX-512, one thread), the way another CPU would.
The two results stores are compared file by file (every CSV of Table VIII, its tests and
ablations; `run.json` differs by design: it records the kernels), metric by metric (the largest
difference of any fold, and of a condition's mean), and verdict by verdict (the claims ledger on
both stores). The book's reproducibility page states the latest record. It is not a speed
benchmark: the second kernel set is slow by construction, so its wall time says nothing.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import bench_common as bc
import pandas as pd

from hipaug.core.machine import SECOND_KERNEL_SET
from hipaug.evaluation import METRICS

KEYS = ["condition", "repeat", "fold"]


def reproduce(profile: str, store: Path, env: dict) -> tuple[Path, float]:
    """`hipaug reproduce --profile P --ablations` into `store`; the results folder and the wall time."""
    t0 = time.perf_counter()
    r = subprocess.run([sys.executable, "-m", "hipaug", "reproduce", "--profile", profile, "--ablations",
                        "--artifacts", str(store / "artifacts"), "--out", str(store / "results")],
                       env={**env, "HIPAUG_PROGRESS": "0", "PYTHONPATH": str(bc.ROOT)}, cwd=store,
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"reproduce --profile {profile} failed:\n{r.stderr[-3000:]}")
    return next((store / "results").glob("*/*")), time.perf_counter() - t0


def verdicts(results: Path) -> dict[str, str]:
    """Each claim's verdict on a results store (the ledger of book/claims.yml)."""
    from hipaug.book.claims import evaluate, load_ledger, load_results

    return {r.claim.id: r.verdict for r in evaluate(load_ledger(), load_results(results))}


def compare(a: Path, b: Path) -> dict:
    """The differences between two results stores of one profile."""
    names = sorted(p.name for p in a.glob("*.csv"))
    same = [n for n in names if (b / n).is_file() and (a / n).read_bytes() == (b / n).read_bytes()]
    fa, fb = (pd.read_csv(d / "table8_folds.csv").set_index(KEYS).sort_index() for d in (a, b))
    metrics = [m for m in METRICS if m in fa.columns]
    fold_diff = (fa[metrics] - fb[metrics]).abs()
    mean_diff = (fa.groupby("condition")[metrics].mean() - fb.groupby("condition")[metrics].mean()).abs()
    va, vb = verdicts(a), verdicts(b)
    flips = [f"{c}: {va[c]} -> {vb.get(c)}" for c in va if va[c] != vb.get(c)]
    return {
        "result files": len(names), "byte-identical": len(same),
        "fold metric values differing": int((fold_diff > 0).to_numpy().sum()), "fold values": int(fold_diff.size),
        "max fold difference (points)": 100 * float(fold_diff.to_numpy().max()),
        "max fold accuracy difference (points)": 100 * float(fold_diff["accuracy"].max()),
        "max condition mean accuracy difference (points)": 100 * float(mean_diff["accuracy"].max()),
        "max condition mean AUC difference (points)": 100 * float(mean_diff["auc"].max()),
        "claims": len(va), "verdicts changed": len(flips), "changed": "; ".join(flips),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profiles", nargs="+", default=["smoke"], help="profiles to run (default: smoke)")
    args = ap.parse_args(argv)
    from hipaug.config import load_profile

    rows = []
    for profile in args.profiles:
        with tempfile.TemporaryDirectory(prefix=f"kernels-{profile}-") as tmp:
            here, there = Path(tmp, "here"), Path(tmp, "there")
            here.mkdir(), there.mkdir()
            print(f"[bench] {profile}: this machine's kernels ...", file=sys.stderr, flush=True)
            a, ta = reproduce(profile, here, dict(os.environ))
            print(f"[bench] {profile}: the second kernel set ...", file=sys.stderr, flush=True)
            b, tb = reproduce(profile, there, {**os.environ, **SECOND_KERNEL_SET})
            rows.append({"profile": profile, "dtype": load_profile(profile).dtype, **compare(a, b),
                         "wall s here": ta, "wall s second set": tb})
    kernels = " ".join(f"{k}={v}" for k, v in SECOND_KERNEL_SET.items())
    bc.record("kernels", "Results on another CPU: this machine's kernels against a second kernel set", rows,
              notes=f"Second kernel set: {kernels}. Differences are absolute, in points (percentage points; "
                    "AUC and MCC x 100). run.json is not compared: it records the kernels.", timed=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
