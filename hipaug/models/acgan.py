"""AC-GAN networks (Odena, Olah & Shlens, ICML 2017) for greyscale radiographs: generator and discriminator.

Lin & Chung (TAAI 2019) augment a small limb X-ray set with an AC-GAN before a VGG-16 filters the
realistic samples. The paper does not publish the architecture, so these are DCGAN-style networks
(Radford et al. 2016) whose depth follows the image size. Both of D's heads return LOGITS: there is
no Softmax module anywhere, so softmax is never applied twice (a pitfall of widely copied
public AC-GANs, which put a Softmax before CrossEntropyLoss).
The losses, the training loop and sampling live in `hipaug.training` (`gan*.py`).
"""

from __future__ import annotations

import math
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from hipaug.core import check_image_size, upcast
from hipaug.errors import ConfigError

__all__ = ["NetworkSpec", "Generator", "Discriminator", "build_generator", "build_models"]


class NetworkSpec(Protocol):
    """The fields of `hipaug.training.ACGANConfig` that shape the networks (models never import training)."""

    image_size: int  # side of the square images; sets the depth
    latent_dim: int  # length of z
    g_width: int  # G's channels at full resolution
    d_width: int  # D's channels after its first conv
    max_mult: int  # cap on the channel multiplier
    conditioning: str  # "concat" or "mul"
    spectral_norm: bool  # spectral norm on D's layers
    minibatch_std: bool  # minibatch-stddev map before D's heads
    d_batchnorm: bool  # BatchNorm after D's inner convs


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
            s = upcast(h).var(0, unbiased=False).add(1e-8).sqrt().mean()
            h = torch.cat([h, s.to(h.dtype).expand(h.shape[0], 1, *h.shape[2:])], dim=1)
        h = h.flatten(1)
        return self.adv_head(h).squeeze(1), self.class_head(h)


def build_generator(cfg: NetworkSpec, num_classes: int) -> Generator:
    """Create G for `cfg` (initialised from the global torch RNG)."""
    return Generator(num_classes, cfg.latent_dim, cfg.image_size, cfg.g_width, cfg.max_mult, cfg.conditioning)


def build_models(cfg: NetworkSpec, num_classes: int) -> tuple[Generator, Discriminator]:
    """Create G, then D, for `cfg` (an ACGANConfig; initialised from the global torch RNG: seed it first)."""
    G = build_generator(cfg, num_classes)
    D = Discriminator(num_classes, cfg.image_size, cfg.d_width, spectral_norm=cfg.spectral_norm,
                      max_mult=cfg.max_mult, minibatch_std=cfg.minibatch_std, batch_norm=cfg.d_batchnorm)
    return G, D
