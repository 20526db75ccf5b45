"""Run-time helpers: image sizes, devices, determinism, progress bars."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch
from tqdm import tqdm  # plain text bars: notebooks are executed headless by papermill

from hipaug.errors import ConfigError

SUPPORTED_SIZES = (32, 64, 128, 256)


def check_image_size(image_size: int, name: str = "image_size") -> int:
    """Return `image_size` if it is supported, else raise a one-line ConfigError."""
    if int(image_size) not in SUPPORTED_SIZES:
        raise ConfigError(f"{name}={image_size} is not supported; use one of {', '.join(map(str, SUPPORTED_SIZES))}")
    return int(image_size)


def deterministic(enabled: bool = True) -> None:
    """Ask torch for deterministic algorithms (CPU results repeat bit for bit)."""
    torch.use_deterministic_algorithms(enabled, warn_only=True)
    # With deterministic algorithms torch also fills every new tensor with NaN by default, a
    # debugging aid that costs a memory pass per allocation; no hipaug op reads memory it has
    # not written (the bit-identical resume tests would fail if one did).
    torch.utils.deterministic.fill_uninitialized_memory = False
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = not enabled
        torch.backends.cudnn.deterministic = enabled


def resolve_device(spec: str | torch.device = "auto") -> torch.device:
    """Map 'auto' | 'cpu' | 'cuda[:k]' to a torch.device; 'auto' picks CUDA when present."""
    if isinstance(spec, torch.device):
        return spec
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if spec == "cpu" or spec.startswith("cuda"):
        if spec.startswith("cuda") and not torch.cuda.is_available():
            raise ConfigError(f"device={spec!r} requested but CUDA is not available; use --device cpu or auto")
        return torch.device(spec)
    raise ConfigError(f"device={spec!r} is not one of auto, cpu, cuda")


def progress(iterable: Iterable | None = None, **kwargs: Any) -> tqdm:
    """Return a tqdm progress bar; HIPAUG_PROGRESS=0 (or TQDM_DISABLE=1) hides it."""
    if os.environ.get("HIPAUG_PROGRESS", "1") == "0":
        kwargs["disable"] = True
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("leave", False)
    return tqdm(iterable, **kwargs)
