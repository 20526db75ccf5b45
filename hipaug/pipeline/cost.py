"""What each step of the experiment costs in FLOPs, counted on the `meta` device and multiplied out.

FLOPs per training image of the VGG-16 (forward + backward), per image forward, and per AC-GAN
step (n_critic D updates, the last one's fake batch reused for the G update) are counted by
`torch.utils.flop_counter` on the `meta` device (shapes only, no arithmetic: seconds on a CPU),
at the profile's sizes, then multiplied by epochs x images. Training counts assume no early
stopping (patience never triggers), so they are upper bounds. A multiply-add is 2 FLOPs;
optimiser and element-wise work are not counted. The grid's dry run (`hipaug reproduce
--dry-run`) shows these per task; `benchmarks/bench_paper_cost.py` per stage.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode


def count_flops(fn) -> int:
    """FLOPs of one call of `fn` (torch.utils.flop_counter)."""
    with FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def network_flops(prof, num_classes: int) -> dict:
    """FLOPs per image (VGG train/forward) and per step (AC-GAN) at the profile's sizes, on `meta`."""
    from hipaug.models.acgan import build_models
    from hipaug.models.vgg import VGG16
    from hipaug.training import discriminator_loss, generator_loss

    a, S, cfg = prof.arch, prof.image_size, prof.acgan
    B = 8  # VGG FLOPs are linear in the batch: count 8 images and divide
    with torch.device("meta"):
        vgg = VGG16(num_classes, 1, a.width, a.fc_width, S, a.batch_norm, a.dropout)
        x = torch.rand(B, 1, S, S)
        y = torch.randint(0, num_classes, (B,))
    out = {"vgg_train_img": count_flops(lambda: F.cross_entropy(vgg(x), y).backward()) / B}
    with torch.no_grad():
        out["vgg_fwd_img"] = count_flops(lambda: vgg(x)) / B

    Bg = cfg.batch_size
    with torch.device("meta"):
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

    out["gan_step"] = count_flops(gan_step)
    with torch.no_grad():
        out["g_fwd_img"] = count_flops(lambda: G(torch.randn(Bg, cfg.latent_dim, device="meta"), yg)) / Bg
    out["vgg_params"] = sum(p.numel() for p in vgg.parameters())
    out["g_params"] = sum(p.numel() for p in G.parameters())
    out["d_params"] = sum(p.numel() for p in D.parameters())
    return out


def limb_class_count(prof) -> int:
    """Number of limb classes of the profile's phantom (one tiny image per class is rendered)."""
    from hipaug.data.phantoms import render_limb

    ph = prof.phantom
    return len(render_limb(1, image_size=32, seed=0, labels=ph.limb_labels, parts=ph.limb_parts).class_names)


@dataclass(frozen=True)
class Sizes:
    """The data sizes the cost is multiplied by (the profile's phantom counts or the user's folders)."""

    n_classes: int  # limb classes
    n_limb: int  # real limb images (before the train/validation split)
    n_pelvic: int  # pelvic radiographs
    design: str = "cv"  # how conditions are compared (replications only on the phantom)

    @classmethod
    def of_profile(cls, prof, n_classes: int | None = None) -> "Sizes":
        """The phantom's sizes (limb classes rendered once when not given)."""
        from hipaug.pipeline.steps import phantom_pelvic_n

        C = n_classes if n_classes is not None else limb_class_count(prof)
        return cls(C, C * prof.phantom.limb_per_class, phantom_pelvic_n(prof), prof.transfer.design)

    def limb_split(self, prof) -> tuple[int, int]:
        """(train, validation) real limb images: the split every limb classifier shares."""
        n_val = int(round(prof.pretrain.val_fraction * self.n_limb))
        return self.n_limb - n_val, n_val


def classifier_flops(f: dict, epochs: float, n_train: float, n_val: float) -> float:
    """A VGG-16 trained `epochs` epochs on n_train images, validated on n_val each epoch."""
    return epochs * n_train * f["vgg_train_img"] + epochs * n_val * f["vgg_fwd_img"]


def step_flops(prof, f: dict, sizes: Sizes) -> dict[str, float]:
    """FLOPs of one build of each kind of step (the table's `cost` entries read them): finetune is one fold."""
    from hipaug.training.classifier_config import planned_epochs

    cfg, C = prof.acgan, sizes.n_classes
    n_tr, n_val = sizes.limb_split(prof)
    n_syn = C * prof.filter.synthetic_per_class
    Fw = f["vgg_fwd_img"]
    grids = math.ceil(cfg.steps / cfg.sample_every) if cfg.sample_every else 1
    t, fn, n_p = prof.transfer, prof.finetune, sizes.n_pelvic
    # One fine-tuning run: a CV fold trains on k-1 folds and tests on one; a replication trains on its
    # own set and tests on the shared test set.
    fold_train, fold_test = ((t.train_n, t.test_n) if sizes.design == "replications" else
                             (n_p * (t.k_folds - 1) / t.k_folds, n_p / t.k_folds))
    f_va = fold_train * fn.val_fraction
    return {
        "acgan": cfg.steps * f["gan_step"]
        + grids * (8 * min(cfg.batch_size, 64) + C * cfg.grid_per_class) * f["g_fwd_img"],
        "synthetic": (n_syn + 512) * f["g_fwd_img"],
        "filter": classifier_flops(f, prof.filter_train.epochs, n_tr, n_val),
        "filter-scores": n_syn * Fw,
        # Every condition runs ~epochs x |real train| images (epochs are scaled by the set's size).
        "pretrain": classifier_flops(f, prof.pretrain.epochs, n_tr, n_val),
        "finetune": classifier_flops(f, planned_epochs(fn, round(fold_train - f_va)), fold_train - f_va, f_va)
        + fold_test * Fw,
        "filter-val-scores": n_val * Fw,
        "features": (n_tr + n_val + n_syn) * Fw,
        # An upper bound for the filtered set too (the filter keeps at most every sample).
        "gan-train": classifier_flops(f, prof.filter_train.epochs, n_syn * (1 - prof.filter_train.val_fraction),
                                      n_syn * prof.filter_train.val_fraction) + n_val * Fw,
    }
