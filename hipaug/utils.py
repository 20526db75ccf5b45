"""Small shared helpers: seeding, devices, progress bars, atomic writes."""

from __future__ import annotations

import json
import os
import random
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm  # plain text bars: notebooks are executed headless by papermill

from .errors import ConfigError

SUPPORTED_SIZES = (32, 64, 128, 256)
_UMASK = os.umask(0)
os.umask(_UMASK)


def check_image_size(image_size: int, name: str = "image_size") -> int:
    """Return `image_size` if it is supported, else raise a one-line ConfigError."""
    if int(image_size) not in SUPPORTED_SIZES:
        raise ConfigError(f"{name}={image_size} is not supported; use one of {', '.join(map(str, SUPPORTED_SIZES))}")
    return int(image_size)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch from one seed and return a torch.Generator seeded alike."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


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


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write bytes to `path` via a temporary file and rename, so readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp creates 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write text (UTF-8) atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: str | Path, obj: Any) -> Path:
    """Write `obj` as pretty, key-sorted JSON atomically."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """torch.save to a temporary file, then rename over `path`."""
    import io

    buf = io.BytesIO()
    torch.save(obj, buf)
    return atomic_write_bytes(path, buf.getvalue())


def torch_load(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """Load a checkpoint safely (weights_only=True: tensors and plain containers only)."""
    return torch.load(Path(path), map_location=map_location, weights_only=True)


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, torch.Tensor):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")
