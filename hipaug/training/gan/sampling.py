"""Sampling a trained AC-GAN (paper step 2, the generator): the generator, images, the synthetic pool, grids.

`sample_dataset` / `sample_to_folder` make the pool of synthetic limb radiographs that the realism
filter (paper step 3) chooses from; the grids show a run's progress (fixed noise, one row per class).
"""

from __future__ import annotations

import copy
import io
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from hipaug.core import atomic_write_bytes, default_dtype, module_dtype, resolve_device, torch_load
from hipaug.core.seeds import torch_generator
from hipaug.data import ImageDataset, from_arrays, write_dataset
from hipaug.errors import ConfigError, DataError
from hipaug.models.acgan import Generator, build_generator
from hipaug.training.gan.config import ACGANConfig
from hipaug.training.gan.ema import recalibrate_batchnorm
from hipaug.training.gan.run import CHECKPOINT_NAME

__all__ = ["load_generator", "sample", "sample_dataset", "sample_to_folder", "save_grid"]


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
    with default_dtype(cfg.dtype):
        G = build_generator(cfg, len(class_names))
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
    gen = torch_generator(seed, "sample")
    z_all = torch.randn(labels.numel(), G.latent_dim, generator=gen, dtype=module_dtype(G))
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


def sample_dataset(run_dir: str | Path, per_class: int, seed: int, ema: bool = True) -> ImageDataset:
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
    return from_arrays(images, labels, class_names, patient_ids=ids, meta=meta)


def sample_to_folder(run_dir: str | Path, out_dir: str | Path, per_class: int, seed: int, ema: bool = True) -> Path:
    """Write generated images as `out_dir/<class>/<id>.png` (8-bit) plus `manifest.csv`."""
    ds = sample_dataset(run_dir, per_class, seed, ema=ema)
    return Path(write_dataset(ds, out_dir))


def save_grid(images: torch.Tensor, path: str | Path, nrow: int = 8, padding: int = 2) -> Path:
    """Save (N,1,S,S) images in [0,1] as one PNG grid, `nrow` images per row, on white padding."""
    from torchvision.utils import save_image  # torchvision is slow to import and only needed here

    x = images.detach().float().cpu()
    if x.ndim != 4 or x.shape[1] != 1 or x.shape[0] == 0:
        raise DataError(f"save_grid wants (N,1,S,S) images, got {tuple(x.shape)}")
    buf = io.BytesIO()
    save_image(x, buf, format="png", nrow=nrow, padding=padding, pad_value=1.0)
    return atomic_write_bytes(Path(path), buf.getvalue())


def fixed_grid_inputs(cfg: ACGANConfig, num_classes: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the (z, labels) of a run's sample grids: `grid_per_class` columns, one row per class."""
    # Same noise in every row, so a column shows one "style" drawn as each class.
    gen = torch_generator(seed, "grid")
    z = torch.randn(cfg.grid_per_class, cfg.latent_dim, generator=gen).repeat(num_classes, 1)
    y = torch.arange(num_classes).repeat_interleave(cfg.grid_per_class)
    return z, y


@torch.no_grad()
def write_grid(G_src: nn.Module, cfg: ACGANConfig, z: torch.Tensor, y: torch.Tensor, path: Path) -> None:
    """Draw the grid (z, y) with a recalibrated copy of `G_src` and save it to `path`."""
    G = copy.deepcopy(G_src)  # never disturb the training copy's buffers
    recalibrate_batchnorm(G, batch_size=min(cfg.batch_size, 64))
    device = next(G.parameters()).device
    x = G(z.to(device), y.to(device)).float().add(1).div(2).clamp(0, 1).cpu()
    save_grid(x, path, nrow=cfg.grid_per_class)
