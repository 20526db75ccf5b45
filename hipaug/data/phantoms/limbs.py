"""Limb scenes: forearm, hand and wrist, knee, lower leg (soft tissue, bones, an optional fracture).

Paper step: data (the limb set Lin & Chung pre-train on). Each scene draws its patient from the
anatomy block, its fracture from the fracture block, and returns the per-image metadata.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from hipaug.data.phantoms.base import LIMB_FRACTURE_TYPES, fracture_severity
from hipaug.data.phantoms.drawing import draw_bone, draw_soft, bone_material, draw_patient
from hipaug.data.phantoms.fracture import limb_fracture, swell
from hipaug.data.phantoms.solids import Ellipsoid, Tube


def _scene_forearm(cv, A, F, on, difficulty):
    """Forearm (AP): distal humerus, radius and ulna, carpals; a fracture of the radius, ulna or both."""
    pt = draw_patient(cv, A)
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
        Tube(0.2, y(-30), 0.2, y(-15), 3.9 * st * wd, 4.2 * st * wd, cort=fat * 4 * st, depth=0.8),
        Tube(0.2, y(-15), 0.3 + bend * 10, y(11), 4.2 * st * wd, 2.7 * st * wd, fb=0.3,
              cort=fat * 3.5 * st, depth=0.72, la=6.0, lb=3),
        Ellipsoid(0.3 + bend * 10, y(14.5), 4.0 * st * wd, 3.4 * st, 2.0 * st, cort=fat * 2),
    ]
    draw_soft(cv, soft)
    # humerus (distal) with condyles
    hum = [
        Tube(0.3, y(-26), 0.3, y(-14.2), 1.15 * wd, 1.25 * wd, fb=0.9 * wd, lb=2.5,
              cort=cf * 1.15 * wd),
        Ellipsoid(0.3, y(-13.0), 2.7 * wd, 1.05 * wd, 1.3 * wd, cort=0.16),
        Ellipsoid(-0.9 * wd + 0.3, y(-12.45), 1.05 * wd, 0.75 * wd, 1.1 * wd, cort=0.12),
        Ellipsoid(1.35 * wd + 0.3, y(-12.55), 0.85 * wd, 0.7 * wd, 1.0 * wd, cort=0.12),
    ]
    draw_bone(cv, hum, bone_material(cv, pt))
    # ulna: olecranon/coronoid, tapering shaft, head + styloid
    ux0, ux1 = -0.75 * wd + 0.1, -1.25 * wd + bend * 10 - pron * 0.5
    uy0, uy1 = y(-11.2), y(9.9)
    ulna = [
        Ellipsoid(-0.75 * wd + 0.15, y(-12.1), 1.2 * wd, 1.45 * wd, 1.1 * wd, cort=0.14),
        Tube(ux0, uy0, ux1, uy1, 0.78 * wd, 0.52 * wd, fa=0.25 * wd, fb=0.22 * wd, la=3.0, lb=1.2,
              cort=cf * 0.75 * wd),
        Ellipsoid(ux1 - 0.35 * wd, y(10.45), 0.26 * wd, 0.42 * wd, 0.3, cort=0.08),
    ]
    # radius: head, neck, bowed shaft, wide distal end with styloid
    rxh = 1.25 * wd + 0.2
    rx_mid = 1.95 * wd + bend * 5 + 0.25 * np.abs(pron)
    rx_d = 1.55 * wd + bend * 10 + pron * 0.8
    rad = [
        Ellipsoid(rxh, y(-11.5), 0.95 * wd, 0.45 * wd, 0.95 * wd, cort=0.12),
        Tube(rxh, y(-11.4), rxh + 0.15, y(-9.0), 0.55 * wd, 0.62 * wd, cort=cf * 0.55 * wd),
        Tube(rxh + 0.15, y(-9.0), rx_mid, y(0.5), 0.62 * wd, 0.68 * wd, cort=cf * 0.65 * wd,
              fa=0.08, la=1.5),
        Tube(rx_mid, y(0.5), rx_d, y(9.9), 0.68 * wd, 0.85 * wd, fb=0.5 * wd, lb=2.8,
              cort=cf * 0.7 * wd, cut_b=0.25),
        Ellipsoid(rx_d + 0.8 * wd, y(9.95), 0.45 * wd, 0.6 * wd, 0.6, 0.3, cort=0.08),
        Ellipsoid(rx_d - 0.05, y(9.95), 1.6 * wd, 0.6 * wd, 1.15 * wd, -0.1, cort=0.11),
    ]
    # fracture: radius (0), ulna (1) or both (2)
    which = F.choice([0.45, 0.25, 0.3])
    ftype = F.choice([0.35, 0.3, 0.15, 0.2])
    sev = fracture_severity(F, difficulty)
    signs = [F.sign() for _ in range(3)]
    t_r, t_u = F.uni(0.15, 0.9), F.uni(0.15, 0.85)
    fr_r = limb_fracture(F, on & (which != 1), rxh + 0.15, y(-9.0), rx_d, y(9.2),
                          0.68 * wd, t_r, ftype, sev, signs)
    # the break is placed on the full radius shaft (neck .. distal end)
    fr_r.fx, fr_r.fy = _lerp_shaft(rxh + 0.15, y(-9.0), rx_mid, y(0.5), rx_d, y(9.2), t_r)
    fr_u = limb_fracture(F, on & (which != 0), ux0, uy0, ux1, uy1, 0.65 * wd, t_u,
                          ftype, sev, [-signs[0], signs[1], signs[2]])
    draw_bone(cv, ulna, bone_material(cv, pt), fr_u)
    draw_bone(cv, rad, bone_material(cv, pt), fr_r)
    _draw_wrist_end(cv, pt, y, rx_d, ux1, wd, cf)
    swell(cv, [fr_r, fr_u], on, sev, 3.0 * st)
    frac_xy = np.where(which == 1, fr_u.fx, fr_r.fx), np.where(which == 1, fr_u.fy, fr_r.fy)
    bone = np.array(["radius", "ulna", "radius+ulna"])[which]
    return _limb_meta(pt, on, ftype, sev, [fr_r, fr_u], which, bone, frac_xy, st)


def _draw_wrist_end(cv, pt, y, rx_d, ux1, wd, cf):
    """Draw the forearm film's bottom edge: proximal carpal row and metacarpal bases."""
    carp = [(rx_d - 0.1 + 0.2, y(11.6), 0.85, 0.55, -0.5), (rx_d - 1.65, y(11.7), 0.7, 0.6, 0.0),
            (ux1 - 0.5, y(11.9), 0.55, 0.55, 0.3), (rx_d - 1.0, y(12.95), 0.6, 0.85, 0.0),
            (rx_d + 0.45, y(12.85), 0.6, 0.55, 0.3), (ux1 + 0.1, y(12.9), 0.6, 0.7, 0.0)]
    for cx, cy, a, b_, an in carp:
        draw_bone(cv, [Ellipsoid(cx, cy, a * wd, b_ * wd, 0.8 * wd, an, cort=0.09)],
                   bone_material(cv, pt))
    for k in range(4):
        mx = rx_d + 0.6 - k * 1.05 * wd
        draw_bone(cv, [Tube(mx, y(14.1), mx + (k - 1.5) * 0.3, y(19.5), 0.5 * wd, 0.4 * wd,
                              fa=0.2, la=0.9, cort=cf * 0.45 * wd)], bone_material(cv, pt))


