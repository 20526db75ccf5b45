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

import bench_common as bc

from hipaug.pipeline.cost import Sizes, classifier_flops, limb_class_count, network_flops, step_flops


def stage_rows(prof, f: dict, C: int) -> list[dict]:
    """(stage, where, images or steps, PFLOP) of every compute-heavy step of the pipeline."""
    ph, cfg = prof.phantom, prof.acgan
    sizes = Sizes.of_profile(prof, C)
    n_tr, n_val = sizes.limb_split(prof)
    n_syn = C * prof.filter.synthetic_per_class
    u = step_flops(prof, f, sizes)  # one task of each kind, as the grid's dry run shows them
    rows = []

    def add(stage, where, count, what, flops):
        rows.append({"stage": stage, "runs in": where, "count": int(count), "unit": what, "PFLOP": flops / 1e15})

    add("AC-GAN training", "reproduce", cfg.steps, "steps", u["acgan"])
    add("AC-GAN sampling", "reproduce", n_syn, "images", u["synthetic"])
    ft = prof.filter_train
    add("realism filter: train VGG-16", "reproduce", ft.epochs * n_tr, "train images", u["filter"])
    add("realism filter: score synthetic", "reproduce", n_syn, "images", u["filter-scores"])
    # Pre-training: every condition runs ~epochs x |real train| images (epochs scaled by set size).
    pt = prof.pretrain
    shared = dataclasses.replace(pt, augment=None) == ft  # without_gan re-uses the filter's artifact
    conds = [c for c in prof.transfer.conditions if c != "scratch" and not (c == "without_gan" and shared)]
    add(f"pre-train ({', '.join(conds)})", "reproduce", len(conds) * pt.epochs * n_tr, "train images",
        len(conds) * u["pretrain"])
    # Fine-tuning: conditions x repeats x k folds.
    t, fn = prof.transfer, prof.finetune
    fold_train = ph.pelvic_n * (t.k_folds - 1) / t.k_folds
    f_tr = fold_train - fold_train * fn.val_fraction
    n_cv = len(t.conditions) * t.repeats
    add(f"fine-tune ({len(t.conditions)} conditions x {t.repeats} repeats x {t.k_folds} folds)", "reproduce",
        n_cv * t.k_folds * fn.epochs * f_tr, "train images", n_cv * t.k_folds * u["finetune"])
    ab = prof.ablation
    n_ab = len(ab.thresholds) + len(ab.top_k)
    add(f"ablations ({n_ab} selection rules: pre-train + fine-tune)", "book", n_ab * (pt.epochs * n_tr + t.k_folds
        * fn.epochs * f_tr), "train images", n_ab * (u["pretrain"] + t.k_folds * u["finetune"]))
    Fw = f["vgg_fwd_img"]
    add("features, GAN-train/GAN-test (upper bound: all synthetic accepted)", "book", 2 * ft.epochs * n_syn,
        "train images", (n_tr + n_val + n_syn) * Fw + 2 * (classifier_flops(f, ft.epochs, 0.8 * n_syn, 0.2 * n_syn)
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
    C = limb_class_count(prof)
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
