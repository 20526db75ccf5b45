"""VGG-16 inference throughput: the realism filter scoring AC-GAN samples (`predict_proba`).

    python benchmarks/bench_inference.py [--quick]

`hipaug.training.predict_proba(model, images, batch_size=256)` on the default profile's VGG-16 over a
synthetic-pool-sized set of images, against the plain way (eval mode, `torch.no_grad()`, a
DataLoader-free loop over the same tensor). One warm-up call each, then the best of a few
interleaved repeats.
"""

from __future__ import annotations

import argparse

import bench_common as bc
import torch
from torch.utils.flop_counter import FlopCounterMode


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bc.common_args(ap)
    ap.add_argument("--profile", default="default")
    a = ap.parse_args(argv)
    from bench_machine import reference_gflops
    from hipaug.config import load_profile
    from hipaug.models.vgg import vgg16
    from hipaug.training import predict_proba

    prof = load_profile(a.profile, device="cpu")
    ar, S = prof.arch, prof.image_size
    C = 8
    n = 512 if a.quick else 8 * prof.filter.synthetic_per_class
    repeats = 2 if a.quick else 3
    model = vgg16(C, width=ar.width, fc_width=ar.fc_width, image_size=S, batch_norm=ar.batch_norm,
                  pretrained="never", dropout=ar.dropout, seed=0).eval()
    x = torch.rand(n, 1, S, S, generator=torch.Generator().manual_seed(0))
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        model(x[:1])
    fl = fc.get_total_flops()

    def plain(bs=256):
        model.eval()
        with torch.no_grad():
            return torch.cat([torch.softmax(model(x[i:i + bs]), 1) for i in range(0, n, bs)]).numpy()

    la = bc.wait_for_quiet(a.max_wait)
    ref = reference_gflops(results_dir=a.results)
    runs = {"hipaug predict_proba": lambda: predict_proba(model, x, batch_size=256),
            "plain eval loop (no_grad)": plain}
    best = {k: float("inf") for k in runs}
    for fn in runs.values():  # warm-up: oneDNN creates its kernels for each shape on first use
        fn()
    for _ in range(repeats):
        for k, fn in runs.items():
            s, _ = bc.timed(fn, repeats=1, warmup=0)
            best[k] = min(best[k], s)
    base = best["plain eval loop (no_grad)"]
    rows = [{"loop": k, "batch": 256, "images": n, "images/s": n / s, "GFLOP/s": n * fl / s / 1e9,
             "utilization": n * fl / s / 1e9 / ref, "ratio vs plain": base / s} for k, s in best.items()]
    notes = (f"Default-profile VGG-16 (width {ar.width}, fc {ar.fc_width}) at {S} px, {fl / 1e6:.1f} MFLOP per image "
             f"forward; {n} images (the default synthetic pool is {8 * prof.filter.synthetic_per_class}). "
             f"Best of {repeats}. {bc.utilisation_note(ref)}")
    return bc.record("inference", "VGG-16 inference: the realism filter (predict_proba)", rows, notes, load=la,
                     results_dir=a.results)


if __name__ == "__main__":
    main()
