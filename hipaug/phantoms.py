"""Radiograph phantoms: a deterministic stand-in for the private data of Lin & Chung (TAAI 2019).

Lin & Chung pre-train a hip-fracture classifier on limb radiographs (plus AC-GAN samples) and
fine-tune it on pelvic radiographs from Linkou Chang Gung Memorial Hospital. Those images are
private, so this module draws physics-inspired phantoms of the same two kinds: a *limb* set
(four body parts, each normal or fractured) and an *AP pelvis* set (hip fracture or normal).
Public API: ``render_limb``, ``render_pelvic``, ``render_pair`` (one patient with and without
the fracture), ``write_dataset``, ``write_limb_dataset``, ``write_pelvic_dataset``.

Image formation (vectorised with numpy over chunks of images of one part)
    1. Anatomy is analytic 3-D solids in a canonical frame (cm, x right, y down), per image
       parameters. A bone is the union of components: tapered capsules ("tubes") along a centre
       line with flared ends (metaphyses), ellipsoids (heads, condyles, carpals, trochanters,
       vertebral pedicles), lens-shaped plates (iliac wings) and tubes along an ellipse (iliac
       crest, pelvic brim, obturator rings, acetabular roof). For a ray at distance d from a
       capsule's axis the chord is exactly ``2*sqrt(R**2 - d**2)``; an ellipsoid gives
       ``2c*sqrt(1 - (u/a)**2 - (v/b)**2)``. Every component has an outer chord and an inner
       chord (radius minus the cortical thickness); the union takes the element-wise maximum of
       each, so the dense cortical shell shows only on the bone's silhouette and a medullary
       canal runs between two bright cortices ("tram lines"). Towards the ends the cortex thins
       and the inner volume becomes cancellous bone, modulated by band-limited trabecular noise
       (a constant 512x512 tile, spectrum defined in cm: ~2 mm trabeculae stretched along y plus
       ~1.5 cm density blotches, so coarse pixels average it away like a real detector).
    2. Line integral ``P = sum(mu_i * chord_i)`` with *differential* coefficients (a bone
       replaces the soft tissue it occupies). Two beam qualities: extremities at low kVp (bone
       contrast high), the pelvis at ~75 kV. Soft tissue = fat shell over muscle (evaluated on a
       half-resolution grid: it is smooth); bowel gas pockets and sacral foramina subtract.
    3. Pose: the canonical line integral is resampled (bilinear) into the detector frame with a
       random rotation, shift, zoom and mirror (laterality; the lead marker agrees with it).
    4. Detector and display: burned-in lead marker (``L``/``R`` from a 5x7 bitmap font) inside the
       field, heel-effect gradient, collimation (blocked primary outside a slightly rotated
       rectangle, shown white as unexposed film), Beer-Lambert primary ``exp(-P)``, scatter
       (``spr * blur(primary)``), quantum noise (Poisson approximated by ``I + sqrt(I/N0) z``),
       detector blur, log detection ``D = -log(I)``, digital processing (large-scale dynamic
       range compression and unsharp-mask edge enhancement) and a film-like sigmoid window set
       from the image histogram inside the field, with contrast/brightness jitter. Convention as
       on film/PACS: high attenuation is white (bone bright, air dark).

Parts and pathology
    Limbs (``LIMB_PARTS``): ``forearm`` (AP: distal humerus, radius and ulna, carpals),
    ``hand_wrist`` (PA: distal radius/ulna, 8 carpals, 5 metacarpals, 14 phalanges, sesamoids),
    ``knee`` (AP: femoral condyles and notch, patella, tibial plateau with spines, fibular
    head), ``lower_leg`` (AP: tibia and fibula from knee to ankle, malleoli, talus). The
    fractured bone is drawn per image among 2-3 candidates (e.g. radius / 5th metacarpal /
    proximal phalanx). Types (``LIMB_FRACTURE_TYPES``): transverse, oblique, comminuted (extra
    crack lines and small cortical fragments) and impacted (overlapping fragments: a dense
    sclerotic band, shortening).
    Pelvis: L4-L5 (bodies, pedicles, transverse processes), sacrum with foramina, iliac wings
    with dense crests, supra-acetabular ilium, pelvic brim, acetabular roofs and teardrops,
    pubic rami, symphysis, obturator foramina, ischial tuberosities, both proximal femora (head,
    neck, greater and lesser trochanter, shaft), bowel gas, abdomen and thighs. Hip fractures
    (``PELVIC_FRACTURE_TYPES``): subcapital and transcervical neck fractures, impacted (fragments
    driven together along the neck: sclerotic band, valgus tilt) or displaced (proximal
    migration, varus and external rotation of the shaft fragment, which foreshortens the neck
    and trochanters), and intertrochanteric fractures (line from the greater to the lesser
    trochanter, varus, often small fragments). Side is left or right at random.

    One fracture model serves every bone, so limb -> hip transfer is plausible: a cortical break
    line through a point of the bone; the distal fragment is the same bone evaluated at
    ``T^-1(p)`` (T = optional foreshortening, rotation by the angulation about the break point,
    translation by the displacement) and masked to its side of the line; the proximal fragment
    is masked to the other side. A gap leaves a lucent line; a shift towards the proximal
    fragment makes them overlap (a denser impaction band). The mildest fractures are incomplete
    cracks through part of the bone, undisplaced. A fracture also adds soft-tissue swelling
    (haematoma): a lens of extra tissue, thicker for more severe fractures.

Difficulty (``difficulty``, default 1.0, range (0, 3])
    * severity ``s = u ** (0.25 * difficulty**2)`` (``u`` uniform) drives gap width, displacement,
      angulation, impaction depth, comminution and swelling; higher difficulty = subtler;
    * pose variation (rotation, shift) and the frequency of bowel gas and collimated borders
      scale with ``0.3 + 0.5 * difficulty``;
    * quantum noise: photons per pixel ``N0 / difficulty``.
    Calibration (``python benchmarks/calibrate_difficulty.py``: 400 pelvic phantoms at 64 px,
    75/25 stratified split, plain 4-block CNN from scratch, Adam, batch 16, 20 epochs, 3 seeds),
    held-out accuracy / ROC AUC, mean [min, max]:

    ==========  =====================  =====================
    difficulty  accuracy               AUC
    ==========  =====================  =====================
    0.5         0.767 [0.750, 0.800]   0.853 [0.843, 0.863]
    1.0         0.707 [0.630, 0.750]   0.786 [0.754, 0.814]
    1.5         0.637 [0.620, 0.670]   0.728 [0.682, 0.761]
    ==========  =====================  =====================

    At the default (1.0) a from-scratch CNN is clearly above chance but far from perfect.

Randomness and reproducibility
    Every image has its own ``numpy.random.Generator`` from ``SeedSequence(seed, spawn_key=key)``
    where ``key`` identifies the patient (kind, part, status, index): an image does not depend on
    the batch it is rendered in (nor on the thread count). Anatomy, fracture and imaging
    parameters come from separate, status-independent blocks of uniforms, so a patient can be
    rendered with and without the fracture (:func:`render_pair`). No global random state; the
    texture tile is a fixed constant.

Class balance
    ``render_limb(labels="part+fracture")``: ``per_class`` images of every part x status (8
    classes ``<part>_fracture`` / ``<part>_normal``). ``labels="part"``: ``per_class`` per part,
    ``per_class // 2`` fractured and the rest normal. ``labels="fracture"``: ``per_class`` per
    status, parts assigned round robin (balanced when ``per_class`` is a multiple of 4, else
    the first parts get one more). ``render_pelvic``: exactly ``round(n * fracture_rate)``
    fractures, in a seeded random order. Nuisances (marker, mirror, side, exposure, gas, pose)
    are drawn independently of the label.

Metadata: one row per image (see :func:`render_limb` / :func:`render_pelvic`); ``frac_x`` and
``frac_y`` give the break point in normalised image coordinates (x right, y down; NaN for
normals), useful to score Grad-CAM localisation. ``displacement`` is in mm, ``angulation`` in
degrees, ``severity`` in [0, 1]; pose, exposure and patient parameters are included.

Speed: ``python benchmarks/bench_phantoms.py`` (images/s for limb and pelvis at 64 and 128 px).
Contact sheets: ``python scripts/contact_sheet.py`` -> ``build/contact_sheet_{limb,pelvic}.png``.
"""

from __future__ import annotations

import functools
import hashlib
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from scipy.special import ndtri

from .errors import ConfigError
from .utils import check_image_size

__all__ = [
    "LIMB_PARTS",
    "PELVIC_CLASSES",
    "LIMB_FRACTURE_TYPES",
    "PELVIC_FRACTURE_TYPES",
    "PhantomBatch",
    "render_limb",
    "render_pelvic",
    "render_pair",
    "write_dataset",
    "write_limb_dataset",
    "write_pelvic_dataset",
]

LIMB_PARTS: tuple[str, ...] = ("forearm", "hand_wrist", "knee", "lower_leg")
PELVIC_CLASSES: tuple[str, ...] = ("fracture", "normal")
LIMB_FRACTURE_TYPES: tuple[str, ...] = ("transverse", "oblique", "comminuted", "impacted")
PELVIC_FRACTURE_TYPES: tuple[str, ...] = ("subcapital", "transcervical", "intertrochanteric")
LABEL_MODES = ("part", "fracture", "part+fracture")

F32 = np.float32
_NU = 96  # uniforms per parameter block (anatomy, fracture, imaging)
_KIND_LIMB, _KIND_PELVIC = 1, 2

# Linear attenuation coefficients (1/cm) for two beam qualities: extremities are taken at low kVp
# (~55 kV, effective ~32 keV: high bone contrast), the pelvis at ~75 kV (effective ~45 keV).
# Bone terms are *differential* (minus soft tissue) because a bone replaces the soft tissue
# it occupies; marrow is fatty (slightly below muscle).
_BEAM = {
    "limb": dict(muscle=0.30, fat=0.24, cort=1.05, marrow=-0.03, canc=0.26),
    "pelvic": dict(muscle=0.215, fat=0.185, cort=0.60, marrow=-0.015, canc=0.15),
}
_MU_LEAD = 4.5  # the marker's line integral (lead: effectively opaque)


@dataclass(frozen=True)
class PhantomBatch:
    """A batch of phantom radiographs with labels and per-image metadata."""

    images: np.ndarray  # (N, S, S) float32 in [0, 1], bone bright
    labels: np.ndarray  # (N,) int64 indices into class_names
    class_names: tuple[str, ...]  # sorted class names
    meta: pd.DataFrame  # one row per image: patient_id, pathology, pose, patient, seed ...

    def __len__(self) -> int:
        return int(self.images.shape[0])


# ----------------------------------------------------------------------------------- arguments
def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or int(value) < minimum:
        raise ConfigError(f"{name}={value!r} must be an integer >= {minimum}")
    return int(value)


def _check_difficulty(difficulty) -> float:
    try:
        d = float(difficulty)
    except (TypeError, ValueError):
        raise ConfigError(f"difficulty={difficulty!r} must be a number in (0, 3]") from None
    if not (math.isfinite(d) and 0.0 < d <= 3.0):
        raise ConfigError(f"difficulty={difficulty!r} must be a number in (0, 3]")
    return d


def _check_rate(rate) -> float:
    try:
        r = float(rate)
    except (TypeError, ValueError):
        raise ConfigError(f"fracture_rate={rate!r} must be a number in [0, 1]") from None
    if not (math.isfinite(r) and 0.0 <= r <= 1.0):
        raise ConfigError(f"fracture_rate={rate!r} must be a number in [0, 1]")
    return r


# ------------------------------------------------------------------------------ random draws
class _Draw:
    """Hand out the columns of a (B, K) block of uniforms in a fixed order, mapped to ranges."""

    def __init__(self, u: np.ndarray):
        self.u, self.k = u, 0

    def col(self) -> np.ndarray:
        if self.k >= self.u.shape[1]:
            raise RuntimeError("phantom parameter block exhausted; raise _NU")
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


def _b(a) -> np.ndarray:
    """(B,) -> (B, 1, 1) float32 for broadcasting against pixel grids."""
    return np.asarray(a, dtype=F32).reshape(-1, 1, 1)


def _smooth_end(z):
    """Compact bump: 1 at z=0 falling to 0 at |z|>=1 (cheap stand-in for a Gaussian)."""
    q = np.maximum(1.0 - z * z, 0.0)
    return q * q


# -------------------------------------------------------------------------------- textures
@functools.lru_cache(maxsize=32)
def _texture_tile(px_milli: int) -> np.ndarray:
    """A 512x512 periodic trabecular texture sampled every `px` cm (zero mean).

    The spectrum is defined in cm (trabeculae ~0.2 cm, stretched 2x along y, the axis of most
    long bones in the canonical frames; density blotches ~1.5 cm) and normalised so that an
    infinitely fine detector sees unit variance: a coarse grid keeps only the frequencies it can
    resolve, as a real detector averages trabeculae away. Fixed constant: no random state used.
    """
    px = px_milli / 1000.0
    n = 512
    noise = np.random.default_rng(20190809).standard_normal((n, n))  # a constant, not a draw
    f = np.fft.fftfreq(n, d=px)  # cycles / cm
    fy, fx = np.meshgrid(f, f, indexing="ij")
    fr = np.hypot(fx, 2.0 * fy)

    def spec(r):
        return np.exp(-(((r - 4.5) / 1.6) ** 2)) + 0.3 * np.exp(-((r / 0.7) ** 2))

    rr = np.linspace(0, 15, 6000)
    ref = np.sqrt(np.trapezoid(spec(rr) ** 2 * 2 * np.pi * rr, rr) / 2.0)
    field = np.fft.ifft2(np.fft.fft2(noise) * spec(fr)).real / (px * ref)
    field -= field.mean()
    return np.clip(field, -3, 3).astype(F32)


