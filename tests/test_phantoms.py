"""Fast tests of the radiograph phantom generator (hipaug.data.phantoms)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from hipaug.data import phantoms as ph
from hipaug.data.phantoms import (LIMB_PARTS, PELVIC_CLASSES, PhantomBatch, render_limb, render_pair,
                                  render_pelvic, write_dataset, write_limb_dataset,
                                  write_pelvic_dataset)
from hipaug.data.phantoms.base import KIND_LIMB
from hipaug.data.phantoms.render import _render
from hipaug.errors import ConfigError


@pytest.fixture(scope="module")
def limb64() -> PhantomBatch:
    return render_limb(2, image_size=64, seed=1)


@pytest.fixture(scope="module")
def pelvic64() -> PhantomBatch:
    return render_pelvic(12, image_size=64, seed=1)


def test_constants():
    assert len(LIMB_PARTS) >= 4 and len(set(LIMB_PARTS)) == len(LIMB_PARTS)
    assert PELVIC_CLASSES == ("fracture", "normal")


def test_determinism_and_seed_dependence():
    a = render_limb(1, image_size=32, seed=5)
    b = render_limb(1, image_size=32, seed=5)
    c = render_limb(1, image_size=32, seed=6)
    assert a.images.tobytes() == b.images.tobytes()
    assert a.meta.equals(b.meta)
    assert not np.array_equal(a.images, c.images)
    p = render_pelvic(4, image_size=32, seed=5)
    q = render_pelvic(4, image_size=32, seed=5)
    r = render_pelvic(4, image_size=32, seed=6)
    assert p.images.tobytes() == q.images.tobytes()
    assert not np.array_equal(p.images, r.images)


def test_image_independent_of_batch_composition():
    small = render_limb(1, image_size=32, seed=2)
    big = render_limb(3, image_size=32, seed=2)
    for name in small.class_names:
        i = int(np.flatnonzero(small.labels == small.class_names.index(name))[0])
        j = int(np.flatnonzero(big.labels == big.class_names.index(name))[0])
        assert np.array_equal(small.images[i], big.images[j]), name
        assert small.meta.patient_id[i] == big.meta.patient_id[j]


@pytest.mark.parametrize("size", [32, 64, 128, 256])
def test_shapes_dtypes_range(size):
    n = 2 if size < 256 else 1
    for b in (render_limb(1, image_size=size, seed=0, labels="fracture"),
              render_pelvic(n, image_size=size, seed=0)):
        assert b.images.dtype == np.float32 and b.images.ndim == 3
        assert b.images.shape[1:] == (size, size)
        assert np.isfinite(b.images).all()
        assert b.images.min() >= 0.0 and b.images.max() <= 1.0
        assert b.images.std() > 0.05  # not blank
        assert b.labels.dtype == np.int64 and b.labels.shape == (len(b),)
        assert len(b.meta) == len(b)


def _check_batch(b: PhantomBatch):
    assert list(b.class_names) == sorted(b.class_names)
    assert b.labels.min() >= 0 and b.labels.max() < len(b.class_names)
    assert len(b.meta) == len(b.images) == len(b.labels)
    assert b.meta.patient_id.is_unique
    names = np.array(b.class_names)[b.labels]
    frac = b.meta.fracture.to_numpy(bool)
    if "part" in b.meta:
        if "_" in names[0]:  # part+fracture
            assert all(n.endswith("_fracture") == f for n, f in zip(names, frac))
            assert all(n.startswith(p) for n, p in zip(names, b.meta.part))
    else:
        assert np.array_equal(names == "fracture", frac)
    assert np.all((b.meta.fracture_type != "none") == frac)
    assert np.all(np.isfinite(b.meta.frac_x[frac])) and np.all(np.isnan(b.meta.frac_x[~frac]))
    assert np.all(b.meta.displacement[~frac] == 0)


def test_limb_labels_part_fracture(limb64):
    b = limb64
    _check_batch(b)
    assert b.class_names == tuple(sorted(f"{p}_{s}" for p in LIMB_PARTS for s in ("fracture", "normal")))
    assert np.all(np.bincount(b.labels, minlength=len(b.class_names)) == 2)
    for col in ("patient_id", "part", "fracture", "fracture_type", "displacement", "angulation", "seed"):
        assert col in b.meta
    assert set(b.meta.fracture_type) <= set(ph.LIMB_FRACTURE_TYPES) | {"none"}


def test_limb_labels_part_and_fracture_modes():
    b = render_limb(3, image_size=32, seed=0, labels="part")
    _check_batch(b)
    assert b.class_names == tuple(sorted(LIMB_PARTS))
    assert np.all(np.bincount(b.labels) == 3)
    assert np.all(b.meta.groupby("part").fracture.sum() == 1)  # per_class // 2 fractured
    assert np.array_equal(np.array(b.class_names)[b.labels], b.meta.part.to_numpy())
    f = render_limb(4, image_size=32, seed=0, labels="fracture")
    _check_batch(f)
    assert f.class_names == ("fracture", "normal")
    assert np.all(np.bincount(f.labels) == 4)
    assert np.all(f.meta.groupby(["fracture", "part"]).size() == 1)  # parts round robin


def test_pelvic_labels_and_meta(pelvic64):
    b = pelvic64
    _check_batch(b)
    assert b.class_names == PELVIC_CLASSES
    frac = b.meta.fracture.to_numpy(bool)
    assert set(b.meta.side[frac]) <= {"left", "right"}
    assert set(b.meta.side[~frac]) == {"none"}
    assert set(b.meta.fracture_type[frac]) <= set(ph.PELVIC_FRACTURE_TYPES)
    for col in ("patient_id", "side", "fracture_type", "displacement", "seed", "difficulty"):
        assert col in b.meta


def test_fracture_rate():
    b = render_pelvic(60, image_size=32, seed=3, fracture_rate=0.3)
    assert int((b.labels == 0).sum()) == 18
    assert render_pelvic(5, image_size=32, fracture_rate=0.0).labels.tolist() == [1] * 5
    assert render_pelvic(5, image_size=32, fracture_rate=1.0).labels.tolist() == [0] * 5
    sides = render_pelvic(40, image_size=32, seed=4, fracture_rate=1.0).meta.side
    assert 5 < (sides == "left").sum() < 35  # both sides occur


@pytest.mark.parametrize("call, param", [
    (lambda: render_pelvic(4, fracture_rate=1.5), "fracture_rate"),
    (lambda: render_pelvic(0), "n"),
    (lambda: render_pelvic(4, difficulty=0), "difficulty"),
    (lambda: render_pelvic(4, seed=-1), "seed"),
    (lambda: render_limb(2, labels="foo"), "labels"),
    (lambda: render_limb(0), "per_class"),
    (lambda: render_limb(2, image_size=100), "image_size"),
    (lambda: render_pair("elbow"), "part"),
])
def test_bad_arguments(call, param):
    with pytest.raises(ConfigError) as e:
        call()
    msg = str(e.value)
    assert param in msg and "\n" not in msg


def test_write_dataset_round_trip(tmp_path, pelvic64):
    out = write_dataset(pelvic64, tmp_path / "pelvic")
    man = pd.read_csv(out / "manifest.csv")
    assert list(man.columns[:3]) == ["path", "label", "patient_id"]
    assert {"side", "fracture_type", "displacement"} <= set(man.columns)
    assert len(man) == len(pelvic64)
    for i, row in man.iterrows():
        assert not row.path.startswith("/") and row.path.split("/")[0] == row.label
        im = Image.open(out / row.path)
        assert im.mode == "L" and im.size == (64, 64)
        expect = np.clip(np.rint(pelvic64.images[i] * 255), 0, 255).astype(np.uint8)
        assert np.array_equal(np.asarray(im), expect)
    # rewriting replaces the dataset; a foreign non-empty folder is refused
    write_dataset(pelvic64, out)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("x")
    with pytest.raises(ConfigError, match="out_dir"):
        write_dataset(pelvic64, tmp_path / "other")


def test_cli_entry_points(tmp_path):
    p = write_limb_dataset(tmp_path / "limb", per_class=1, image_size=32, seed=0, labels="fracture")
    assert sorted(d.name for d in p.iterdir() if d.is_dir()) == ["fracture", "normal"]
    q = write_pelvic_dataset(tmp_path / "pel", n=4, fracture_rate=0.5, image_size=32, seed=0)
    assert len(pd.read_csv(q / "manifest.csv")) == 4


def test_physics_bone_brighter_than_soft_tissue_brighter_than_air():
    keys = [(KIND_LIMB, LIMB_PARTS.index("forearm"), 0, k) for k in range(6)]
    img, _, maps = _render("limb", "forearm", keys, np.zeros(6, bool), 64, 0, 1.0, maps=True)
    field = maps["field"]
    bone = field & (maps["bone"] > 0.3)
    soft = field & (maps["bone"] <= 0.0) & (maps["P"] > 0.6)
    air = field & (maps["P"] <= 0.0)
    for i in range(len(img)):
        b, s, a = (float(np.median(img[i][m[i]])) for m in (bone, soft, air))
        assert b > s + 0.1 > a + 0.1, (i, b, s, a)
    # display is monotone in attenuation inside the field (bone is white, air is black)
    for i in range(len(img)):
        r = np.corrcoef(img[i][field[i]], maps["P"][i][field[i]])[0, 1]
        assert r > 0.8


@pytest.mark.parametrize("part", ["pelvic", "forearm", "lower_leg"])
def test_fracture_changes_image_at_the_fracture(part):
    fr, nm = render_pair(part, n=6, image_size=64, seed=0, difficulty=0.5)
    assert fr.meta.fracture.all() and not nm.meta.fracture.any()
    assert np.array_equal(fr.meta.patient_id, nm.meta.patient_id)
    S = 64
    yy, xx = np.mgrid[0:S, 0:S]
    for i in range(len(fr)):
        d = np.abs(fr.images[i] - nm.images[i])
        x, y = fr.meta.frac_x[i] * S, fr.meta.frac_y[i] * S
        near = (xx - x) ** 2 + (yy - y) ** 2 <= 4.0**2
        assert d[near].max() > 0.05, (part, i)  # the break is visible where meta says
        # The rest is the same patient: away from the break the two images agree up to the display
        # window, which the image chain sets from each image's own histogram (two different
        # patients correlate at about 0.3).
        far = (xx - x) ** 2 + (yy - y) ** 2 > 8.0**2
        assert np.corrcoef(fr.images[i][far], nm.images[i][far])[0, 1] > 0.8, (part, i)


def test_difficulty_makes_fractures_subtler():
    easy = render_pelvic(60, image_size=32, seed=0, fracture_rate=1.0, difficulty=0.5)
    hard = render_pelvic(60, image_size=32, seed=0, fracture_rate=1.0, difficulty=2.0)
    assert easy.meta.displacement.median() > hard.meta.displacement.median()
    assert easy.meta.severity.mean() > hard.meta.severity.mean()
