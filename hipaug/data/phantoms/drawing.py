"""Drawing on the canvas: bones (union of solids, optionally broken), soft tissue, blobs, patients.

Paper step: data (phantom anatomy and the shared fracture model: a break line, a moved distal
fragment, comminution; see "Parts and pathology" in :mod:`hipaug.data.phantoms`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from hipaug.data.phantoms.base import REAL, per_image, Draw, sandwich
from hipaug.data.phantoms.solids import Canvas, Ellipsoid, Material


# --------------------------------------------------------------------------------- fracture
@dataclass
class Break:
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
    """Ramp from 0 to 1 over one pixel around z = 0 (an anti-aliased step)."""
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
    O = np.zeros((cv.B, h, w), REAL)
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


def draw_bone(cv: Canvas, comps, mat: Material, frac: Break | None = None):
    """Add one bone (union of components, optionally fractured) to the canvas."""
    boxes, box = _bone_box(cv, comps, frac)
    if box is None:
        return
    sy, sx, X, Y = box
    Bp = mat.integral(cv, sy, sx, *_accumulate(cv, comps, boxes, box))
    if frac is None:
        val = Bp
    else:
        ipx = REAL(1.0 / cv.px)
        fx, fy, nx, ny = per_image(frac.fx), per_image(frac.fy), per_image(frac.nx), per_image(frac.ny)
        g2 = per_image(frac.gap) * 0.5
        # proximal fragment: the bone itself, on the proximal side of the break line
        s = (X - fx) * nx + (Y - fy) * ny
        along = (X - fx) * (-ny) + (Y - fy) * nx
        crack = _smoothstep_px(per_image(frac.crack) - (along + 8.0), ipx)  # crack starts 8 cm "before"
        hp = _smoothstep_px(s + g2, ipx)
        gapband = hp - _smoothstep_px(s - g2, ipx)
        mp = 1.0 - hp + gapband * (1.0 - crack)
        # distal fragment: q = T^-1 p (undo translation, then rotation about the break point)
        ca, sa = per_image(np.cos(frac.ang)), per_image(np.sin(frac.ang))
        tx, ty = per_image(frac.tx), per_image(frac.ty)

        if frac.k is not None:
            kc, ik = per_image(frac.kc), per_image(1.0 / frac.k)

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
            off, an, gw, reach = (per_image(frac.extra[:, k, j]) for j in range(4))
            cx, cy = fx + off * (-ny), fy + off * nx
            d = (X - cx) * np.cos(an) + (Y - cy) * np.sin(an)
            r2 = (X - cx) ** 2 + (Y - cy) ** 2
            band = np.clip((gw * 0.5 - np.abs(d)) * ipx + 0.5, 0.0, 1.0)
            val = val * (1.0 - band * ((r2 < reach * reach) & (gw > 0)))
        for k in range(frac.frags.shape[1]):
            if not np.any(frac.frags[:, k, 2] > 0):
                continue
            oa, on, rad = (per_image(frac.frags[:, k, j]) for j in range(3))
            cx, cy = fx + oa * (-ny) + on * nx, fy + oa * nx + on * ny
            r2 = (X - cx) ** 2 + (Y - cy) ** 2
            val = val + mat.cort * 2.0 * np.sqrt(np.maximum(rad * rad - r2, 0.0))
    cv.P[:, sy, sx] += val
    if cv.bone is not None:
        cv.bone[:, sy, sx] += val


def draw_soft(cv: Canvas, comps):
    """Soft-tissue envelope: union of components, fat over muscle (cort = fat thickness).

    Evaluated on every second canonical pixel and interpolated: soft tissue is smooth, and it
    covers most of the field, so this halves the cost of a phantom.
    """
    half = Canvas.__new__(Canvas)
    half.B, half.n, half.fov = cv.B, (cv.n + 1) // 2, cv.fov
    half.px = cv.px * 2
    half.c = (cv.c[0::2] + 0.5 * cv.px).astype(REAL)
    boxes, box = _bone_box(half, comps)
    if box is None:
        return
    O, inn, _ = _accumulate(half, comps, boxes, box)
    val = cv.mu["fat"] * O + (cv.mu["muscle"] - cv.mu["fat"]) * inn
    full = np.zeros((cv.B, half.n, half.n), REAL)
    full[:, box[0], box[1]] = val
    U = _upsample_matrix(cv.n, half.n)
    cv.P += sandwich(U, full)


@functools.lru_cache(maxsize=16)
def _upsample_matrix(n: int, m: int) -> np.ndarray:
    """(n, m) linear interpolation from the half grid (centres at 2j + 0.5) to the full grid."""
    pos = np.clip((np.arange(n) - 0.5) / 2.0, 0, m - 1)
    j0 = np.minimum(np.floor(pos).astype(int), m - 2)
    w = pos - j0
    U = np.zeros((n, m), REAL)
    U[np.arange(n), j0] = 1 - w
    U[np.arange(n), j0 + 1] += w
    return U


def add_blob(cv: Canvas, cx, cy, a, b, c, ang, mu, lens=False):
    """Add mu * chord of a plain ellipsoid (gas pockets, foramina, swelling) to the canvas."""
    e = Ellipsoid(cx, cy, a, b, c, ang, cort=0.0, lens=lens)
    box = cv.box(*e.bbox())
    if box is None:
        return
    sy, sx, X, Y = box
    cv.P[:, sy, sx] += per_image(mu) * e.eval(X, Y, need_inner=False)[0]


# --------------------------------------------------------------------------------- patients
def draw_patient(cv: Canvas, A: Draw) -> dict:
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


def bone_material(cv: Canvas, pt: dict, scale: float = 1.0) -> Material:
    """Bone material of a patient (cancellous density times `scale`)."""
    return Material(cv, pt["cort_rel"] * cv.mu["cort"], pt["canc_rel"] * cv.mu["canc"] * scale,
                     pt["tex_amp"])
