"""Run-time helpers: image sizes, devices, determinism, progress bars."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterable, Iterator
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
    if "torch._inductor.config" in sys.modules:
        torch.use_deterministic_algorithms(enabled, warn_only=True)
    else:
        # The public call imports the compiler stack (torch._inductor, torch._dynamo) only to set the
        # compiler's own flag: 1.8 s in every process, and hipaug never compiles a model. The flag the
        # eager kernels read is this one; a process that has imported the compiler gets the public call.
        torch._C._set_deterministic_algorithms(enabled, warn_only=True)
    # With deterministic algorithms torch also fills every new tensor with NaN by default, a
    # debugging aid that costs a memory pass per allocation; no hipaug op reads memory it has
    # not written (the bit-identical resume tests would fail if one did).
    torch.utils.deterministic.fill_uninitialized_memory = False
    if torch.backends.cudnn.is_available():
        torch.backends.cudnn.benchmark = not enabled
        torch.backends.cudnn.deterministic = enabled


# The arithmetic a network can run in. float32 is the default; float64 makes a result independent of
# the CPU's kernels at any printed precision: two CPUs (AVX-512, AVX2, SSE, another thread count)
# sum in other orders, and small-data training amplifies float32's last-bit differences into
# visible ones, while float64's stay some nine digits below them.
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def torch_dtype(name: str | torch.dtype, field: str = "dtype") -> torch.dtype:
    """The torch dtype named `name` (float32 or float64); a one-line ConfigError naming `field` otherwise."""
    if isinstance(name, torch.dtype) and name in DTYPES.values():
        return name
    if not isinstance(name, str) or name not in DTYPES:
        raise ConfigError(f"{field}={name!r} is not one of {', '.join(DTYPES)}")
    return DTYPES[name]


@contextlib.contextmanager
def default_dtype(dtype: str | torch.dtype) -> Iterator[torch.dtype]:
    """Make `dtype` torch's default for the block (new modules and tensors), then restore the caller's."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch_dtype(dtype))
    try:
        yield torch.get_default_dtype()
    finally:
        torch.set_default_dtype(old)


@contextlib.contextmanager
def torch_threads(num_threads: int | None) -> Iterator[None]:
    """Run the block with `num_threads` torch CPU threads (None: leave torch's setting), then restore it.

    A CPU kernel's summation order depends on its thread count: a task that fixes its threads
    gives the same bytes whichever process, serial or parallel, runs it.
    """
    old = torch.get_num_threads()
    if num_threads is not None:
        torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        if num_threads is not None:
            torch.set_num_threads(old)


def module_dtype(module: torch.nn.Module) -> torch.dtype:
    """The floating dtype of a module's parameters (float32 for a module without any)."""
    return next((p.dtype for p in module.parameters() if p.is_floating_point()), torch.float32)


def upcast(x: torch.Tensor) -> torch.Tensor:
    """Half-precision (CUDA autocast) outputs as float32 for a loss; float32 and float64 pass unchanged."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


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
