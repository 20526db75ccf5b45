"""Auxiliary-classifier GAN (AC-GAN; Odena, Olah & Shlens, ICML 2017) for greyscale radiographs.

Lin & Chung (TAAI 2019) augment a small limb X-ray set with an AC-GAN before a VGG-16
filters the realistic samples. The paper does not publish the architecture or the
hyper-parameters, so this module uses DCGAN-style networks (Radford et al. 2016) whose
depth follows the image size, and every choice is a field of `ACGANConfig`.

Deliberate departures from widely copied public AC-GANs (see PAPER.md, "Known pitfalls"):
- both heads return LOGITS; the losses are `BCEWithLogitsLoss` and `CrossEntropyLoss`
  (no Softmax module anywhere, so softmax is never applied twice);
- D's class head learns on real images only by default (`aux_fake_in_d=False`);
- G's loss adds MSGAN's mode-seeking term (Mao et al., CVPR 2019; `mode_seeking=1.0`, 0 gives
  the plain AC-GAN): on the digits check (scripts/digits_conditioning.py) the plain AC-GAN drew
  one image per class whatever z was, an intra-class collapse GAN-test accuracy cannot see;
  every run logs `g_pair_ratio` (image distance per latent distance, same class) to show it;
- runs are seeded, checkpointed atomically and resume bit for bit on CPU.
"""

from __future__ import annotations

import copy
import dataclasses
import io
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from . import __version__
from . import data as hdata
from .augment import check_diffaug, diff_augment
from .errors import ConfigError, DataError
from .utils import (
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_text,
    check_image_size,
    deterministic,
    progress,
    read_json,
    resolve_device,
    seed_everything,
    torch_load,
    write_json,
)

__all__ = [
    "ACGANConfig",
    "ACGANRun",
    "Generator",
    "Discriminator",
    "build_models",
    "discriminator_loss",
    "generator_loss",
    "mode_seeking_loss",
    "train_acgan",
    "load_generator",
    "recalibrate_batchnorm",
    "sample",
    "sample_dataset",
    "sample_to_folder",
    "save_grid",
    "read_history",
    "read_run_config",
    "HISTORY_COLUMNS",
]

CHECKPOINT_NAME = "checkpoint.pt"
CONFIG_NAME = "config.json"
HISTORY_NAME = "history.csv"
SAMPLES_DIR = "samples"
_CHECKPOINT_FORMAT = 1

# Columns of history.csv after `step`; each is the mean over the steps since the previous row
# (D columns also over the n_critic D updates of a step).
HISTORY_COLUMNS = (
    "d_loss",  # D's total loss: adversarial + aux_weight * class loss
    "d_adv_loss",  # BCE of D's real/fake head on real and generated batches (summed)
    "d_aux_loss",  # CE of D's class head (real images; + generated if aux_fake_in_d)
    "g_loss",  # G's loss: adversarial + aux_weight * class loss (mode-seeking term not included)
    "g_adv_loss",  # non-saturating BCE of D's real/fake head on generated images (target real)
    "g_aux_loss",  # CE of D's class head on generated images vs their conditioning class
    "d_real_acc",  # fraction of real images D calls real (logit > 0)
    "d_fake_acc",  # fraction of generated images D calls fake (logit < 0)
    "aux_acc_real",  # D's class-head accuracy on real images
    "aux_acc_fake",  # D's class-head accuracy on generated images (how well G is conditioned)
    "g_pair_ratio",  # mean|G(z1,y)-G(z2,y)| / mean|z1-z2| over same-class pairs; ~0 = collapse
)