def _lerp_shaft(x0, y0, x1, y1, x2, y2, t):
    """Point at fraction t along the polyline (x0,y0)-(x1,y1)-(x2,y2) (by index, halves)."""
    first = t < 0.5
    tt = np.where(first, t * 2, t * 2 - 1)
    fx = np.where(first, x0 + (x1 - x0) * tt, x1 + (x2 - x1) * tt)
    fy = np.where(first, y0 + (y1 - y0) * tt, y1 + (y2 - y1) * tt)
    return fx, fy


def _limb_meta(pt, on, ftype, sev, fracs, which, bone, frac_xy, st):
    """Per-image metadata of a limb scene (``which == len(fracs)``: every listed bone is broken)."""
    disp = np.zeros(on.shape[0])
    ang = np.zeros(on.shape[0])
    for j, f in enumerate(fracs):
        sel = on & ((which == j) | (which == len(fracs)))
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


_FINGER = 2  # the middle finger's proximal phalanx is the phalanx that can break


def _hand_rays(A, x, y, sz, wd, sq, fat, spread, flex):
    """Metacarpals, phalanges and the soft tissue of the five rays, wrist and forearm."""
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
        soft.append(Tube(x1, y1, px - ux * 0.45, py - uy * 0.45, fr_ * sq * wd, 0.78 * sq * wd,
                          cort=fat * 2.0, depth=0.95))  # finger
        soft.append(Tube(x0, y0, x1, y1, (1.45 if k == 0 else 1.2) * sq * wd, 1.15 * sq * wd,
                          cort=fat * 2.5, depth=1.0 if k == 0 else 1.2))  # palm / thenar
    soft.append(Tube(x(0.05), y(5.0), x(0.0), y(22.0), 3.05 * sq * wd, 3.3 * sq * wd,
                      cort=fat * 3, depth=0.7))  # wrist and forearm
    return soft, bones_mc, bones_ph


