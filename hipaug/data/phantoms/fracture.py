"""Fracture sampling: break point, line, gap, displacement, comminution for long bones and the hip.

Paper step: data (pathology of the phantoms; one model serves every bone, so limb -> hip transfer
is plausible). Draws come from the fracture block of uniforms, in a fixed order.
"""

from __future__ import annotations

import numpy as np

from hipaug.data.phantoms.base import REAL, Draw, rotate_xy, fracture_severity
from hipaug.data.phantoms.drawing import add_blob, Break


def limb_fracture(F: Draw, on: np.ndarray, ax, ay, bx, by, R, tpos,
                   ftype: np.ndarray, sev: np.ndarray, signs: np.ndarray) -> Break:
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
    extra = np.zeros((B, 2, 4), REAL)
    frags = np.zeros((B, 3, 3), REAL)
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
    return Break(fx, fy, nx, ny, gap, ang, tx, ty, crack, extra, frags, on=on)


def hip_fracture(F: Draw, on, difficulty, hx, hy, hr, geo, sz):
    """Hip fracture of the image-left femur (patient's right before mirroring)."""
    B = on.shape[0]
    ftype = F.choice([0.35, 0.25, 0.4])  # subcapital, transcervical, intertrochanteric
    sev = fracture_severity(F, difficulty)
    impacted = (F.col() < 0.4) & (ftype < 2)
    ndx, ndy = geo["ndx"], geo["ndy"]  # head -> shaft along the neck
    # neck fractures: break across the neck at a distance from the head centre
    dist = np.where(ftype == 0, hr * F.uni(0.85, 1.05), hr + F.uni(0.8, 1.6) * sz)
    pauw = np.radians(F.norm(0.0, 12.0))
    nfx, nfy = hx + ndx * dist, hy + ndy * dist
    nnx, nny = rotate_xy(ndx, ndy, pauw)
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
    extra = np.zeros((B, 2, 4), REAL)
    frags = np.zeros((B, 3, 3), REAL)
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
    fr = Break(fx, fy, nx, ny, gap, ang, tx, ty, crack, extra, frags, on=on, k=kf, kc=kc)
    disp = np.where(on, np.hypot(tx, ty) + gap, 0.0)
    return fr, ftype, sev, impacted & on, disp


def swell(cv, fracs, on, sev, size):
    """Soft-tissue swelling (haematoma) around a fracture: up to (0.2 + 0.8 * severity) cm of
    extra tissue, thinning smoothly to the edge of an ellipse of ~size cm."""
    for fr in fracs:
        amp = np.where(fr.on, 0.1 + 0.4 * sev, 0.0)  # half the peak thickness (c of the lens)
        if np.any(amp > 0):
            add_blob(cv, fr.fx, fr.fy, 1.0 * size, 1.5 * size, 1.0, 0.0, amp * cv.mu["muscle"],
                      lens=True)