@functools.lru_cache(maxsize=32)
def _wrapped_tile(px_milli: int, n: int) -> np.ndarray:
    """The texture tile extended periodically by n rows/columns (so any n x n window is a slice)."""
    return np.pad(_texture_tile(px_milli), ((0, n), (0, n)), mode="wrap")


# ---------------------------------------------------------------------------------- canvas
class _Canvas:
    """Canonical-frame grid (cm) holding the batch's line integral P (B, n, n)."""

    def __init__(self, batch: int, n: int, fov: float, beam: str, maps: bool = False):
        self.B, self.n, self.fov = batch, n, float(fov)
        self.mu = _BEAM[beam]
        self.px = self.fov / n
        self.c = ((np.arange(n, dtype=F32) + 0.5) * self.px - self.fov / 2).astype(F32)
        self.P = np.zeros((batch, n, n), F32)
        self.bone = np.zeros((batch, n, n), F32) if maps else None
        self.T = None  # per-image trabecular texture field (B, n, n), set by set_texture

    def set_texture(self, ox, oy) -> None:
        """Cut each image's texture field from the constant tile at per-image offsets."""
        tile = _texture_tile(int(round(self.px * 1000)))
        m = tile.shape[0]
        big = _wrapped_tile(int(round(self.px * 1000)), self.n)
        self.T = np.empty((self.B, self.n, self.n), F32)
        for b in range(self.B):
            i, j = int(oy[b] * m), int(ox[b] * m)
            self.T[b] = big[i:i + self.n, j:j + self.n]

    def box(self, x0, x1, y0, y1):
        """Index slices and coordinate vectors of a cm box (clipped), or None if empty."""
        n, px, h = self.n, self.px, self.fov / 2
        j0 = max(int(math.floor((x0 + h) / px)), 0)
        j1 = min(int(math.ceil((x1 + h) / px)) + 1, n)
        i0 = max(int(math.floor((y0 + h) / px)), 0)
        i1 = min(int(math.ceil((y1 + h) / px)) + 1, n)
        if j1 <= j0 or i1 <= i0:
            return None
        return slice(i0, i1), slice(j0, j1), self.c[None, None, j0:j1], self.c[None, i0:i1, None]


class _Material:
    """Bone material of one bone in a batch: differential mu of cortex, marrow, cancellous."""

    def __init__(self, cv: _Canvas, cort, canc, tex_amp):
        self.cort, self.canc = _b(cort), _b(canc)
        self.marrow = F32(cv.mu["marrow"])
        self.amp = _b(tex_amp)

    def integral(self, cv: _Canvas, sy, sx, O, inn, K):
        """Bone line integral from outer chord O, inner chord inn and cancellous chord K."""
        dens = self.canc * (1.0 + self.amp * cv.T[:, sy, sx]) - self.marrow
        return self.cort * (O - inn) + self.marrow * inn + K * dens


# ------------------------------------------------------------------------------ components
# Each component returns (O, inn, K): outer chord, inner chord and the cancellous part of the
# inner chord (cm). A bone is the union of its components (element-wise maximum of each).
class _Tube:
    """Tapered capsule from a to b: radius lerp(ra, rb) + flares fa/fb near the ends (cm)."""

    def __init__(self, ax, ay, bx, by, ra, rb, fa=0.0, fb=0.0, la=1.5, lb=1.5, cort=0.25,
                 cend=0.3, cbase=0.08, depth=1.0, cut_b=0.0, flat=False):
        ax, ay, bx, by = (np.asarray(v, F32) * np.ones(1, F32) for v in (ax, ay, bx, by))
        dx, dy = bx - ax, by - ay
        L = np.maximum(np.hypot(dx, dy), 1e-3)
        self.ax, self.ay = _b(ax), _b(ay)
        self.dx, self.dy, self.L = _b(dx / L), _b(dy / L), _b(L)
        self.ra = _b(ra)
        self.slope = _b((np.asarray(rb, F32) - np.asarray(ra, F32)) / L)
        self.flared = bool(np.any(np.asarray(fa) != 0) or np.any(np.asarray(fb) != 0)
                           or float(cbase) < 1.0 or float(cend) < 1.0)
        self.fa, self.fb = _b(fa), _b(fb)
        self.ila, self.ilb = _b(1.0 / np.asarray(la, F32)), _b(1.0 / np.asarray(lb, F32))
        self.cort, self.cend, self.cbase = _b(cort), F32(cend), F32(cbase)
        self.depth = _b(2.0 * np.asarray(depth, F32))
        # cut_b > 0: no round cap at b; the solid fades out over cut_b cm instead
        self.cut_b = F32(cut_b)
        self.flat = flat  # trunk: thickness ~ sqrt(1 - (d/R)**4), a flatter cross-section
        rmax = np.maximum(np.asarray(ra) + np.asarray(fa), np.asarray(rb) + np.asarray(fb)) + 0.05
        self._bb = (np.minimum(ax, bx) - rmax, np.maximum(ax, bx) + rmax,
                    np.minimum(ay, by) - rmax, np.maximum(ay, by) + rmax)

    def bbox(self):
        return tuple(float(f(v)) for f, v in zip((np.min, np.max, np.min, np.max), self._bb))

    def eval(self, X, Y, need_inner=True):
        rx, ry = X - self.ax, Y - self.ay
        t = rx * self.dx + ry * self.dy
        tc = np.minimum(np.maximum(t, 0.0), self.L)
        r2 = rx * rx + ry * ry
        d2 = r2 - tc * (2.0 * t - tc)  # squared distance to the closest axis point
        R = self.ra + self.slope * tc
        if self.flared:
            ga = _smooth_end(tc * self.ila)
            gb = _smooth_end((self.L - tc) * self.ilb)
            R += self.fa * ga + self.fb * gb
            e = np.maximum(ga, gb)
        if self.flat:
            R2 = R * R
            O = self.depth * R * np.sqrt(np.maximum(1.0 - (d2 * d2) / (R2 * R2), 0.0))
        else:
            O = self.depth * np.sqrt(np.maximum(R * R - d2, 0.0))
        if self.cut_b > 0:
            fade = np.clip((self.L - t) / self.cut_b + 0.5, 0.0, 1.0)
            O *= fade
        if not need_inner:
            return O, None, None
        if self.flared:
            r = np.maximum(R - self.cort * (1.0 - (1.0 - self.cend) * e), 0.0)
        else:
            r = np.maximum(R - self.cort, 0.0)
        if self.flat:
            r2_ = np.maximum(r * r, 1e-3)
            inn = self.depth * r * np.sqrt(np.maximum(1.0 - (d2 * d2) / (r2_ * r2_), 0.0))
        else:
            inn = self.depth * np.sqrt(np.maximum(r * r - d2, 0.0))
        if self.cut_b > 0:
            inn *= fade
        if not self.flared:
            K = inn * self.cbase if self.cbase < 1.0 else inn
        else:
            K = inn * (self.cbase + (1.0 - self.cbase) * e)
        return O, inn, K


class _Ellipsoid:
    """Ellipsoid with in-plane semi-axes a (along angle) and b, depth semi-axis c, shell `cort`."""

    def __init__(self, cx, cy, a, b, c=None, ang=0.0, cort=0.15, lens=False):
        cx, cy = np.asarray(cx, F32) * np.ones(1, F32), np.asarray(cy, F32) * np.ones(1, F32)
        a, b = np.asarray(a, F32), np.asarray(b, F32)
        c = np.sqrt(a * b) if c is None else np.asarray(c, F32)
        ang = np.asarray(ang, F32)
        self.cx, self.cy = _b(cx), _b(cy)
        co, si = np.cos(ang), np.sin(ang)
        # quadratic form of the outer and inner ellipse: q = A dx^2 + 2 Bc dx dy + C dy^2
        self.q_out = tuple(_b(v) for v in _quad(a, b, co, si))
        ai, bi, ci = (np.maximum(v - cort, 0.02) for v in (a, b, c))
        self.q_in = tuple(_b(v) for v in _quad(ai, bi, co, si))
        self.c2, self.ci2 = _b(2 * c), _b(2 * ci)
        self.lens = lens  # thickness ~ (1 - rho^2) instead of sqrt: a plate thinning to its edge
        r = np.maximum(a, b) + 0.05
        self._bb = (cx - r, cx + r, cy - r, cy + r)

    def bbox(self):
        return tuple(float(f(v)) for f, v in zip((np.min, np.max, np.min, np.max), self._bb))

    def eval(self, X, Y, need_inner=True):
        dx, dy = X - self.cx, Y - self.cy
        xx, xy, yy = dx * dx, dx * dy, dy * dy
        qa, qb, qc = self.q_out
        q = np.maximum(1.0 - (qa * xx + qb * xy + qc * yy), 0.0)
        O = self.c2 * (q if self.lens else np.sqrt(q))
        if not need_inner:
            return O, None, None
        qa, qb, qc = self.q_in
        q = np.maximum(1.0 - (qa * xx + qb * xy + qc * yy), 0.0)
        inn = self.ci2 * (q if self.lens else np.sqrt(q))
        return O, inn, inn


def _quad(a, b, co, si):
    """Coefficients (A, 2B, C) of (u/a)^2 + (v/b)^2 with u = co dx + si dy, v = co dy - si dx."""
    ia2, ib2 = 1.0 / (a * a), 1.0 / (b * b)
    return (co * co * ia2 + si * si * ib2, 2.0 * co * si * (ia2 - ib2), si * si * ia2 + co * co * ib2)


class _Ring:
    """Tube of radius rr along an ellipse (semi-axes A, B, rotated by ang), optionally an arc.

    ``arc`` = (direction angle of the arc centre, half-width), both radians, in the ellipse's own
    normalised frame. Distance to the ellipse uses the first-order estimate (q - 1) / |grad q|.
    """

    def __init__(self, cx, cy, A, B, rr, ang=0.0, arc=None, cort=0.12, depth=1.0):
        cx, cy = np.asarray(cx, F32) * np.ones(1, F32), np.asarray(cy, F32) * np.ones(1, F32)
        A, B, rr = np.asarray(A, F32), np.asarray(B, F32), np.asarray(rr, F32)
        ang = np.asarray(ang, F32)
        self.cx, self.cy = _b(cx), _b(cy)
        self.co, self.si = _b(np.cos(ang)), _b(np.sin(ang))
        self.iA, self.iB = _b(1 / A), _b(1 / B)
        self.rr2 = _b(rr * rr)
        self.ri2 = _b(np.maximum(rr - cort, 0.02) ** 2)
        self.depth = _b(2.0 * np.asarray(depth, F32))
        if arc is None:
            self.arc = None
        else:
            a0, hw = (np.asarray(v, F32) for v in arc)
            self.arc = (_b(np.cos(a0)), _b(np.sin(a0)), _b(np.cos(hw)))
        r = np.maximum(A, B) + rr + 0.05
        self._bb = (cx - r, cx + r, cy - r, cy + r)

    def bbox(self):
        return tuple(float(f(v)) for f, v in zip((np.min, np.max, np.min, np.max), self._bb))

    def eval(self, X, Y, need_inner=True):
        dx, dy = X - self.cx, Y - self.cy
        un = (dx * self.co + dy * self.si) * self.iA
        vn = (dy * self.co - dx * self.si) * self.iB
        q = np.sqrt(un * un + vn * vn) + 1e-4
        g = np.sqrt((un * self.iA) ** 2 + (vn * self.iB) ** 2) / q + 1e-4
        d = (q - 1.0) / g
        d2 = d * d
        O = self.depth * np.sqrt(np.maximum(self.rr2 - d2, 0.0))
        if self.arc is not None:
            ca, sa, chw = self.arc
            w = np.clip(((un * ca + vn * sa) / q - chw) * 6.0, 0.0, 1.0)
            O = O * w
        if not need_inner:
            return O, None, None
        inn = self.depth * np.sqrt(np.maximum(self.ri2 - d2, 0.0))
        if self.arc is not None:
            inn = inn * w
        return O, inn, inn


# --------------------------------------------------------------------------------- fracture
@dataclass
class _Frac:
    """Per-image fracture of one bone (identity transform and no gap where not fractured)."""

    fx: np.ndarray  # break point x (cm)
    fy: np.ndarray  # break point y (cm)
    nx: np.ndarray  # unit normal of the break line, pointing into the distal fragment
    ny: np.ndarray
    gap: np.ndarray  # lucent gap width (cm)
    ang: np.ndarray  # angulation of the distal fragment (rad)
    tx: np.ndarray  # displacement of the distal fragment (cm)
    ty: np.ndarray
    crack: np.ndarray  # crack extent along the line from its start (cm); large = complete
    extra: np.ndarray  # (B, 2, 4) extra crack lines: (offset along line, angle, gap, reach)
    frags: np.ndarray  # (B, 3, 3) small fragments: (offset along, offset normal, radius)
    on: np.ndarray | None = None  # which images have this bone fractured
    k: np.ndarray | None = None  # horizontal foreshortening of the distal fragment (1 = none):
    kc: np.ndarray | None = None  # about x = kc; models external rotation of the femoral shaft

    def forward(self, qx, qy):
        """T: foreshorten about x = kc, rotate by ang about the break point, translate."""
        if self.k is not None:
            qx = self.kc[:, None] + (qx - self.kc[:, None]) * self.k[:, None]
        ca, sa = np.cos(self.ang)[:, None], np.sin(self.ang)[:, None]
        fx, fy = self.fx[:, None], self.fy[:, None]
        px = fx + ca * (qx - fx) - sa * (qy - fy) + self.tx[:, None]
        py = fy + sa * (qx - fx) + ca * (qy - fy) + self.ty[:, None]
        return px, py

    def forward_box(self, bb):
        """A box (over the batch) containing T(bb): where the moved fragment's component lands."""
        x0, x1, y0, y1 = bb
        px, py = self.forward(np.array([x0, x1, x0, x1])[None, :], np.array([y0, y0, y1, y1])[None, :])
        return float(px.min()), float(px.max()), float(py.min()), float(py.max())