def _scene_hand(cv, A, F, on, difficulty):
    """Hand and wrist (PA): a fracture of the distal radius, the 5th metacarpal or a phalanx."""
    pt = draw_patient(cv, A)
    sz, wd, cf = pt["size"], pt["width"], pt["cort_frac"]
    st, fat = pt["soft"], pt["fat"]
    sq = np.sqrt(st)
    ys = A.uni(0.4, 2.0)
    spread = A.uni(0.6, 1.3)  # finger abduction
    flex = A.uni(0.0, 0.25)  # slight finger flexion shortens the projected phalanges
    y = lambda v: v * sz + ys  # noqa: E731
    x = lambda v: v * sz  # noqa: E731
    soft, bones_mc, bones_ph = _hand_rays(A, x, y, sz, wd, sq, fat, spread, flex)
    draw_soft(cv, soft)
    # fracture: distal radius (0), 5th metacarpal neck (1), proximal phalanx of a finger (2)
    which = F.choice([0.45, 0.3, 0.25])
    ftype = F.choice([0.35, 0.3, 0.15, 0.2])
    sev = fracture_severity(F, difficulty)
    signs = [F.sign() for _ in range(3)]
    t_r, t_m, t_p = F.uni(0.82, 0.95), F.uni(0.55, 0.85), F.uni(0.25, 0.7)
    fr_r = limb_fracture(F, on & (which == 0), x(1.45), y(24), x(1.3), y(8.05) + 0.1, 1.0 * wd,
                          t_r, ftype, sev, signs)
    m5 = bones_mc[4]
    fr_m = limb_fracture(F, on & (which == 1), *m5[:4], m5[4], t_m, ftype, sev, signs)
    p1 = bones_ph[_FINGER][0]
    fr_p = limb_fracture(F, on & (which == 2), *p1[:4], p1[4], t_p, ftype, sev, signs)
    _draw_hand_bones(cv, bone_material(cv, pt), x, y, wd, cf, bones_mc, bones_ph, fr_r, fr_m, fr_p)
    swell(cv, [fr_r, fr_m, fr_p], on, sev, 1.5 * st)
    fxy = (np.select([which == 0, which == 1], [fr_r.fx, fr_m.fx], fr_p.fx),
           np.select([which == 0, which == 1], [fr_r.fy, fr_m.fy], fr_p.fy))
    bone = np.array(["radius", "metacarpal5", "phalanx"])[which]
    return _limb_meta(pt, on, ftype, sev, [fr_r, fr_m, fr_p], which * 1, bone, fxy, st)


