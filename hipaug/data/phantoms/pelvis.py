"""Pelvic scene: AP pelvis with lumbar spine, sacrum, hemipelves, both femora and a hip fracture.

Paper step: data (the pelvic set Lin & Chung fine-tune and test on).
"""

from __future__ import annotations

import numpy as np

from hipaug.data.phantoms.base import PELVIC_FRACTURE_TYPES, pose_scale, rotate_xy
from hipaug.data.phantoms.drawing import add_blob, draw_bone, draw_soft, bone_material, draw_patient
from hipaug.data.phantoms.fracture import hip_fracture
from hipaug.data.phantoms.solids import Ellipsoid, Ring, Tube


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
    ndx, ndy = rotate_xy(-sdx, -sdy, phi)
    base_x, base_y = hx - ndx * 4.6 * sz, hy - ndy * 4.6 * sz
    cf = pt["cort_frac"]
    comps = [
        Ellipsoid(hx, hy, hr, hr, 0.9 * hr, cort=0.16),  # head
        Tube(hx, hy, base_x, base_y, 1.5 * wd, 1.6 * wd, fa=0.3 * wd, la=1.6, fb=0.5 * wd,
              lb=1.8, cort=0.26 * wd * (1.0 - 0.3 * pt["osteopenia"]), cend=0.8, cbase=0.8,
              depth=0.95),  # neck
        Ellipsoid(hx + sx * 4.9 * sz, hy + 1.9 * sz, 1.55 * wd, 2.3 * wd, 1.4 * wd, sx * 0.25,
                   cort=0.14),  # greater trochanter
        Ellipsoid(hx + sx * 1.95 * sz, hy + 6.0 * sz, 0.75 * wd, 1.05 * wd, 0.9 * wd, sx * 0.5,
                   cort=0.1),  # lesser trochanter
        Tube(shaft_top[0], shaft_top[1] - 0.8, shaft_bot[0], shaft_bot[1], 1.55 * wd, 1.45 * wd,
              fa=0.8 * wd, la=4.5, cort=cf * 1.5 * wd, cend=0.3),  # shaft
    ]
    geo = dict(ndx=-ndx, ndy=-ndy, sdx=sdx, sdy=sdy, base_x=base_x, base_y=base_y,  # head->base
               shaft_x=shaft_top[0])
    return comps, geo


def scene_pelvis(cv, A, F, on, difficulty):
    """AP pelvis: soft tissue and gas, L4-L5 and sacrum, both hemipelves and femora, a hip fracture."""
    pt = draw_patient(cv, A)
    sz, wd = pt["size"], pt["width"]
    st, fat = pt["soft"], pt["fat"]
    ys = A.uni(-1.2, 1.2)
    tilt = A.norm(0.0, 0.06)  # pelvic tilt: foreshortens the inlet and obturator foramina
    rotc = A.norm(0.0, 0.45)  # rotation about the long axis: midline shifts relative to the hips
    female = A.col() < 0.5
    inlet_w = np.where(female, 1.07, 0.96)
    y = lambda v: v * sz + ys  # noqa: E731
    x = lambda v: v * sz  # noqa: E731
    _draw_abdomen(cv, A, x, y, sz, st, fat, difficulty)
    mid = x(0.0) + rotc
    mat = bone_material(cv, pt)
    _draw_spine(cv, mat, mid, y, sz, wd, inlet_w)
    hx_off = 9.5 * wd * inlet_w ** 0.5
    hyc = y(1.2)
    hr = 2.4 * wd
    nsa = A.norm(130.0, 4.0)
    _draw_hemipelves(cv, mat, x, y, mid, rotc, tilt, inlet_w, hx_off, hyc, hr, sz, wd)
    # femora: the image-left one carries the fracture (mirroring places it on either side)
    comps_l, geo_l = _femur(-1, x(-hx_off) - rotc * 0.15, hyc, hr, nsa, pt, wd, sz)
    comps_r, _ = _femur(+1, x(hx_off) + rotc * 0.15, hyc, hr, nsa, pt, wd, sz)
    fr, ftype, sev, impacted, disp = hip_fracture(F, on, difficulty, x(-hx_off) - rotc * 0.15,
                                                   hyc, hr, geo_l, sz)
    draw_bone(cv, comps_l, mat, fr)
    draw_bone(cv, comps_r, mat)
    # fracture haematoma: extra soft-tissue thickness around the break (a broad, faint sign)
    hem = np.where(on, (0.3 + 1.6 * sev) * F.uni(0.6, 1.2), 0.0)
    add_blob(cv, fr.fx - 1.0, fr.fy + 1.0, 4.5, 5.5, 1.0, 0.3, hem * cv.mu["muscle"], lens=True)
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


def _draw_abdomen(cv, A, x, y, sz, st, fat, difficulty):
    """Draw the abdomen and thighs, then up to six bowel gas pockets (drawn from the anatomy block)."""
    # soft tissue: abdomen/pelvis elliptic cylinder, thighs
    sq = np.sqrt(st)
    body_a = 17.5 * sz * sq
    soft = [
        Tube(x(0.0), y(-40.0), x(0.0), y(13.0), body_a, body_a, cort=fat * 10 * st,
              depth=0.55 * sq, cut_b=14.0, flat=True),
        Tube(x(-8.0), y(4.0), x(-10.0), y(40.0), 9.3 * sq, 8.0 * sq, cort=fat * 6, depth=1.1),
        Tube(x(8.0), y(4.0), x(10.0), y(40.0), 9.3 * sq, 8.0 * sq, cort=fat * 6, depth=1.1),
    ]
    draw_soft(cv, soft)
    # bowel gas pockets in the upper pelvis (nuisance, independent of the label)
    for _ in range(6):
        active = A.col() < 0.35 * min(pose_scale(difficulty), 1.5)
        gx, gy = A.uni(-10.0, 10.0), y(A.uni(-17.0, -3.0))
        ga, gb = A.uni(0.4, 1.8), A.uni(0.3, 1.1)
        add_blob(cv, gx, gy, ga, gb, np.minimum(ga, gb) * 1.3, A.uni(0, np.pi),
                  np.where(active, -cv.mu["muscle"], 0.0))


