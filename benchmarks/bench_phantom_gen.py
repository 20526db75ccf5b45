"""Phantom radiograph generation throughput (images/s) at 64 and 128 px, recorded for the book.

    python benchmarks/bench_phantom_gen.py [--quick]

Times `hipaug.data.phantoms.render_limb` / `render_pelvic` through `bench_phantoms.bench` (the phantom
module's own benchmark; best of 2 seeds) and appends a record to results/phantoms.jsonl.
"""

from __future__ import annotations

import argparse
import time

import bench_common as bc


def _bench(kind: str, n: int, size: int, repeats: int) -> float:
    try:
        from bench_phantoms import bench
    except ImportError:  # fall back to timing the renderers directly
        bench = None
    if bench is not None:
        return bench(kind, n, size, repeats=repeats)
    from hipaug.data.phantoms import LIMB_PARTS, render_limb, render_pelvic

    best = float("inf")
    for r in range(repeats):
        t0 = time.perf_counter()
        b = render_limb(max(1, n // (2 * len(LIMB_PARTS))), image_size=size, seed=r) if kind == "limb" else \
            render_pelvic(n, image_size=size, seed=r)
        best = min(best, (time.perf_counter() - t0) / len(b))
    return 1.0 / best


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bc.common_args(ap)
    a = ap.parse_args(argv)
    n64 = 320 if a.quick else 960
    repeats = 1 if a.quick else 2
    la = bc.wait_for_quiet(a.max_wait)
    rows = []
    for size in (64, 128):
        n = max(16, int(n64 * (64 / size) ** 2))
        for kind in ("limb", "pelvic"):
            rows.append({"kind": kind, "image size": size, "images": n, "images/s": _bench(kind, n, size, repeats)})
    notes = (f"numpy renderers (hipaug.data.phantoms), best of {repeats}; the phantom module's goal is >= 2,000 images/s "
             "at 64 px on this 2-core CPU.")
    return bc.record("phantoms", "Phantom generation throughput", rows, notes, load=la, results_dir=a.results)


if __name__ == "__main__":
    main()