def _draw_hand_bones(cv, mat, x, y, wd, cf, bones_mc, bones_ph, fr_r, fr_m, fr_p):
    """Draw distal radius and ulna, carpals, metacarpals, phalanges and the thumb's sesamoids."""
    # distal radius (flat, wide articular end + styloid) and ulna (head + styloid)
    ry = y(8.05)
    rad = [Tube(x(1.45), y(24), x(1.3), ry + 0.1, 1.0 * wd, 0.95 * wd, fb=0.55 * wd, lb=2.8,
                 cort=cf * 0.9 * wd, cut_b=0.25),
           Ellipsoid(x(1.25), ry + 0.05, 1.75 * wd, 0.62 * wd, 1.2 * wd, -0.12, cort=0.12),
           Ellipsoid(x(2.55), ry - 0.2, 0.5 * wd, 0.6 * wd, 0.6, 0.3, cort=0.08)]
    uy_ = y(8.7)
    uln = [Tube(x(-1.65), y(24), x(-1.55), uy_ + 0.1, 0.68 * wd, 0.58 * wd, fb=0.12 * wd, lb=1.5,
                 cort=cf * 0.65 * wd),
           Ellipsoid(x(-1.95), uy_ - 0.35, 0.24 * wd, 0.42 * wd, 0.3, 0.2, cort=0.07)]
    # carpals: scaphoid, lunate, triquetrum, pisiform, trapezium, trapezoid, capitate, hamate
    carp = [(1.35, 7.0, 1.0, 0.55, -0.75), (0.0, 7.15, 0.8, 0.68, 0.0), (-1.25, 6.9, 0.68, 0.6, 0.4),
            (-1.55, 6.6, 0.48, 0.48, 0.0), (2.15, 5.95, 0.72, 0.66, 0.35), (1.1, 5.8, 0.58, 0.64, 0.0),
            (0.0, 5.95, 0.64, 1.0, 0.0), (-1.15, 6.05, 0.7, 0.85, 0.2)]
    draw_bone(cv, rad, mat, fr_r)
    draw_bone(cv, uln, mat)
    for cx, cy, a, b_, an in carp:
        draw_bone(cv, [Ellipsoid(x(cx), y(cy), a * wd, b_ * wd, 0.8 * wd, an, cort=0.09)], mat)
    for k, (x0, y0, x1, y1, r) in enumerate(bones_mc):
        comps = [Tube(x0, y0, x1, y1, r * 1.0, r * 0.85, fa=0.28 * wd, fb=0.32 * wd, la=1.2,
                       lb=1.1, cort=cf * r)]
        draw_bone(cv, comps, mat, fr_m if k == 4 else None)
    for k, segs in enumerate(bones_ph):
        for j, (x0, y0, x1, y1, r) in enumerate(segs):
            tuft = 0.1 * wd if j == len(segs) - 1 else 0.2 * wd
            comps = [Tube(x0, y0, x1, y1, r, r * 0.75, fa=0.24 * wd, fb=tuft, la=0.8, lb=0.6,
                           cort=cf * r)]
            draw_bone(cv, comps, mat, fr_p if (k == _FINGER and j == 0) else None)
    x0, y0, x1, y1, r = bones_mc[0]  # thumb sesamoids at the MCP joint
    for d in (-0.3, 0.3):
        draw_bone(cv, [Ellipsoid(x1 + d, y1 + 0.15, 0.2, 0.22, 0.22, cort=0.05)], mat)


