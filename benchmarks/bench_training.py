"""hipaug's training loops against plain public-recipe loops, at the default profile's sizes.

    python benchmarks/bench_training.py [--quick]

Measures what a user gets: `hipaug.training.train_classifier` for a fixed number of epochs on an
in-memory ImageDataset of limb phantoms, and `hipaug.training.gan.train_acgan` for N steps into a fresh
folder (sample grid and checkpoint only at the end), wall time of the whole call, nothing
subtracted. Side by side, `plain_loops.py` trains the same networks the tutorial way (DataLoader
over PNG files, `.item()` every step) with 0 and 2 loader workers. Every run is a fresh
subprocess (no state shared between variants) and variants are interleaved; the best of the
repeats is kept. FLOPs per step (forward + backward, `torch.utils.flop_counter`) are counted on
the real loops; utilisation = achieved GFLOP/s / forward GFLOP/s of the reference conv (measured
in the same run).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

import bench_common as bc

BENCH_DIR = Path(__file__).resolve().parent


# ----------------------------------------------------------------------------- data

def make_data(work: Path, size: int, per_class: int, seed: int = 0) -> tuple[Path, Path, int]:
    """Limb phantoms as a saved tensor file (for hipaug) and a PNG ImageFolder (for the plain loops)."""
    import torch
    from hipaug.data import from_arrays, write_dataset
    from hipaug.data.phantoms import render_limb

    b = render_limb(per_class, image_size=size, seed=seed)
    ds = from_arrays(b.images, b.labels, b.class_names, meta=b.meta)
    # Round-trip through 8 bits so both loops see the same pixels.
    x = (ds.images * 255).round() / 255
    pt = work / f"limb{size}.pt"
    torch.save({"images": x, "labels": ds.labels, "class_names": list(ds.class_names),
                "patient_ids": list(ds.patient_ids)}, pt)
    png = work / f"limb{size}_png"
    write_dataset(from_arrays(x, ds.labels, ds.class_names, patient_ids=ds.patient_ids), png)
    return pt, png, len(ds)


def load_data(pt: str):
    import torch
    from hipaug.data import from_arrays

    d = torch.load(pt, weights_only=True)
    return from_arrays(d["images"], d["labels"], d["class_names"], patient_ids=d["patient_ids"])


# ----------------------------------------------------------------------------- workers (fresh processes)

def _vgg_model(prof, num_classes: int):
    from hipaug.models.vgg import vgg16

    a = prof.arch
    return vgg16(num_classes, width=a.width, fc_width=a.fc_width, image_size=prof.image_size,
                 batch_norm=a.batch_norm, pretrained="never", dropout=a.dropout, seed=0)


def _vgg_cfg(prof, epochs: int):
    # The process's threads, as the plain loop has: the default profile pins its pre-training at one thread
    # (two run side by side in the book), which made this loop a one-thread run against a two-thread one.
    return dataclasses.replace(prof.pretrain, epochs=epochs, patience=None, val_fraction=0.0, device="cpu",
                               num_threads=None)


def worker(kind: str, pt: str, png: str, n: int, profile: str = "default", workers: int = 0,
           width: float = 0.125, fc_width: int = 128) -> dict:
    """Run one measurement; `n` is epochs (vgg) or steps (acgan) or images (vgg-width)."""
    import torch
    from hipaug.config import load_profile

    prof = load_profile(profile, device="cpu")
    ds = load_data(pt)
    C = len(ds.class_names)
    out: dict = {"kind": kind, "threads": torch.get_num_threads()}
    if kind == "vgg-hipaug":
        from hipaug.training import train_classifier

        model = _vgg_model(prof, C)
        cfg = _vgg_cfg(prof, n)
        t0 = time.perf_counter()
        train_classifier(model, ds, cfg, seed=0)
        dt = time.perf_counter() - t0
        nb = len(ds) // cfg.batch_size + (1 if len(ds) % cfg.batch_size >= 2 else 0)
        out.update(images=n * min(len(ds), nb * cfg.batch_size), seconds=dt, steps=n * nb)
    elif kind == "vgg-plain":
        from plain_loops import train_vgg_plain

        model = _vgg_model(prof, C)
        cfg = _vgg_cfg(prof, n)
        r = train_vgg_plain(model, png, n, cfg.batch_size, cfg.lr, num_workers=workers)
        out.update(images=r["images"], seconds=r["seconds"], steps=r["images"] // cfg.batch_size)
    elif kind == "acgan-hipaug":
        from hipaug.training import train_acgan

        cfg = dataclasses.replace(prof.acgan, steps=n, sample_every=0, checkpoint_every=0, device="cpu")
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            train_acgan(cfg, ds, Path(tmp) / "run", seed=0)
            dt = time.perf_counter() - t0
        out.update(images=n * cfg.batch_size, seconds=dt, steps=n)
    elif kind == "acgan-plain":
        from hipaug.models.acgan import build_models
        from plain_loops import train_acgan_plain

        cfg = prof.acgan
        torch.manual_seed(0)
        G, D = build_models(cfg, C)
        r = train_acgan_plain(G, D, png, n, cfg.batch_size, cfg.latent_dim, C, cfg.lr_g, cfg.betas,
                              num_workers=workers)
        out.update(images=r["images"], seconds=r["seconds"], steps=r["steps"])
    elif kind == "vgg-width":
        # hipaug's loop on a wider VGG-16: where the same loop meets the utilisation target.
        from torch.utils.flop_counter import FlopCounterMode
        from hipaug.models.vgg import vgg16
        from hipaug.training import train_classifier

        a = prof.arch
        mk = lambda: vgg16(C, width=width, fc_width=fc_width, image_size=prof.image_size,  # noqa: E731
                           batch_norm=a.batch_norm, pretrained="never", dropout=a.dropout, seed=0)
        cfg = _vgg_cfg(prof, 1)
        sub = ds.subset(list(range(min(len(ds), n))))
        with FlopCounterMode(display=False) as fc:
            train_classifier(mk(), ds.subset(list(range(cfg.batch_size))), cfg, seed=0)
        t0 = time.perf_counter()
        train_classifier(mk(), sub, cfg, seed=0)
        dt = time.perf_counter() - t0
        nb = len(sub) // cfg.batch_size
        out.update(images=nb * cfg.batch_size, seconds=dt, steps=nb, flops_per_step=fc.get_total_flops())
    else:
        raise ValueError(kind)
    out["images_per_s"] = out["images"] / out["seconds"]
    return out


def flops_worker(pt: str, profile: str = "default") -> dict:
    """FLOPs per training step of each loop, counted on the loops themselves."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from hipaug.models.acgan import build_models
    from hipaug.training import train_acgan
    from hipaug.config import load_profile
    from hipaug.training import train_classifier
    from plain_loops import acgan_plain_step_fn

    prof = load_profile(profile, device="cpu")
    ds = load_data(pt)
    C = len(ds.class_names)
    res = {}
    # VGG: one epoch over exactly two batches; the plain loop runs the same forward/backward.
    cfg = _vgg_cfg(prof, 1)
    sub = ds.subset(list(range(2 * cfg.batch_size)))
    model = _vgg_model(prof, C)
    with FlopCounterMode(display=False) as fc:
        train_classifier(model, sub, cfg, seed=0)
    res["vgg"] = fc.get_total_flops() / 2
    res["vgg-plain"] = res["vgg"]
    # AC-GAN: (3 steps - 1 step) / 2 of the real train_acgan (end-of-run grid cancels out).
    counts = []
    for steps in (1, 3):
        acfg = dataclasses.replace(prof.acgan, steps=steps, sample_every=0, checkpoint_every=0, device="cpu")
        with tempfile.TemporaryDirectory() as tmp, FlopCounterMode(display=False) as fc:
            train_acgan(acfg, ds, Path(tmp) / "run", seed=0)
        counts.append(fc.get_total_flops())
    res["acgan"] = (counts[1] - counts[0]) / 2
    torch.manual_seed(0)
    G, D = build_models(prof.acgan, C)
    step = acgan_plain_step_fn(G, D, prof.acgan.batch_size, prof.acgan.latent_dim, C, prof.image_size)
    with FlopCounterMode(display=False) as fc:
        step()
    res["acgan-plain"] = fc.get_total_flops()
    # G forward alone (the extra no-grad forward of hipaug's D step)
    z = torch.randn(prof.acgan.batch_size, prof.acgan.latent_dim)
    y = torch.randint(0, C, (prof.acgan.batch_size,))
    with torch.no_grad(), FlopCounterMode(display=False) as fc:
        G(z, y)
    res["g_forward"] = fc.get_total_flops()
    return res


