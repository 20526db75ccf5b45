"""Expected compute of a profile (the GPU-sized `paper` profile by default), from counted FLOPs.

    python benchmarks/bench_paper_cost.py [--profile paper] [--sustained 50]

The paper profile needs CUDA, which this machine lacks, so its cost is computed, not timed:
FLOPs per training step of each network at the profile's sizes are counted by
`torch.utils.flop_counter` on the `meta` device (shapes only, no arithmetic, seconds on a CPU),
following hipaug's own steps (the AC-GAN step: n_critic D updates, the last one's fake batch
reused for the G update; the VGG-16 step: forward + backward), and multiplied out over the
pipeline: steps, epochs x images, folds, conditions, repeats. Every training count assumes no early
stopping (patience never triggers), so the totals are upper bounds; the number of filtered
synthetic images is unknown before the run and is bounded by the whole synthetic pool.
Stages marked "book" run in the notebooks (`make book`), not in `hipaug reproduce`.
"""

from __future__ import annotations

import argparse
import dataclasses
import math

import bench_common as bc
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode


def _count(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def network_flops(prof, num_classes: int) -> dict:
    """FLOPs per image (VGG train/forward) and per step (AC-GAN) at the profile's sizes, on `meta`."""
    from hipaug.models.acgan import build_models
    from hipaug.training import discriminator_loss, generator_loss
    from hipaug.models.vgg import VGG16

    a, S, cfg = prof.arch, prof.image_size, prof.acgan
    B = 8  # VGG FLOPs are linear in the batch: count 8 images and divide
    with torch.device("meta"):
        vgg = VGG16(num_classes, 1, a.width, a.fc_width, S, a.batch_norm, a.dropout)
        x = torch.rand(B, 1, S, S)
        y = torch.randint(0, num_classes, (B,))
    out = {"vgg_train_img": _count(lambda: F.cross_entropy(vgg(x), y).backward()) / B}
    with torch.no_grad():
        out["vgg_fwd_img"] = _count(lambda: vgg(x)) / B

    Bg = cfg.batch_size
    with torch.device("meta"):
        torch.manual_seed(0)
        G, D = build_models(cfg, num_classes)
        real = torch.rand(Bg, 1, S, S)
        yg = torch.randint(0, num_classes, (Bg,))

    def gan_step():
        # hipaug.training.gan.train_acgan: n_critic D updates, the last on a fake batch generated with
        # gradients that G's update then reuses (one G forward per step when n_critic == 1).
        for k in range(cfg.n_critic):
            last = k == cfg.n_critic - 1
            with torch.set_grad_enabled(last):
                fake = G(torch.randn(Bg, cfg.latent_dim, device="meta"), yg)
            d_loss, _ = discriminator_loss(D, real, yg, fake.detach(), yg, cfg.label_smoothing, cfg.aux_weight,
                                           cfg.aux_fake_in_d)
            d_loss.backward()
        g_loss, _ = generator_loss(D, fake, yg, cfg.aux_weight)
        g_loss.backward()

    out["gan_step"] = _count(gan_step)
    with torch.no_grad():
        out["g_fwd_img"] = _count(lambda: G(torch.randn(Bg, cfg.latent_dim, device="meta"), yg)) / Bg
    out["vgg_params"] = sum(p.numel() for p in vgg.parameters())
    out["g_params"] = sum(p.numel() for p in G.parameters())
    out["d_params"] = sum(p.numel() for p in D.parameters())
    return out


def limb_classes(prof) -> int:
    from hipaug.data.phantoms import render_limb

    return len(render_limb(1, image_size=32, seed=0, labels=prof.phantom.limb_labels).class_names)


def stage_rows(prof, f: dict, C: int) -> list[dict]:
    """(stage, where, images or steps, PFLOP) of every compute-heavy step of the pipeline."""
    ph, cfg = prof.phantom, prof.acgan
    n_limb = C * ph.limb_per_class
    n_val = int(round(prof.pretrain.val_fraction * n_limb))
    n_tr = n_limb - n_val
    n_syn = C * prof.filter.synthetic_per_class
    T, Fw = f["vgg_train_img"], f["vgg_fwd_img"]
    rows = []

    def add(stage, where, count, what, flops):
        rows.append({"stage": stage, "runs in": where, "count": int(count), "unit": what, "PFLOP": flops / 1e15})

    def classifier(epochs, n_train, n_v):
        return epochs * n_train * T + epochs * n_v * Fw

    grids = math.ceil(cfg.steps / cfg.sample_every) if cfg.sample_every else 1
    add("AC-GAN training", "reproduce", cfg.steps, "steps", cfg.steps * f["gan_step"]
        + grids * (8 * min(cfg.batch_size, 64) + C * cfg.grid_per_class) * f["g_fwd_img"])
    add("AC-GAN sampling", "reproduce", n_syn, "images", (n_syn + 512) * f["g_fwd_img"])
    ft = prof.filter_train
    add("realism filter: train VGG-16", "reproduce", ft.epochs * n_tr, "train images",
        classifier(ft.epochs, n_tr, n_val))
    add("realism filter: score synthetic", "reproduce", n_syn, "images", n_syn * Fw)
    # Pre-training: every condition runs ~epochs x |real train| images (epochs scaled by set size).
    pt = prof.pretrain
    shared = dataclasses.replace(pt, augment=None) == ft  # without_gan re-uses the filter's artifact
    conds = [c for c in prof.transfer.conditions if c != "scratch" and not (c == "without_gan" and shared)]
    add(f"pre-train ({', '.join(conds)})", "reproduce", len(conds) * pt.epochs * n_tr, "train images",
        len(conds) * classifier(pt.epochs, n_tr, n_val))
    # Fine-tuning: conditions x repeats x k folds.
    t, fn = prof.transfer, prof.finetune
    n_p = ph.pelvic_n
    fold_train = n_p * (t.k_folds - 1) / t.k_folds
    f_va = fold_train * fn.val_fraction
    f_tr = fold_train - f_va
    per_cv = t.k_folds * (classifier(fn.epochs, f_tr, f_va) + (n_p / t.k_folds) * Fw)
    n_cv = len(t.conditions) * t.repeats
    add(f"fine-tune ({len(t.conditions)} conditions x {t.repeats} repeats x {t.k_folds} folds)", "reproduce",
        n_cv * t.k_folds * fn.epochs * f_tr, "train images", n_cv * per_cv)
    ab = prof.ablation
    n_ab = len(ab.thresholds) + len(ab.top_k)
    add(f"ablations ({n_ab} selection rules: pre-train + fine-tune)", "book", n_ab * (pt.epochs * n_tr + t.k_folds
        * fn.epochs * f_tr), "train images", n_ab * (classifier(pt.epochs, n_tr, n_val) + per_cv))
    add("features, GAN-train/GAN-test (upper bound: all synthetic accepted)", "book", 2 * ft.epochs * n_syn,
        "train images", (n_tr + n_val + n_syn) * Fw + 2 * (classifier(ft.epochs, 0.8 * n_syn, 0.2 * n_syn)
                                                           + n_val * Fw))
    return rows


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    bc.common_args(ap)
    ap.add_argument("--profile", default="paper")
    ap.add_argument("--sustained", type=float, default=50.0, help="assumed sustained GPU TFLOP/s (default 50)")
    a = ap.parse_args(argv)
    from hipaug.config import load_profile

    la = bc.loadavg()
    prof = load_profile(a.profile, device="cpu")
    C = limb_classes(prof)
    f = network_flops(prof, C)
    rows = stage_rows(prof, f, C)
    cpu_ref = bc.conv_reference_gflops(a.results) or 80.0
    total = sum(r["PFLOP"] for r in rows)
    total_rep = sum(r["PFLOP"] for r in rows if r["runs in"] == "reproduce")
    for r in rows:
        r["share"] = r["PFLOP"] / total
        r[f"GPU h @ {a.sustained:g} TFLOP/s"] = r["PFLOP"] * 1e15 / (a.sustained * 1e12) / 3600
        r["this CPU days"] = r["PFLOP"] * 1e15 / (cpu_ref * 1e9) / 86400
    rows.append({"stage": "total (reproduce + book)", "runs in": "", "count": None, "unit": "", "PFLOP": total,
                 "share": 1.0, f"GPU h @ {a.sustained:g} TFLOP/s": total * 1e15 / (a.sustained * 1e12) / 3600,
                 "this CPU days": total * 1e15 / (cpu_ref * 1e9) / 86400})
    ar, g = prof.arch, prof.acgan
    notes = (f"Profile `{prof.name}`: {prof.image_size} px, {C} limb classes. Per-unit FLOPs (flop counter on the meta "
             f"device): VGG-16 (width {ar.width}, fc {ar.fc_width}, {f['vgg_params'] / 1e6:.1f} M parameters) "
             f"{f['vgg_train_img'] / 1e9:.3g} GFLOP per training image (forward + backward), "
             f"{f['vgg_fwd_img'] / 1e9:.3g} GFLOP per image forward; AC-GAN (G {f['g_params'] / 1e6:.1f} M, "
             f"D {f['d_params'] / 1e6:.1f} M parameters, g/d width {g.g_width}/{g.d_width}, batch {g.batch_size}) "
             f"{f['gan_step'] / 1e9:.4g} GFLOP per step, G forward {f['g_fwd_img'] / 1e9:.3g} GFLOP per image. "
             f"Totals are upper bounds (no early stopping; all synthetic images accepted where that matters): "
             f"{total_rep:.4g} PFLOP for `hipaug reproduce`, {total:.4g} PFLOP with the book's extra analyses. "
             f"GPU hours assume {a.sustained:g} TFLOP/s sustained (bf16 autocast; an A100's dense bf16 peak is 312); "
             f"'this CPU days' uses the measured conv throughput of this machine ({cpu_ref:.0f} GFLOP/s).")
    return bc.record(f"{prof.name}_cost" if prof.name != "paper" else "paper_cost",
                     f"Expected compute of the `{prof.name}` profile (counted, not timed)", rows, notes, load=la,
                     results_dir=a.results, timed=False)


if __name__ == "__main__":
    main()