def _scene_knee(cv, A, F, on, difficulty):
    """Knee (AP): femoral condyles, patella, tibial plateau, fibular head; a tibia or femur fracture."""
    pt = draw_patient(cv, A)
    sz, wd, cf = pt["size"], pt["width"], pt["cort_frac"]
    st, fat = pt["soft"], pt["fat"]
    ys = A.uni(-0.8, 0.8)
    valgus = A.norm(0.0, 0.04)
    jsp = A.uni(0.35, 0.7)  # joint space (cm), narrower in older knees
    y = lambda v: v * sz + ys  # noqa: E731
    x = lambda v: v * sz  # noqa: E731
    sq = np.sqrt(st)
    soft = [Tube(x(0.0) - valgus * 10, y(-22), x(0.0), y(0.0), 6.0 * sq * wd, 5.7 * sq * wd,
                  cort=fat * 6, depth=0.85),
            Tube(x(0.0), y(0.0), x(0.2) + valgus * 10, y(22), 5.7 * sq * wd, 5.0 * sq * wd,
                  cort=fat * 5, depth=0.85)]
    draw_soft(cv, soft)
    jy = y(0.0)
    fem = [Tube(x(0.0) - valgus * 12, y(-24), x(0.0), jy - 2.2 * wd, 1.55 * wd, 1.75 * wd,
                 fb=1.55 * wd, lb=4.5, cort=cf * 1.55 * wd, cut_b=0.6),
           Ellipsoid(x(-2.15) * wd, jy - 1.8 * wd, 1.9 * wd, 1.8 * wd, 2.6 * wd, 0.12, cort=0.2),
           Ellipsoid(x(2.2) * wd, jy - 1.9 * wd, 1.85 * wd, 1.9 * wd, 2.6 * wd, -0.12, cort=0.2)]
    tib_top = jy + jsp
    tib = [Ellipsoid(x(0.0), tib_top + 1.25 * wd, 3.9 * wd, 1.25 * wd, 2.6 * wd, 0.0, cort=0.15),
           Ellipsoid(x(-0.45) * wd, tib_top + 0.35, 0.28 * wd, 0.5, 0.5, cort=0.05),
           Ellipsoid(x(0.45) * wd, tib_top + 0.3, 0.28 * wd, 0.5, 0.5, cort=0.05),
           Tube(x(0.0), tib_top + 1.5, x(0.2) + valgus * 12, y(24), 1.95 * wd, 1.5 * wd,
                 fa=1.2 * wd, la=4.5, cort=cf * 1.5 * wd)]
    fib = [Ellipsoid(x(3.35) * wd, tib_top + 2.5, 0.85 * wd, 0.8 * wd, 0.9, cort=0.08),
           Tube(x(3.35) * wd, tib_top + 3.0, x(3.1) * wd + valgus * 12, y(24), 0.5 * wd, 0.45 * wd,
                 cort=cf * 0.5 * wd)]
    pat = [Ellipsoid(x(0.25), jy - 2.7 + A.uni(-0.6, 0.6), 2.1 * wd, 2.4 * wd, 1.1, 0.05,
                      cort=0.12)]
    # fracture: proximal tibia / plateau (0) or distal femur supracondylar (1)
    which = F.choice([0.55, 0.45])
    ftype = F.choice([0.35, 0.3, 0.15, 0.2])
    sev = fracture_severity(F, difficulty)
    signs = [F.sign() for _ in range(3)]
    t_t = F.uni(0.02, 0.35)
    t_f = F.uni(0.72, 0.9)
    fr_t = limb_fracture(F, on & (which == 0), x(0.0), tib_top + 1.0, x(0.2), y(24),
                          1.7 * wd, t_t, ftype, sev, signs)
    fr_f = limb_fracture(F, on & (which == 1), x(0.0) - valgus * 12, y(-24), x(0.0),
                          jy - 1.0, 1.65 * wd, t_f, ftype, sev, signs)
    draw_bone(cv, fem, bone_material(cv, pt), fr_f)
    draw_bone(cv, tib, bone_material(cv, pt), fr_t)
    draw_bone(cv, fib, bone_material(cv, pt))
    draw_bone(cv, pat, bone_material(cv, pt, 0.8))
    swell(cv, [fr_t, fr_f], on, sev, 4.0 * st)
    fxy = (np.where(which == 0, fr_t.fx, fr_f.fx), np.where(which == 0, fr_t.fy, fr_f.fy))
    bone = np.array(["tibia", "femur"])[which]
    return _limb_meta(pt, on, ftype, sev, [fr_t, fr_f], which, bone, fxy, st)