def run_worker(fn: str, **kw) -> dict:
    code = ("import json, sys; sys.path.insert(0, %r); import bench_training as b; "
            "print(json.dumps(b.%s(**%r)))" % (str(BENCH_DIR), fn, kw))
    return bc.fresh_python(code)


# ----------------------------------------------------------------------------- main

TARGET_UTILIZATION = 0.7  # the performance target: achieved / measured conv GFLOP/s
WIDTHS = ((0.125, 128, 800), (0.25, 256, 800), (0.5, 512, 320), (1.0, 4096, 128))  # width, fc, images


def width_record(a, prof, pt: str, png: str) -> dict:
    """hipaug's VGG loop at widths 1/8 ... 1 (the same profile otherwise): utilisation vs width."""
    from bench_machine import reference_gflops

    widths = WIDTHS[::2] if a.quick else WIDTHS
    la = bc.wait_for_quiet(a.max_wait)
    ref = reference_gflops(results_dir=a.results)
    rows = []
    for w, fc_w, n in widths:
        n = n // 2 if a.quick else n
        r = run_worker("worker", kind="vgg-width", pt=pt, png=png, n=n, profile=a.profile, width=w, fc_width=fc_w)
        gfs = r["flops_per_step"] * r["steps"] / r["seconds"] / 1e9
        rows.append({"width": w, "fc": fc_w, "batch": prof.pretrain.batch_size, "images": r["images"],
                     "images/s": r["images_per_s"], "GFLOP/step": r["flops_per_step"] / 1e9, "GFLOP/s": gfs,
                     "utilization": gfs / ref})
        print(f"[bench] vgg width {w}: {r['images_per_s']:.1f} images/s", file=sys.stderr, flush=True)
    reach = [f"{r['width']:g}" for r in rows if r["utilization"] >= TARGET_UTILIZATION]
    verdict = (f"Utilisation reaches the {TARGET_UTILIZATION} target at width(s) {', '.join(reach)}."
               if reach else f"No width measured here reaches the {TARGET_UTILIZATION} utilisation target.")
    notes = (f"hipaug.training.train_classifier (one epoch, no validation, wall time of the call) on {prof.image_size}-px "
             f"limb phantoms, batch {prof.pretrain.batch_size}, VGG-16 at channel widths {widths[0][0]:g} (the default "
             f"profile's is {prof.arch.width:g}) to {widths[-1][0]:g} (1 = torchvision's), same loop otherwise. {verdict} "
             f"{bc.utilisation_note(ref)}")
    return bc.record("training_width", "VGG-16 training loop vs network width (utilisation)", rows, notes, load=la,
                     results_dir=a.results)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bc.common_args(ap)
    ap.add_argument("--profile", default="default")
    ap.add_argument("--no-width", action="store_true", help="skip the VGG width sweep (record training_width)")
    a = ap.parse_args(argv)
    from bench_machine import reference_gflops
    from hipaug.config import load_profile

    prof = load_profile(a.profile, device="cpu")
    epochs = 2 if a.quick else 8
    steps = 20 if a.quick else 100
    repeats = 1 if a.quick else 2
    with tempfile.TemporaryDirectory(prefix="hipaug-bench-") as tmp:
        per_class = prof.phantom.limb_per_class
        pt, png, n_images = make_data(Path(tmp), prof.image_size, per_class)
        pt, png = str(pt), str(png)
        flops = run_worker("flops_worker", pt=pt, profile=a.profile)
        la = bc.wait_for_quiet(a.max_wait)
        ref = reference_gflops(results_dir=a.results)
        variants = [("vgg-hipaug", epochs, 0), ("vgg-plain", epochs, 0), ("vgg-plain", epochs, 2),
                    ("acgan-hipaug", steps, 0), ("acgan-plain", steps, 0), ("acgan-plain", steps, 2)]
        best: dict = {}
        for _ in range(repeats):
            for kind, n, w in variants:
                r = run_worker("worker", kind=kind, pt=pt, png=png, n=n, profile=a.profile, workers=w)
                print(f"[bench] {kind} workers={w}: {r['images_per_s']:.1f} images/s", file=sys.stderr, flush=True)
                key = (kind, w)
                if key not in best or r["images_per_s"] > best[key]["images_per_s"]:
                    best[key] = r
        ref = max(ref, reference_gflops(results_dir=a.results))
        if not a.no_width:
            width_record(a, prof, pt, png)
    rows = []
    for (kind, w), r in best.items():
        model, loop = kind.split("-")
        fl = flops["vgg" if model == "vgg" else ("acgan" if loop == "hipaug" else "acgan-plain")]
        steps_per_s = r["steps"] / r["seconds"]
        gfs = fl * steps_per_s / 1e9
        batch = prof.pretrain.batch_size if model == "vgg" else prof.acgan.batch_size
        rows.append({"model": "VGG-16" if model == "vgg" else "AC-GAN",
                     "loop": "hipaug" if loop == "hipaug" else f"plain (DataLoader, {w} workers)",
                     "batch": batch, "images/s": r["images_per_s"], "GFLOP/step": fl / 1e9,
                     "GFLOP/s": gfs, "utilization": gfs / ref})
    for row in rows:
        plain = [r["images/s"] for r in rows if r["model"] == row["model"] and r["loop"] != "hipaug"]
        row["ratio hipaug/plain"] = (next(r["images/s"] for r in rows if r["model"] == row["model"]
                                          and r["loop"] == "hipaug") / max(plain)) if row["loop"] == "hipaug" else None
    a_ = prof.arch
    notes = (f"Profile `{a.profile}`: {prof.image_size} px; VGG-16 width {a_.width}, fc {a_.fc_width}, batch "
             f"{prof.pretrain.batch_size}, {epochs} epoch(s) over {n_images} limb phantoms, no validation; "
             f"AC-GAN g/d width {prof.acgan.g_width}/{prof.acgan.d_width}, batch {prof.acgan.batch_size}, "
             f"{steps} steps (images/s = real images consumed). Wall time of the whole call, best of {repeats}, "
             f"each run in a fresh process. {bc.utilisation_note(ref)} Ratio = hipaug images/s / the faster plain loop. "
             f"hipaug's AC-GAN step does {flops['acgan'] / 1e9:.2f} GFLOP vs the plain recipe's "
             f"{flops['acgan-plain'] / 1e9:.2f} (one G forward costs {flops['g_forward'] / 1e9:.2f} GFLOP).")
    return bc.record("training", "Training loops: hipaug vs a plain loop (default profile)", rows, notes, load=la,
                     results_dir=a.results)


if __name__ == "__main__":
    main()