def _smoothstep_px(z, inv_px):
    return np.clip(0.5 + z * inv_px, 0.0, 1.0)


def _bone_box(cv, comps, frac=None):
    """Component boxes and the canvas box of the whole bone (incl. its moved distal fragment)."""
    boxes = [c.bbox() for c in comps]
    allb = boxes + ([frac.forward_box(bb) for bb in boxes] if frac is not None else [])
    x0, x1 = min(b[0] for b in allb), max(b[1] for b in allb)
    y0, y1 = min(b[2] for b in allb), max(b[3] for b in allb)
    return boxes, cv.box(x0, x1, y0, y1)


def _accumulate(cv, comps, boxes, box, inverse=None, frac=None, need_inner=True):
    """Union (element-wise max) of the components' (O, inn, K) over `box`.

    With ``inverse`` (a function p -> q) the components are evaluated at q = T^-1(p), i.e. the
    bone moved by T; each component is then only evaluated inside the box of its moved copy.
    """
    sy, sx = box[0], box[1]
    h, w = sy.stop - sy.start, sx.stop - sx.start
    O = np.zeros((cv.B, h, w), F32)
    inn = np.zeros_like(O) if need_inner else None
    K = np.zeros_like(O) if need_inner else None
    for comp, bb in zip(comps, boxes):
        sub = cv.box(*(bb if frac is None else frac.forward_box(bb)))
        if sub is None:
            continue
        ssy, ssx, X, Y = sub
        i0, i1 = max(ssy.start, sy.start), min(ssy.stop, sy.stop)
        j0, j1 = max(ssx.start, sx.start), min(ssx.stop, sx.stop)
        if i1 <= i0 or j1 <= j0:
            continue
        X, Y = cv.c[None, None, j0:j1], cv.c[None, i0:i1, None]
        if inverse is not None:
            X, Y = inverse(X, Y)
        o, i, k = comp.eval(X, Y, need_inner)
        ly, lx = slice(i0 - sy.start, i1 - sy.start), slice(j0 - sx.start, j1 - sx.start)
        np.maximum(O[:, ly, lx], o, out=O[:, ly, lx])
        if need_inner:
            np.maximum(inn[:, ly, lx], i, out=inn[:, ly, lx])
            np.maximum(K[:, ly, lx], k, out=K[:, ly, lx])
    return O, inn, K


def _draw_bone(cv: _Canvas, comps, mat: _Material, frac: _Frac | None = None):
    """Add one bone (union of components, optionally fractured) to the canvas."""
    boxes, box = _bone_box(cv, comps, frac)
    if box is None:
        return
    sy, sx, X, Y = box
    Bp = mat.integral(cv, sy, sx, *_accumulate(cv, comps, boxes, box))
    if frac is None:
        val = Bp
    else:
        ipx = F32(1.0 / cv.px)
        fx, fy, nx, ny = _b(frac.fx), _b(frac.fy), _b(frac.nx), _b(frac.ny)
        g2 = _b(frac.gap) * 0.5
        # proximal fragment: the bone itself, on the proximal side of the break line
        s = (X - fx) * nx + (Y - fy) * ny
        along = (X - fx) * (-ny) + (Y - fy) * nx
        crack = _smoothstep_px(_b(frac.crack) - (along + 8.0), ipx)  # crack starts 8 cm "before"
        hp = _smoothstep_px(s + g2, ipx)
        gapband = hp - _smoothstep_px(s - g2, ipx)
        mp = 1.0 - hp + gapband * (1.0 - crack)
        # distal fragment: q = T^-1 p (undo translation, then rotation about the break point)
        ca, sa = _b(np.cos(frac.ang)), _b(np.sin(frac.ang))
        tx, ty = _b(frac.tx), _b(frac.ty)

        if frac.k is not None:
            kc, ik = _b(frac.kc), _b(1.0 / frac.k)

            def inverse(Xp, Yp):
                rx, ry = Xp - fx - tx, Yp - fy - ty
                qx = fx + ca * rx + sa * ry
                return kc + (qx - kc) * ik, fy - sa * rx + ca * ry
        else:

            def inverse(Xp, Yp):
                rx, ry = Xp - fx - tx, Yp - fy - ty
                return fx + ca * rx + sa * ry, fy - sa * rx + ca * ry

        Bd = mat.integral(cv, sy, sx, *_accumulate(cv, comps, boxes, box, inverse, frac))
        Xq, Yq = inverse(X, Y)
        md = _smoothstep_px((Xq - fx) * nx + (Yq - fy) * ny - g2, ipx)
        val = Bp * mp + Bd * md
        # comminution: extra crack lines near the break and small cortical fragments
        for k in range(frac.extra.shape[1]):
            if not np.any(frac.extra[:, k, 2] > 0):
                continue
            off, an, gw, reach = (_b(frac.extra[:, k, j]) for j in range(4))
            cx, cy = fx + off * (-ny), fy + off * nx
            d = (X - cx) * np.cos(an) + (Y - cy) * np.sin(an)
            r2 = (X - cx) ** 2 + (Y - cy) ** 2
            band = np.clip((gw * 0.5 - np.abs(d)) * ipx + 0.5, 0.0, 1.0)
            val = val * (1.0 - band * ((r2 < reach * reach) & (gw > 0)))
        for k in range(frac.frags.shape[1]):
            if not np.any(frac.frags[:, k, 2] > 0):
                continue
            oa, on, rad = (_b(frac.frags[:, k, j]) for j in range(3))
            cx, cy = fx + oa * (-ny) + on * nx, fy + oa * nx + on * ny
            r2 = (X - cx) ** 2 + (Y - cy) ** 2
            val = val + mat.cort * 2.0 * np.sqrt(np.maximum(rad * rad - r2, 0.0))
    cv.P[:, sy, sx] += val
    if cv.bone is not None:
        cv.bone[:, sy, sx] += val


def _draw_soft(cv: _Canvas, comps, fat=None):
    """Soft-tissue envelope: union of components, fat over muscle (cort = fat thickness).

    Evaluated on every second canonical pixel and interpolated: soft tissue is smooth, and it
    covers most of the field, so this halves the cost of a phantom.
    """
    half = _Canvas.__new__(_Canvas)
    half.B, half.n, half.fov = cv.B, (cv.n + 1) // 2, cv.fov
    half.px = cv.px * 2
    half.c = (cv.c[0::2] + 0.5 * cv.px).astype(F32)
    boxes, box = _bone_box(half, comps)
    if box is None:
        return
    O, inn, _ = _accumulate(half, comps, boxes, box)
    val = cv.mu["fat"] * O + (cv.mu["muscle"] - cv.mu["fat"]) * inn
    full = np.zeros((cv.B, half.n, half.n), F32)
    full[:, box[0], box[1]] = val
    U = _upsample_matrix(cv.n, half.n)
    cv.P += _sandwich(U, full)


@functools.lru_cache(maxsize=16)
def _upsample_matrix(n: int, m: int) -> np.ndarray:
    """(n, m) linear interpolation from the half grid (centres at 2j + 0.5) to the full grid."""
    pos = np.clip((np.arange(n) - 0.5) / 2.0, 0, m - 1)
    j0 = np.minimum(np.floor(pos).astype(int), m - 2)
    w = pos - j0
    U = np.zeros((n, m), F32)
    U[np.arange(n), j0] = 1 - w
    U[np.arange(n), j0 + 1] += w
    return U


def _add_blob(cv: _Canvas, cx, cy, a, b, c, ang, mu, lens=False):
    """Add mu * chord of a plain ellipsoid (gas pockets, foramina, swelling) to the canvas."""
    e = _Ellipsoid(cx, cy, a, b, c, ang, cort=0.0, lens=lens)
    box = cv.box(*e.bbox())
    if box is None:
        return
    sy, sx, X, Y = box
    cv.P[:, sy, sx] += _b(mu) * e.eval(X, Y, need_inner=False)[0]


# ------------------------------------------------------------------------- fracture sampling
_SEV_GAMMA = 0.25  # severity exponent at difficulty 1 (calibrated, see the module docstring)


def _severity(F: _Draw, difficulty: float) -> np.ndarray:
    """Fracture severity in [0, 1]: u ** (gamma * difficulty**2), subtler when difficult."""
    return F.col() ** (_SEV_GAMMA * difficulty**2)


def _pose_scale(difficulty: float) -> float:
    """Scale of pose variation (rotation, shift) and of other nuisances for a difficulty."""
    return 0.3 + 0.5 * difficulty


def _limb_fracture(F: _Draw, on: np.ndarray, difficulty: float, ax, ay, bx, by, R, tpos,
                   ftype: np.ndarray, sev: np.ndarray, signs: np.ndarray) -> _Frac:
    """Fracture of a long bone with shaft axis a->b at relative position tpos (per image)."""
    B = on.shape[0]
    dx, dy = bx - ax, by - ay
    L = np.hypot(dx, dy)
    dx, dy = dx / L, dy / L
    fx, fy = ax + tpos * L * dx, ay + tpos * L * dy
    obl = np.where(ftype == 1, F.uni(0.45, 0.85), F.norm(0.0, 0.12)) * signs[0]
    nx = dx * np.cos(obl) - dy * np.sin(obl)
    ny = dx * np.sin(obl) + dy * np.cos(obl)
    gap = np.where(ftype == 3, 0.0, (0.03 + 0.22 * sev) * np.minimum(R, 1.2) / 0.8)
    lat = sev**1.5 * F.uni(0.2, 1.3) * 2 * R * signs[1]
    axial = np.where(ftype == 3, -(0.08 + 0.45 * sev) * R, F.uni(-0.5, 0.15) * sev * 2 * R)
    ang = np.radians(sev * F.uni(0.0, 22.0)) * signs[2]
    ang = np.clip(ang, -np.arctan2(2.5, (1 - tpos) * L), np.arctan2(2.5, (1 - tpos) * L))
    complete = (sev > 0.22) | (ftype >= 2)
    crack = np.where(complete, 50.0, 8.0 + (0.5 + 2.5 * sev) * 2 * R)
    lat, axial, ang = (np.where(complete, v, 0.0) for v in (lat, axial, ang))
    tx = lat * (-dy) + axial * dx
    ty = lat * dx + axial * dy
    # comminution: two crack lines and three small fragments near the break
    extra = np.zeros((B, 2, 4), F32)
    frags = np.zeros((B, 3, 3), F32)
    com = (ftype == 2) & on
    for k in range(2):
        extra[:, k, 0] = F.uni(-1.0, 1.0) * R
        extra[:, k, 1] = F.uni(0, np.pi)
        extra[:, k, 2] = np.where(com, (0.6 + 0.6 * sev) * np.maximum(gap, 0.05), 0.0)
        extra[:, k, 3] = 1.6 * R
    for k in range(3):
        frags[:, k, 0] = F.uni(-1.3, 1.3) * R
        frags[:, k, 1] = F.uni(-0.6, 0.6) * R
        frags[:, k, 2] = np.where(com, F.uni(0.1, 0.28) * R * (0.6 + 0.8 * sev), 0.0)
    off = ~on
    gap, ang, tx, ty = (np.where(off, 0.0, v) for v in (gap, ang, tx, ty))
    crack = np.where(off, 50.0, crack)
    return _Frac(fx, fy, nx, ny, gap, ang, tx, ty, crack, extra, frags, on=on)


# --------------------------------------------------------------------------------- patients
def _patient(cv: _Canvas, A: _Draw, difficulty: float) -> dict:
    """Patient variation shared by all parts (scales relative to an average adult)."""
    cv.set_texture(A.col(), A.col())
    op = A.col() ** 1.3  # age-like osteopenia 0..1
    return dict(
        size=A.norm(1.0, 0.05),  # body size / bone length
        width=A.norm(1.0, 0.07),  # bone width
        osteopenia=op,
        cort_rel=A.norm(1.0, 0.06) * (1.0 - 0.22 * op),
        cort_frac=A.uni(0.34, 0.46) * (1.0 - 0.35 * op),  # cortical thickness / shaft radius
        canc_rel=A.norm(1.0, 0.1) * (1.0 - 0.45 * op),
        tex_amp=A.uni(0.2, 0.45),
        soft=A.uni(0.8, 1.35),  # soft tissue thickness
        fat=A.uni(0.1, 0.35),  # subcutaneous fat fraction of the envelope radius
    )


def _mat(cv: _Canvas, pt: dict, A: _Draw | None = None, scale: float = 1.0) -> _Material:
    return _Material(cv, pt["cort_rel"] * cv.mu["cort"], pt["canc_rel"] * cv.mu["canc"] * scale,
                     pt["tex_amp"])


# ------------------------------------------------------------------------------ limb scenes
_FOV = {"forearm": 33.0, "hand_wrist": 24.0, "knee": 21.0, "lower_leg": 42.0, "pelvic": 36.0}


def _rot(x, y, ang):
    c, s = np.cos(ang), np.sin(ang)
    return x * c - y * s, x * s + y * c


