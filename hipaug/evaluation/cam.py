"""Grad-CAM and Grad-CAM++ through torchcam: where the fracture classifier looks, and whether that is the fracture.

`cam_maps` gives heat maps for any torch model with a conv layer, by Grad-CAM (Selvaraju et al.
2017) or Grad-CAM++ (Chattopadhay et al. 2018), computed with torchcam's extractors (hooks,
gradients, the weighted sum of feature maps); `grad_cam` is its Grad-CAM shorthand.
`cam_localization` scores maps against a mask (pointing game). Colouring a map for a figure lives
in `hipaug.book.plots`.

Two choices are hipaug's, both checked in tests/test_evaluate.py:

- The layer a map is taken from is the one named, exactly: torchcam reads the tensor its hook saw,
  and an in-place ReLU right after a bare conv would silently turn that tensor into the ReLU's
  output. A second hook hands the rest of the forward pass a copy, so in-place layers act on it.
- Grad-CAM++ uses the paper's pixel weights alpha = g^2 / (2 g^2 + sum(A) g^3). torchcam 0.5.0's
  `GradCAMpp` divides a masked copy (`alpha[mask].div_`), so its weights stay g^2 * ReLU(g):
  `_GradCAMpp` below keeps torchcam's machinery and replaces only that step.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn
from torchcam.methods import GradCAM, GradCAMpp

from hipaug.evaluation.metrics import EvaluationError

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU)


class _GradCAMpp(GradCAMpp):
    """torchcam's Grad-CAM++ with the pixel weights of Chattopadhay et al. (2018), eq. 19."""

    def _get_weights(self, class_idx, scores, **kwargs):
        self._backprop(scores, class_idx, **kwargs)
        weights = []
        for act, grad in zip(self.hook_a, self.hook_g, strict=True):
            g2 = grad.pow(2)
            # exp(score) cancels from alpha: only the first-order gradient's powers remain. No eps:
            # gradients of a trained net are small enough for g^2 to be of the order of any eps.
            denom = 2 * g2 + act.flatten(2).sum(-1)[..., None, None] * g2 * grad
            alpha = torch.where(denom != 0, g2 / torch.where(denom != 0, denom, 1.0), 0.0)
            weights.append((alpha * torch.relu(grad)).flatten(2).sum(-1))
        return weights


METHODS: dict[str, type] = {"gradcam": GradCAM, "gradcampp": _GradCAMpp}


def last_conv(model: nn.Module) -> nn.Conv2d:
    """Return the last `nn.Conv2d` in module registration order."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise EvaluationError(f"{type(model).__name__} has no nn.Conv2d layer; pass layer= explicitly")
    return convs[-1]


def last_conv_features(model: nn.Module) -> nn.Module:
    """Return the module giving the last conv layer's feature maps: its activation when one follows it.

    In an `nn.Sequential`, the BatchNorm and activation right after the last conv belong to it (VGG's
    conv5_3 + relu5_3, the layer of Selvaraju et al.): Grad-CAM++ assumes non-negative maps. Elsewhere
    (a functional ReLU, a shared module) the conv itself.
    """
    conv = last_conv(model)
    for parent in model.modules():
        if isinstance(parent, nn.Sequential) and any(m is conv for m in parent):
            kids = list(parent)
            pick: nn.Module = conv
            for m in kids[next(i for i, k in enumerate(kids) if k is conv) + 1:]:
                if not isinstance(m, (nn.BatchNorm2d, *ACTIVATIONS)):
                    break
                pick = m
            return pick if isinstance(pick, ACTIVATIONS) else conv
    return conv


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
    """Return `layer` itself, the submodule it names, or the last conv layer's feature maps when None."""
    if isinstance(layer, str):
        try:
            layer = model.get_submodule(layer)
        except AttributeError:
            raise EvaluationError(f"layer={layer!r} is not a submodule of {type(model).__name__}") from None
    return last_conv_features(model) if layer is None else layer


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


