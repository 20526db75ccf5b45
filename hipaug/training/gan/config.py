"""AC-GAN hyper-parameters (paper step 2, the generator): `ACGANConfig`, one frozen record per run.

The paper publishes none; every choice is a field with our default, and a run folder's
config.json stores them so a run can be resumed or reproduced.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from hipaug.core import check_image_size, torch_dtype
from hipaug.errors import ConfigError
from hipaug.training.augment import check_diffaug

__all__ = ["ACGANConfig"]


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
    #   under the class, a known route to collapse within a class
    log_every: int = 50  # steps averaged into one history.csv row (losses synced to CPU only then)
    sample_every: int = 500  # write samples/step_XXXXXX.png every this many steps (0: only at end)
    checkpoint_every: int = 1000  # write checkpoint.pt every this many steps (0: only at end)
    grid_per_class: int = 8  # columns of the sample grids (one row per class, shared noise)
    device: str = "auto"  # "auto" | "cpu" | "cuda[:k]"; CUDA uses bf16 autocast (float32 only)
    dtype: str = "float32"  # the networks' precision: float32, or float64 (results the CPU's kernels do not
    #   change at printed precision: the smoke profile, slower)

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
        torch_dtype(self.dtype, "acgan.dtype")

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