def _scene_forearm(cv, A, F, on, difficulty):
    pt = _patient(cv, A, difficulty)
    sz, wd = pt["size"], pt["width"]
    cf = pt["cort_frac"]
    sc = lambda v: v * sz  # noqa: E731  (lengths scale with patient size)
    pron = A.uni(-0.25, 0.25)  # forearm rotation moves the radius over the ulna distally
    bend = A.norm(0.0, 0.04)  # slight overall curvature / elbow carrying angle
    ys = A.uni(0.0, 2.0)  # where along the forearm the field is centred
    st = np.sqrt(pt["soft"])
    fat = pt["fat"]
    y = lambda v: sc(v) + ys  # noqa: E731
    # soft tissue: upper arm, forearm (tapered), hand
    soft = [
        _Tube(0.2, y(-30), 0.2, y(-15), 3.9 * st * wd, 4.2 * st * wd, cort=fat * 4 * st, depth=0.8),
        _Tube(0.2, y(-15), 0.3 + bend * 10, y(11), 4.2 * st * wd, 2.7 * st * wd, fb=0.3,
              cort=fat * 3.5 * st, depth=0.72, la=6.0, lb=3),
        _Ellipsoid(0.3 + bend * 10, y(14.5), 4.0 * st * wd, 3.4 * st, 2.0 * st, cort=fat * 2),
    ]
    _draw_soft(cv, soft, fat * 0)
    # humerus (distal) with condyles
    hum = [
        _Tube(0.3, y(-26), 0.3, y(-14.2), 1.15 * wd, 1.25 * wd, fb=0.9 * wd, lb=2.5,
              cort=cf * 1.15 * wd),
        _Ellipsoid(0.3, y(-13.0), 2.7 * wd, 1.05 * wd, 1.3 * wd, cort=0.16),
        _Ellipsoid(-0.9 * wd + 0.3, y(-12.45), 1.05 * wd, 0.75 * wd, 1.1 * wd, cort=0.12),
        _Ellipsoid(1.35 * wd + 0.3, y(-12.55), 0.85 * wd, 0.7 * wd, 1.0 * wd, cort=0.12),
    ]
    _draw_bone(cv, hum, _mat(cv, pt, A))
    # ulna: olecranon/coronoid, tapering shaft, head + styloid
    ux0, ux1 = -0.75 * wd + 0.1, -1.25 * wd + bend * 10 - pron * 0.5
    uy0, uy1 = y(-11.2), y(9.9)
    ulna = [
        _Ellipsoid(-0.75 * wd + 0.15, y(-12.1), 1.2 * wd, 1.45 * wd, 1.1 * wd, cort=0.14),
        _Tube(ux0, uy0, ux1, uy1, 0.78 * wd, 0.52 * wd, fa=0.25 * wd, fb=0.22 * wd, la=3.0, lb=1.2,
              cort=cf * 0.75 * wd),
        _Ellipsoid(ux1 - 0.35 * wd, y(10.45), 0.26 * wd, 0.42 * wd, 0.3, cort=0.08),
    ]
    # radius: head, neck, bowed shaft, wide distal end with styloid
    rxh = 1.25 * wd + 0.2
    rx_mid = 1.95 * wd + bend * 5 + 0.25 * np.abs(pron)
    rx_d = 1.55 * wd + bend * 10 + pron * 0.8
    rad = [
        _Ellipsoid(rxh, y(-11.5), 0.95 * wd, 0.45 * wd, 0.95 * wd, cort=0.12),
        _Tube(rxh, y(-11.4), rxh + 0.15, y(-9.0), 0.55 * wd, 0.62 * wd, cort=cf * 0.55 * wd),
        _Tube(rxh + 0.15, y(-9.0), rx_mid, y(0.5), 0.62 * wd, 0.68 * wd, cort=cf * 0.65 * wd,
              fa=0.08, la=1.5),
        _Tube(rx_mid, y(0.5), rx_d, y(9.9), 0.68 * wd, 0.85 * wd, fb=0.5 * wd, lb=2.8,
              cort=cf * 0.7 * wd, cut_b=0.25),
        _Ellipsoid(rx_d + 0.8 * wd, y(9.95), 0.45 * wd, 0.6 * wd, 0.6, 0.3, cort=0.08),
        _Ellipsoid(rx_d - 0.05, y(9.95), 1.6 * wd, 0.6 * wd, 1.15 * wd, -0.1, cort=0.11),
    ]
    # fracture: radius (0), ulna (1) or both (2)
    which = F.choice([0.45, 0.25, 0.3])
    ftype = F.choice([0.35, 0.3, 0.15, 0.2])
    sev = _severity(F, difficulty)
    signs = [F.sign() for _ in range(3)]
    t_r, t_u = F.uni(0.15, 0.9), F.uni(0.15, 0.85)
    fr_r = _limb_fracture(F, on & (which != 1), difficulty, rxh + 0.15, y(-9.0), rx_d, y(9.2),
                          0.68 * wd, t_r, ftype, sev, signs)
    # the break is placed on the full radius shaft (neck .. distal end)
    fr_r.fx, fr_r.fy = _lerp_shaft(rxh + 0.15, y(-9.0), rx_mid, y(0.5), rx_d, y(9.2), t_r)
    fr_u = _limb_fracture(F, on & (which != 0), difficulty, ux0, uy0, ux1, uy1, 0.65 * wd, t_u,
                          ftype, sev, [-signs[0], signs[1], signs[2]])
    _draw_bone(cv, ulna, _mat(cv, pt, A), fr_u)
    _draw_bone(cv, rad, _mat(cv, pt, A), fr_r)
    # carpals (proximal row) and metacarpal bases at the bottom edge
    carp = [(rx_d - 0.1 + 0.2, y(11.6), 0.85, 0.55, -0.5), (rx_d - 1.65, y(11.7), 0.7, 0.6, 0.0),
            (ux1 - 0.5, y(11.9), 0.55, 0.55, 0.3), (rx_d - 1.0, y(12.95), 0.6, 0.85, 0.0),
            (rx_d + 0.45, y(12.85), 0.6, 0.55, 0.3), (ux1 + 0.1, y(12.9), 0.6, 0.7, 0.0)]
    for k, (cx, cy, a, b_, an) in enumerate(carp):
        _draw_bone(cv, [_Ellipsoid(cx, cy, a * wd, b_ * wd, 0.8 * wd, an, cort=0.09)],
                   _mat(cv, pt, A))
    for k in range(4):
        mx = rx_d + 0.6 - k * 1.05 * wd
        _draw_bone(cv, [_Tube(mx, y(14.1), mx + (k - 1.5) * 0.3, y(19.5), 0.5 * wd, 0.4 * wd,
                              fa=0.2, la=0.9, cort=cf * 0.45 * wd)], _mat(cv, pt, A))
    _swell(cv, [fr_r, fr_u], on, sev, 3.0 * st)
    frac_xy = np.where(which == 1, fr_u.fx, fr_r.fx), np.where(which == 1, fr_u.fy, fr_r.fy)
    bone = np.array(["radius", "ulna", "radius+ulna"])[which]
    return _limb_meta(pt, on, ftype, sev, [fr_r, fr_u], which, bone, frac_xy, st)


def _lerp_shaft(x0, y0, x1, y1, x2, y2, t):
    """Point at fraction t along the polyline (x0,y0)-(x1,y1)-(x2,y2) (by index, halves)."""
    first = t < 0.5
    tt = np.where(first, t * 2, t * 2 - 1)
    fx = np.where(first, x0 + (x1 - x0) * tt, x1 + (x2 - x1) * tt)
    fy = np.where(first, y0 + (y1 - y0) * tt, y1 + (y2 - y1) * tt)
    return fx, fy


def _swell(cv, fracs, on, sev, size):
    """Soft-tissue swelling (haematoma) around a fracture: up to (0.2 + 0.8 * severity) cm of
    extra tissue, thinning smoothly to the edge of an ellipse of ~size cm."""
    for fr in fracs:
        amp = np.where(fr.on, 0.1 + 0.4 * sev, 0.0)  # half the peak thickness (c of the lens)
        if np.any(amp > 0):
            _add_blob(cv, fr.fx, fr.fy, 1.0 * size, 1.5 * size, 1.0, 0.0, amp * cv.mu["muscle"],
                      lens=True)


def _limb_meta(pt, on, ftype, sev, fracs, which, bone, frac_xy, st):
    fr = [f for f in fracs]
    disp = np.zeros(on.shape[0])
    ang = np.zeros(on.shape[0])
    for j, f in enumerate(fr):
        sel = on & ((which == j) | (which == len(fr)))
        disp = np.where(sel, np.maximum(disp, np.hypot(f.tx, f.ty) + np.maximum(f.gap, 0)), disp)
        ang = np.where(sel, np.maximum(ang, np.degrees(np.abs(f.ang))), ang)
    return dict(
        fracture_type=np.where(on, np.array(LIMB_FRACTURE_TYPES)[ftype], "none"),
        fractured_bone=np.where(on, bone, "none"),
        displacement=np.round(disp * 10.0, 2),  # mm
        angulation=np.round(ang, 2),  # degrees
        severity=np.where(on, np.round(sev, 4), 0.0),
        _frac_xy=frac_xy,
        patient_size=pt["size"], bone_width=pt["width"], osteopenia=pt["osteopenia"],
        soft_tissue=st,
    )


def _scene_hand(cv, A, F, on, difficulty):
    pt = _patient(cv, A, difficulty)
    sz, wd, cf = pt["size"], pt["width"], pt["cort_frac"]
    st, fat = pt["soft"], pt["fat"]
    sq = np.sqrt(st)
    ys = A.uni(0.4, 2.0)
    spread = A.uni(0.6, 1.3)  # finger abduction
    flex = A.uni(0.0, 0.25)  # slight finger flexion shortens the projected phalanges
    y = lambda v: v * sz + ys  # noqa: E731
    x = lambda v: v * sz  # noqa: E731
    # metacarpals: base (x, y), direction (radians from -y, + toward the thumb), length, radius
    mc = [(2.05, 6.3, 0.42 + 0.12 * spread, 4.3, 0.55), (1.15, 5.6, 0.06 * spread, 6.6, 0.5),
          (0.05, 5.5, 0.0, 6.3, 0.49), (-1.0, 5.65, -0.07 * spread, 5.7, 0.44),
          (-1.95, 5.95, -0.15 * spread, 5.2, 0.43)]
    phal = [(3.0, 2.4), (4.1, 2.5, 1.9), (4.5, 2.9, 2.0), (4.2, 2.75, 1.95), (3.3, 2.1, 1.8)]
    soft, bones_mc, bones_ph = [], [], []
    for k, (bx, by, th, ln, r) in enumerate(mc):
        th = th + A.norm(0.0, 0.03)
        ux, uy = np.sin(th), -np.cos(th)
        x0, y0 = x(bx), y(by)
        x1, y1 = x0 + ux * ln * sz, y0 + uy * ln * sz
        bones_mc.append((x0, y0, x1, y1, r * wd))
        th2 = th + th * (0.5 if k > 0 else 0.15) + A.norm(0.0, 0.04)  # fingers fan out a little
        ux, uy = np.sin(th2), -np.cos(th2)
        px, py = x1 + ux * 0.55 * wd, y1 + uy * 0.55 * wd
        segs = []
        for j, pl in enumerate(phal[k]):
            pl = pl * sz * (1.0 - flex * (j + 1) / 3)
            rr = r * wd * (0.8 - 0.13 * j)
            segs.append((px, py, px + ux * pl, py + uy * pl, rr))
            px, py = px + ux * (pl + 0.28 * wd), py + uy * (pl + 0.28 * wd)
        bones_ph.append(segs)
        fr_ = 1.05 if k == 0 else 0.92
        soft.append(_Tube(x1, y1, px - ux * 0.45, py - uy * 0.45, fr_ * sq * wd, 0.78 * sq * wd,
                          cort=fat * 2.0, depth=0.95))  # finger
        soft.append(_Tube(x0, y0, x1, y1, (1.45 if k == 0 else 1.2) * sq * wd, 1.15 * sq * wd,
                          cort=fat * 2.5, depth=1.0 if k == 0 else 1.2))  # palm / thenar
    soft.append(_Tube(x(0.05), y(5.0), x(0.0), y(22.0), 3.05 * sq * wd, 3.3 * sq * wd,
                      cort=fat * 3, depth=0.7))  # wrist and forearm
    _draw_soft(cv, soft, fat)
    # distal radius (flat, wide articular end + styloid) and ulna (head + styloid)
    ry = y(8.05)
    rad = [_Tube(x(1.45), y(24), x(1.3), ry + 0.1, 1.0 * wd, 0.95 * wd, fb=0.55 * wd, lb=2.8,
                 cort=cf * 0.9 * wd, cut_b=0.25),
           _Ellipsoid(x(1.25), ry + 0.05, 1.75 * wd, 0.62 * wd, 1.2 * wd, -0.12, cort=0.12),
           _Ellipsoid(x(2.55), ry - 0.2, 0.5 * wd, 0.6 * wd, 0.6, 0.3, cort=0.08)]
    uy_ = y(8.7)
    uln = [_Tube(x(-1.65), y(24), x(-1.55), uy_ + 0.1, 0.68 * wd, 0.58 * wd, fb=0.12 * wd, lb=1.5,
                 cort=cf * 0.65 * wd),
           _Ellipsoid(x(-1.95), uy_ - 0.35, 0.24 * wd, 0.42 * wd, 0.3, 0.2, cort=0.07)]
    # carpals: scaphoid, lunate, triquetrum, pisiform, trapezium, trapezoid, capitate, hamate
    carp = [(1.35, 7.0, 1.0, 0.55, -0.75), (0.0, 7.15, 0.8, 0.68, 0.0), (-1.25, 6.9, 0.68, 0.6, 0.4),
            (-1.55, 6.6, 0.48, 0.48, 0.0), (2.15, 5.95, 0.72, 0.66, 0.35), (1.1, 5.8, 0.58, 0.64, 0.0),
            (0.0, 5.95, 0.64, 1.0, 0.0), (-1.15, 6.05, 0.7, 0.85, 0.2)]
    # fracture: distal radius (0), 5th metacarpal neck (1), proximal phalanx of a finger (2)
    which = F.choice([0.45, 0.3, 0.25])
    ftype = F.choice([0.35, 0.3, 0.15, 0.2])
    sev = _severity(F, difficulty)
    signs = [F.sign() for _ in range(3)]
    t_r, t_m, t_p = F.uni(0.82, 0.95), F.uni(0.55, 0.85), F.uni(0.25, 0.7)
    finger = 2
    fr_r = _limb_fracture(F, on & (which == 0), difficulty, x(1.45), y(24), x(1.3), ry + 0.1, 1.0 * wd,
                          t_r, ftype, sev, signs)
    m5 = bones_mc[4]
    fr_m = _limb_fracture(F, on & (which == 1), difficulty, *m5[:4], m5[4], t_m, ftype, sev, signs)
    p1 = bones_ph[finger][0]
    fr_p = _limb_fracture(F, on & (which == 2), difficulty, *p1[:4], p1[4], t_p, ftype, sev, signs)
    mat = _mat(cv, pt, A)
    _draw_bone(cv, rad, mat, fr_r)
    _draw_bone(cv, uln, mat)
    for k, (cx, cy, a, b_, an) in enumerate(carp):
        _draw_bone(cv, [_Ellipsoid(x(cx), y(cy), a * wd, b_ * wd, 0.8 * wd, an, cort=0.09)], mat)
    for k, (x0, y0, x1, y1, r) in enumerate(bones_mc):
        comps = [_Tube(x0, y0, x1, y1, r * 1.0, r * 0.85, fa=0.28 * wd, fb=0.32 * wd, la=1.2,
                       lb=1.1, cort=cf * r)]
        _draw_bone(cv, comps, mat, fr_m if k == 4 else None)
    for k, segs in enumerate(bones_ph):
        for j, (x0, y0, x1, y1, r) in enumerate(segs):
            tuft = 0.1 * wd if j == len(segs) - 1 else 0.2 * wd
            comps = [_Tube(x0, y0, x1, y1, r, r * 0.75, fa=0.24 * wd, fb=tuft, la=0.8, lb=0.6,
                           cort=cf * r)]
            _draw_bone(cv, comps, mat, fr_p if (k == finger and j == 0) else None)
    x0, y0, x1, y1, r = bones_mc[0]  # thumb sesamoids at the MCP joint
    for d in (-0.3, 0.3):
        _draw_bone(cv, [_Ellipsoid(x1 + d, y1 + 0.15, 0.2, 0.22, 0.22, cort=0.05)], mat)
    _swell(cv, [fr_r, fr_m, fr_p], on, sev, 1.5 * st)
    fxy = (np.select([which == 0, which == 1], [fr_r.fx, fr_m.fx], fr_p.fx),
           np.select([which == 0, which == 1], [fr_r.fy, fr_m.fy], fr_p.fy))
    bone = np.array(["radius", "metacarpal5", "phalanx"])[which]
    return _limb_meta(pt, on, ftype, sev, [fr_r, fr_m, fr_p], which * 1, bone, fxy, st)