def _scene_lower_leg(cv, A, F, on, difficulty):
    """Lower leg (AP): tibia and fibula from knee to ankle, malleoli, talus; a tibia or fibula fracture."""
    pt = draw_patient(cv, A)
    sz, wd, cf = pt["size"], pt["width"], pt["cort_frac"]
    st, fat = pt["soft"], pt["fat"]
    ys = A.uni(-1.5, 1.5)
    y = lambda v: v * sz + ys  # noqa: E731
    x = lambda v: v * sz  # noqa: E731
    bow = A.norm(0.0, 0.25)
    soft = [Tube(x(0.0), y(-30), x(0.0), y(-16), 6.0 * st * wd, 5.6 * st * wd, cort=fat * 5,
                  depth=0.9),
            Tube(x(0.0), y(-16), x(0.4), y(14), 5.6 * st * wd, 3.4 * st * wd, fa=0.6 * st, la=12.0,
                  cort=fat * 4, depth=0.85),
            Ellipsoid(x(0.4), y(19), 3.6 * st * wd, 4.0, 3.0 * st, cort=fat * 3)]
    draw_soft(cv, soft)
    kj = y(-18.0)
    fem = [Ellipsoid(x(-2.0) * wd, kj - 1.8 * wd, 2.0 * wd, 1.8 * wd, 2.6 * wd, 0.1, cort=0.2),
           Ellipsoid(x(2.05) * wd, kj - 1.9 * wd, 1.9 * wd, 1.9 * wd, 2.6 * wd, -0.1, cort=0.2),
           Tube(x(0.0), kj - 3.0, x(0.0), y(-30), 1.75 * wd, 1.5 * wd, fa=1.5 * wd, la=4.0,
                 cort=cf * 1.5 * wd)]
    tt = kj + 0.5
    ax = y(16.4)
    tib = [Ellipsoid(x(0.0), tt + 1.2 * wd, 3.7 * wd, 1.2 * wd, 2.5 * wd, cort=0.15),
           Tube(x(0.0), tt + 1.4, x(0.1) + bow * 0.3, y(-1.0), 1.85 * wd, 1.3 * wd, fa=1.1 * wd,
                 la=5.0, cort=cf * 1.35 * wd),
           Tube(x(0.1) + bow * 0.3, y(-1.0), x(0.3), ax - 0.9, 1.3 * wd, 1.3 * wd, fb=0.75 * wd,
                 lb=4.0, cort=cf * 1.3 * wd),
           Ellipsoid(x(-1.45) * wd, ax + 0.35, 0.55 * wd, 1.0 * wd, 0.9, 0.1, cort=0.08)]
    fib = [Ellipsoid(x(3.1) * wd, tt + 2.3, 0.8 * wd, 0.75 * wd, 0.9, cort=0.08),
           Tube(x(3.1) * wd, tt + 2.6, x(2.75) * wd + bow * 0.5, y(0.0), 0.6 * wd, 0.55 * wd,
                 cort=cf * 0.6 * wd),
           Tube(x(2.75) * wd + bow * 0.5, y(0.0), x(2.35) * wd + 0.2, ax, 0.55 * wd, 0.6 * wd,
                 fb=0.2, lb=2.0, cort=cf * 0.6 * wd),
           Ellipsoid(x(2.3) * wd + 0.2, ax + 1.0, 0.55 * wd, 1.25 * wd, 0.8, -0.1, cort=0.08)]
    tal = [Ellipsoid(x(0.4), ax + 1.05, 1.95 * wd, 0.95 * wd, 2.5, cort=0.12)]
    which = F.choice([0.6, 0.4])  # tibia (0) / fibula (1)
    ftype = F.choice([0.35, 0.3, 0.15, 0.2])
    sev = fracture_severity(F, difficulty)
    signs = [F.sign() for _ in range(3)]
    t_t, t_b = F.uni(0.2, 0.85), F.uni(0.2, 0.85)
    fr_t = limb_fracture(F, on & (which == 0), x(0.0), tt + 1.4, x(0.3), ax - 0.9,
                          1.35 * wd, t_t, ftype, sev, signs)
    fr_b = limb_fracture(F, on & (which == 1), x(3.1) * wd, tt + 2.6, x(2.35) * wd,
                          ax, 0.58 * wd, t_b, ftype, sev, signs)
    draw_bone(cv, fem, bone_material(cv, pt))
    draw_bone(cv, tib, bone_material(cv, pt), fr_t)
    draw_bone(cv, fib, bone_material(cv, pt), fr_b)
    draw_bone(cv, tal, bone_material(cv, pt))
    swell(cv, [fr_t, fr_b], on, sev, 3.0 * st)
    fxy = (np.where(which == 0, fr_t.fx, fr_b.fx), np.where(which == 0, fr_t.fy, fr_b.fy))
    bone = np.array(["tibia", "fibula"])[which]
    return _limb_meta(pt, on, ftype, sev, [fr_t, fr_b], which, bone, fxy, st)


LIMB_SCENES: dict[str, Callable] = {
    "forearm": _scene_forearm,
    "hand_wrist": _scene_hand,
    "knee": _scene_knee,
    "lower_leg": _scene_lower_leg,
}
