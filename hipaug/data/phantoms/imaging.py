"""The X-ray image chain: pose, lead marker, collimation, exposure, scatter, noise, processing, window.

Paper step: data (steps 3 and 4 of the image formation in :mod:`hipaug.data.phantoms`): the
canonical line integral becomes a display image in [0, 1], bone bright.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence

import numpy as np

from hipaug.data.phantoms.base import REAL, per_image, Draw, pose_scale, sandwich
from hipaug.data.phantoms.solids import Canvas

_MU_LEAD = 4.5  # the marker's line integral (lead: effectively opaque)
_GLYPHS = {
    "L": ("10000", "10000", "10000", "10000", "10000", "10000", "11111"),
    "R": ("11110", "10001", "10001", "11110", "10100", "10010", "10001"),
}


@functools.lru_cache(maxsize=32)
def _glyph(letter: str, h: int) -> np.ndarray:
    """Area-sampled raster (h x w) of a 5x7 bitmap glyph with a one-cell lead border."""
    rows = ["0" * 7] + ["0" + r + "0" for r in _GLYPHS[letter]] + ["0" * 7]
    bm = np.array([[c == "1" for c in r] for r in rows], REAL)
    w = max(2, int(round(h * 7 / 9)))
    k = 4
    iy = np.minimum(((np.arange(h * k) + 0.5) / (h * k) * 9).astype(int), 8)
    ix = np.minimum(((np.arange(w * k) + 0.5) / (w * k) * 7).astype(int), 6)
    return bm[iy][:, ix].reshape(h, k, w, k).mean(axis=(1, 3)).astype(REAL)


@functools.lru_cache(maxsize=64)
def _gauss_matrix(n: int, sigma: float) -> np.ndarray:
    """(n, n) row-normalised Gaussian blur matrix: blur(X) = G @ X @ G.T."""
    i = np.arange(n)
    g = np.exp(-0.5 * ((i[:, None] - i[None, :]) / max(sigma, 1e-3)) ** 2)
    g /= g.sum(axis=1, keepdims=True)
    return g.astype(REAL)


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    return sandwich(_gauss_matrix(x.shape[-1], float(sigma)), x)


def warp(P: np.ndarray, cv: Canvas, S: int, fov_out, theta, tx, ty, mirror) -> np.ndarray:
    """Bilinear resampling of the canonical line integral into the detector frame."""
    B, n = P.shape[0], cv.n
    g = (np.arange(S, dtype=REAL) + 0.5) / S - 0.5
    fo = per_image(fov_out)
    xo, yo = g[None, None, :] * fo, g[None, :, None] * fo
    c, s = per_image(np.cos(theta)), per_image(np.sin(theta))
    xr = c * xo - s * yo + per_image(tx)
    yr = s * xo + c * yo + per_image(ty)
    xr = xr * per_image(np.where(mirror, -1.0, 1.0))
    inv = REAL(1.0 / cv.px)
    fj = np.clip((xr + cv.fov / 2) * inv - 0.5, 0.0, n - 2.0001)
    fi = np.clip((yr + cv.fov / 2) * inv - 0.5, 0.0, n - 2.0001)
    j0 = fj.astype(np.int32)
    i0 = fi.astype(np.int32)
    wj = fj - j0
    wi = fi - i0
    # horizontally adjacent pairs packed as one complex number: one gather fetches both neighbours
    pairs = np.empty((B, n, n - 1, 2), REAL)
    pairs[..., 0] = P[:, :, :-1]
    pairs[..., 1] = P[:, :, 1:]
    flat = pairs.view(np.complex128).reshape(-1)
    idx = (np.arange(B, dtype=np.int32) * (n * (n - 1))).reshape(-1, 1, 1) + i0 * (n - 1) + j0
    top = flat.take(idx)
    idx += n - 1
    bot = flat.take(idx)
    t = top.real + (top.imag - top.real) * wj
    u = bot.real + (bot.imag - bot.real) * wj
    return (t + (u - t) * wi).astype(REAL)


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


def image_chain(P, cv, S, I: Draw, kind: str, difficulty: float, z: np.ndarray, fov_part: float,
                 fixed_mirror=None, marker_side=None):
    """Pose, marker, collimation, Beer-Lambert, scatter, noise, log, window -> display [0, 1].

    The steps draw from the imaging block ``I`` in this order; keep it (images depend on it).
    """
    ps = pose_scale(difficulty)
    det = _DETECTOR[kind]
    theta = np.radians(I.norm(0.0, det["rot"] * ps, clip=2.5))
    zoom = I.uni(0.92, 1.1)
    fov_out = fov_part / zoom
    tx = I.uni(-0.05, 0.05) * fov_part * ps
    ty = I.uni(-0.05, 0.05) * fov_part * ps
    mirror = (I.col() < 0.5) if fixed_mirror is None else fixed_mirror
    Pout = warp(P, cv, S, fov_out, theta, tx, ty, mirror)
    col, margins, X, Y = _collimation(I, det, ps, P.shape[0], S)
    # lead marker (L/R): consistent with the mirror for limbs; AP pelvis: R on image left
    letter_r = mirror if marker_side is None else marker_side
    marker = _burn_marker(Pout, I, kind, letter_r, margins, S)
    D, n0, spr = _expose(Pout, col, X, Y, I, det, S, difficulty, z)
    valid = (col > 0.6) & ~marker
    D = _process(D, col, valid, I, det, S)
    out = _window(D, valid, I, kind)
    pose = dict(rotation_deg=np.degrees(theta), zoom=zoom, shift_x=tx, shift_y=ty, mirrored=mirror,
                exposure_n0=n0, scatter=spr.ravel(), marker=np.where(letter_r, "R", "L"),
                field=valid)
    return out, Pout, pose, (theta, fov_out, tx, ty, mirror)


def _collimation(I: Draw, det: dict, ps: float, B: int, S: int):
    """Blocked primary outside a slightly rotated rectangle -> (transmission, side margins, X, Y)."""
    g = (np.arange(S, dtype=REAL) + 0.5) / S - 0.5
    cang = per_image(np.radians(I.norm(0.0, 1.2)))
    X, Y = g[None, None, :], g[None, :, None]
    Xr, Yr = X + cang * Y, Y - cang * X
    col = np.ones((B, S, S), REAL)
    soft_px = REAL(S / 1.2)
    margins = []
    for side in range(4):  # each side is collimated with probability col_p (scaled by the pose)
        m = np.where(I.col() < det["col_p"] * min(ps, 1.5), I.uni(0.02, 0.1), -1.0)
        margins.append(m)
        coord = (-Xr, Xr, -Yr, Yr)[side]
        col *= np.clip((0.5 - per_image(m) - coord) * soft_px + 0.5, 0.0, 1.0)
    return col, margins, X, Y


def _burn_marker(Pout, I: Draw, kind: str, letter_r, margins, S: int) -> np.ndarray:
    """Add the lead L/R letter inside the field to Pout (in place) -> mask of the marker's pixels."""
    B = Pout.shape[0]
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
    return marker