def _scene_knee(cv, A, F, on, difficulty):
    pt = _patient(cv, A, difficulty)
    sz, wd, cf = pt["size"], pt["width"], pt["cort_frac"]
    st, fat = pt["soft"], pt["fat"]
    ys = A.uni(-0.8, 0.8)
    valgus = A.norm(0.0, 0.04)
    jsp = A.uni(0.35, 0.7)  # joint space (cm), narrower in older knees
    y = lambda v: v * sz + ys  # noqa: E731
    x = lambda v: v * sz  # noqa: E731
    sq = np.sqrt(st)
    soft = [_Tube(x(0.0) - valgus * 10, y(-22), x(0.0), y(0.0), 6.0 * sq * wd, 5.7 * sq * wd,
                  cort=fat * 6, depth=0.85),
            _Tube(x(0.0), y(0.0), x(0.2) + valgus * 10, y(22), 5.7 * sq * wd, 5.0 * sq * wd,
                  cort=fat * 5, depth=0.85)]
    _draw_soft(cv, soft, fat)
    jy = y(0.0)
    fem = [_Tube(x(0.0) - valgus * 12, y(-24), x(0.0), jy - 2.2 * wd, 1.55 * wd, 1.75 * wd,
                 fb=1.55 * wd, lb=4.5, cort=cf * 1.55 * wd, cut_b=0.6),
           _Ellipsoid(x(-2.15) * wd, jy - 1.8 * wd, 1.9 * wd, 1.8 * wd, 2.6 * wd, 0.12, cort=0.2),
           _Ellipsoid(x(2.2) * wd, jy - 1.9 * wd, 1.85 * wd, 1.9 * wd, 2.6 * wd, -0.12, cort=0.2)]
    tib_top = jy + jsp
    tib = [_Ellipsoid(x(0.0), tib_top + 1.25 * wd, 3.9 * wd, 1.25 * wd, 2.6 * wd, 0.0, cort=0.15),
           _Ellipsoid(x(-0.45) * wd, tib_top + 0.35, 0.28 * wd, 0.5, 0.5, cort=0.05),
           _Ellipsoid(x(0.45) * wd, tib_top + 0.3, 0.28 * wd, 0.5, 0.5, cort=0.05),
           _Tube(x(0.0), tib_top + 1.5, x(0.2) + valgus * 12, y(24), 1.95 * wd, 1.5 * wd,
                 fa=1.2 * wd, la=4.5, cort=cf * 1.5 * wd)]
    fib = [_Ellipsoid(x(3.35) * wd, tib_top + 2.5, 0.85 * wd, 0.8 * wd, 0.9, cort=0.08),
           _Tube(x(3.35) * wd, tib_top + 3.0, x(3.1) * wd + valgus * 12, y(24), 0.5 * wd, 0.45 * wd,
                 cort=cf * 0.5 * wd)]
    pat = [_Ellipsoid(x(0.25), jy - 2.7 + A.uni(-0.6, 0.6), 2.1 * wd, 2.4 * wd, 1.1, 0.05,
                      cort=0.12)]
    # fracture: proximal tibia / plateau (0) or distal femur supracondylar (1)
    which = F.choice([0.55, 0.45])
    ftype = F.choice([0.35, 0.3, 0.15, 0.2])
    sev = _severity(F, difficulty)
    signs = [F.sign() for _ in range(3)]
    t_t = F.uni(0.02, 0.35)
    t_f = F.uni(0.72, 0.9)
    fr_t = _limb_fracture(F, on & (which == 0), difficulty, x(0.0), tib_top + 1.0, x(0.2), y(24),
                          1.7 * wd, t_t, ftype, sev, signs)
    fr_f = _limb_fracture(F, on & (which == 1), difficulty, x(0.0) - valgus * 12, y(-24), x(0.0),
                          jy - 1.0, 1.65 * wd, t_f, ftype, sev, signs)
    _draw_bone(cv, fem, _mat(cv, pt, A), fr_f)
    _draw_bone(cv, tib, _mat(cv, pt, A), fr_t)
    _draw_bone(cv, fib, _mat(cv, pt, A))
    _draw_bone(cv, pat, _mat(cv, pt, A, 0.8))
    _swell(cv, [fr_t, fr_f], on, sev, 4.0 * st)
    fxy = (np.where(which == 0, fr_t.fx, fr_f.fx), np.where(which == 0, fr_t.fy, fr_f.fy))
    bone = np.array(["tibia", "femur"])[which]
    return _limb_meta(pt, on, ftype, sev, [fr_t, fr_f], which, bone, fxy, st)


def _scene_lower_leg(cv, A, F, on, difficulty):
    pt = _patient(cv, A, difficulty)
    sz, wd, cf = pt["size"], pt["width"], pt["cort_frac"]
    st, fat = pt["soft"], pt["fat"]
    ys = A.uni(-1.5, 1.5)
    y = lambda v: v * sz + ys  # noqa: E731
    x = lambda v: v * sz  # noqa: E731
    bow = A.norm(0.0, 0.25)
    soft = [_Tube(x(0.0), y(-30), x(0.0), y(-16), 6.0 * st * wd, 5.6 * st * wd, cort=fat * 5,
                  depth=0.9),
            _Tube(x(0.0), y(-16), x(0.4), y(14), 5.6 * st * wd, 3.4 * st * wd, fa=0.6 * st, la=12.0,
                  cort=fat * 4, depth=0.85),
            _Ellipsoid(x(0.4), y(19), 3.6 * st * wd, 4.0, 3.0 * st, cort=fat * 3)]
    _draw_soft(cv, soft, fat)
    kj = y(-18.0)
    fem = [_Ellipsoid(x(-2.0) * wd, kj - 1.8 * wd, 2.0 * wd, 1.8 * wd, 2.6 * wd, 0.1, cort=0.2),
           _Ellipsoid(x(2.05) * wd, kj - 1.9 * wd, 1.9 * wd, 1.9 * wd, 2.6 * wd, -0.1, cort=0.2),
           _Tube(x(0.0), kj - 3.0, x(0.0), y(-30), 1.75 * wd, 1.5 * wd, fa=1.5 * wd, la=4.0,
                 cort=cf * 1.5 * wd)]
    tt = kj + 0.5
    ax = y(16.4)
    tib = [_Ellipsoid(x(0.0), tt + 1.2 * wd, 3.7 * wd, 1.2 * wd, 2.5 * wd, cort=0.15),
           _Tube(x(0.0), tt + 1.4, x(0.1) + bow * 0.3, y(-1.0), 1.85 * wd, 1.3 * wd, fa=1.1 * wd,
                 la=5.0, cort=cf * 1.35 * wd),
           _Tube(x(0.1) + bow * 0.3, y(-1.0), x(0.3), ax - 0.9, 1.3 * wd, 1.3 * wd, fb=0.75 * wd,
                 lb=4.0, cort=cf * 1.3 * wd),
           _Ellipsoid(x(-1.45) * wd, ax + 0.35, 0.55 * wd, 1.0 * wd, 0.9, 0.1, cort=0.08)]
    fib = [_Ellipsoid(x(3.1) * wd, tt + 2.3, 0.8 * wd, 0.75 * wd, 0.9, cort=0.08),
           _Tube(x(3.1) * wd, tt + 2.6, x(2.75) * wd + bow * 0.5, y(0.0), 0.6 * wd, 0.55 * wd,
                 cort=cf * 0.6 * wd),
           _Tube(x(2.75) * wd + bow * 0.5, y(0.0), x(2.35) * wd + 0.2, ax, 0.55 * wd, 0.6 * wd,
                 fb=0.2, lb=2.0, cort=cf * 0.6 * wd),
           _Ellipsoid(x(2.3) * wd + 0.2, ax + 1.0, 0.55 * wd, 1.25 * wd, 0.8, -0.1, cort=0.08)]
    tal = [_Ellipsoid(x(0.4), ax + 1.05, 1.95 * wd, 0.95 * wd, 2.5, cort=0.12)]
    which = F.choice([0.6, 0.4])  # tibia (0) / fibula (1)
    ftype = F.choice([0.35, 0.3, 0.15, 0.2])
    sev = _severity(F, difficulty)
    signs = [F.sign() for _ in range(3)]
    t_t, t_b = F.uni(0.2, 0.85), F.uni(0.2, 0.85)
    fr_t = _limb_fracture(F, on & (which == 0), difficulty, x(0.0), tt + 1.4, x(0.3), ax - 0.9,
                          1.35 * wd, t_t, ftype, sev, signs)
    fr_b = _limb_fracture(F, on & (which == 1), difficulty, x(3.1) * wd, tt + 2.6, x(2.35) * wd,
                          ax, 0.58 * wd, t_b, ftype, sev, signs)
    _draw_bone(cv, fem, _mat(cv, pt, A))
    _draw_bone(cv, tib, _mat(cv, pt, A), fr_t)
    _draw_bone(cv, fib, _mat(cv, pt, A), fr_b)
    _draw_bone(cv, tal, _mat(cv, pt, A))
    _swell(cv, [fr_t, fr_b], on, sev, 3.0 * st)
    fxy = (np.where(which == 0, fr_t.fx, fr_b.fx), np.where(which == 0, fr_t.fy, fr_b.fy))
    bone = np.array(["tibia", "fibula"])[which]
    return _limb_meta(pt, on, ftype, sev, [fr_t, fr_b], which, bone, fxy, st)


_LIMB_SCENES: dict[str, Callable] = {
    "forearm": _scene_forearm,
    "hand_wrist": _scene_hand,
    "knee": _scene_knee,
    "lower_leg": _scene_lower_leg,
}


# --------------------------------------------------------------------------------- pelvis
def _femur(sx, hx, hy, hr, nsa, pt, wd, sz):
    """Proximal femur components; sx=-1 for the image-left femur (lateral is -x)."""
    # neck axis from the head centre toward the shaft (neck-shaft angle nsa)
    shaft_top = (hx + sx * 3.7 * sz, hy + 3.2 * sz)
    shaft_bot = (hx + sx * 2.7 * sz, hy + 25.0 * sz)
    sdx, sdy = shaft_bot[0] - shaft_top[0], shaft_bot[1] - shaft_top[1]
    sl = np.hypot(sdx, sdy)
    sdx, sdy = sdx / sl, sdy / sl
    # neck direction: shaft direction rotated by (180 - nsa) degrees toward the head
    phi = np.radians(180.0 - nsa) * (-sx)
    ndx, ndy = _rot(-sdx, -sdy, phi)
    base_x, base_y = hx - ndx * 4.6 * sz, hy - ndy * 4.6 * sz
    cf = pt["cort_frac"]
    comps = [
        _Ellipsoid(hx, hy, hr, hr, 0.9 * hr, cort=0.16),  # head
        _Tube(hx, hy, base_x, base_y, 1.5 * wd, 1.6 * wd, fa=0.3 * wd, la=1.6, fb=0.5 * wd,
              lb=1.8, cort=0.26 * wd * (1.0 - 0.3 * pt["osteopenia"]), cend=0.8, cbase=0.8,
              depth=0.95),  # neck
        _Ellipsoid(hx + sx * 4.9 * sz, hy + 1.9 * sz, 1.55 * wd, 2.3 * wd, 1.4 * wd, sx * 0.25,
                   cort=0.14),  # greater trochanter
        _Ellipsoid(hx + sx * 1.95 * sz, hy + 6.0 * sz, 0.75 * wd, 1.05 * wd, 0.9 * wd, sx * 0.5,
                   cort=0.1),  # lesser trochanter
        _Tube(shaft_top[0], shaft_top[1] - 0.8, shaft_bot[0], shaft_bot[1], 1.55 * wd, 1.45 * wd,
              fa=0.8 * wd, la=4.5, cort=cf * 1.5 * wd, cend=0.3),  # shaft
    ]
    geo = dict(ndx=-ndx, ndy=-ndy, sdx=sdx, sdy=sdy, base_x=base_x, base_y=base_y,  # head->base
               shaft_x=shaft_top[0])
    return comps, geo


