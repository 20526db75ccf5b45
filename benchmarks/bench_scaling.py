"""Scaling: VGG-16 training throughput and peak memory vs image size, and loading vs dataset size.

    python benchmarks/bench_scaling.py [--quick]

Every point runs in a fresh process and reports its peak RSS (VmHWM, the kernel's high-water mark
of the process since exec; tracemalloc does not see torch's allocations, and a forked child's
ru_maxrss starts at its parent's size) next to the peak right after `import torch, hipaug`
(the interpreter's floor). Image size: `train_classifier` for one epoch on random images at 32/64/128 px with the
default profile's VGG-16 (width/fc fixed; the adaptive pool follows the size). Dataset size:
`load_dataset` of N phantom PNGs at 64 px, first without a cache (decode) and then from the
`.hipaug_cache` tensor file, with the in-memory tensor bytes.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import bench_common as bc

BENCH_DIR = Path(__file__).resolve().parent

_PRELUDE = """
import json, sys, time
sys.path.insert(0, %r)
from bench_common import vm_hwm_mb as rss  # peak RSS since exec (ru_maxrss would include the parent's at fork)
import torch, hipaug, hipaug.models.vgg, hipaug.training, hipaug.data
base = rss()
""" % str(BENCH_DIR)

_TRAIN = _PRELUDE + """
import dataclasses
from torch.utils.flop_counter import FlopCounterMode
from hipaug.config import load_profile
from hipaug.data import from_arrays
from hipaug.models.vgg import vgg16
from hipaug.training import train_classifier
S, N = %d, %d
p = load_profile("default", device="cpu")
a = p.arch
g = torch.Generator().manual_seed(0)
ds = from_arrays(torch.rand(N, 1, S, S, generator=g), torch.arange(N) %% 8, [f"c{i}" for i in range(8)])
cfg = dataclasses.replace(p.pretrain, epochs=1, patience=None, val_fraction=0.0, device="cpu")
mk = lambda: vgg16(8, width=a.width, fc_width=a.fc_width, image_size=S, batch_norm=a.batch_norm,
                   pretrained="never", dropout=a.dropout, seed=0)
with FlopCounterMode(display=False) as fc:
    train_classifier(mk(), ds.subset(list(range(cfg.batch_size))), cfg, seed=0)
flops = fc.get_total_flops()
t0 = time.perf_counter()
train_classifier(mk(), ds, cfg, seed=0)
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "images": N, "batch": cfg.batch_size, "flops_per_step": flops,
                  "base_mb": base, "peak_mb": rss(),
                  "tensor_mb": ds.images.numel() * 4 / 2**20}))
"""

_LOAD = _PRELUDE + """
from hipaug.data import load_dataset
root = %r
t0 = time.perf_counter(); ds = load_dataset(root, image_size=64, cache=%s); dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "images": len(ds), "base_mb": base, "peak_mb": rss(),
                  "tensor_mb": ds.images.numel() * ds.images.element_size() / 2**20}))
"""


def main(argv=None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bc.common_args(ap)
    a = ap.parse_args(argv)
    from hipaug.data import from_arrays, write_dataset
    from hipaug.data.phantoms import render_limb

    sizes = (32, 64, 128)
    n_train = {32: 512, 64: 256, 128: 128} if a.quick else {32: 2048, 64: 1024, 128: 512}
    counts = (500, 2000) if a.quick else (1000, 4000, 16000)
    recs = []
    la = bc.wait_for_quiet(a.max_wait)
    rows = []
    for S in sizes:
        r = bc.fresh_python(_TRAIN % (S, n_train[S]))
        steps_per_s = (r["images"] / r["batch"]) / r["seconds"]
        rows.append({"image size": S, "images": r["images"], "images/s": r["images"] / r["seconds"],
                     "GFLOP/step": r["flops_per_step"] / 1e9, "GFLOP/s": r["flops_per_step"] * steps_per_s / 1e9,
                     "peak RSS MB": r["peak_mb"], "RSS after import MB": r["base_mb"],
                     "images tensor MB": r["tensor_mb"]})
        print(f"[bench] train {S}px: {rows[-1]['images/s']:.1f} images/s", file=sys.stderr, flush=True)
    from hipaug.config import load_profile

    p = load_profile("default", device="cpu")
    recs.append(bc.record("scaling_image_size", "Scaling: VGG-16 training vs image size", rows,
                          f"Default-profile VGG-16 (width {p.arch.width}, fc {p.arch.fc_width}), batch "
                          f"{p.pretrain.batch_size}, one epoch of train_classifier (no validation) on random images, "
                          "wall time including set-up; fresh process per point.", load=la, results_dir=a.results))

    la = bc.wait_for_quiet(a.max_wait)
    rows = []
    with tempfile.TemporaryDirectory(prefix="hipaug-scale-") as tmp:
        for n in counts:
            b = render_limb(max(1, n // 8), image_size=64, seed=0)
            root = write_dataset(from_arrays(b.images, b.labels, b.class_names, meta=b.meta), Path(tmp) / f"n{n}")
            for mode, cache in (("decode PNG (no cache)", False), ("decode + write cache", True),
                                ("from cache", True)):
                r = bc.fresh_python(_LOAD % (str(root), cache), env={"HIPAUG_CACHE": str(Path(tmp) / "cache")})
                rows.append({"images": r["images"], "load": mode, "seconds": r["seconds"],
                             "images/s": r["images"] / r["seconds"], "images tensor MB": r["tensor_mb"],
                             "peak RSS MB": r["peak_mb"], "RSS after import MB": r["base_mb"]})
                print(f"[bench] load {n} ({mode}): {rows[-1]['images/s']:.0f} images/s", file=sys.stderr, flush=True)
    big = [r for r in rows if r["images"] == max(x["images"] for x in rows)]
    over = ", ".join(f"{r['load']}: {(r['peak RSS MB'] - r['RSS after import MB']) / r['images tensor MB']:.1f}x"
                     for r in big)
    recs.append(bc.record("scaling_dataset", "Scaling: loading a dataset folder vs its size (64 px)", rows,
                          "hipaug.data.load_dataset on N limb phantom PNGs (manifest layout), fresh process per "
                          f"point. Memory above the import floor per tensor byte at the largest N: {over}.",
                          load=la, results_dir=a.results))
    return recs


if __name__ == "__main__":
    main()
