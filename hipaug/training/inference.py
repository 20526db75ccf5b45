"""Batched VGG-16 inference (class probabilities, penultimate features) and the CPU speed levers training shares.

Used by the realism filter (scoring AC-GAN samples), GAN quality measures (features) and the
Table VIII evaluation of fine-tuned models. Scoring runs in eval mode in cache-sized chunks with
the conv weights in channels_last order on CPU; none of this changes a result.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from hipaug.core import module_dtype, resolve_device, upcast
from hipaug.errors import DataError
from hipaug.models.vgg import VGG16

# `autocast`, `inference_chunk` and `cpu_channels_last` also serve the training loop (hipaug.training.classifier).


def autocast(device: torch.device, dtype: torch.dtype = torch.float32):
    # CUDA float32 only: bf16 autocast; on CPU (and for a float64 model) a no-op context, so results
    # keep the model's precision and repeat bit for bit.
    if device.type == "cuda" and dtype == torch.float32:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


CPU_CHUNK_BYTES = 16 * 2**20  # activation budget of one inference chunk on CPU (first conv's output)


def inference_chunk(model: nn.Module, x: torch.Tensor, batch_size: int, device: torch.device) -> int:
    """Images per forward pass when scoring: `batch_size`, or on CPU fewer so activations stay in cache.

    On CPU, throughput falls once a chunk's activations outgrow the caches (default profile: 2,600
    images/s at 64-128 images per pass, 1,900 at 256). The largest power of two (>= 8) whose first
    conv output fits CPU_CHUNK_BYTES is used; results do not depend on it (eval mode, per-image maths).
    """
    if device.type != "cpu" or x.ndim != 4:
        return batch_size
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    per_image = (conv.out_channels if conv is not None else 1) * x.shape[-2] * x.shape[-1] * 4
    chunk = 8
    while chunk * 2 <= batch_size and chunk * 2 * per_image <= CPU_CHUNK_BYTES:
        chunk *= 2
    return max(1, min(batch_size, chunk))


@contextlib.contextmanager
def cpu_channels_last(model: nn.Module, device: torch.device):
    """On CPU, hold the conv weights in channels_last (NHWC) memory order while training or scoring.

    oneDNN's NHWC convolutions are markedly faster than NCHW for this network on CPU (about 1.3x per
    training step and 1.5x for inference at the default profile's sizes; benchmarks/bench_levers.py),
    and the results stay deterministic. Greyscale (N,1,S,S) input is already NHWC-compatible, so no
    input copy is made. The model's original (contiguous) layout is restored on exit, so
    checkpoints and callers never see the difference. Elsewhere (CUDA, a model already in
    channels_last) this is a no-op.
    """
    conv = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    convert = device.type == "cpu" and conv is not None and conv.weight.is_contiguous()
    if convert:
        model.to(memory_format=torch.channels_last)
    try:
        yield convert
    finally:
        if convert:
            model.to(memory_format=torch.contiguous_format)


def _as_image_tensor(images) -> torch.Tensor:
    if hasattr(images, "images") and hasattr(images, "labels"):  # an ImageDataset
        images = images.images
    x = torch.as_tensor(images) if not isinstance(images, torch.Tensor) else images
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4:
        raise DataError(f"images must be (N,S,S) or (N,C,S,S), got shape {tuple(x.shape)}")
    return x if x.is_floating_point() else x.float()


def _batched_inference(model: VGG16, images, batch_size: int, device: str | torch.device, fn) -> np.ndarray:
    x = _as_image_tensor(images)
    dev = resolve_device(device)
    was_training = model.training
    try:
        orig_dev = next(model.parameters()).device
    except StopIteration:
        orig_dev = dev
    model.eval()
    model.to(dev)
    dtype = module_dtype(model)  # the images are scored in the model's precision
    outs = []
    try:
        bs = inference_chunk(model, x, batch_size, dev)
        with cpu_channels_last(model, dev), torch.inference_mode(), autocast(dev, dtype):
            for i in range(0, x.shape[0], bs):
                outs.append(fn(x[i:i + bs].to(dev, dtype, non_blocking=True)).float().cpu())
    finally:
        model.to(orig_dev)
        model.train(was_training)
    if not outs:
        return np.zeros((0, 0), dtype=np.float32)
    return torch.cat(outs).numpy()


def predict_proba(model: VGG16, images, batch_size: int = 256, device: str | torch.device = "cpu") -> np.ndarray:
    """Softmax class probabilities (N, C) float32; the model's training mode and device are restored."""
    out = _batched_inference(model, images, batch_size, device, lambda xb: torch.softmax(upcast(model(xb)), dim=1))
    return out.reshape(-1, model.num_classes) if out.size == 0 else out


def extract_features(model: VGG16, images, batch_size: int = 256, device: str | torch.device = "cpu") -> np.ndarray:
    """Penultimate-layer embeddings (N, fc_width) float32 (see `VGG16.embed`)."""
    out = _batched_inference(model, images, batch_size, device, model.embed)
    return out.reshape(-1, model.fc_width) if out.size == 0 else out
