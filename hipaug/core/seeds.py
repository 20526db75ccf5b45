"""The one seed: every random source of a run derives its own seed from it, by name.

`derive_seed(seed, *names)` is the only derivation in hipaug. Streams are explicit
`torch.Generator` / `numpy.random.Generator` objects made from it. The two things torch draws
from its global generator (a module's initial weights, dropout masks) run inside
`torch_global_seed`, which forks the global state and restores it on exit: no hipaug function
leaves the caller's global random state changed.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import numpy as np
import torch


def derive_seed(seed: int, *names: str | int) -> int:
    """Derive the seed of one named random stream from the one seed (sha256: stable across runs and platforms)."""
    key = ":".join(str(part) for part in (int(seed), *names))
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "little") & 0x7FFFFFFF


def torch_generator(seed: int, *names: str | int) -> torch.Generator:
    """A CPU torch.Generator for the stream `names` of `seed`."""
    return torch.Generator().manual_seed(derive_seed(seed, *names))


def numpy_rng(seed: int, *names: str | int) -> np.random.Generator:
    """A numpy Generator for the stream `names` of `seed`."""
    return np.random.default_rng(derive_seed(seed, *names))


@contextlib.contextmanager
def torch_global_seed(seed: int, *names: str | int) -> Iterator[None]:
    """Seed torch's global generator (CPU and CUDA) for the block, then restore the caller's state."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_initialized() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(derive_seed(seed, *names))
        yield