def _hip_fracture(F: _Draw, on, difficulty, hx, hy, hr, geo, sz):
    """Hip fracture of the image-left femur (patient's right before mirroring)."""
    B = on.shape[0]
    ftype = F.choice([0.35, 0.25, 0.4])  # subcapital, transcervical, intertrochanteric
    sev = _severity(F, difficulty)
    impacted = (F.col() < 0.4) & (ftype < 2)
    ndx, ndy = geo["ndx"], geo["ndy"]  # head -> shaft along the neck
    # neck fractures: break across the neck at a distance from the head centre
    dist = np.where(ftype == 0, hr * F.uni(0.85, 1.05), hr + F.uni(0.8, 1.6) * sz)
    pauw = np.radians(F.norm(0.0, 12.0))
    nfx, nfy = hx + ndx * dist, hy + ndy * dist
    nnx, nny = _rot(ndx, ndy, pauw)
    # intertrochanteric: line from greater trochanter (superolateral) to lesser (inferomedial)
    gtx, gty = hx - 4.6 * sz + F.uni(-0.3, 0.3), hy + 1.0 * sz + F.uni(-0.4, 0.4)
    ltx, lty = hx - 1.9 * sz, hy + 6.0 * sz + F.uni(-0.5, 0.3)
    ldx, ldy = ltx - gtx, lty - gty
    ll = np.hypot(ldx, ldy)
    ldx, ldy = ldx / ll, ldy / ll
    ifx, ify = gtx + 0.5 * ll * ldx, gty + 0.5 * ll * ldy
    inx, iny = -ldy, ldx  # normal pointing to the shaft side (down-lateral)
    flip = inx * ndx + iny * ndy < 0
    inx, iny = np.where(flip, -inx, inx), np.where(flip, -iny, iny)
    it = ftype == 2
    fx, fy = np.where(it, ifx, nfx), np.where(it, ify, nfy)
    nx, ny = np.where(it, inx, nnx), np.where(it, iny, nny)
    # displaced: proximal migration of the shaft fragment, varus and external rotation (which
    # foreshortens the neck and trochanters in an AP view); impacted: the fragments are driven
    # together along the neck (a dense overlap band) with a valgus tilt.
    up = (0.3 + 3.0 * sev) * F.uni(0.6, 1.3) * sz
    lateral = sev * F.uni(-0.2, 1.0)
    varus = np.radians(sev * F.uni(8.0, 30.0))
    imp = (0.2 + 0.9 * sev) * F.uni(0.7, 1.2)
    extrot = 1.0 - sev * F.uni(0.2, 0.5)
    tx_d = -lateral  # image-left femur: lateral is -x
    ty_d = -up
    tx_i, ty_i = -ndx * imp, -ndy * imp
    ang_i = -np.radians(sev * F.uni(0.0, 10.0))
    tx = np.where(impacted, tx_i, tx_d)
    ty = np.where(impacted, ty_i, ty_d)
    ang = np.where(impacted, ang_i, varus)
    kf = np.where(impacted, 1.0 - 0.3 * (1.0 - extrot), extrot)
    gap = np.where(impacted, 0.0, (0.15 + 0.6 * sev) * F.uni(0.7, 1.3))
    complete = (sev > 0.18) | impacted | it
    crack = np.where(complete, 50.0, 8.0 + (0.6 + 2.5 * sev) * 2 * 1.4)
    tx, ty, ang = (np.where(complete, v, 0.0) for v in (tx, ty, ang))
    kf = np.where(complete & on, kf, 1.0)
    kc = geo["shaft_x"] + 0.0 * fx  # external rotation happens about the shaft axis
    extra = np.zeros((B, 2, 4), F32)
    frags = np.zeros((B, 3, 3), F32)
    com = it & on & (F.col() < 0.7)
    for k in range(2):
        extra[:, k, 0] = F.uni(-1.5, 1.5)
        extra[:, k, 1] = F.uni(0, np.pi)
        extra[:, k, 2] = np.where(com, (0.5 + 0.8 * sev) * np.maximum(gap, 0.06), 0.0)
        extra[:, k, 3] = 2.0
    for k in range(3):
        frags[:, k, 0] = F.uni(-2.0, 2.5)
        frags[:, k, 1] = F.uni(-0.6, 0.6)
        frags[:, k, 2] = np.where(com, F.uni(0.15, 0.4) * (0.5 + sev), 0.0)
    off = ~on
    gap, ang, tx, ty = (np.where(off, 0.0, v) for v in (gap, ang, tx, ty))
    crack = np.where(off, 50.0, crack)
    fr = _Frac(fx, fy, nx, ny, gap, ang, tx, ty, crack, extra, frags, on=on, k=kf, kc=kc)
    disp = np.where(on, np.hypot(tx, ty) + gap, 0.0)
    return fr, ftype, sev, impacted & on, disp


def _scene_pelvis(cv, A, F, on, difficulty):
    pt = _patient(cv, A, difficulty)
    sz, wd = pt["size"], pt["width"]
    st, fat = pt["soft"], pt["fat"]
    ys = A.uni(-1.2, 1.2)
    tilt = A.norm(0.0, 0.06)  # pelvic tilt: foreshortens the inlet and obturator foramina
    rotc = A.norm(0.0, 0.45)  # rotation about the long axis: midline shifts relative to the hips
    female = A.col() < 0.5
    inlet_w = np.where(female, 1.07, 0.96)
    y = lambda v: v * sz + ys  # noqa: E731
    x = lambda v: v * sz  # noqa: E731
    # soft tissue: abdomen/pelvis elliptic cylinder, thighs
    sq = np.sqrt(st)
    body_a = 17.5 * sz * sq
    soft = [
        _Tube(x(0.0), y(-40.0), x(0.0), y(13.0), body_a, body_a, cort=fat * 10 * st,
              depth=0.55 * sq, cut_b=14.0, flat=True),
        _Tube(x(-8.0), y(4.0), x(-10.0), y(40.0), 9.3 * sq, 8.0 * sq, cort=fat * 6, depth=1.1),
        _Tube(x(8.0), y(4.0), x(10.0), y(40.0), 9.3 * sq, 8.0 * sq, cort=fat * 6, depth=1.1),
    ]
    _draw_soft(cv, soft, fat)
    # bowel gas pockets in the upper pelvis (nuisance, independent of the label)
    for _ in range(6):
        active = A.col() < 0.35 * min(_pose_scale(difficulty), 1.5)
        gx, gy = A.uni(-10.0, 10.0), y(A.uni(-17.0, -3.0))
        ga, gb = A.uni(0.4, 1.8), A.uni(0.3, 1.1)
        _add_blob(cv, gx, gy, ga, gb, np.minimum(ga, gb) * 1.3, A.uni(0, np.pi),
                  np.where(active, -cv.mu["muscle"], 0.0))
    mid = x(0.0) + rotc
    mat = _mat(cv, pt, A)
    # L4, L5: bodies with end plates, transverse processes, pedicles, spinous process
    for k, vy in enumerate((-17.6, -13.4)):
        vw = (2.5 + 0.15 * k) * wd
        vb = [_Tube(mid - vw + 1.4, y(vy), mid + vw - 1.4, y(vy), 1.45 * sz, 1.45 * sz, cort=0.16,
                    cend=1.0, cbase=1.0, depth=0.6),
              _Tube(mid - (3.6 + 0.6 * k) * wd, y(vy - 0.5 + 0.5 * k), mid + (3.6 + 0.6 * k) * wd,
                    y(vy - 0.5 + 0.5 * k), 0.45 * wd, 0.45 * wd, cort=0.14),
              _Tube(mid, y(vy - 0.4), mid, y(vy + 1.9), 0.45, 0.35, cort=0.14)]
        _draw_bone(cv, vb, mat)
        for s in (-1, 1):  # pedicles seen end-on: oval cortical rings ("owl's eyes")
            _draw_bone(cv, [_Ring(mid + s * 1.5 * wd, y(vy - 0.3), 0.4, 0.6, 0.14, cort=0.1,
                                  depth=1.5)], mat)
    # sacrum: broad alae on top, tapering to the coccyx, with four pairs of foramina
    sac = [_Ellipsoid(mid, y(-9.0), 4.6 * wd * inlet_w, 1.8, 0.9, cort=0.16),
           _Tube(mid, y(-8.8), mid * 0.7, y(0.8), 3.6 * wd * inlet_w, 0.9 * wd, cort=0.16,
                 cend=1.0, cbase=1.0, depth=0.36, la=0.5, lb=0.5)]
    _draw_bone(cv, sac, mat)
    for k, fy_ in enumerate((-7.3, -5.4, -3.6, -1.9)):
        for s in (-1, 1):
            r = 0.45 - 0.06 * k
            _add_blob(cv, mid * (1 - 0.07 * k) + s * (1.7 - 0.2 * k) * wd, y(fy_), r, r * 0.8, 0.8,
                      0.0, -cv.mu["canc"] * 1.5)
    # hemipelves
    hx_off = 9.5 * wd * inlet_w ** 0.5
    hyc = y(1.2)
    hr = 2.4 * wd
    nsa = A.norm(130.0, 4.0)
    for s in (-1, 1):
        sh = rotc * 0.15 * s  # the far side of a rotated pelvis projects narrower
        wx, wy = x(s * 8.8) + sh, y(-6.6)
        wing_a, wing_b, wang = 5.0 * sz, 6.9 * sz, s * -0.2
        hip = [
            # iliac wing: thin plate (cortical shell) + dense crest along its upper margin
            _Ellipsoid(wx, wy, wing_a, wing_b, 1.25, wang, cort=0.14, lens=True),
            _Ring(wx, wy, wing_a - 0.35, wing_b - 0.35, 0.6, ang=wang,
                  arc=(-np.pi / 2 + s * 0.45, 1.2), cort=0.18),
            # supra-acetabular body of the ilium (thick), between the wing and the acetabulum
            _Ellipsoid(x(s * 8.9) + sh, hyc - 2.9, 3.4 * wd, 2.6 * sz, 1.2, s * 0.35, cort=0.2, lens=True),
            # pelvic brim (iliopectineal line) from the sacroiliac joint round to the pubis
            _Ring(mid * 0.5 + sh, y(-1.2), 6.4 * sz * inlet_w, 5.0 * sz * (1 - tilt), 0.34,
                  arc=(np.pi / 2 - s * (np.pi / 2 - 0.45), 1.45), cort=0.12, depth=0.9),
            # acetabulum: roof (sourcil) arc over the head, and the cup's medial wall/teardrop
            _Ring(x(s * hx_off) + sh, hyc, hr + 0.4, hr + 0.4, 0.3,
                  arc=(-np.pi / 2 + s * 0.3, 1.0), cort=0.1),
            _Ellipsoid(x(s * 6.7) + sh, hyc + 1.1, 0.75, 1.8, 0.7, s * -0.15, cort=0.16),
            # superior pubic ramus, obturator ring (rami + ischium), ischial tuberosity, pubic body
            _Tube(x(s * 7.3) + sh, hyc + 1.6, mid + s * 1.4, y(4.9), 1.05 * wd, 0.85 * wd,
                  cort=0.16, cend=0.6),
            _Ring(x(s * 4.6) + mid * 0.6, y(6.3), 2.1 * sz, 2.7 * sz * (1 - 1.5 * tilt), 0.5 * wd,
                  ang=s * -0.35, cort=0.14),
            _Ellipsoid(x(s * 5.8) + mid * 0.3, y(8.8), 1.7, 1.1, 0.9, s * 0.5, cort=0.16),
            _Ellipsoid(mid + s * 1.2, y(5.8), 0.95, 1.7, 0.9, cort=0.16),
        ]
        _draw_bone(cv, hip, mat)
    # femora: the image-left one carries the fracture (mirroring places it on either side)
    comps_l, geo_l = _femur(-1, x(-hx_off) - rotc * 0.15, hyc, hr, nsa, pt, wd, sz)
    comps_r, _ = _femur(+1, x(hx_off) + rotc * 0.15, hyc, hr, nsa, pt, wd, sz)
    fr, ftype, sev, impacted, disp = _hip_fracture(F, on, difficulty, x(-hx_off) - rotc * 0.15,
                                                   hyc, hr, geo_l, sz)
    _draw_bone(cv, comps_l, mat, fr)
    _draw_bone(cv, comps_r, mat)
    # fracture haematoma: extra soft-tissue thickness around the break (a broad, faint sign)
    hem = np.where(on, (0.3 + 1.6 * sev) * F.uni(0.6, 1.2), 0.0)
    _add_blob(cv, fr.fx - 1.0, fr.fy + 1.0, 4.5, 5.5, 1.0, 0.3, hem * cv.mu["muscle"], lens=True)
    return dict(
        fracture_type=np.where(on, np.array(PELVIC_FRACTURE_TYPES)[ftype], "none"),
        impacted=impacted,
        displacement=np.round(disp * 10.0, 2),
        angulation=np.round(np.where(on, np.degrees(np.abs(fr.ang)), 0.0), 2),
        severity=np.where(on, np.round(sev, 4), 0.0),
        _frac_xy=(fr.fx, fr.fy),
        patient_size=sz, bone_width=wd, osteopenia=pt["osteopenia"], soft_tissue=st,
        neck_shaft_angle=np.round(nsa, 2), pelvic_rotation=np.round(rotc, 3),
    )


