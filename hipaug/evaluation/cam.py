"""Grad-CAM (Selvaraju et al. 2017): where the fracture classifier looks, and whether that is the fracture.

`grad_cam` gives heat maps for any torch model with a conv layer; `cam_localization` scores them
against a mask (pointing game). Colouring a map for a figure lives in `hipaug.book.plots`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from hipaug.evaluation.metrics import EvaluationError


def last_conv(model: nn.Module) -> nn.Conv2d:
    """Return the last `nn.Conv2d` in module registration order."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise EvaluationError(f"{type(model).__name__} has no nn.Conv2d layer; pass layer= explicitly")
    return convs[-1]


def _select_logits(out: Any, select: Callable[[Any], torch.Tensor] | None) -> torch.Tensor:
    if select is not None:
        out = select(out)
    if not isinstance(out, torch.Tensor):
        raise EvaluationError(
            f"model returned {type(out).__name__}, not a logits tensor; pass select=lambda out: out[1] (or similar)"
        )
    if out.ndim == 1:
        out = out[:, None]
    if out.ndim != 2:
        raise EvaluationError(f"model logits must be (N,) or (N, C), got shape {tuple(out.shape)}")
    return out


def _resolve_layer(model: nn.Module, layer: nn.Module | str | None) -> nn.Module:
    """Return `layer` itself, the submodule it names, or the last nn.Conv2d when None."""
    if isinstance(layer, str):
        try:
            layer = model.get_submodule(layer)
        except AttributeError:
            raise EvaluationError(f"layer={layer!r} is not a submodule of {type(model).__name__}") from None
    return last_conv(model) if layer is None else layer


def _targets(target: int | Sequence[int] | torch.Tensor | np.ndarray | None, n: int) -> torch.Tensor | None:
    """Return one int64 class index per image, or None (the predicted class)."""
    if target is None:
        return None
    if isinstance(target, (int, np.integer)):
        return torch.full((n,), int(target), dtype=torch.int64)
    tgt = torch.as_tensor(np.asarray(target.cpu() if isinstance(target, torch.Tensor) else target)).long().reshape(-1)
    if tgt.shape[0] != n:
        raise EvaluationError(f"target has {tgt.shape[0]} entries for {n} images")
    return tgt


def _weighted_map(act: torch.Tensor, grad: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Return ReLU(sum_k w_k A_k) upsampled to `size` and divided by its per-image max, as float32."""
    weights = grad.mean(dim=(2, 3), keepdim=True)
    cam = torch.relu((weights * act).sum(dim=1, keepdim=True)).detach()
    cam = torch.nn.functional.interpolate(cam.float(), size=size, mode="bilinear", align_corners=False)
    cam = cam[:, 0].clamp_min(0)
    mx = cam.flatten(1).max(dim=1).values.view(-1, 1, 1)
    cam = torch.where(mx > 0, cam / mx.clamp_min(1e-12), torch.zeros_like(cam))
    return cam.cpu().numpy().astype(np.float32)


def grad_cam(
    model: nn.Module,
    images: Any,
    target: int | Sequence[int] | torch.Tensor | np.ndarray | None = None,
    layer: nn.Module | str | None = None,
    batch_size: int = 32,
    select: Callable[[Any], torch.Tensor] | None = None,
) -> np.ndarray:
    """Grad-CAM maps (N, H, W) in [0, 1] for `images` (N, C, H, W) and the target class logits.

    `target`: None = predicted class, an int for every image, or one index per image. `layer`:
    module or its dotted name; default the last nn.Conv2d. Channel weights are the spatially
    averaged gradients of the target logit; the map is ReLU(sum_k w_k A_k), bilinearly upsampled
    to the input size and divided by its per-image max (all-zero when no positive evidence).
    The model is in eval mode during the call and its modes are restored; gradients are taken
    with `torch.autograd.grad`, so parameters' `.grad` are left untouched; hooks are always removed.
    `select` picks the logits from a model that returns a tuple.
    """
    x_all = torch.as_tensor(images.detach() if isinstance(images, torch.Tensor) else np.asarray(images))
    if x_all.ndim == 3:
        x_all = x_all[:, None]
    if x_all.ndim != 4:
        raise EvaluationError(f"images must be (N, C, H, W), got shape {tuple(x_all.shape)}")
    n, _, h, w = x_all.shape
    bs = max(1, int(batch_size))
    layer = _resolve_layer(model, layer)
    tgt = _targets(target, n)
    try:
        device = next(model.parameters()).device
        dtype = next(model.parameters()).dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32

    captured: list[torch.Tensor] = []

    def hook(_m: nn.Module, _inp: Any, out: torch.Tensor) -> torch.Tensor:
        captured.append(out)
        # Downstream in-place ops (ReLU(inplace=True)) then act on a copy, keeping `out` intact.
        return out.clone()

    modes = {m: m.training for m in model.modules()}
    handle = layer.register_forward_hook(hook)
    cams = []
    try:
        model.eval()
        with torch.enable_grad():
            for s in range(0, n, bs):
                captured.clear()
                x = x_all[s : s + bs].to(device=device, dtype=dtype).requires_grad_(True)
                logits = _select_logits(model(x), select)
                if not captured:
                    raise EvaluationError(f"layer {type(layer).__name__} was not called in the forward pass")
                act = captured[-1]
                t = logits.argmax(dim=1) if tgt is None else tgt[s : s + bs].to(logits.device)
                if t.min() < 0 or t.max() >= logits.shape[1]:
                    raise EvaluationError(f"target indices must be in [0, {logits.shape[1]}), got {t.tolist()}")
                score = logits.gather(1, t[:, None]).sum()
                (grad,) = torch.autograd.grad(score, act)
                cams.append(_weighted_map(act, grad, (h, w)))
    finally:
        handle.remove()
        captured.clear()
        for m, mode in modes.items():
            m.training = mode
    return np.concatenate(cams, axis=0) if cams else np.zeros((0, h, w), dtype=np.float32)


def cam_localization(cams: Any, masks: Any) -> pd.DataFrame:
    """Per image: fraction of CAM mass inside a boolean mask and whether the CAM peak is inside.

    The pointing-game view of "Grad-CAM localised the fracture" (Cheng et al. 2019).
    """
    c = np.asarray(cams, dtype=np.float64)
    m = np.asarray(masks).astype(bool)
    if c.ndim == 2:
        c = c[None]
    if m.ndim == 2:
        m = m[None]
    if c.shape != m.shape or c.ndim != 3:
        raise EvaluationError(f"cams {c.shape} and masks {m.shape} must both be (N, H, W)")
    total = c.reshape(len(c), -1).sum(axis=1)
    inside = (c * m).reshape(len(c), -1).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mass = np.where(total > 0, inside / total, np.nan)
    peak = m.reshape(len(m), -1)[np.arange(len(c)), c.reshape(len(c), -1).argmax(axis=1)]
    return pd.DataFrame({"mass_in_mask": mass, "peak_in_mask": peak})