def _expose(Pout, col, X, Y, I: Draw, det: dict, S: int, difficulty: float, z: np.ndarray):
    """Heel effect, Beer-Lambert primary, scatter, quantum noise, detector blur -> (log density D, n0, spr)."""
    # heel effect (anode-cathode along the long axis) and Beer-Lambert primary
    heel = 1.0 + per_image(I.uni(-0.18, 0.18)) * Y + per_image(I.uni(-0.05, 0.05)) * X
    prim = heel * np.exp(-Pout) * (col + 2e-4)
    spr = per_image(I.uni(*det["spr"]))
    scat = spr * _blur(prim, 0.12 * S)
    inten = prim + scat
    # quantum noise: photons per pixel scale with pixel area, fewer photons when difficult
    lo_n, hi_n = det["n0"]
    # (photons per pixel fall with pixel area; we use (64/S)**1, as if the detector were finer
    # than the output grid and the image had been downsampled: grain stays moderate at 256 px)
    n0 = np.exp(I.uni(math.log(lo_n), math.log(hi_n))) * (64.0 / S) / difficulty
    noisy = inten + np.sqrt(np.maximum(inten, 0.0) / per_image(n0)) * z
    noisy = np.maximum(noisy, per_image(0.5 / n0))
    noisy = _blur(noisy, 0.5)  # detector unsharpness (correlates the noise a little)
    return -np.log(noisy), n0, spr


def _process(D, col, valid, I: Draw, det: dict, S: int) -> np.ndarray:
    """Digital-radiography processing: dynamic range compression and unsharp-mask edge enhancement."""
    # large-scale density is pulled toward the median, as multi-scale processing does
    (q_mid,) = _quantiles(D, valid, (0.5,))
    Dv = np.where(col > 0.6, D, per_image(q_mid))
    drc = per_image(I.uni(*det["drc"]))
    D = D - drc * (_blur(Dv, 0.1 * S) - per_image(q_mid))
    ee = per_image(I.uni(0.0, 0.8))
    return D + ee * (D - _blur(D, 2.5 * S / 64))


def _window(D, valid, I: Draw, kind: str) -> np.ndarray:
    """Window from the histogram inside the field (as PACS auto-windowing does), film-like sigmoid."""
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
    v = D * per_image(-scale)
    v += per_image(scale * (wl + x0 * (wh - wl)))  # v = -k * ((D - wl) / (wh - wl) - x0)
    np.exp(v, out=v)
    v += 1.0
    np.reciprocal(v, out=v)
    v -= per_image(y0)
    v *= per_image(1.0 / (y1 - y0))
    return np.clip(v, 0.0, 1.0).astype(np.float32)


def to_image_xy(fx, fy, theta, fov_out, tx, ty, mirror):
    """Canonical cm -> normalised detector coordinates (inverse of the warp)."""
    xr = np.where(mirror, -fx, fx) - tx
    yr = fy - ty
    c, s = np.cos(theta), np.sin(theta)
    xo = c * xr + s * yr
    yo = -s * xr + c * yr
    return xo / fov_out + 0.5, yo / fov_out + 0.5