# ----------------------------------------------------------------------------------- imaging
_MARGIN = 1.32  # canonical field / output field (room for rotation, shift, zoom)
_SS = {32: 1.6, 64: 1.0, 128: 1.0, 256: 1.0}  # canonical pixels per output pixel
_GLYPHS = {
    "L": ("10000", "10000", "10000", "10000", "10000", "10000", "11111"),
    "R": ("11110", "10001", "10001", "11110", "10100", "10010", "10001"),
}


@functools.lru_cache(maxsize=32)
def _glyph(letter: str, h: int) -> np.ndarray:
    """Area-sampled raster (h x w) of a 5x7 bitmap glyph with a one-cell lead border."""
    rows = ["0" * 7] + ["0" + r + "0" for r in _GLYPHS[letter]] + ["0" * 7]
    bm = np.array([[c == "1" for c in r] for r in rows], F32)
    w = max(2, int(round(h * 7 / 9)))
    k = 4
    iy = np.minimum(((np.arange(h * k) + 0.5) / (h * k) * 9).astype(int), 8)
    ix = np.minimum(((np.arange(w * k) + 0.5) / (w * k) * 7).astype(int), 6)
    return bm[iy][:, ix].reshape(h, k, w, k).mean(axis=(1, 3)).astype(F32)