def _draw_spine(cv, mat, mid, y, sz, wd, inlet_w):
    """Draw L4 and L5 (bodies, processes, pedicles) and the sacrum with its four pairs of foramina."""
    # L4, L5: bodies with end plates, transverse processes, pedicles, spinous process
    for k, vy in enumerate((-17.6, -13.4)):
        vw = (2.5 + 0.15 * k) * wd
        vb = [Tube(mid - vw + 1.4, y(vy), mid + vw - 1.4, y(vy), 1.45 * sz, 1.45 * sz, cort=0.16,
                    cend=1.0, cbase=1.0, depth=0.6),
              Tube(mid - (3.6 + 0.6 * k) * wd, y(vy - 0.5 + 0.5 * k), mid + (3.6 + 0.6 * k) * wd,
                    y(vy - 0.5 + 0.5 * k), 0.45 * wd, 0.45 * wd, cort=0.14),
              Tube(mid, y(vy - 0.4), mid, y(vy + 1.9), 0.45, 0.35, cort=0.14)]
        draw_bone(cv, vb, mat)
        for s in (-1, 1):  # pedicles seen end-on: oval cortical rings ("owl's eyes")
            draw_bone(cv, [Ring(mid + s * 1.5 * wd, y(vy - 0.3), 0.4, 0.6, 0.14, cort=0.1,
                                  depth=1.5)], mat)
    # sacrum: broad alae on top, tapering to the coccyx, with four pairs of foramina
    sac = [Ellipsoid(mid, y(-9.0), 4.6 * wd * inlet_w, 1.8, 0.9, cort=0.16),
           Tube(mid, y(-8.8), mid * 0.7, y(0.8), 3.6 * wd * inlet_w, 0.9 * wd, cort=0.16,
                 cend=1.0, cbase=1.0, depth=0.36, la=0.5, lb=0.5)]
    draw_bone(cv, sac, mat)
    for k, fy_ in enumerate((-7.3, -5.4, -3.6, -1.9)):
        for s in (-1, 1):
            r = 0.45 - 0.06 * k
            add_blob(cv, mid * (1 - 0.07 * k) + s * (1.7 - 0.2 * k) * wd, y(fy_), r, r * 0.8, 0.8,
                      0.0, -cv.mu["canc"] * 1.5)


def _draw_hemipelves(cv, mat, x, y, mid, rotc, tilt, inlet_w, hx_off, hyc, hr, sz, wd):
    """Draw both hemipelves: iliac wing and crest, brim, acetabulum, pubic rami, obturator ring."""
    for s in (-1, 1):
        sh = rotc * 0.15 * s  # the far side of a rotated pelvis projects narrower
        wx, wy = x(s * 8.8) + sh, y(-6.6)
        wing_a, wing_b, wang = 5.0 * sz, 6.9 * sz, s * -0.2
        hip = [
            # iliac wing: thin plate (cortical shell) + dense crest along its upper margin
            Ellipsoid(wx, wy, wing_a, wing_b, 1.25, wang, cort=0.14, lens=True),
            Ring(wx, wy, wing_a - 0.35, wing_b - 0.35, 0.6, ang=wang,
                  arc=(-np.pi / 2 + s * 0.45, 1.2), cort=0.18),
            # supra-acetabular body of the ilium (thick), between the wing and the acetabulum
            Ellipsoid(x(s * 8.9) + sh, hyc - 2.9, 3.4 * wd, 2.6 * sz, 1.2, s * 0.35, cort=0.2, lens=True),
            # pelvic brim (iliopectineal line) from the sacroiliac joint round to the pubis
            Ring(mid * 0.5 + sh, y(-1.2), 6.4 * sz * inlet_w, 5.0 * sz * (1 - tilt), 0.34,
                  arc=(np.pi / 2 - s * (np.pi / 2 - 0.45), 1.45), cort=0.12, depth=0.9),
            # acetabulum: roof (sourcil) arc over the head, and the cup's medial wall/teardrop
            Ring(x(s * hx_off) + sh, hyc, hr + 0.4, hr + 0.4, 0.3,
                  arc=(-np.pi / 2 + s * 0.3, 1.0), cort=0.1),
            Ellipsoid(x(s * 6.7) + sh, hyc + 1.1, 0.75, 1.8, 0.7, s * -0.15, cort=0.16),
            # superior pubic ramus, obturator ring (rami + ischium), ischial tuberosity, pubic body
            Tube(x(s * 7.3) + sh, hyc + 1.6, mid + s * 1.4, y(4.9), 1.05 * wd, 0.85 * wd,
                  cort=0.16, cend=0.6),
            Ring(x(s * 4.6) + mid * 0.6, y(6.3), 2.1 * sz, 2.7 * sz * (1 - 1.5 * tilt), 0.5 * wd,
                  ang=s * -0.35, cort=0.14),
            Ellipsoid(x(s * 5.8) + mid * 0.3, y(8.8), 1.7, 1.1, 0.9, s * 0.5, cort=0.16),
            Ellipsoid(mid + s * 1.2, y(5.8), 0.95, 1.7, 0.9, cort=0.16),
        ]
        draw_bone(cv, hip, mat)
