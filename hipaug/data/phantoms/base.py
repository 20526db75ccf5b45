"""Phantom basics: class names, argument checks, per-image parameter draws, difficulty mappings.

Paper step: data (the stand-in for Lin & Chung's radiographs). Everything here is shared by the
anatomy, the image chain and the batch API of :mod:`hipaug.data.phantoms`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import ndtri

from hipaug.errors import ConfigError

LIMB_PARTS: tuple[str, ...] = ("forearm", "hand_wrist", "knee", "lower_leg")  # limb body parts
PELVIC_CLASSES: tuple[str, ...] = ("fracture", "normal")  # pelvic class names, sorted
LIMB_FRACTURE_TYPES: tuple[str, ...] = ("transverse", "oblique", "comminuted", "impacted")
PELVIC_FRACTURE_TYPES: tuple[str, ...] = ("subcapital", "transcervical", "intertrochanteric")
LABEL_MODES = ("part", "fracture", "part+fracture")  # render_limb(labels=...)

# The arithmetic of every phantom: float64. numpy picks SIMD kernels by CPU (AVX-512, AVX2, SSE),
# whose float32 exp/log/sin differ in the last bit; at float32 that flipped a few pixels of the
# 8-bit images, hence the data's fingerprint, between machines. At float64 the kernels' last-bit
# differences stay far below half a grey level, so every CPU writes the same PNGs.
REAL = np.float64
N_UNIFORMS = 96  # uniforms per parameter block (anatomy, fracture, imaging)
KIND_LIMB, KIND_PELVIC = 1, 2  # first element of a patient key (a name of its random stream)


# ----------------------------------------------------------------------------------- arguments
def check_int(name: str, value, minimum: int) -> int:
    """Return `value` as an int, or raise ConfigError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ConfigError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def check_difficulty(difficulty) -> float:
    """Return the difficulty as a float in (0, 3], or raise ConfigError."""
    try:
        d = float(difficulty)
    except (TypeError, ValueError):
        raise ConfigError(f"difficulty={difficulty!r} must be a number in (0, 3]") from None
    if not (math.isfinite(d) and 0.0 < d <= 3.0):
        raise ConfigError(f"difficulty={difficulty!r} must be a number in (0, 3]")
    return d


def check_rate(rate) -> float:
    """Return the fracture rate as a float in [0, 1], or raise ConfigError."""
    try:
        r = float(rate)
    except (TypeError, ValueError):
        raise ConfigError(f"fracture_rate={rate!r} must be a number in [0, 1]") from None
    if not (math.isfinite(r) and 0.0 <= r <= 1.0):
        raise ConfigError(f"fracture_rate={rate!r} must be a number in [0, 1]")
    return r


# ------------------------------------------------------------------------------ random draws
class Draw:
    """Hand out the columns of a (B, K) block of uniforms in a fixed order, mapped to ranges."""

    def __init__(self, u: np.ndarray):
        self.u, self.k = u, 0

    def col(self) -> np.ndarray:
        if self.k >= self.u.shape[1]:
            raise RuntimeError("phantom parameter block exhausted; raise N_UNIFORMS")
        c = self.u[:, self.k]
        self.k += 1
        return c

    def uni(self, lo: float, hi: float) -> np.ndarray:
        return lo + (hi - lo) * self.col()

    def norm(self, mu: float, sd: float, clip: float = 2.5) -> np.ndarray:
        z = ndtri(np.clip(self.col(), 1e-7, 1 - 1e-7))
        return mu + sd * np.clip(z, -clip, clip)

    def sign(self) -> np.ndarray:
        return np.where(self.col() < 0.5, -1.0, 1.0)

    def choice(self, probs: Sequence[float]) -> np.ndarray:
        cum = np.cumsum(probs) / float(np.sum(probs))
        return np.minimum(np.searchsorted(cum, self.col(), side="right"), len(probs) - 1)


def per_image(a) -> np.ndarray:
    """(B,) -> (B, 1, 1) float64 for broadcasting against pixel grids."""
    return np.asarray(a, dtype=REAL).reshape(-1, 1, 1)


def rotate_xy(x, y, ang):
    """Rotate the vector (x, y) by `ang` radians."""
    c, s = np.cos(ang), np.sin(ang)
    return x * c - y * s, x * s + y * c


# -------------------------------------------------------------------------------- difficulty
_SEV_GAMMA = 0.25  # severity exponent at difficulty 1 (calibrated, see hipaug.data.phantoms)


def fracture_severity(F: Draw, difficulty: float) -> np.ndarray:
    """Fracture severity in [0, 1]: u ** (gamma * difficulty**2), subtler when difficult."""
    return F.col() ** (_SEV_GAMMA * difficulty**2)


def pose_scale(difficulty: float) -> float:
    """Scale of pose variation (rotation, shift) and of other nuisances for a difficulty."""
    return 0.3 + 0.5 * difficulty


# ----------------------------------------------------------------------------- linear algebra
def sandwich(G: np.ndarray, x: np.ndarray) -> np.ndarray:
    """G @ x[b] @ G.T for every image b, computed image by image (so that an image's result
    does not depend on the batch it is in: a stacked product may be merged into one GEMM whose
    blocking, and last-bit rounding, changes with the batch size)."""
    x = np.ascontiguousarray(x, dtype=REAL)
    out = np.empty((x.shape[0], G.shape[0], G.shape[0]), REAL)
    Gt = np.ascontiguousarray(G.T)
    for b in range(x.shape[0]):
        np.dot(np.dot(G, x[b]), Gt, out=out[b])
    return out