@functools.lru_cache(maxsize=64)
def _gauss_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) row-normalised Gaussian blur matrix: blur(X) = G @ X @ G.T."""
    i = np.arange(n)
    g = np.exp(-0.5 * ((i[:, None] - i[None, :]) / max(sigma, 1e-3)) ** 2)
    g /= g.sum(axis=1, keepdims=True)
    return g.astype(F32)


def _sandwich(G: np.ndarray, x: np.ndarray) -> np.ndarray:
    """G @ x[b] @ G.T for every image b, computed image by image (so that an image's result
    does not depend on the batch it is in: a stacked product may be merged into one GEMM whose
    blocking, and last-bit rounding, changes with the batch size)."""
    x = np.ascontiguousarray(x, dtype=F32)
    out = np.empty((x.shape[0], G.shape[0], G.shape[0]), F32)
    Gt = np.ascontiguousarray(G.T)
    for b in range(x.shape[0]):
        np.dot(np.dot(G, x[b]), Gt, out=out[b])
    return out


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return _sandwich(_gauss_matrix(x.shape[-1], float(sigma)), x)


def _warp(P: np.ndarray, cv: _Canvas, S: int, fov_out, theta, tx, ty, mirror) -> np.ndarray:
    """Bilinear resampling of the canonical line integral into the detector frame."""
    B, n = P.shape[0], cv.n
    g = (np.arange(S, dtype=F32) + 0.5) / S - 0.5
    fo = _b(fov_out)
    xo, yo = g[None, None, :] * fo, g[None, :, None] * fo
    c, s = _b(np.cos(theta)), _b(np.sin(theta))
    xr = c * xo - s * yo + _b(tx)
    yr = s * xo + c * yo + _b(ty)
    xr = xr * _b(np.where(mirror, -1.0, 1.0))
    inv = F32(1.0 / cv.px)
    fj = np.clip((xr + cv.fov / 2) * inv - 0.5, 0.0, n - 2.0001)
    fi = np.clip((yr + cv.fov / 2) * inv - 0.5, 0.0, n - 2.0001)
    j0 = fj.astype(np.int32)
    i0 = fi.astype(np.int32)
    wj = fj - j0
    wi = fi - i0
    # horizontally adjacent pairs packed as complex64: one gather fetches both neighbours
    pairs = np.empty((B, n, n - 1, 2), F32)
    pairs[..., 0] = P[:, :, :-1]
    pairs[..., 1] = P[:, :, 1:]
    flat = pairs.view(np.complex64).reshape(-1)
    idx = (np.arange(B, dtype=np.int32) * (n * (n - 1))).reshape(-1, 1, 1) + i0 * (n - 1) + j0
    top = flat.take(idx)
    idx += n - 1
    bot = flat.take(idx)
    t = top.real + (top.imag - top.real) * wj
    u = bot.real + (bot.imag - bot.real) * wj
    return (t + (u - t) * wi).astype(F32)


# per kind: N0 photons per unattenuated 64-px pixel (log-uniform range), scatter-to-primary
# ratio range, dynamic range compression range, rotation sd (degrees), P(collimated side)
_DETECTOR = {
    "limb": dict(n0=(4000.0, 20000.0), spr=(0.05, 0.25), drc=(0.15, 0.45), rot=6.0, col_p=0.5),
    "pelvic": dict(n0=(2e5, 1e6), spr=(0.3, 0.7), drc=(0.6, 0.85), rot=2.5, col_p=0.25),
}


def _quantiles(D: np.ndarray, valid: np.ndarray, qs: Sequence[float]) -> list[np.ndarray]:
    """Per-image quantiles of D over the valid pixels (subsampled to ~1-4k values)."""
    B, S = D.shape[0], D.shape[-1]
    st = max(1, S // 32)
    v = valid[:, ::st, ::st].reshape(B, -1)
    d = np.where(v, D[:, ::st, ::st].reshape(B, -1), np.inf)
    d.sort(axis=1)
    cnt = np.maximum(v.sum(axis=1), 1)
    rows = np.arange(B)
    out = []
    for q in qs:
        out.append(d[rows, np.minimum((q * (cnt - 1)).astype(int), cnt - 1)])
    return out


def _image_chain(P, cv, S, I: _Draw, kind: str, difficulty: float, z: np.ndarray, fov_part: float,
                 fixed_mirror=None, marker_side=None):
    """Pose, marker, collimation, Beer-Lambert, scatter, noise, log, window -> display [0, 1]."""
    B = P.shape[0]
    ps = _pose_scale(difficulty)
    det = _DETECTOR[kind]
    theta = np.radians(I.norm(0.0, det["rot"] * ps, clip=2.5))
    zoom = I.uni(0.92, 1.1)
    fov_out = fov_part / zoom
    tx = I.uni(-0.05, 0.05) * fov_part * ps
    ty = I.uni(-0.05, 0.05) * fov_part * ps
    mirror = (I.col() < 0.5) if fixed_mirror is None else fixed_mirror
    Pout = _warp(P, cv, S, fov_out, theta, tx, ty, mirror)
    # collimation: blocked primary outside a slightly rotated rectangle (per side, 50 %)
    g = (np.arange(S, dtype=F32) + 0.5) / S - 0.5
    cang = _b(np.radians(I.norm(0.0, 1.2)))
    X, Y = g[None, None, :], g[None, :, None]
    Xr, Yr = X + cang * Y, Y - cang * X
    col = np.ones((B, S, S), F32)
    soft_px = F32(S / 1.2)
    margins = []
    for side in range(4):
        m = np.where(I.col() < det["col_p"] * min(ps, 1.5), I.uni(0.02, 0.1), -1.0)
        margins.append(m)
        coord = (-Xr, Xr, -Yr, Yr)[side]
        col *= np.clip((0.5 - _b(m) - coord) * soft_px + 0.5, 0.0, 1.0)
    # lead marker (L/R): consistent with the mirror for limbs; AP pelvis: R on image left
    letter_r = mirror if marker_side is None else marker_side
    h = max(3, int(round(0.075 * S)))
    mx_u, my_u = I.col(), I.col()
    marker = np.zeros((B, S, S), bool)
    for b in range(B):
        letter = "R" if letter_r[b] else "L"
        gl = _glyph(letter, h)
        gh, gw = gl.shape
        left = int(max(margins[0][b], 0) * S) + 2
        right = S - int(max(margins[1][b], 0) * S) - 2 - gw
        top = int(max(margins[2][b], 0) * S) + 2
        bottom = S - int(max(margins[3][b], 0) * S) - 2 - gh
        if kind == "pelvic":
            lo, hi = (left, left + S // 6) if letter == "R" else (right - S // 6, right)
            yy = top + int(my_u[b] * max(bottom - top, 0) * 0.35)
        else:
            band = S // 7
            lo, hi = (left, left + band) if mx_u[b] < 0.5 else (right - band, right)
            yy = top + int(my_u[b] * max(bottom - top, 0))
        xx = int(lo + (mx_u[b] * 2 % 1.0) * max(hi - lo, 0))
        xx = min(max(xx, 0), S - gw)
        yy = min(max(yy, 0), S - gh)
        Pout[b, yy:yy + gh, xx:xx + gw] += _MU_LEAD * gl
        marker[b, max(yy - 1, 0):yy + gh + 1, max(xx - 1, 0):xx + gw + 1] = True
    # heel effect (anode-cathode along the long axis) and Beer-Lambert primary
    heel = 1.0 + _b(I.uni(-0.18, 0.18)) * Y + _b(I.uni(-0.05, 0.05)) * X
    prim = heel * np.exp(-Pout) * (col + 2e-4)
    spr = _b(I.uni(*det["spr"]))
    scat = spr * _blur(prim, 0.12 * S)
    inten = prim + scat
    # quantum noise: photons per pixel scale with pixel area, fewer photons when difficult
    lo_n, hi_n = det["n0"]
    # (photons per pixel fall with pixel area; we use (64/S)**1, as if the detector were finer
    # than the output grid and the image had been downsampled: grain stays moderate at 256 px)
    n0 = np.exp(I.uni(math.log(lo_n), math.log(hi_n))) * (64.0 / S) / difficulty
    noisy = inten + np.sqrt(np.maximum(inten, 0.0) / _b(n0)) * z
    noisy = np.maximum(noisy, _b(0.5 / n0))
    noisy = _blur(noisy, 0.5)  # detector unsharpness (correlates the noise a little)
    D = -np.log(noisy)
    # digital-radiography processing: dynamic range compression (large-scale density is pulled
    # toward the median, as multi-scale processing does) and unsharp-mask edge enhancement
    valid = (col > 0.6) & ~marker
    (q_mid,) = _quantiles(D, valid, (0.5,))
    Dv = np.where(col > 0.6, D, _b(q_mid))
    drc = _b(I.uni(*det["drc"]))
    D = D - drc * (_blur(Dv, 0.1 * S) - _b(q_mid))
    ee = _b(I.uni(0.0, 0.8))
    D = D + ee * (D - _blur(D, 2.5 * S / 64))
    # window from the image histogram inside the field (as PACS auto-windowing does)
    q_lo, q_mid, q_hi = _quantiles(D, valid, (0.01, 0.5, 0.998))
    rng_ = np.maximum(q_hi - q_lo, 0.2)
    if kind == "pelvic":
        wl = q_mid - (q_hi - q_mid) * I.uni(0.25, 0.55)  # soft tissue dark grey, bone bright
    else:
        wl = q_lo - rng_ * I.uni(0.03, 0.1)
    wh = q_hi + rng_ * I.uni(0.05, 0.2)
    # film-like (H&D) sigmoid: steepness k = contrast, centre x0 = brightness
    k = I.uni(3.0, 5.0)
    x0 = I.uni(0.45, 0.58)
    sig = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    y0, y1 = sig(-k * x0), sig(k * (1.0 - x0))
    scale = k / np.maximum(wh - wl, 0.1)
    v = D * _b(-scale)
    v += _b(scale * (wl + x0 * (wh - wl)))  # v = -k * ((D - wl) / (wh - wl) - x0)
    np.exp(v, out=v)
    v += 1.0
    np.reciprocal(v, out=v)
    v -= _b(y0)
    v *= _b(1.0 / (y1 - y0))
    out = np.clip(v, 0.0, 1.0).astype(F32)
    pose = dict(rotation_deg=np.degrees(theta), zoom=zoom, shift_x=tx, shift_y=ty, mirrored=mirror,
                exposure_n0=n0, scatter=spr.ravel(), marker=np.where(letter_r, "R", "L"),
                field=valid)
    return out, Pout, pose, (theta, fov_out, tx, ty, mirror)


def _to_image_xy(fx, fy, theta, fov_out, tx, ty, mirror):
    """Canonical cm -> normalised detector coordinates (inverse of the warp)."""
    xr = np.where(mirror, -fx, fx) - tx
    yr = fy - ty
    c, s = np.cos(theta), np.sin(theta)
    xo = c * xr + s * yr
    yo = -s * xr + c * yr
    return xo / fov_out + 0.5, yo / fov_out + 0.5


# --------------------------------------------------------------------------------- rendering
def _patient_id(seed: int, key: tuple) -> str:
    h = hashlib.sha1(f"hipaug-phantom:{seed}:{key}".encode()).hexdigest()[:12]
    return f"ph{h}"


def _chunk_size(S: int) -> int:
    return max(2, int(64 * (64 / S) ** 2))


def _threads() -> int:
    """Worker threads for rendering chunks (HIPAUG_PHANTOM_THREADS, default: up to 2 cores)."""
    env = os.environ.get("HIPAUG_PHANTOM_THREADS")
    if env:
        return max(1, int(env))
    return max(1, min(2, os.cpu_count() or 1))


def _render_chunk(kind, part, ck, on, S, seed, difficulty, maps):
    """Render one chunk of patients (same part) -> (images, meta dict[, P map, bone map])."""
    B = len(ck)
    fov = _FOV[part]
    n = int(math.ceil(S * _MARGIN * _SS[S]))
    n += n % 2
    U = np.empty((B, 3 * _NU))
    Z = np.empty((B, S, S), F32)
    for i, key in enumerate(ck):
        rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))
        U[i] = rng.random(3 * _NU)
        Z[i] = rng.standard_normal((S, S), dtype=F32)
    A, Fd, I = _Draw(U[:, :_NU]), _Draw(U[:, _NU:2 * _NU]), _Draw(U[:, 2 * _NU:])
    cv = _Canvas(B, n, fov * _MARGIN, "pelvic" if kind == "pelvic" else "limb", maps=maps)
    if kind == "pelvic":
        m = _scene_pelvis(cv, A, Fd, on, difficulty)
        mirror = I.col() < 0.5
        marker = I.col() < 0.5  # True: "R" on image left
        out, Pout, pose, geo = _image_chain(cv.P, cv, S, I, kind, difficulty, Z, fov,
                                            fixed_mirror=mirror, marker_side=marker)
        # the canonical image-left femur is the patient's right; a mirror makes it the left
        m["side"] = np.where(on, np.where(mirror, "left", "right"), "none")
    else:
        m = _LIMB_SCENES[part](cv, A, Fd, on, difficulty)
        out, Pout, pose, geo = _image_chain(cv.P, cv, S, I, "limb", difficulty, Z, fov)
        m["part"] = np.full(B, part)
        m["laterality"] = np.where(pose["mirrored"], "R", "L")
    fxn, fyn = _to_image_xy(*m.pop("_frac_xy"), *geo)
    m["frac_x"] = np.where(on, np.round(fxn, 4), np.nan)
    m["frac_y"] = np.where(on, np.round(fyn, 4), np.nan)
    m["fracture"] = on
    for kk in ("rotation_deg", "zoom", "shift_x", "shift_y", "exposure_n0", "scatter", "marker"):
        m[kk] = pose[kk]
    m["patient_id"] = [_patient_id(seed, k) for k in ck]
    if maps:
        bone = _warp(cv.bone, cv, S, geo[1], geo[0], geo[2], geo[3], geo[4])
        return out, m, dict(P=Pout, bone=bone, field=pose["field"])
    return out, m, None


def _render(kind: str, part: str, keys: list[tuple], fracture: np.ndarray, S: int, seed: int,
            difficulty: float, maps: bool = False):
    """Render images for patient keys (one part) -> (images, meta DataFrame[, maps]).

    ``maps=True`` adds a dict of detector-frame maps: ``P`` (line integral incl. the marker),
    ``bone`` (bone part of it) and ``field`` (inside the collimated field, marker excluded).

    Chunks of images are independent, so they are rendered on a small thread pool (numpy
    releases the GIL inside its array kernels); results do not depend on the thread count.
    """
    N = len(keys)
    fracture = np.asarray(fracture, bool)
    cs = _chunk_size(S)
    jobs = [(kind, part, keys[c0:c0 + cs], fracture[c0:c0 + cs], S, seed, difficulty, maps)
            for c0 in range(0, N, cs)]
    nt = min(_threads(), len(jobs))
    if nt > 1:
        with ThreadPoolExecutor(max_workers=nt) as ex:
            results = list(ex.map(lambda j: _render_chunk(*j), jobs))
    else:
        results = [_render_chunk(*j) for j in jobs]
    images = np.concatenate([r[0] for r in results]) if results else np.empty((0, S, S), F32)
    meta = pd.concat([pd.DataFrame({k: np.asarray(v) for k, v in r[1].items()}) for r in results],
                     ignore_index=True)
    for col in ("patient_size", "bone_width", "osteopenia", "soft_tissue", "rotation_deg", "zoom",
                "shift_x", "shift_y", "scatter"):
        meta[col] = meta[col].astype(float).round(4)
    meta["exposure_n0"] = meta["exposure_n0"].astype(float).round(1)
    if maps:
        return images, meta, {k: np.concatenate([r[2][k] for r in results]) for k in results[0][2]}
    return images, meta


_LIMB_COLS = ["patient_id", "part", "fracture", "fracture_type", "fractured_bone", "displacement",
              "angulation", "severity", "frac_x", "frac_y", "laterality", "marker", "patient_size",
              "bone_width", "osteopenia", "soft_tissue", "rotation_deg", "zoom", "shift_x",
              "shift_y", "exposure_n0", "scatter"]
_PELVIC_COLS = ["patient_id", "side", "fracture", "fracture_type", "impacted", "displacement",
                "angulation", "severity", "frac_x", "frac_y", "marker", "patient_size",
                "bone_width", "osteopenia", "soft_tissue", "neck_shaft_angle", "pelvic_rotation",
                "rotation_deg", "zoom", "shift_x", "shift_y", "exposure_n0", "scatter"]


def _check_parts(parts) -> tuple[str, ...]:
    parts = LIMB_PARTS if parts is None else tuple(parts)
    bad = [p for p in parts if p not in LIMB_PARTS]
    if bad or not parts or len(set(parts)) != len(parts):
        raise ConfigError(f"parts={list(parts)} must be distinct names from {', '.join(LIMB_PARTS)}")
    return tuple(p for p in LIMB_PARTS if p in parts)  # canonical order: same classes whatever the order given


def _limb_plan(per_class: int, labels: str, parts: tuple[str, ...] = LIMB_PARTS):
    """[(class_name, part, status, k)] in class order (see the module docstring on balance)."""
    plan = []
    if labels == "part+fracture":
        for p in parts:
            for status in (1, 0):
                name = f"{p}_{'fracture' if status else 'normal'}"
                plan += [(name, p, status, k) for k in range(per_class)]
    elif labels == "part":
        nf = per_class // 2
        for p in parts:
            plan += [(p, p, 1, k) for k in range(nf)]
            plan += [(p, p, 0, k) for k in range(per_class - nf)]
    else:
        for status, name in ((1, "fracture"), (0, "normal")):
            counts = dict.fromkeys(parts, 0)
            for i in range(per_class):
                p = parts[i % len(parts)]
                plan.append((name, p, status, counts[p]))
                counts[p] += 1
    return plan


def render_limb(per_class: int, image_size: int = 64, seed: int = 0, labels: str = "part+fracture",
                difficulty: float = 1.0, parts: Sequence[str] | None = None) -> PhantomBatch:
    """Render limb radiograph phantoms (forearm, hand/wrist, knee, lower leg; normal or fractured).

    ``labels``: "part+fracture" (classes like ``forearm_fracture``), "part" or "fracture".
    ``parts``: a subset of ``LIMB_PARTS`` (None: all); a part's images do not depend on the others.
    Meta columns: patient_id, part, fracture, fracture_type, fractured_bone, displacement (mm),
    angulation (deg), severity (0..1), frac_x/frac_y, laterality, marker, patient and pose
    parameters, seed, difficulty, image_size.
    """
    per_class = _check_int("per_class", per_class, 1)
    S = check_image_size(image_size)
    seed = _check_int("seed", seed, 0)
    if labels not in LABEL_MODES:
        raise ConfigError(f"labels={labels!r} must be one of {', '.join(LABEL_MODES)}")
    difficulty = _check_difficulty(difficulty)
    plan = _limb_plan(per_class, labels, _check_parts(parts))
    class_names = tuple(sorted({c for c, *_ in plan}))
    images = np.empty((len(plan), S, S), F32)
    parts_meta, order = [], []
    for p_idx, part in enumerate(LIMB_PARTS):
        rows = [i for i, r in enumerate(plan) if r[1] == part]
        if not rows:
            continue
        keys = [(_KIND_LIMB, p_idx, plan[i][2], plan[i][3]) for i in rows]
        fr = np.array([plan[i][2] == 1 for i in rows])
        img, meta = _render("limb", part, keys, fr, S, seed, difficulty)
        images[rows] = img
        parts_meta.append(meta)
        order += rows
    metas = pd.concat(parts_meta, ignore_index=True)
    metas.index = order
    meta = metas.sort_index().reset_index(drop=True)[_LIMB_COLS]
    meta["fracture"] = meta["fracture"].astype(bool)
    meta["seed"], meta["difficulty"], meta["image_size"] = seed, difficulty, S
    labels_arr = np.array([class_names.index(c) for c, *_ in plan], np.int64)
    return PhantomBatch(images, labels_arr, class_names, meta)


def render_pelvic(n: int, image_size: int = 64, seed: int = 0, fracture_rate: float = 0.5,
                  difficulty: float = 1.0) -> PhantomBatch:
    """Render AP pelvis phantoms: exactly round(n * fracture_rate) hip fractures, seeded order.

    Meta columns: patient_id, side (left/right/none), fracture, fracture_type (subcapital,
    transcervical, intertrochanteric, none), impacted, displacement (mm), angulation (deg),
    severity, frac_x/frac_y, marker, patient and pose parameters, seed, difficulty, image_size.
    """
    n = _check_int("n", n, 1)
    S = check_image_size(image_size)
    seed = _check_int("seed", seed, 0)
    rate = _check_rate(fracture_rate)
    difficulty = _check_difficulty(difficulty)
    nf = int(round(n * rate))
    status = np.array([1] * nf + [0] * (n - nf))
    ks = np.concatenate([np.arange(nf), np.arange(n - nf)])
    order = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(_KIND_PELVIC, 99))).permutation(n)
    status, ks = status[order], ks[order]
    keys = [(_KIND_PELVIC, 0, int(s), int(k)) for s, k in zip(status, ks)]
    images, meta = _render("pelvic", "pelvic", keys, status == 1, S, seed, difficulty)
    meta = meta[_PELVIC_COLS].copy()
    meta["fracture"] = meta["fracture"].astype(bool)
    meta["impacted"] = meta["impacted"].astype(bool)
    meta["seed"], meta["difficulty"], meta["image_size"] = seed, difficulty, S
    labels = np.where(status == 1, PELVIC_CLASSES.index("fracture"), PELVIC_CLASSES.index("normal"))
    return PhantomBatch(images, labels.astype(np.int64), PELVIC_CLASSES, meta)


def render_pair(part: str = "pelvic", n: int = 8, image_size: int = 64, seed: int = 0,
                difficulty: float = 1.0) -> tuple[PhantomBatch, PhantomBatch]:
    """Render n fracture patients twice: (fractured, same patients without the fracture).

    Anatomy, pose, exposure and noise are identical; only the fracture differs. ``part`` is
    "pelvic" or one of LIMB_PARTS. Patients are those of the fracture class of the datasets
    (``render_pelvic`` / ``render_limb``) with the same seed.
    """
    if part != "pelvic" and part not in LIMB_PARTS:
        raise ConfigError(f"part={part!r} must be 'pelvic' or one of {', '.join(LIMB_PARTS)}")
    n = _check_int("n", n, 1)
    S = check_image_size(image_size)
    seed = _check_int("seed", seed, 0)
    difficulty = _check_difficulty(difficulty)
    if part == "pelvic":
        keys = [(_KIND_PELVIC, 0, 1, k) for k in range(n)]
        kind, cols, names = "pelvic", _PELVIC_COLS, PELVIC_CLASSES
    else:
        keys = [(_KIND_LIMB, LIMB_PARTS.index(part), 1, k) for k in range(n)]
        kind, cols, names = "limb", _LIMB_COLS, (f"{part}_fracture", f"{part}_normal")
    out = []
    for status in (True, False):
        img, meta = _render(kind, part, keys, np.full(n, status), S, seed, difficulty)
        meta = meta[cols].copy()
        meta["seed"], meta["difficulty"], meta["image_size"] = seed, difficulty, S
        lab = np.full(n, 0 if status else 1, np.int64)
        out.append(PhantomBatch(img, lab, names, meta))
    return out[0], out[1]


# ------------------------------------------------------------------------------------ writing
def write_dataset(batch: PhantomBatch, out_dir: str | Path) -> Path:
    """Write ``out_dir/<class>/<patient_id>.png`` (8-bit grey) and ``out_dir/manifest.csv``.

    The folder is assembled under a temporary name beside ``out_dir`` and renamed into place, so
    readers never see half a dataset. An existing phantom dataset (with a manifest) is replaced;
    any other non-empty folder is refused.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "manifest.csv").exists())):
        raise ConfigError(f"out_dir={str(out)!r} exists and is not a phantom dataset folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        ids = list(batch.meta["patient_id"])
        if len(set(ids)) != len(ids):
            ids = [f"{i:06d}_{p}" for i, p in enumerate(ids)]
        u8 = np.clip(np.rint(batch.images * 255.0), 0, 255).astype(np.uint8)
        paths = []
        for name in batch.class_names:
            (tmp / name).mkdir()
        for i in range(len(batch)):
            rel = f"{batch.class_names[batch.labels[i]]}/{ids[i]}.png"
            Image.fromarray(u8[i], mode="L").save(tmp / rel, format="PNG")
            paths.append(rel)
        man = batch.meta.copy()
        front = pd.DataFrame({"path": paths,
                              "label": [batch.class_names[j] for j in batch.labels],
                              "patient_id": batch.meta["patient_id"].to_numpy()})
        man = pd.concat([front, man.drop(columns=["patient_id"])], axis=1)
        man.to_csv(tmp / "manifest.csv", index=False)
        if out.exists():
            old = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, old)
            os.replace(tmp, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def write_limb_dataset(out: str | Path, per_class: int = 150, image_size: int = 64, seed: int = 0,
                       labels: str = "part+fracture", difficulty: float = 1.0,
                       parts: Sequence[str] | None = None) -> Path:
    """Render and write the limb phantom dataset (CLI entry point)."""
    return write_dataset(render_limb(per_class, image_size, seed, labels, difficulty, parts), out)


def write_pelvic_dataset(out: str | Path, n: int = 400, fracture_rate: float = 0.5,
                         image_size: int = 64, seed: int = 0, difficulty: float = 1.0) -> Path:
    """Render and write the AP pelvis phantom dataset (CLI entry point)."""
    return write_dataset(render_pelvic(n, image_size, seed, fracture_rate, difficulty), out)