# Fields that may change between a run and its resumption: they do not alter the training maths.
_RESUMABLE_FIELDS = frozenset({"steps", "device", "sample_every", "checkpoint_every", "grid_per_class"})


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ACGANConfig:
    """Hyper-parameters of one AC-GAN run (the paper publishes none; these are our defaults)."""

    image_size: int = 64  # side of the square images, one of 32/64/128/256; sets network depth
    latent_dim: int = 128  # length of the noise vector z fed to G
    g_width: int = 64  # G's channels at full resolution; doubles per block towards 4x4
    d_width: int = 64  # D's channels after its first conv; doubles per block towards 4x4
    max_mult: int = 8  # cap on the channel multiplier (widest layer = max_mult * width)
    conditioning: str = "concat"  # how G sees the class: "concat" [z, emb(y)] or "mul" z * emb(y)
    steps: int = 5000  # number of G updates (each preceded by n_critic D updates)
    batch_size: int = 64  # real images per D update and generated images per G update
    lr_g: float = 2e-4  # Adam learning rate of G (DCGAN default)
    lr_d: float = 2e-4  # Adam learning rate of D (DCGAN default)
    betas: tuple[float, float] = (0.5, 0.999)  # Adam betas for both networks (DCGAN default)
    label_smoothing: float = 0.0  # one-sided: real target is 1 - label_smoothing, fake stays 0
    spectral_norm: bool = False  # spectral norm on D's convs/linears (then D has no BatchNorm)
    d_batchnorm: bool = True  # BatchNorm after D's inner convs (DCGAN); never with spectral_norm
    minibatch_std: bool = False  # ProGAN minibatch-stddev map before D's heads; did not stop collapse
    #   within a class on the digits check (the spread between classes fills the batch statistic)
    ema_decay: float = 0.999  # EMA of G's weights used for sampling; 0 disables (EMA == G)
    n_critic: int = 1  # D updates per G update
    aux_weight: float = 1.0  # weight of the class (auxiliary) loss in both D's and G's loss
    diffaug: str = ""  # DiffAugment policy (Zhao et al. 2020) applied to D's real and fake inputs, e.g.
    #   "translation,cutout"; "" = off. Small data sets: without it D memorises the few hundred images
    mode_seeking: float = 1.0  # weight of MSGAN's mode-seeking term in G's loss (0: plain AC-GAN);
    #   our choice, not the paper's: without it G ignored z on the digits check (one image per class)
    aux_fake_in_d: bool = False  # also train D's class head on generated images; off because a
    #   class head that learns G's current samples rewards G for drawing whatever D already files
    #   under the class, a known route to collapse within a class (PAPER.md, known pitfalls)
    log_every: int = 50  # steps averaged into one history.csv row (losses synced to CPU only then)
    sample_every: int = 500  # write samples/step_XXXXXX.png every this many steps (0: only at end)
    checkpoint_every: int = 1000  # write checkpoint.pt every this many steps (0: only at end)
    grid_per_class: int = 8  # columns of the sample grids (one row per class, shared noise)
    device: str = "auto"  # "auto" | "cpu" | "cuda[:k]"; CUDA uses bf16 autocast

    def __post_init__(self) -> None:
        check_image_size(self.image_size, "image_size")
        _check_int(self, "latent_dim", 1)
        _check_int(self, "g_width", 1)
        _check_int(self, "d_width", 1)
        _check_int(self, "max_mult", 1)
        if self.conditioning not in ("concat", "mul"):
            raise ConfigError(f"conditioning={self.conditioning!r} is not one of concat, mul")
        check_diffaug(self.diffaug)
        _check_int(self, "steps", 1)
        _check_int(self, "batch_size", 1)
        for name in ("lr_g", "lr_d"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise ConfigError(f"{name}={v!r} must be a positive number")
        b = tuple(self.betas)
        if len(b) != 2 or not all(isinstance(x, (int, float)) and 0.0 <= x < 1.0 for x in b):
            raise ConfigError(f"betas={self.betas!r} must be two numbers in [0, 1)")
        object.__setattr__(self, "betas", (float(b[0]), float(b[1])))
        if not (0.0 <= self.label_smoothing < 0.5):
            raise ConfigError(f"label_smoothing={self.label_smoothing!r} must be in [0, 0.5)")
        if not (0.0 <= self.ema_decay < 1.0):
            raise ConfigError(f"ema_decay={self.ema_decay!r} must be in [0, 1) (0 disables the EMA)")
        _check_int(self, "n_critic", 1)
        for name in ("aux_weight", "mode_seeking"):
            v = getattr(self, name)
            if isinstance(v, bool) or not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ConfigError(f"{name}={v!r} must be a number >= 0")
        for name in ("spectral_norm", "d_batchnorm", "minibatch_std", "aux_fake_in_d"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name}={getattr(self, name)!r} must be true or false")
        _check_int(self, "log_every", 1)
        _check_int(self, "sample_every", 0)
        _check_int(self, "checkpoint_every", 0)
        _check_int(self, "grid_per_class", 1)
        if not isinstance(self.device, str) or not (self.device in ("auto", "cpu") or self.device.startswith("cuda")):
            raise ConfigError(f"device={self.device!r} is not one of auto, cpu, cuda")

    def to_dict(self) -> dict[str, Any]:
        """Return the fields as a JSON-friendly dict."""
        d = dataclasses.asdict(self)
        d["betas"] = list(self.betas)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "ACGANConfig":
        """Build a config from `to_dict()` output; unknown keys raise ConfigError."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ConfigError(f"unknown ACGANConfig field {unknown[0]!r}")
        kw = dict(d)
        if "betas" in kw:
            kw["betas"] = tuple(kw["betas"])
        return cls(**kw)


def _check_int(cfg: ACGANConfig, name: str, minimum: int) -> None:
    v = getattr(cfg, name)
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < minimum:
        raise ConfigError(f"{name}={v!r} must be an integer >= {minimum}")


# --------------------------------------------------------------------------------------------
# Networks
# --------------------------------------------------------------------------------------------


def _num_blocks(image_size: int) -> int:
    # One up/down-sampling block per factor of two between 4x4 and the image size.
    return int(math.log2(check_image_size(image_size) // 4))


def _dcgan_init(module: nn.Module) -> None:
    # DCGAN initialisation: N(0, 0.02) weights, BatchNorm gamma ~ N(1, 0.02).
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.BatchNorm1d)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, 0.0, 1.0)


class Generator(nn.Module):
    """Class-conditional DCGAN generator: (z, y) -> image in [-1, 1], shape (N, 1, S, S)."""

    def __init__(
        self,
        num_classes: int,
        latent_dim: int = 128,
        image_size: int = 64,
        width: int = 64,
        max_mult: int = 8,
        conditioning: str = "concat",
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"num_classes={num_classes} must be >= 1")
        if conditioning not in ("concat", "mul"):
            raise ConfigError(f"conditioning={conditioning!r} is not one of concat, mul")
        n = _num_blocks(image_size)
        self.num_classes, self.latent_dim, self.image_size = num_classes, latent_dim, image_size
        self.conditioning = conditioning
        chans = [width * min(2 ** (n - i), max_mult) for i in range(n + 1)]  # 4x4 ... SxS
        self.embed = nn.Embedding(num_classes, latent_dim)
        in_dim = 2 * latent_dim if conditioning == "concat" else latent_dim
        self.fc = nn.Linear(in_dim, chans[0] * 16, bias=False)
        self.bn0 = nn.BatchNorm2d(chans[0])
        blocks: list[nn.Module] = []
        for i in range(n):
            blocks += [
                nn.ConvTranspose2d(chans[i], chans[i + 1], 4, 2, 1, bias=False),
                nn.BatchNorm2d(chans[i + 1]),
                nn.ReLU(inplace=True),
            ]
        self.blocks = nn.Sequential(*blocks)
        self.to_image = nn.Conv2d(chans[n], 1, 3, 1, 1)
        _dcgan_init(self)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        e = self.embed(labels)
        h = torch.cat([z, e], dim=1) if self.conditioning == "concat" else z * e
        h = self.fc(h).view(z.shape[0], -1, 4, 4)
        h = F.relu(self.bn0(h))
        return torch.tanh(self.to_image(self.blocks(h)))


class Discriminator(nn.Module):
    """DCGAN discriminator with two heads: returns (adv_logits (N,), class_logits (N, C))."""

    def __init__(
        self,
        num_classes: int,
        image_size: int = 64,
        width: int = 64,
        spectral_norm: bool = False,
        max_mult: int = 8,
        minibatch_std: bool = False,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        if num_classes < 1:
            raise ConfigError(f"num_classes={num_classes} must be >= 1")
        n = _num_blocks(image_size)
        self.num_classes, self.image_size = num_classes, image_size
        self.minibatch_std = minibatch_std
        sn = nn.utils.parametrizations.spectral_norm if spectral_norm else (lambda m: m)
        chans = [width * min(2**i, max_mult) for i in range(n)]  # after each stride-2 conv
        layers: list[nn.Module] = []
        c_in = 1
        for i, c in enumerate(chans):
            # No BatchNorm on the first conv (DCGAN) nor anywhere under spectral norm.
            use_bn = batch_norm and i > 0 and not spectral_norm
            layers.append(sn(nn.Conv2d(c_in, c, 4, 2, 1, bias=not use_bn)))
            if use_bn:
                layers.append(nn.BatchNorm2d(c))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            c_in = c
        self.features = nn.Sequential(*layers)
        feat = (chans[-1] + int(minibatch_std)) * 16
        self.adv_head = sn(nn.Linear(feat, 1))  # real/fake logit
        self.class_head = sn(nn.Linear(feat, num_classes))  # class logits (no softmax here)
        _dcgan_init(self)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(x)
        if self.minibatch_std:
            # ProGAN's minibatch standard deviation: one extra 4x4 map holding the batch's mean
            # feature spread, so a batch of near-identical fakes is easy to call fake.
            s = h.float().var(0, unbiased=False).add(1e-8).sqrt().mean()
            h = torch.cat([h, s.to(h.dtype).expand(h.shape[0], 1, *h.shape[2:])], dim=1)
        h = h.flatten(1)
        return self.adv_head(h).squeeze(1), self.class_head(h)


def build_models(cfg: ACGANConfig, num_classes: int) -> tuple[Generator, Discriminator]:
    """Create G and D for `cfg` (initialised from the global torch RNG: seed it first)."""
    G = Generator(num_classes, cfg.latent_dim, cfg.image_size, cfg.g_width, cfg.max_mult, cfg.conditioning)
    D = Discriminator(num_classes, cfg.image_size, cfg.d_width, spectral_norm=cfg.spectral_norm,
                      max_mult=cfg.max_mult, minibatch_std=cfg.minibatch_std, batch_norm=cfg.d_batchnorm)
    return G, D


# --------------------------------------------------------------------------------------------
# Losses (on logits)
# --------------------------------------------------------------------------------------------


def discriminator_loss(
    D: nn.Module,
    real: torch.Tensor,
    real_labels: torch.Tensor,
    fake: torch.Tensor,
    fake_labels: torch.Tensor,
    label_smoothing: float = 0.0,
    aux_weight: float = 1.0,
    aux_fake_in_d: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return D's loss and a detached stats vector; `real`/`fake` are in [-1, 1], `fake` detached."""
    adv_r, cls_r = D(real)
    adv_f, cls_f = D(fake)
    adv_r, cls_r, adv_f, cls_f = adv_r.float(), cls_r.float(), adv_f.float(), cls_f.float()
    adv = F.binary_cross_entropy_with_logits(adv_r, torch.full_like(adv_r, 1.0 - label_smoothing)) + \
        F.binary_cross_entropy_with_logits(adv_f, torch.zeros_like(adv_f))
    aux = F.cross_entropy(cls_r, real_labels)
    if aux_fake_in_d:
        aux = aux + F.cross_entropy(cls_f, fake_labels)
    loss = adv + aux_weight * aux
    with torch.no_grad():
        stats = torch.stack([
            loss.detach(), adv.detach(), aux.detach(),
            (adv_r > 0).float().mean(), (adv_f < 0).float().mean(),
            (cls_r.argmax(1) == real_labels).float().mean(),
        ])
    return loss, stats


def generator_loss(
    D: nn.Module, fake: torch.Tensor, fake_labels: torch.Tensor, aux_weight: float = 1.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Return G's non-saturating loss and a detached stats vector (loss, adv, aux, aux_acc)."""
    adv_f, cls_f = D(fake)
    adv_f, cls_f = adv_f.float(), cls_f.float()
    adv = F.binary_cross_entropy_with_logits(adv_f, torch.ones_like(adv_f))
    aux = F.cross_entropy(cls_f, fake_labels)
    loss = adv + aux_weight * aux
    with torch.no_grad():
        aux_acc = (cls_f.argmax(1) == fake_labels).float().mean()
        stats = torch.stack([loss.detach(), adv.detach(), aux.detach(), aux_acc])
    return loss, stats


def _pair_labels(labels: torch.Tensor) -> torch.Tensor:
    """Give the second half of a batch the labels of the first half (same-class pairs)."""
    h = labels.shape[0] // 2
    return torch.cat([labels[:h], labels[:h], labels[2 * h:]])


def mode_seeking_loss(fake: torch.Tensor, z: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """MSGAN's mode-seeking term (Mao et al., CVPR 2019) for a batch built by `_pair_labels`.

    Returns (1 / (ratio + eps), ratio) with ratio = mean|G(z1,y) - G(z2,y)| / mean|z1 - z2|:
    a generator that ignores z (collapse within a class) has ratio 0.
    """
    h = fake.shape[0] // 2
    if h == 0:
        zero = fake.new_zeros(())
        return zero, zero
    ratio = (fake[:h] - fake[h:2 * h]).abs().mean() / (z[:h] - z[h:2 * h]).abs().mean()
    return 1.0 / (ratio + eps), ratio


# Order of the per-step stats vector (D stats, then G stats) -> HISTORY_COLUMNS order.
_D_STATS = ("d_loss", "d_adv_loss", "d_aux_loss", "d_real_acc", "d_fake_acc", "aux_acc_real")
_G_STATS = ("g_loss", "g_adv_loss", "g_aux_loss", "aux_acc_fake", "g_pair_ratio")
_STAT_ORDER = _D_STATS + _G_STATS


# --------------------------------------------------------------------------------------------
# EMA and BatchNorm statistics
# --------------------------------------------------------------------------------------------


@torch.no_grad()
def _ema_update(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    # Warm-up as in TF's ExponentialMovingAverage(num_updates): early on the EMA follows G
    # closely instead of staying near the random initialisation.
    d = min(decay, (1.0 + step) / (10.0 + step))
    e_params = [p for p in ema.parameters()]
    m_params = [p.detach() for p in model.parameters()]
    if d == 0.0:
        torch._foreach_copy_(e_params, m_params)
    else:
        torch._foreach_lerp_(e_params, m_params, 1.0 - d)
    for be, bm in zip(ema.buffers(), model.buffers()):
        be.copy_(bm)


@torch.no_grad()
def recalibrate_batchnorm(
    G: Generator, num_batches: int = 8, batch_size: int = 64, seed: int = 0
) -> Generator:
    """Recompute G's BatchNorm running statistics from fresh samples (in place) and set eval mode.

    An EMA generator carries the running statistics of the raw G, which do not match its
    averaged weights; "standing statistics" (BigGAN) re-estimate them, uniform over classes.
    """
    bns = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        return G.eval()
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    G.train()
    for _ in range(num_batches):
        z = torch.randn(batch_size, G.latent_dim, generator=gen).to(device)
        y = torch.randint(G.num_classes, (batch_size,), generator=gen).to(device)
        G(z, y)
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    return G.eval()


# --------------------------------------------------------------------------------------------
# Training
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ACGANRun:
    """What `train_acgan` leaves behind: the run folder, its history and its files."""

    run_dir: Path  # folder holding config.json, history.csv, checkpoint.pt, samples/
    class_names: tuple[str, ...]  # training classes, index = label used by G
    history: pd.DataFrame  # step plus HISTORY_COLUMNS, one row per log_every steps
    step: int  # last completed G step
    cfg: ACGANConfig  # configuration of the run
    seed: int  # the run's seed

    @property
    def checkpoint_path(self) -> Path:
        return self.run_dir / CHECKPOINT_NAME

    @property
    def config_path(self) -> Path:
        return self.run_dir / CONFIG_NAME

    @property
    def history_path(self) -> Path:
        return self.run_dir / HISTORY_NAME

    @property
    def samples_dir(self) -> Path:
        return self.run_dir / SAMPLES_DIR

    @property
    def paths(self) -> dict[str, Path]:
        return {
            "checkpoint": self.checkpoint_path,
            "config": self.config_path,
            "history": self.history_path,
            "samples": self.samples_dir,
        }


def _run_record(cfg: ACGANConfig, dataset: Any, seed: int) -> dict[str, Any]:
    return {
        "config": cfg.to_dict(),
        "seed": int(seed),
        "class_names": list(dataset.class_names),
        "dataset_fingerprint": str(dataset.fingerprint),
        "num_images": int(len(dataset.labels)),
        "class_counts": [int(c) for c in torch.bincount(dataset.labels, minlength=len(dataset.class_names)).tolist()],
        "hipaug_version": __version__,
        "torch_version": str(torch.__version__),
        "checkpoint_format": _CHECKPOINT_FORMAT,
    }


def _check_resume(record: Mapping[str, Any], cfg: ACGANConfig, dataset: Any, seed: int, where: Path) -> None:
    """Raise ConfigError unless a stored run record matches this config, seed and dataset."""
    old_cfg = dict(record.get("config", {}))
    new_cfg = cfg.to_dict()
    for k in sorted(set(old_cfg) | set(new_cfg)):
        if k in _RESUMABLE_FIELDS:
            continue
        a, b = old_cfg.get(k), new_cfg.get(k)
        if isinstance(a, tuple):
            a = list(a)
        if a != b:
            raise ConfigError(f"resume: {k}={b!r} differs from {k}={a!r} recorded in {where}; use a new run_dir")
    if int(record.get("seed", -1)) != int(seed):
        raise ConfigError(f"resume: seed={seed} differs from seed={record.get('seed')} recorded in {where}")
    if list(record.get("class_names", [])) != list(dataset.class_names):
        raise ConfigError(f"resume: class_names {list(dataset.class_names)} differ from those recorded in {where}")
    if str(record.get("dataset_fingerprint", "")) != str(dataset.fingerprint):
        raise ConfigError(f"resume: dataset fingerprint differs from the one recorded in {where}; use a new run_dir")


def _history_frame(rows: list[list[float]]) -> pd.DataFrame:
    df = pd.DataFrame(rows, columns=["step", *HISTORY_COLUMNS])
    df["step"] = df["step"].astype(int)
    return df


def _write_history(run_dir: Path, rows: list[list[float]]) -> None:
    atomic_write_text(run_dir / HISTORY_NAME, _history_frame(rows).to_csv(index=False))


def _fixed_grid_inputs(cfg: ACGANConfig, num_classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    # Same noise in every row, so a column shows one "style" drawn as each class.
    gen = torch.Generator().manual_seed(int(seed) + 7919)
    z = torch.randn(cfg.grid_per_class, cfg.latent_dim, generator=gen).repeat(num_classes, 1)
    y = torch.arange(num_classes).repeat_interleave(cfg.grid_per_class)
    return z, y


@torch.no_grad()
def _write_grid(G_src: nn.Module, cfg: ACGANConfig, z: torch.Tensor, y: torch.Tensor, path: Path) -> None:
    G = copy.deepcopy(G_src)  # never disturb the training copy's buffers
    recalibrate_batchnorm(G, batch_size=min(cfg.batch_size, 64))
    device = next(G.parameters()).device
    x = G(z.to(device), y.to(device)).float().add(1).div(2).clamp(0, 1).cpu()
    save_grid(x, path, nrow=cfg.grid_per_class)


def train_acgan(
    cfg: ACGANConfig,
    dataset: Any,
    run_dir: str | Path,
    seed: int,
    resume: bool = False,
    stop_after: int | None = None,
) -> ACGANRun:
    """Train an AC-GAN on `dataset` (ImageDataset) into `run_dir` and return the run.

    `resume=True` continues from `run_dir/checkpoint.pt` (after checking config, seed and
    dataset fingerprint) and on CPU reaches the same weights bit for bit as an uninterrupted
    run. `stop_after=k` ends after step k without a final checkpoint, as if the process had
    been killed (for tests and time-boxed jobs).
    """
    if not isinstance(cfg, ACGANConfig):
        raise ConfigError(f"cfg must be an ACGANConfig, got {type(cfg).__name__}")
    run_dir = Path(run_dir)
    images, labels = dataset.images, dataset.labels
    class_names = tuple(dataset.class_names)
    if images.ndim != 4 or images.shape[1] != 1 or images.shape[0] == 0:
        raise DataError(f"dataset images must be a non-empty (N,1,S,S) tensor, got {tuple(images.shape)}")
    if images.shape[-1] != cfg.image_size or images.shape[-2] != cfg.image_size:
        raise ConfigError(f"image_size={cfg.image_size} but the dataset images are {images.shape[-1]} px")
    if len(class_names) < 1:
        raise DataError("dataset has no classes")
    if stop_after is not None and stop_after < 0:
        raise ConfigError(f"stop_after={stop_after} must be >= 0")
    num_classes = len(class_names)
    device = resolve_device(cfg.device)
    use_cuda = device.type == "cuda"

    ckpt_path = run_dir / CHECKPOINT_NAME
    record = _run_record(cfg, dataset, seed)
    ckpt = None
    if resume:
        if (run_dir / CONFIG_NAME).exists():
            _check_resume(read_json(run_dir / CONFIG_NAME), cfg, dataset, seed, run_dir / CONFIG_NAME)
        if ckpt_path.exists():
            ckpt = torch_load(ckpt_path)
            if int(ckpt.get("format", -1)) != _CHECKPOINT_FORMAT:
                raise ConfigError(f"resume: {ckpt_path} has checkpoint format {ckpt.get('format')}, "
                                  f"expected {_CHECKPOINT_FORMAT}")
            _check_resume(ckpt["record"], cfg, dataset, seed, ckpt_path)
    elif ckpt_path.exists():
        raise ConfigError(f"run_dir={run_dir} already holds {CHECKPOINT_NAME}; pass resume=True or use a new folder")
    run_dir.mkdir(parents=True, exist_ok=True)
    write_json(run_dir / CONFIG_NAME, record)  # before training starts

    deterministic()
    seed_everything(seed)  # model initialisation draws from the global RNG
    G, D = build_models(cfg, num_classes)
    G_ema = copy.deepcopy(G)
    for p in G_ema.parameters():
        p.requires_grad_(False)
    # On CPU, oneDNN runs these narrow convolutions faster in NHWC (channels_last) order; on
    # CUDA cuDNN picks its own layout. Fused Adam is one kernel per step instead of a per-tensor
    # loop. Both were measured in benchmarks/bench_levers.py (record levers_acgan).
    fmt = torch.channels_last if device.type == "cpu" else torch.preserve_format
    for m in (G, D, G_ema):
        m.to(device=device, memory_format=fmt)
    opt_g = torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas, fused=True)
    opt_d = torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas, fused=True)
    gen = torch.Generator().manual_seed(int(seed))  # every batch index, z and label comes from here
    acc = torch.zeros(len(_STAT_ORDER), device=device)  # stats summed since the last history row
    acc_n = 0
    rows: list[list[float]] = []
    step = 0
    if ckpt is not None:
        G.load_state_dict(ckpt["G"])
        D.load_state_dict(ckpt["D"])
        G_ema.load_state_dict(ckpt["G_ema"])
        opt_g.load_state_dict(ckpt["opt_G"])
        opt_d.load_state_dict(ckpt["opt_D"])
        gen.set_state(ckpt["rng"]["batches"])
        torch.set_rng_state(ckpt["rng"]["torch"])
        acc = ckpt["acc"].to(device)
        acc_n = int(ckpt["acc_n"])
        rows = [list(r) for r in ckpt["history"]]
        step = int(ckpt["step"])
        if step > cfg.steps:
            raise ConfigError(f"resume: steps={cfg.steps} is below the step {step} already saved in {ckpt_path}")

    # Images live on the device in [-1, 1] (small data sets by design of the paper).
    x_all = images.float()
    if use_cuda:
        x_all = x_all.pin_memory()
    x_all = x_all.to(device, non_blocking=use_cuda).mul(2).sub(1)
    y_all = labels.long().to(device, non_blocking=use_cuda)
    n_images = x_all.shape[0]
    grid_z, grid_y = _fixed_grid_inputs(cfg, num_classes, seed)
    B = cfg.batch_size
    diffaug = check_diffaug(cfg.diffaug)

    def draw(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        # Indices with replacement: fake labels follow the data's class prior, so the class
        # alone never tells D which images are fake.
        idx = torch.randint(n_images, (n,), generator=gen)
        z = torch.randn(n, cfg.latent_dim, generator=gen)
        return idx.to(device, non_blocking=use_cuda), z.to(device, non_blocking=use_cuda)

    def autocast():
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=use_cuda)

    def save_checkpoint(at: int) -> None:
        ckpt_out = {
            "format": _CHECKPOINT_FORMAT,
            "step": int(at),
            "G": G.state_dict(),
            "D": D.state_dict(),
            "G_ema": G_ema.state_dict(),
            "opt_G": opt_g.state_dict(),
            "opt_D": opt_d.state_dict(),
            "rng": {"batches": gen.get_state(), "torch": torch.get_rng_state()},
            "acc": acc.detach().cpu().clone(),
            "acc_n": int(acc_n),
            "history": [list(r) for r in rows],
            "record": record,
        }
        atomic_torch_save(ckpt_out, ckpt_path)
        _write_history(run_dir, rows)

    G.train()
    D.train()
    end = cfg.steps if stop_after is None else min(cfg.steps, int(stop_after))
    bar = progress(range(step, end), total=cfg.steps, initial=step, desc="AC-GAN")
    for _ in bar:
        d_sum = torch.zeros(len(_D_STATS), device=device)
        for k in range(cfg.n_critic):
            idx, z = draw(B)
            real, y = x_all[idx], y_all[idx]
            # Same-class pairs (first half / second half): the mode-seeking term compares them.
            # The fake labels follow the real batch's labels, so the class alone never tells D
            # which images are fake.
            y_fake = _pair_labels(y)
            last = k == cfg.n_critic - 1
            # The last critic step's fake batch is generated with gradients and reused for G's
            # update (the DCGAN recipe): one G forward per step instead of two.
            with torch.set_grad_enabled(last), autocast():
                fake = G(z, y_fake)
            with autocast():
                d_loss, d_stats = discriminator_loss(
                    D, diff_augment(real, diffaug, gen), y, diff_augment(fake.detach().float(), diffaug, gen), y_fake,
                    cfg.label_smoothing, cfg.aux_weight, cfg.aux_fake_in_d,
                )
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            d_sum += d_stats
        with autocast():
            fake = fake.float()
            g_loss, g_stats = generator_loss(D, diff_augment(fake, diffaug, gen), y_fake, cfg.aux_weight)  # D after its update
            ms_loss, ms_ratio = mode_seeking_loss(fake, z)
            if cfg.mode_seeking > 0:
                g_loss = g_loss + cfg.mode_seeking * ms_loss
        opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        opt_g.step()
        step += 1
        _ema_update(G_ema, G, cfg.ema_decay, step)  # ema_decay=0: G_ema is an exact copy of G
        acc += torch.cat([d_sum / cfg.n_critic, g_stats, ms_ratio.detach().reshape(1)])
        acc_n += 1

        if step % cfg.log_every == 0 or step == cfg.steps:
            mean = (acc / acc_n).tolist()  # the only device sync of the loop
            by_name = dict(zip(_STAT_ORDER, mean))
            rows.append([step, *(by_name[c] for c in HISTORY_COLUMNS)])
            acc.zero_()
            acc_n = 0
            bar.set_postfix(d=f"{by_name['d_loss']:.3f}", g=f"{by_name['g_loss']:.3f}",
                            aux_fake=f"{by_name['aux_acc_fake']:.2f}")
        if (cfg.sample_every and step % cfg.sample_every == 0) or step == cfg.steps:
            _write_grid(G_ema, cfg, grid_z, grid_y, run_dir / SAMPLES_DIR / f"step_{step:06d}.png")
        if (cfg.checkpoint_every and step % cfg.checkpoint_every == 0) or step == cfg.steps:
            save_checkpoint(step)
    bar.close()
    # Stopped early (stop_after): files stay as a killed run would leave them.
    return ACGANRun(run_dir, class_names, _history_frame(rows), step, cfg, int(seed))


# --------------------------------------------------------------------------------------------
# Sampling
# --------------------------------------------------------------------------------------------


def load_generator(
    run_dir: str | Path, ema: bool = True, device: str | torch.device = "cpu", recalibrate: bool = True
) -> tuple[Generator, tuple[str, ...], ACGANConfig]:
    """Load G (the EMA copy by default) from a run folder, in eval mode on `device`.

    With `recalibrate` the BatchNorm statistics are re-estimated from 8 batches of fresh
    samples (fixed seed, so loading is deterministic): see `recalibrate_batchnorm`.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ConfigError(f"run_dir={run_dir} does not exist; train an AC-GAN there first")
    ckpt_path = run_dir / CHECKPOINT_NAME
    if not ckpt_path.exists():
        raise ConfigError(f"run_dir={run_dir} has no {CHECKPOINT_NAME}; train (or resume) the AC-GAN first")
    ckpt = torch_load(ckpt_path)
    record = ckpt["record"]
    cfg = ACGANConfig.from_dict(record["config"])
    class_names = tuple(record["class_names"])
    G = Generator(len(class_names), cfg.latent_dim, cfg.image_size, cfg.g_width, cfg.max_mult, cfg.conditioning)
    G.load_state_dict(ckpt["G_ema" if ema else "G"])
    G.requires_grad_(False)
    G.to(resolve_device(device))
    if recalibrate:
        recalibrate_batchnorm(G, batch_size=min(cfg.batch_size, 64))
    return G.eval(), class_names, cfg


def sample(G: Generator, labels: torch.Tensor, seed: int, batch_size: int = 256) -> torch.Tensor:
    """Draw one image per label: (N, 1, S, S) float32 in [0, 1] on CPU; same seed, same images.

    The noise is drawn for all N at once, so results do not depend on `batch_size`.
    """
    labels = torch.as_tensor(labels, dtype=torch.long).flatten()
    if labels.numel() and (labels.min() < 0 or labels.max() >= G.num_classes):
        raise ConfigError(f"labels must be in [0, {G.num_classes - 1}]")
    if batch_size < 1:
        raise ConfigError(f"batch_size={batch_size} must be >= 1")
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(int(seed))
    z_all = torch.randn(labels.numel(), G.latent_dim, generator=gen)
    was_training = G.training
    G.eval()
    out = []
    try:
        with torch.inference_mode():
            for i in range(0, labels.numel(), batch_size):
                z = z_all[i:i + batch_size].to(device)
                y = labels[i:i + batch_size].to(device)
                out.append(G(z, y).float().add(1).div(2).clamp(0, 1).cpu())
    finally:
        G.train(was_training)
    if not out:
        s = G.image_size
        return torch.zeros(0, 1, s, s)
    return torch.cat(out)


def sample_dataset(run_dir: str | Path, per_class: int, seed: int, ema: bool = True) -> Any:
    """Generate `per_class` images of every training class as an ImageDataset.

    Each image is its own synthetic "patient" (`gan-s<seed>-<index>`); meta records
    `generated_class`, `seed` and `index`.
    """
    if per_class < 1:
        raise ConfigError(f"per_class={per_class} must be >= 1")
    G, class_names, _ = load_generator(run_dir, ema=ema)
    labels = torch.arange(len(class_names)).repeat_interleave(per_class)
    images = sample(G, labels, seed)
    n = labels.numel()
    ids = [f"gan-s{seed}-{i:06d}" for i in range(n)]
    names = [class_names[i] for i in labels.tolist()]
    meta = pd.DataFrame({
        "path": [f"{c}/{i}.png" for c, i in zip(names, ids)],
        "label": names,
        "patient_id": ids,
        "generated_class": names,
        "seed": int(seed),
        "index": np.arange(n),
    })
    return hdata.from_arrays(images, labels, class_names, patient_ids=ids, meta=meta)


def sample_to_folder(run_dir: str | Path, out_dir: str | Path, per_class: int, seed: int, ema: bool = True) -> Path:
    """Write generated images as `out_dir/<class>/<id>.png` (8-bit) plus `manifest.csv`."""
    ds = sample_dataset(run_dir, per_class, seed, ema=ema)
    return Path(hdata.write_dataset(ds, out_dir))


def _png_bytes(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img, mode="L").save(buf, format="PNG")
    return buf.getvalue()


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return x.clamp(0, 1).mul(255).round().to(torch.uint8).numpy()


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8, padding: int = 2) -> Path:
    """Save (N,1,S,S) images in [0,1] as one 8-bit PNG grid, `nrow` images per row."""
    x = images.detach().float().cpu()
    if x.ndim != 4 or x.shape[1] != 1:
        raise DataError(f"save_grid wants (N,1,S,S) images, got {tuple(x.shape)}")
    n, _, h, w = x.shape
    nrow = max(1, min(int(nrow), max(n, 1)))
    rows = max(1, math.ceil(n / nrow))
    canvas = torch.ones(rows * (h + padding) + padding, nrow * (w + padding) + padding)
    for i in range(n):
        r, c = divmod(i, nrow)
        top, left = padding + r * (h + padding), padding + c * (w + padding)
        canvas[top:top + h, left:left + w] = x[i, 0]
    return atomic_write_bytes(Path(path), _png_bytes(_to_uint8(canvas)))


def read_history(run_dir: str | Path) -> pd.DataFrame:
    """Read `run_dir/history.csv`."""
    p = Path(run_dir) / HISTORY_NAME
    if not p.exists():
        raise ConfigError(f"run_dir={run_dir} has no {HISTORY_NAME}")
    return pd.read_csv(p)


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """Read `run_dir/config.json` (config, seed, class names, dataset fingerprint, versions)."""
    p = Path(run_dir) / CONFIG_NAME
    if not p.exists():
        raise ConfigError(f"run_dir={run_dir} has no {CONFIG_NAME}")
    return json.loads(p.read_text(encoding="utf-8"))
