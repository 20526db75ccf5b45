"""The batch API: render limb and pelvic phantoms, or one patient with and without the fracture.

Paper step: data. Each image has its own generator ``numpy_rng(seed, "phantom", *key)`` (hipaug.core.seeds) and is
rendered in chunks of one part on a small thread pool; see :mod:`hipaug.data.phantoms`.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hipaug.core import check_image_size
from hipaug.core.seeds import numpy_rng
from hipaug.data.phantoms.base import (
    KIND_LIMB,
    KIND_PELVIC,
    N_UNIFORMS,
    REAL,
    LABEL_MODES,
    LIMB_PARTS,
    PELVIC_CLASSES,
    check_difficulty,
    check_int,
    check_rate,
    Draw,
)
from hipaug.data.phantoms.imaging import image_chain, to_image_xy, warp
from hipaug.data.phantoms.limbs import LIMB_SCENES
from hipaug.data.phantoms.pelvis import scene_pelvis
from hipaug.data.phantoms.solids import Canvas
from hipaug.errors import ConfigError


@dataclass(frozen=True)
class PhantomBatch:
    """A batch of phantom radiographs with labels and per-image metadata."""

    images: np.ndarray  # (N, S, S) float32 in [0, 1], bone bright
    labels: np.ndarray  # (N,) int64 indices into class_names
    class_names: tuple[str, ...]  # sorted class names
    meta: pd.DataFrame  # one row per image: patient_id, pathology, pose, patient, seed ...

    def __len__(self) -> int:
        return int(self.images.shape[0])


_FOV = {"forearm": 33.0, "hand_wrist": 24.0, "knee": 21.0, "lower_leg": 42.0, "pelvic": 36.0}
_MARGIN = 1.32  # canonical field / output field (room for rotation, shift, zoom)
_SS = {32: 1.6, 64: 1.0, 128: 1.0, 256: 1.0}  # canonical pixels per output pixel


def _patient_id(seed: int, key: tuple) -> str:
    """Stable anonymous patient id from the seed and the patient key."""
    h = hashlib.sha1(f"hipaug-phantom:{seed}:{key}".encode()).hexdigest()[:12]
    return f"ph{h}"


def _chunk_size(S: int) -> int:
    """Images per chunk at size S (about 64 at 64 px, fewer for larger images)."""
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
    U = np.empty((B, 3 * N_UNIFORMS))
    Z = np.empty((B, S, S), REAL)
    for i, key in enumerate(ck):
        rng = numpy_rng(seed, "phantom", *key)
        U[i] = rng.random(3 * N_UNIFORMS)
        Z[i] = rng.standard_normal((S, S), dtype=REAL)
    A, Fd, I = Draw(U[:, :N_UNIFORMS]), Draw(U[:, N_UNIFORMS:2 * N_UNIFORMS]), Draw(U[:, 2 * N_UNIFORMS:])
    cv = Canvas(B, n, fov * _MARGIN, "pelvic" if kind == "pelvic" else "limb", maps=maps)
    if kind == "pelvic":
        m = scene_pelvis(cv, A, Fd, on, difficulty)
        mirror = I.col() < 0.5
        marker = I.col() < 0.5  # True: "R" on image left
        out, Pout, pose, geo = image_chain(cv.P, cv, S, I, kind, difficulty, Z, fov,
                                            fixed_mirror=mirror, marker_side=marker)
        # the canonical image-left femur is the patient's right; a mirror makes it the left
        m["side"] = np.where(on, np.where(mirror, "left", "right"), "none")
    else:
        m = LIMB_SCENES[part](cv, A, Fd, on, difficulty)
        out, Pout, pose, geo = image_chain(cv.P, cv, S, I, "limb", difficulty, Z, fov)
        m["part"] = np.full(B, part)
        m["laterality"] = np.where(pose["mirrored"], "R", "L")
    fxn, fyn = to_image_xy(*m.pop("_frac_xy"), *geo)
    m["frac_x"] = np.where(on, np.round(fxn, 4), np.nan)
    m["frac_y"] = np.where(on, np.round(fyn, 4), np.nan)
    m["fracture"] = on
    for kk in ("rotation_deg", "zoom", "shift_x", "shift_y", "exposure_n0", "scatter", "marker"):
        m[kk] = pose[kk]
    m["patient_id"] = [_patient_id(seed, k) for k in ck]
    if maps:
        bone = warp(cv.bone, cv, S, geo[1], geo[0], geo[2], geo[3], geo[4])
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
    images = np.concatenate([r[0] for r in results]) if results else np.empty((0, S, S), np.float32)
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
    per_class = check_int("per_class", per_class, 1)
    S = check_image_size(image_size)
    seed = check_int("seed", seed, 0)
    if labels not in LABEL_MODES:
        raise ConfigError(f"labels={labels!r} must be one of {', '.join(LABEL_MODES)}")
    difficulty = check_difficulty(difficulty)
    plan = _limb_plan(per_class, labels, _check_parts(parts))
    class_names = tuple(sorted({c for c, *_ in plan}))
    images = np.empty((len(plan), S, S), np.float32)  # rendered in float64, kept as float32
    parts_meta, order = [], []
    for p_idx, part in enumerate(LIMB_PARTS):
        rows = [i for i, r in enumerate(plan) if r[1] == part]
        if not rows:
            continue
        keys = [(KIND_LIMB, p_idx, plan[i][2], plan[i][3]) for i in rows]
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
    n = check_int("n", n, 1)
    S = check_image_size(image_size)
    seed = check_int("seed", seed, 0)
    rate = check_rate(fracture_rate)
    difficulty = check_difficulty(difficulty)
    nf = int(round(n * rate))
    status = np.array([1] * nf + [0] * (n - nf))
    ks = np.concatenate([np.arange(nf), np.arange(n - nf)])
    order = numpy_rng(seed, "phantom", KIND_PELVIC, "order").permutation(n)
    status, ks = status[order], ks[order]
    keys = [(KIND_PELVIC, 0, int(s), int(k)) for s, k in zip(status, ks)]
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
    n = check_int("n", n, 1)
    S = check_image_size(image_size)
    seed = check_int("seed", seed, 0)
    difficulty = check_difficulty(difficulty)
    if part == "pelvic":
        keys = [(KIND_PELVIC, 0, 1, k) for k in range(n)]
        kind, cols, names = "pelvic", _PELVIC_COLS, PELVIC_CLASSES
    else:
        keys = [(KIND_LIMB, LIMB_PARTS.index(part), 1, k) for k in range(n)]
        kind, cols, names = "limb", _LIMB_COLS, (f"{part}_fracture", f"{part}_normal")
    out = []
    for status in (True, False):
        img, meta = _render(kind, part, keys, np.full(n, status), S, seed, difficulty)
        meta = meta[cols].copy()
        meta["seed"], meta["difficulty"], meta["image_size"] = seed, difficulty, S
        lab = np.full(n, 0 if status else 1, np.int64)
        out.append(PhantomBatch(img, lab, names, meta))
    return out[0], out[1]