def _upsampled(cam: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Return maps (N, h, w) >= 0 upsampled to `size` and divided by their per-image max, as float32.

    Not torchcam's min-max scaling: a map with no positive evidence stays zero, and values stay
    proportional to the evidence.
    """
    cam = torch.nn.functional.interpolate(cam[:, None].float(), size=size, mode="bilinear", align_corners=False)
    cam = cam[:, 0].clamp_min(0)
    mx = cam.flatten(1).max(dim=1).values.view(-1, 1, 1)
    cam = torch.where(mx > 0, cam / mx.clamp_min(1e-12), torch.zeros_like(cam))
    return cam.cpu().numpy().astype(np.float32)


def _as_batch(images: Any) -> torch.Tensor:
    x = torch.as_tensor(images.detach() if isinstance(images, torch.Tensor) else np.asarray(images))
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise EvaluationError(f"images must be (N, C, H, W), got shape {tuple(x.shape)}")
    return x


def cam_maps(
    model: nn.Module,
    images: Any,
    target: int | Sequence[int] | torch.Tensor | np.ndarray | None = None,
    method: str = "gradcam",
    layer: nn.Module | str | None = None,
    batch_size: int = 32,
    select: Callable[[Any], torch.Tensor] | None = None,
) -> np.ndarray:
    """Class activation maps (N, H, W) in [0, 1] for `images` (N, C, H, W) and the target class logits.

    `method`: "gradcam" (channel weights = spatially averaged gradients) or "gradcampp" (Grad-CAM++:
    positive gradients weighted per pixel). `target`: None = predicted class, an int for every
    image, or one index per image. `layer`: module or its dotted name; default the last conv
    layer's feature maps (`last_conv_features`). The map is ReLU(sum_k w_k A_k), bilinearly
    upsampled to the input size and divided by its per-image max (all-zero when no positive
    evidence). The model is in eval mode during the call and its modes are restored; gradients are
    taken with `torch.autograd.grad`, so parameters' `.grad` are left untouched; hooks are always
    removed. `select` picks the logits from a model that returns a tuple.
    """
    if method not in METHODS:
        raise EvaluationError(f"method={method!r} must be one of {', '.join(METHODS)}")
    x_all = _as_batch(images)
    n, _, h, w = x_all.shape
    layer = _resolve_layer(model, layer)
    tgt = _targets(target, n)
    try:
        device, dtype = next(model.parameters()).device, next(model.parameters()).dtype
    except StopIteration:
        device, dtype = torch.device("cpu"), torch.float32
    modes = {m: m.training for m in model.modules()}
    cams = []
    try:
        model.eval()
        with METHODS[method](model, target_layer=layer) as extractor, torch.enable_grad():
            # Registered after torchcam's hooks: later layers get a copy, the hooked tensor stays intact.
            guard = layer.register_forward_hook(lambda _m, _i, out: out.clone())
            try:
                for s in range(0, n, max(1, int(batch_size))):
                    x = x_all[s: s + max(1, int(batch_size))].to(device=device, dtype=dtype).requires_grad_(True)
                    extractor.reset_hooks()
                    logits = _select_logits(model(x), select)
                    if extractor.hook_a[0] is None:
                        raise EvaluationError(f"layer {type(layer).__name__} was not called in the forward pass")
                    t = logits.argmax(dim=1) if tgt is None else tgt[s: s + len(x)].to(logits.device)
                    if t.min() < 0 or t.max() >= logits.shape[1]:
                        raise EvaluationError(f"target indices must be in [0, {logits.shape[1]}), got {t.tolist()}")
                    (cam,) = extractor(class_idx=t.tolist(), scores=logits, normalized=False)
                    cams.append(_upsampled(cam.detach(), (h, w)))
            finally:
                guard.remove()
    finally:
        for m, mode in modes.items():
            m.training = mode
    return np.concatenate(cams, axis=0) if cams else np.zeros((0, h, w), dtype=np.float32)


def grad_cam(model: nn.Module, images: Any, target: int | Sequence[int] | torch.Tensor | np.ndarray | None = None,
             layer: nn.Module | str | None = None, batch_size: int = 32,
             select: Callable[[Any], torch.Tensor] | None = None) -> np.ndarray:
    """Grad-CAM maps (N, H, W) in [0, 1]: `cam_maps` with method="gradcam"."""
    return cam_maps(model, images, target, "gradcam", layer=layer, batch_size=batch_size, select=select)


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
