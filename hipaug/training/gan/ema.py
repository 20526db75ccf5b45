"""The AC-GAN generator's weight average (EMA) and its BatchNorm statistics (paper step 2, the generator).

Samples come from an exponential moving average of G's weights; because the average does not match
the raw G's BatchNorm running statistics, they are re-estimated from fresh samples before use.
"""

from __future__ import annotations

import torch
from torch import nn

from hipaug.core import module_dtype
from hipaug.core.seeds import torch_generator
from hipaug.models.acgan import Generator

__all__ = ["ema_update", "recalibrate_batchnorm"]


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, decay: float, step: int) -> None:
    """Move `ema`'s weights towards `model`'s after G step `step` and copy its buffers (in place)."""
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
    gen = torch_generator(seed, "recalibrate")
    momenta = [m.momentum for m in bns]
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches below
    G.train()
    for _ in range(num_batches):
        z = torch.randn(batch_size, G.latent_dim, generator=gen, dtype=module_dtype(G)).to(device)
        y = torch.randint(G.num_classes, (batch_size,), generator=gen).to(device)
        G(z, y)
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    return G.eval()
