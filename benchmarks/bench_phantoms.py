"""Throughput of the radiograph phantom generator (images/s) for limbs and AP pelvis.

    python benchmarks/bench_phantoms.py [--n 960] [--sizes 64 128]

Goal (see hipaug.data.phantoms): >= 2,000 images/s at 64 px on a 2-core CPU. Rendering is numpy,
vectorised over chunks of images; numpy's element-wise kernels run on one core, the blur
matrix products may use BLAS threads.
"""

from __future__ import annotations

import argparse
import time

from hipaug.data.phantoms import LIMB_PARTS, render_limb, render_pelvic


def bench(kind: str, n: int, size: int, repeats: int = 2) -> float:
    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        if kind == "limb":
            per = max(1, n // (2 * len(LIMB_PARTS)))
            b = render_limb(per, image_size=size, seed=r)
        else:
            b = render_pelvic(n, image_size=size, seed=r)
        best = min(best, (time.perf_counter() - t0) / len(b))
    return 1.0 / best


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=960, help="images per measurement (at 64 px)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128])
    a = ap.parse_args(argv)
    print(f"{'kind':8s} {'size':>5s} {'images/s':>10s}")
    for size in a.sizes:
        n = max(16, int(a.n * (64 / size) ** 2))
        for kind in ("limb", "pelvic"):
            print(f"{kind:8s} {size:5d} {bench(kind, n, size):10.0f}", flush=True)


if __name__ == "__main__":
    main()
