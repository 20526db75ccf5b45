"""Anatomy solids: the canonical canvas, bone material, trabecular texture, tubes, ellipsoids, rings.

Paper step: data (phantom anatomy, step 1 of the image formation in :mod:`hipaug.data.phantoms`).
Each component returns the chords a ray crosses (outer, inner, cancellous); bones are unions of them.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from hipaug.data.phantoms.base import REAL, per_image

# Linear attenuation coefficients (1/cm) for two beam qualities: extremities are taken at low kVp
# (~55 kV, effective ~32 keV: high bone contrast), the pelvis at ~75 kV (effective ~45 keV).
# Bone terms are *differential* (minus soft tissue) because a bone replaces the soft tissue
# it occupies; marrow is fatty (slightly below muscle).
_BEAM = {
    "limb": dict(muscle=0.30, fat=0.24, cort=1.05, marrow=-0.03, canc=0.26),
    "pelvic": dict(muscle=0.215, fat=0.185, cort=0.60, marrow=-0.015, canc=0.15),
}


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
    return np.clip(field, -3, 3).astype(REAL)


@functools.lru_cache(maxsize=32)
def _wrapped_tile(px_milli: int, n: int) -> np.ndarray:
    """The texture tile extended periodically by n rows/columns (so any n x n window is a slice)."""
    return np.pad(_texture_tile(px_milli), ((0, n), (0, n)), mode="wrap")


# ---------------------------------------------------------------------------------- canvas
class Canvas:
    """Canonical-frame grid (cm) holding the batch's line integral P (B, n, n)."""

    def __init__(self, batch: int, n: int, fov: float, beam: str, maps: bool = False):
        self.B, self.n, self.fov = batch, n, float(fov)
        self.mu = _BEAM[beam]
        self.px = self.fov / n
        self.c = ((np.arange(n, dtype=REAL) + 0.5) * self.px - self.fov / 2).astype(REAL)
        self.P = np.zeros((batch, n, n), REAL)
        self.bone = np.zeros((batch, n, n), REAL) if maps else None
        self.T = None  # per-image trabecular texture field (B, n, n), set by set_texture

    def set_texture(self, ox, oy) -> None:
        """Cut each image's texture field from the constant tile at per-image offsets."""
        tile = _texture_tile(int(round(self.px * 1000)))
        m = tile.shape[0]
        big = _wrapped_tile(int(round(self.px * 1000)), self.n)
        self.T = np.empty((self.B, self.n, self.n), REAL)
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


class Material:
    """Bone material of one bone in a batch: differential mu of cortex, marrow, cancellous."""

    def __init__(self, cv: Canvas, cort, canc, tex_amp):
        self.cort, self.canc = per_image(cort), per_image(canc)
        self.marrow = REAL(cv.mu["marrow"])
        self.amp = per_image(tex_amp)

    def integral(self, cv: Canvas, sy, sx, O, inn, K):
        """Bone line integral from outer chord O, inner chord inn and cancellous chord K."""
        dens = self.canc * (1.0 + self.amp * cv.T[:, sy, sx]) - self.marrow
        return self.cort * (O - inn) + self.marrow * inn + K * dens


# ------------------------------------------------------------------------------ components
# Each component returns (O, inn, K): outer chord, inner chord and the cancellous part of the
# inner chord (cm). A bone is the union of its components (element-wise maximum of each).
class Tube:
    """Tapered capsule from a to b: radius lerp(ra, rb) + flares fa/fb near the ends (cm)."""

    def __init__(self, ax, ay, bx, by, ra, rb, fa=0.0, fb=0.0, la=1.5, lb=1.5, cort=0.25,
                 cend=0.3, cbase=0.08, depth=1.0, cut_b=0.0, flat=False):
        ax, ay, bx, by = (np.asarray(v, REAL) * np.ones(1, REAL) for v in (ax, ay, bx, by))
        dx, dy = bx - ax, by - ay
        L = np.maximum(np.hypot(dx, dy), 1e-3)
        self.ax, self.ay = per_image(ax), per_image(ay)
        self.dx, self.dy, self.L = per_image(dx / L), per_image(dy / L), per_image(L)
        self.ra = per_image(ra)
        self.slope = per_image((np.asarray(rb, REAL) - np.asarray(ra, REAL)) / L)
        self.flared = bool(np.any(np.asarray(fa) != 0) or np.any(np.asarray(fb) != 0)
                           or float(cbase) < 1.0 or float(cend) < 1.0)
        self.fa, self.fb = per_image(fa), per_image(fb)
        self.ila, self.ilb = per_image(1.0 / np.asarray(la, REAL)), per_image(1.0 / np.asarray(lb, REAL))
        self.cort, self.cend, self.cbase = per_image(cort), REAL(cend), REAL(cbase)
        self.depth = per_image(2.0 * np.asarray(depth, REAL))
        # cut_b > 0: no round cap at b; the solid fades out over cut_b cm instead
        self.cut_b = REAL(cut_b)
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


class Ellipsoid:
    """Ellipsoid with in-plane semi-axes a (along angle) and b, depth semi-axis c, shell `cort`."""

    def __init__(self, cx, cy, a, b, c=None, ang=0.0, cort=0.15, lens=False):
        cx, cy = np.asarray(cx, REAL) * np.ones(1, REAL), np.asarray(cy, REAL) * np.ones(1, REAL)
        a, b = np.asarray(a, REAL), np.asarray(b, REAL)
        c = np.sqrt(a * b) if c is None else np.asarray(c, REAL)
        ang = np.asarray(ang, REAL)
        self.cx, self.cy = per_image(cx), per_image(cy)
        co, si = np.cos(ang), np.sin(ang)
        # quadratic form of the outer and inner ellipse: q = A dx^2 + 2 Bc dx dy + C dy^2
        self.q_out = tuple(per_image(v) for v in _quad(a, b, co, si))
        ai, bi, ci = (np.maximum(v - cort, 0.02) for v in (a, b, c))
        self.q_in = tuple(per_image(v) for v in _quad(ai, bi, co, si))
        self.c2, self.ci2 = per_image(2 * c), per_image(2 * ci)
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


class Ring:
    """Tube of radius rr along an ellipse (semi-axes A, B, rotated by ang), optionally an arc.

    ``arc`` = (direction angle of the arc centre, half-width), both radians, in the ellipse's own
    normalised frame. Distance to the ellipse uses the first-order estimate ``(q - 1) / |grad q|``.
    """

    def __init__(self, cx, cy, A, B, rr, ang=0.0, arc=None, cort=0.12, depth=1.0):
        cx, cy = np.asarray(cx, REAL) * np.ones(1, REAL), np.asarray(cy, REAL) * np.ones(1, REAL)
        A, B, rr = np.asarray(A, REAL), np.asarray(B, REAL), np.asarray(rr, REAL)
        ang = np.asarray(ang, REAL)
        self.cx, self.cy = per_image(cx), per_image(cy)
        self.co, self.si = per_image(np.cos(ang)), per_image(np.sin(ang))
        self.iA, self.iB = per_image(1 / A), per_image(1 / B)
        self.rr2 = per_image(rr * rr)
        self.ri2 = per_image(np.maximum(rr - cort, 0.02) ** 2)
        self.depth = per_image(2.0 * np.asarray(depth, REAL))
        if arc is None:
            self.arc = None
        else:
            a0, hw = (np.asarray(v, REAL) for v in arc)
            self.arc = (per_image(np.cos(a0)), per_image(np.sin(a0)), per_image(np.cos(hw)))
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
