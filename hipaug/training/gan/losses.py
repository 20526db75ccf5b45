"""AC-GAN losses on logits (paper step 2, the generator): D's and G's losses and MSGAN's mode-seeking term.

Deliberate departures from widely copied public AC-GANs (two of them apply softmax twice):

- D's heads return logits; the losses are `binary_cross_entropy_with_logits` and `cross_entropy`,
  so softmax is never applied twice;
- D's class head learns on real images only by default (`aux_fake_in_d=False`);
- G's loss adds MSGAN's mode-seeking term (Mao et al., CVPR 2019; `mode_seeking=1.0`, 0 gives
  the plain AC-GAN): on the digits check (scripts/digits_conditioning.py) the plain AC-GAN drew
  one image per class whatever z was, an intra-class collapse GAN-test accuracy cannot see;
  every run logs `g_pair_ratio` (image distance per latent distance, same class) to show it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hipaug.core import upcast

__all__ = ["discriminator_loss", "generator_loss", "pair_labels", "mode_seeking_loss", "STAT_ORDER"]


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
    adv_r, cls_r, adv_f, cls_f = upcast(adv_r), upcast(cls_r), upcast(adv_f), upcast(cls_f)
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
    adv_f, cls_f = upcast(adv_f), upcast(cls_f)
    adv = F.binary_cross_entropy_with_logits(adv_f, torch.ones_like(adv_f))
    aux = F.cross_entropy(cls_f, fake_labels)
    loss = adv + aux_weight * aux
    with torch.no_grad():
        aux_acc = (cls_f.argmax(1) == fake_labels).float().mean()
        stats = torch.stack([loss.detach(), adv.detach(), aux.detach(), aux_acc])
    return loss, stats


def pair_labels(labels: torch.Tensor) -> torch.Tensor:
    """Give the second half of a batch the labels of the first half (same-class pairs)."""
    h = labels.shape[0] // 2
    return torch.cat([labels[:h], labels[:h], labels[2 * h:]])


def mode_seeking_loss(fake: torch.Tensor, z: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """MSGAN's mode-seeking term (Mao et al., CVPR 2019) for a batch built by `pair_labels`.

    Returns (1 / (ratio + eps), ratio) with ratio = mean|G(z1,y) - G(z2,y)| / mean|z1 - z2|:
    a generator that ignores z (collapse within a class) has ratio 0.
    """
    h = fake.shape[0] // 2
    if h == 0:
        zero = fake.new_zeros(())
        return zero, zero
    ratio = (fake[:h] - fake[h:2 * h]).abs().mean() / (z[:h] - z[h:2 * h]).abs().mean()
    return 1.0 / (ratio + eps), ratio


# Names of the per-step stats vector: discriminator_loss's stats, then generator_loss's and the
# mode-seeking ratio (history.csv orders them as HISTORY_COLUMNS).
D_STATS = ("d_loss", "d_adv_loss", "d_aux_loss", "d_real_acc", "d_fake_acc", "aux_acc_real")
G_STATS = ("g_loss", "g_adv_loss", "g_aux_loss", "aux_acc_fake", "g_pair_ratio")
STAT_ORDER = D_STATS + G_STATS
