"""Tests for hipaug.data: loading folders/manifests, decoding, cache, splits, cards."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from hipaug import data
from hipaug.data import loading
from hipaug.data import (
    DatasetCard,
    check_dataset,
    concat,
    dataset_card,
    decode_image,
    from_arrays,
    load_dataset,
    patient_kfold,
    patient_split,
    resize_pad,
    write_dataset,
)
from hipaug.cli import main
from hipaug.errors import ConfigError, DataError


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Keep caches inside tmp_path and progress bars quiet."""
    monkeypatch.delenv("HIPAUG_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))
    monkeypatch.setenv("HIPAUG_PROGRESS", "0")


# ------------------------------------------------------------------ helpers


def save_png(path: Path, arr: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path


def make_folder(root: Path, per_class: int = 4, size: int = 16, classes=("fracture", "normal"), seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    for c in classes:
        for i in range(per_class):
            save_png(root / c / f"img{i:02d}.png", rng.integers(0, 256, (size, size), dtype=np.uint8))
    return root


def write_dicom(path: Path, arr: np.ndarray, photometric: str = "MONOCHROME2", slope=None, intercept=None,
                center=None, width=None, bits_stored: int = 12) -> Path:
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID = meta.MediaStorageSOPClassUID
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.Modality = "CR"
    ds.PatientID = "P1"
    ds.Rows, ds.Columns = arr.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    if slope is not None:
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        ds.RescaleType = "US"
    if center is not None:
        ds.WindowCenter = center
        ds.WindowWidth = width
    ds.PixelData = np.ascontiguousarray(arr, dtype="<u2").tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(str(path), enforce_file_format=True)
    return path


def assert_data_error(fn, *names: str) -> str:
    with pytest.raises(DataError) as ei:
        fn()
    msg = str(ei.value)
    assert "\n" not in msg, msg
    for name in names:
        assert name in msg, msg
    return msg


# ------------------------------------------------------------------ loading layouts


def test_imagefolder_layout(tmp_path):
    root = make_folder(tmp_path / "ds", per_class=3)
    (root / "normal" / ".DS_Store").write_bytes(b"\0junk")  # hidden files are ignored
    (root / "README.md").write_text("top-level notes are ignored")
    ds = load_dataset(root, image_size=32, cache=False)
    assert ds.class_names == ("fracture", "normal")
    assert ds.images.shape == (6, 1, 32, 32) and ds.images.dtype == torch.float32
    assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.paths[0] == "fracture/img00.png" and ds.root == root
    assert float(ds.images.min()) >= 0.0 and float(ds.images.max()) <= 1.0
    assert list(ds.meta.columns) == ["path", "label", "patient_id"]
    assert ds.patient_ids == ds.paths  # no patient information: every image is its own patient
    assert ds.class_counts() == {"fracture": 3, "normal": 3}
    assert ds.skipped == () and len(ds.fingerprint) == 64 and "ImageDataset(n=6" in repr(ds)


def test_manifest_layout_wins_and_keeps_meta(tmp_path):
    root = make_folder(tmp_path / "ds", per_class=2, classes=("a", "b", "ignored"))
    outside = save_png(tmp_path / "elsewhere" / "x.png", np.full((16, 16), 7, np.uint8))
    rows = [
        ("a/img00.png", "fracture", "p1", "train", 1.5),
        ("./a/img01.png", "fracture", "p1", "train", 2.0),
        ("b/img00.png", "normal", "007", "test", 0.0),
        (str(outside), "normal", "p3", "test", 3.25),
    ]
    pd.DataFrame(rows, columns=["path", "label", "patient_id", "split", "displacement"]).to_csv(root / "manifest.csv", index=False)
    ds = load_dataset(root, image_size=32, cache=False)
    assert ds.class_names == ("fracture", "normal")
    assert ds.labels.tolist() == [0, 0, 1, 1]
    assert ds.paths[:3] == ("a/img00.png", "a/img01.png", "b/img00.png") and ds.paths[3] == str(outside)
    assert ds.patient_ids == ("p1", "p1", "007", "p3")  # ids stay text ("007" not 7)
    assert list(ds.meta.columns) == ["path", "label", "patient_id", "split", "displacement"]
    assert ds.meta["displacement"].dtype.kind == "f" and ds.meta["displacement"].tolist() == [1.5, 2.0, 0.0, 3.25]
    np.testing.assert_allclose(ds.images[3, 0].numpy(), 7 / 255, atol=1e-7)
    card = dataset_card(ds)
    assert card.split_counts == {"test": 2, "train": 2} and card.n_patients == 3


def test_manifest_without_patient_column(tmp_path):
    root = make_folder(tmp_path / "ds", per_class=1)
    (root / "manifest.csv").write_text("path,label\nfracture/img00.png,fracture\nnormal/img00.png,normal\n")
    ds = load_dataset(root, image_size=32, cache=False)
    assert ds.patient_ids == ds.paths


# ------------------------------------------------------------------ decoding


def test_png_8bit_exact(tmp_path):
    arr = np.arange(256, dtype=np.uint8).reshape(16, 16)
    out = decode_image(save_png(tmp_path / "g.png", arr))
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, arr.astype(np.float32) / 255.0)


def test_png_16bit_keeps_low_byte(tmp_path):
    vals = np.array([[0x1200, 0x1201, 0x12FF, 0xFFFF]], dtype=np.uint16)
    p = save_png(tmp_path / "g16.png", np.repeat(vals, 4, axis=0))
    with Image.open(p) as im:
        assert im.mode.startswith("I")
    out = decode_image(p)
    np.testing.assert_allclose(out[0], vals[0] / 65535.0, rtol=0, atol=1e-7)
    assert len(np.unique(out)) == 4  # values differing only in the low byte stay distinct
    # Through the loader (no resampling at native size) precision survives too.
    root = tmp_path / "ds"
    for c in ("a", "b"):
        save_png(root / c / "x.png", np.tile(np.array([0x1200, 0x1201], np.uint16), (32, 16)))
    ds = load_dataset(root, image_size=32, cache=False)
    np.testing.assert_allclose(ds.images[0, 0, 0, :2].numpy(), np.array([0x1200, 0x1201]) / 65535.0, atol=1e-7)


def test_colour_images_become_grey(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 255
    out = decode_image(save_png(tmp_path / "red.png", rgb))
    assert out.shape == (8, 8)
    np.testing.assert_allclose(out, 76 / 255.0, atol=1 / 255)  # ITU-R 601 luma of pure red
    rgba = np.dstack([np.full((8, 8, 3), 200, np.uint8), np.full((8, 8), 10, np.uint8)])
    np.testing.assert_allclose(decode_image(save_png(tmp_path / "rgba.png", rgba)), 200 / 255.0, atol=1e-6)
    pal = Image.fromarray(np.full((8, 8), 100, np.uint8)).convert("P")
    pal.save(tmp_path / "pal.png")
    np.testing.assert_allclose(decode_image(tmp_path / "pal.png"), 100 / 255.0, atol=1 / 255)
    Image.fromarray(np.full((8, 8, 3), 50, np.uint8)).save(tmp_path / "c.jpg", quality=95)
    np.testing.assert_allclose(decode_image(tmp_path / "c.jpg"), 50 / 255.0, atol=3 / 255)


def test_tiff_8_and_16_bit(tmp_path):
    a16 = np.array([[1000, 1001], [40000, 65535]], dtype=np.uint16)
    Image.fromarray(a16).save(tmp_path / "x.tif")
    np.testing.assert_allclose(decode_image(tmp_path / "x.tif"), a16 / 65535.0, atol=1e-7)
    a8 = np.array([[0, 128], [200, 255]], dtype=np.uint8)
    Image.fromarray(a8).save(tmp_path / "y.tiff")
    np.testing.assert_allclose(decode_image(tmp_path / "y.tiff"), a8 / 255.0, atol=1e-7)
    f = np.array([[-2.0, 0.0], [2.0, 6.0]], dtype=np.float32)  # float outside [0,1]: min-max
    Image.fromarray(f).save(tmp_path / "f.tif")
    np.testing.assert_allclose(decode_image(tmp_path / "f.tif"), [[0, 0.25], [0.5, 1.0]], atol=1e-6)


def test_dicom_monochrome2_and_monochrome1(tmp_path):
    arr = np.array([[0, 1000], [2000, 4000]], dtype=np.uint16)
    m2 = decode_image(write_dicom(tmp_path / "m2.dcm", arr))
    np.testing.assert_allclose(m2, arr / 4000.0, atol=1e-6)  # no VOI: per-image min-max
    m1 = decode_image(write_dicom(tmp_path / "m1.dcm", arr, photometric="MONOCHROME1"))
    np.testing.assert_allclose(m1, 1.0 - arr / 4000.0, atol=1e-6)  # inverted: bone bright


def test_dicom_rescale_and_window(tmp_path):
    # stored 500 -> -500 (below window), 800 -> 100 (centre), 1500 -> 1500 (above window)
    arr = np.array([[500, 800], [1500, 825]], dtype=np.uint16)
    p = write_dicom(tmp_path / "w.dcm", arr, slope=2, intercept=-1500, center=100, width=401)
    out = decode_image(p)
    assert out[0, 0] == 0.0 and out[1, 0] == 1.0
    assert abs(out[0, 1] - 0.5) < 0.01  # rescaled value at the window centre
    assert abs(out[1, 1] - (0.5 + 50 / 400)) < 0.01  # stored 825 -> 150: 50 units above centre
    # The same window on raw stored values (ignoring the rescale) would saturate everything.
    raw = decode_image(write_dicom(tmp_path / "raw.dcm", arr, center=100, width=401))
    assert np.all(raw == 1.0)
    # MONOCHROME1 inversion happens after windowing.
    inv = decode_image(write_dicom(tmp_path / "w1.dcm", arr, "MONOCHROME1", slope=2, intercept=-1500, center=100, width=401))
    np.testing.assert_allclose(inv, 1.0 - out, atol=1e-6)


def test_dicom_voi_lut_sequence_and_garbage(tmp_path):
    import pydicom
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    p = write_dicom(tmp_path / "voi.dcm", np.array([[0, 100], [200, 4095]], np.uint16))
    ds = pydicom.dcmread(p)
    item = Dataset()
    item.add_new(0x00283002, "US", [4096, 0, 12])  # LUT Descriptor: entries, first mapped, bits
    item.add_new(0x00283006, "US", [4095 - v for v in range(4096)])  # LUT Data: an inverting LUT
    ds.VOILUTSequence = Sequence([item])
    ds.save_as(p)
    np.testing.assert_allclose(decode_image(p), 1.0 - np.array([[0, 100], [200, 4095]]) / 4095.0, atol=1e-6)
    (tmp_path / "hello.dcm").write_bytes(b"hello")
    with pytest.raises(ValueError, match="not a DICOM file"):
        decode_image(tmp_path / "hello.dcm")


def test_dicom_in_folder_including_extensionless(tmp_path):
    root = tmp_path / "ds"
    write_dicom(root / "a" / "x.dcm", np.arange(16, dtype=np.uint16).reshape(4, 4) * 100)
    write_dicom(root / "b" / "IM0001", np.arange(16, dtype=np.uint16).reshape(4, 4)[::-1] * 100)
    ds = load_dataset(root, image_size=32, cache=False)
    assert len(ds) == 2 and ds.paths == ("a/x.dcm", "b/IM0001")


# ------------------------------------------------------------------ resize and pad


def test_resize_pad_keeps_aspect_wide_and_tall():
    wide = np.full((40, 80), 0.2, np.float32)
    wide[5:35, 5:75] = 0.9
    out = resize_pad(wide, 32)
    assert out.shape == (32, 32) and out.dtype == np.float32
    # 80x40 -> 32x16 content centred vertically; 8 padded rows on each side with the border median.
    np.testing.assert_allclose(out[:8], 0.2, atol=1e-6)
    np.testing.assert_allclose(out[24:], 0.2, atol=1e-6)
    assert out[16, 16] > 0.85 and out[8:24].mean() > 0.5
    tall = resize_pad(wide.T.copy(), 32)
    np.testing.assert_allclose(tall[:, :8], 0.2, atol=1e-6)
    np.testing.assert_allclose(tall[:, 24:], 0.2, atol=1e-6)
    np.testing.assert_allclose(tall, out.T, atol=1e-6)
    # Upscaling a small square image fills the canvas; values stay within [0, 1].
    small = resize_pad(np.eye(8, dtype=np.float32), 64)
    assert small.shape == (64, 64) and 0.0 <= small.min() and small.max() <= 1.0
    same = np.random.default_rng(0).random((32, 32)).astype(np.float32)
    np.testing.assert_array_equal(resize_pad(same, 32), same)  # no resampling at native size


def test_loader_resizes_non_square(tmp_path):
    root = tmp_path / "ds"
    save_png(root / "a" / "w.png", np.full((50, 100), 255, np.uint8))
    save_png(root / "b" / "t.png", np.full((100, 50), 255, np.uint8))
    ds = load_dataset(root, image_size=64, cache=False)
    assert ds.images.shape == (2, 1, 64, 64)
    assert float(ds.images.min()) == 1.0  # uniform image: pad value = its border median


# ------------------------------------------------------------------ bad input


def test_missing_root_and_empty_root(tmp_path):
    assert_data_error(lambda: load_dataset(tmp_path / "nope"), "nope", "does not exist")
    (tmp_path / "empty").mkdir()
    assert_data_error(lambda: load_dataset(tmp_path / "empty"), "empty", "no class folders")
    f = tmp_path / "file.png"
    f.write_bytes(b"x")
    assert_data_error(lambda: load_dataset(f), "file.png", "not a folder")
    loose = tmp_path / "loose"
    save_png(loose / "x.png", np.zeros((4, 4), np.uint8))
    assert_data_error(lambda: load_dataset(loose), "loose", "class folders")


def test_corrupt_and_truncated_images(tmp_path):
    root = make_folder(tmp_path / "ds", per_class=2, size=64)
    (root / "normal" / "zz_corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    assert_data_error(lambda: load_dataset(root, cache=False), "zz_corrupt.png")
    (root / "normal" / "zz_corrupt.png").unlink()
    good = (root / "normal" / "img00.png").read_bytes()
    (root / "normal" / "zz_trunc.png").write_bytes(good[: len(good) // 2])
    assert_data_error(lambda: load_dataset(root, cache=False), "zz_trunc.png")
    (root / "normal" / "zz_trunc.png").unlink()
    (root / "normal" / "zz_bad.dcm").write_bytes(b"not a dicom at all")
    assert_data_error(lambda: load_dataset(root, cache=False), "zz_bad.dcm")


def test_non_image_file_in_class_folder(tmp_path):
    root = make_folder(tmp_path / "ds", per_class=2)
    (root / "fracture" / "notes.txt").write_text("hello")
    assert_data_error(lambda: load_dataset(root, cache=False), "notes.txt", "not an image")


def test_empty_class_folder_and_single_class(tmp_path):
    root = make_folder(tmp_path / "ds", per_class=2)
    (root / "empty_class").mkdir()
    (root / "empty_class" / ".DS_Store").write_bytes(b"x")
    assert_data_error(lambda: load_dataset(root, cache=False, on_error="skip"), "empty_class", "empty")
    single = make_folder(tmp_path / "single", per_class=2, classes=("only",))
    assert_data_error(lambda: load_dataset(single, cache=False), "single", "'only'", "at least 2")
    assert len(load_dataset(single, cache=False, min_classes=1)) == 2


def test_manifest_problems(tmp_path):
    root = make_folder(tmp_path / "ds", per_class=1)
    m = root / "manifest.csv"
    m.write_text("path,label\nfracture/img00.png,fracture\nnormal/missing.png,normal\n")
    assert_data_error(lambda: load_dataset(root, cache=False), "missing.png", "does not exist")
    m.write_text("path,label\nfracture/img00.png,fracture\n./fracture/img00.png,normal\n")
    assert_data_error(lambda: load_dataset(root, cache=False), "manifest.csv", "duplicate", "img00.png")
    m.write_text("path,label\nfracture/img00.png,fracture\nnormal/img00.png,\n")
    assert_data_error(lambda: load_dataset(root, cache=False), "manifest.csv", "line 3", "empty label")
    m.write_text("path,patient_id\nfracture/img00.png,p1\nnormal/img00.png,p2\n")
    assert_data_error(lambda: load_dataset(root, cache=False), "manifest.csv", "no 'label' column")
    m.write_text("path,label,patient_id\nfracture/img00.png,fracture,\nnormal/img00.png,normal,p2\n")
    assert_data_error(lambda: load_dataset(root, cache=False), "manifest.csv", "empty patient_id")
    m.write_text("")
    assert_data_error(lambda: load_dataset(root, cache=False), "manifest.csv", "empty")
    m.write_text("path,label\n")
    assert_data_error(lambda: load_dataset(root, cache=False), "manifest.csv", "no rows")
    m.write_text("path,label\nfracture/img00.png,fracture\nnormal/img00.png,fracture\n")
    assert_data_error(lambda: load_dataset(root, cache=False), "found 1 class")


def test_bad_parameters(tmp_path):
    root = make_folder(tmp_path / "ds", per_class=1)
    with pytest.raises(ConfigError):
        load_dataset(root, image_size=48)
    with pytest.raises(ConfigError):
        load_dataset(root, on_error="ignore")


def test_skip_lists_every_bad_file(tmp_path):
    root = make_folder(tmp_path / "ds", per_class=3)
    (root / "fracture" / "notes.txt").write_text("hello")
    (root / "normal" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nxxxx")
    save_png(root / "loose.png", np.zeros((4, 4), np.uint8))
    ds = load_dataset(root, image_size=32, on_error="skip", cache=False)
    assert len(ds) == 6
    skipped = dict(ds.skipped)
    assert set(skipped) == {"fracture/notes.txt", "normal/broken.png", "loose.png"}
    assert "not an image" in skipped["fracture/notes.txt"] and "class folder" in skipped["loose.png"]
    text = dataset_card(ds).to_text()
    assert "skipped      3 file(s)" in text or "3 file(s)" in text
    for p in skipped:
        assert p in text and p in dataset_card(ds).to_markdown()
    # A class whose every file is bad is a structural problem even with skip.
    bad = make_folder(tmp_path / "bad", per_class=2)
    for f in (bad / "normal").iterdir():
        f.write_bytes(b"garbage")
    assert_data_error(lambda: load_dataset(bad, on_error="skip", cache=False), "'normal'", "no readable images")


# ------------------------------------------------------------------ cache


def test_cache_hit_skips_decoding(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "ds", per_class=3)
    first = load_dataset(root, image_size=32)
    assert list((root / ".hipaug_cache").glob("*.pt"))

    def boom(path):
        raise AssertionError(f"decoded {path} despite a valid cache")

    monkeypatch.setattr(loading, "read_image", boom)
    second = load_dataset(root, image_size=32)
    assert second.fingerprint == first.fingerprint and second.paths == first.paths
    assert torch.equal(second.images, first.images)
    assert second.source == first.source == ((16, 16, 8),) * 6  # source sizes and bit depths are cached too
    # The cache folder itself is never read as a class.
    assert second.class_names == ("fracture", "normal")


def test_stale_cache_is_redecoded(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "ds", per_class=3)
    first = load_dataset(root, image_size=32)
    calls = []
    real = data.read_image
    monkeypatch.setattr(loading, "read_image", lambda p: calls.append(p) or real(p))
    save_png(root / "normal" / "img00.png", np.full((16, 16), 9, np.uint8))
    st = (root / "normal" / "img00.png").stat()
    os.utime(root / "normal" / "img00.png", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    second = load_dataset(root, image_size=32)
    assert len(calls) == 6 and second.fingerprint != first.fingerprint
    np.testing.assert_allclose(second.images[3].numpy(), 9 / 255.0, atol=1e-7)
    calls.clear()
    os.utime(root / "fracture" / "img01.png", ns=(st.st_atime_ns, st.st_mtime_ns + 2 * 10**9))  # touch only
    load_dataset(root, image_size=32)
    assert len(calls) == 6
    calls.clear()
    load_dataset(root, image_size=64)  # another size: its own cache entry
    assert len(calls) == 6
    assert len(list((root / ".hipaug_cache").glob("*.pt"))) == 2  # old entry for size 32 replaced


def test_cache_locations(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "ds", per_class=2)
    monkeypatch.setenv("HIPAUG_CACHE", str(tmp_path / "mycache"))
    load_dataset(root, image_size=32)
    assert list((tmp_path / "mycache").glob("*.pt")) and not (root / ".hipaug_cache").exists()
    monkeypatch.delenv("HIPAUG_CACHE")
    monkeypatch.setattr(loading.os, "access", lambda *a, **k: False)  # as if root were read-only
    load_dataset(root, image_size=32)
    assert list((tmp_path / "xdg-cache" / "hipaug").glob("*.pt")) and not (root / ".hipaug_cache").exists()


def test_skip_policy_is_part_of_cache_key(tmp_path):
    root = make_folder(tmp_path / "ds", per_class=2)
    (root / "normal" / "notes.txt").write_text("x")
    assert len(load_dataset(root, image_size=32, on_error="skip").skipped) == 1
    assert_data_error(lambda: load_dataset(root, image_size=32), "notes.txt")
    assert len(load_dataset(root, image_size=32, on_error="skip").skipped) == 1  # cached, still listed


# ------------------------------------------------------------------ fingerprints, arrays, concat, round trip


def test_fingerprints(tmp_path):
    a = load_dataset(make_folder(tmp_path / "a", seed=1), image_size=32, cache=False)
    b = load_dataset(make_folder(tmp_path / "b", seed=1), image_size=32, cache=False)
    c = load_dataset(make_folder(tmp_path / "c", seed=2), image_size=32, cache=False)
    d = load_dataset(make_folder(tmp_path / "d", seed=1, classes=("fracture", "other")), image_size=32, cache=False)
    assert a.fingerprint == b.fingerprint
    assert a.fingerprint != c.fingerprint and a.fingerprint != d.fingerprint
    flipped = from_arrays(a.images, 1 - a.labels, a.class_names)
    assert flipped.fingerprint != from_arrays(a.images, a.labels, a.class_names).fingerprint
    assert from_arrays(a.images, a.labels, a.class_names).fingerprint == a.fingerprint  # content, not paths


def test_from_arrays_and_subset():
    rng = np.random.default_rng(0)
    meta = pd.DataFrame({"patient_id": [f"p{i // 2}" for i in range(6)], "side": list("LRLRLR")})
    ds = from_arrays(rng.random((6, 32, 32)), [0, 1, 0, 1, 0, 1], ("fracture", "normal"), meta=meta)
    assert ds.images.shape == (6, 1, 32, 32) and ds.patient_ids[:2] == ("p0", "p0")
    assert list(ds.meta.columns) == ["path", "label", "patient_id", "side"]
    sub = ds.subset([4, 1])
    assert sub.paths == (ds.paths[4], ds.paths[1]) and sub.meta["side"].tolist() == ["L", "R"]
    assert sub.fingerprint != ds.fingerprint and len(sub) == 2
    assert len(ds.subset(np.array([True, False] * 3))) == 3
    with pytest.raises(DataError):
        from_arrays(rng.random((2, 8, 8)) * 2 - 1, [0, 1], ("a", "b"))
    with pytest.raises(DataError):
        from_arrays(rng.random((2, 8, 8)), [0, 2], ("a", "b"))
    with pytest.raises(DataError):
        from_arrays(rng.random((2, 8, 6)), [0, 1], ("a", "b"))


def test_concat(tmp_path):
    rng = np.random.default_rng(0)
    a = from_arrays(rng.random((3, 32, 32)), [0, 1, 0], ("fracture", "normal"))
    b = from_arrays(rng.random((2, 32, 32)), [1, 1], ("fracture", "normal"),
                    meta=pd.DataFrame({"source": ["gan", "gan"]}), paths=["g/0", "g/1"])
    ab = concat(a, b)
    assert len(ab) == 5 and ab.labels.tolist() == [0, 1, 0, 1, 1] and ab.paths[-1] == "g/1"
    assert torch.equal(ab.images[3:], b.images) and "source" in ab.meta.columns
    c = from_arrays(rng.random((2, 32, 32)), [0, 1], ("fracture", "normal_hip"))
    assert_data_error(lambda: concat(a, c), "class names differ")
    e = from_arrays(rng.random((2, 64, 64)), [0, 1], ("fracture", "normal"))
    assert_data_error(lambda: concat(a, e), "image sizes differ")


def test_write_load_round_trip(tmp_path):
    rng = np.random.default_rng(3)
    meta = pd.DataFrame({"patient_id": ["p1", "p1", "p2", "p3"], "displacement": [0.5, 1.0, 0.0, 2.5]})
    ds = from_arrays(rng.random((4, 32, 32)).astype(np.float32), [0, 0, 1, 1], ("fracture", "normal"), meta=meta)
    out = write_dataset(ds, tmp_path / "out")
    man = pd.read_csv(out / "manifest.csv")
    assert list(man.columns) == ["path", "label", "patient_id", "displacement"]
    assert all(not Path(p).is_absolute() and (out / p).is_file() for p in man["path"])
    assert man["path"].tolist()[0] == "fracture/000000.png"  # from_arrays ids "mem/000000" -> stems
    back = load_dataset(out, image_size=32, cache=False)
    assert back.class_names == ds.class_names and torch.equal(back.labels, ds.labels)
    assert back.patient_ids == ds.patient_ids
    assert float((back.images - ds.images).abs().max()) <= 1 / 255 + 1e-6
    assert back.meta["displacement"].tolist() == [0.5, 1.0, 0.0, 2.5]
    # Colliding stems fall back to index names; a second round trip is stable.
    clash = from_arrays(ds.images, ds.labels, ds.class_names, paths=["x/a.png", "y/a.png", "b.png", "c.png"])
    out2 = write_dataset(clash, tmp_path / "out2")
    assert sorted(p.name for p in (out2 / "fracture").iterdir()) == ["000000.png", "000001.png"]
    again = load_dataset(write_dataset(back, tmp_path / "out3"), image_size=32, cache=False)
    assert torch.equal(again.images, back.images) and again.paths == back.paths


def test_write_dataset_is_atomic(tmp_path):
    rng = np.random.default_rng(4)
    ds = from_arrays(rng.random((4, 32, 32)).astype(np.float32), [0, 0, 1, 1], ("fracture", "normal"))
    out = write_dataset(ds, tmp_path / "out")
    (out / "stale.txt").write_text("x")
    write_dataset(ds.subset([0, 2]), out)  # an existing dataset folder is replaced, not added to
    assert not (out / "stale.txt").exists() and len(pd.read_csv(out / "manifest.csv")) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary or old folder left
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")
    with pytest.raises(ConfigError, match="out_dir") as ei:
        write_dataset(ds, foreign)
    assert "\n" not in str(ei.value) and sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    bad = from_arrays(ds.images[:2], [0, 1], (".hidden", "normal"))
    assert_data_error(lambda: write_dataset(bad, tmp_path / "bad"), ".hidden")
    assert not (tmp_path / "bad").exists()


def test_to_uint8_numpy_and_torch_agree():
    x = np.array([0.0, 0.5, 1.0, -0.2, 1.7, 63.75 / 255], dtype=np.float64)
    assert data.to_uint8(x).tolist() == [0, 128, 255, 0, 255, 64]
    y = np.random.default_rng(0).random((3, 16, 16), dtype=np.float32) * 1.2 - 0.1
    assert data.to_uint8(y).dtype == np.uint8
    assert np.array_equal(data.to_uint8(y), data.to_uint8(torch.from_numpy(y)))


# ------------------------------------------------------------------ patient-level splits


def grouped_dataset(n_patients: int = 40, seed: int = 0):
    rng = np.random.default_rng(seed)
    pids, labels = [], []
    for p in range(n_patients):
        lab = int(p % 4 == 0)  # 25% positive patients
        for _ in range(int(rng.integers(1, 4))):
            pids.append(f"pat{p:03d}")
            labels.append(lab)
    n = len(labels)
    return from_arrays(np.zeros((n, 32, 32), np.float32), labels, ("fracture", "normal"), patient_ids=pids)


def test_patient_kfold_grouped_and_stratified():
    ds = grouped_dataset()
    folds = patient_kfold(ds, k=5, seed=0)
    assert len(folds) == 5
    pids = np.asarray(ds.patient_ids)
    y = ds.labels.numpy()
    seen = np.zeros(len(ds), int)
    test_patients = []
    for tr, te in folds:
        assert tr.dtype == np.int64 and len(np.intersect1d(tr, te)) == 0 and len(tr) + len(te) == len(ds)
        assert not set(pids[tr]) & set(pids[te])  # no patient on both sides
        seen[te] += 1
        test_patients.append(set(pids[te]))
        assert abs(y[te].mean() - y.mean()) < 0.2  # stratification roughly holds
    assert np.all(seen == 1)  # every image in exactly one test fold
    for i in range(5):
        for j in range(i + 1, 5):
            assert not test_patients[i] & test_patients[j]
    again = patient_kfold(ds, k=5, seed=0)
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(folds, again))
    other = patient_kfold(ds, k=5, seed=1)
    assert any(not np.array_equal(a[1], b[1]) for a, b in zip(folds, other))


def test_patient_kfold_too_few_patients():
    ds = grouped_dataset(n_patients=12)  # 3 positive patients
    assert_data_error(lambda: patient_kfold(ds, k=5), "'normal'", "3 patient")
    with pytest.raises(ConfigError):
        patient_kfold(ds, k=1)


def test_patient_split():
    ds = grouped_dataset(n_patients=60)
    tr, va = patient_split(ds, val_fraction=0.2, seed=0)
    pids = np.asarray(ds.patient_ids)
    assert not set(pids[tr]) & set(pids[va]) and len(tr) + len(va) == len(ds)
    assert 0.1 < len(va) / len(ds) < 0.3
    assert set(ds.labels[va].tolist()) == {0, 1}
    tr2, va2 = patient_split(ds, val_fraction=0.2, seed=0)
    assert np.array_equal(va, va2)
    with pytest.raises(ConfigError):
        patient_split(ds, val_fraction=0.0)


# ------------------------------------------------------------------ cards


def test_dataset_card_and_check(tmp_path):
    root = make_folder(tmp_path / "ds", per_class=3)
    card = check_dataset(root, image_size=32)
    assert isinstance(card, DatasetCard)
    assert card.n_images == 6 and card.class_counts == {"fracture": 3, "normal": 3}
    assert card.image_size == 32 and card.n_patients == 6 and card.images_per_patient["max"] == 1
    assert 0.0 <= card.intensity["min"] <= card.intensity["mean"] <= card.intensity["max"] <= 1.0
    assert set(card.class_mean_intensity) == {"fracture", "normal"}
    json.dumps(card.to_dict())
    text = card.to_text()
    assert str(root) in text and "fracture 3" in text and card.fingerprint[:12] in text
    md = card.to_markdown()
    assert md.startswith("| field | value |") and "| fracture | 3 |" in md
    assert not (root / ".hipaug_cache").exists()  # check decodes everything and writes nothing
    (root / "normal" / "notes.txt").write_text("x")
    assert_data_error(lambda: check_dataset(root), "notes.txt")
    assert len(check_dataset(root, on_error="skip").skipped) == 1


# ------------------------------------------------------------------ source files and card warnings


def card_of(root: Path, **kw) -> DatasetCard:
    return dataset_card(load_dataset(root, image_size=32, cache=False, **kw))


def test_card_records_source_sizes_and_bit_depths(tmp_path):
    root = tmp_path / "ds"
    rng = np.random.default_rng(0)
    for i in range(3):
        save_png(root / "fracture" / f"f{i}.png", rng.integers(0, 256, (40, 30), dtype=np.uint8))
        save_png(root / "normal" / f"n{i}.png", rng.integers(0, 256, (40, 30), dtype=np.uint8))
    save_png(root / "normal" / "wide.png", rng.integers(0, 256, (20, 50), dtype=np.uint8))
    ds = load_dataset(root, image_size=32, cache=False)
    assert ds.source[0] == (40, 30, 8) and ds.source[-1] == (20, 50, 8)
    assert ds.subset([6, 0]).source == ((20, 50, 8), (40, 30, 8))
    assert concat(ds, ds).source == ds.source * 2
    assert from_arrays(ds.images, ds.labels, ds.class_names).source == ()  # in memory: no source files
    card = dataset_card(ds)
    assert card.source_sizes == {"40x30": 6, "20x50": 1} and card.bit_depths == {8: 7}
    assert card.warnings == ()
    text = card.to_text()
    assert "source files  7 file(s); size (h x w): 40x30 6, 20x50 1; bit depth: 8-bit 7" in text
    assert "warnings      none" in text and "warnings:" not in text
    assert "| source files |" in card.to_markdown() and "Warnings" not in card.to_markdown()
    json.dumps(card.to_dict())
    many = dataset_card(from_arrays(ds.images, ds.labels, ds.class_names))
    assert many.source_sizes == {} and "source files" not in many.to_text()


def test_card_summarises_many_sizes(tmp_path):
    root = tmp_path / "ds"
    for i, (h, w) in enumerate([(40, 30), (40, 30), (41, 30), (50, 60), (64, 20)]):
        save_png(root / ("a" if i % 2 else "b") / f"{i}.png", np.full((h, w), 10 * i, np.uint8))
    text = card_of(root).to_text()
    assert "4 sizes, height 40-64, width 20-60, most common 40x30 2" in text


def test_warning_identical_images_in_two_classes(tmp_path):
    root = make_folder(tmp_path / "ds", per_class=3)
    (root / "normal" / "copy.png").write_bytes((root / "fracture" / "img01.png").read_bytes())
    card = card_of(root)
    assert len(card.warnings) == 1
    (w,) = card.warnings
    assert "identical images in two classes" in w
    assert "fracture/img01.png (fracture)" in w and "normal/copy.png (normal)" in w
    assert w in card.to_text() and w in card.to_markdown()


def test_warning_identical_images_under_two_patients(tmp_path):
    root = make_folder(tmp_path / "ds", per_class=3)
    (root / "normal" / "again.png").write_bytes((root / "normal" / "img00.png").read_bytes())
    (w,) = card_of(root).warnings
    assert "different patients" in w and "normal/again.png and normal/img00.png (normal)" in w
    # One patient with two copies of an image is no fold leak: no warning.
    pd.DataFrame({"path": ["fracture/img00.png", "normal/img00.png", "normal/again.png"],
                  "label": ["fracture", "normal", "normal"], "patient_id": ["p1", "p2", "p2"]}).to_csv(root / "manifest.csv", index=False)
    assert card_of(root).warnings == ()


def test_warning_patient_in_two_classes(tmp_path):
    root = make_folder(tmp_path / "ds", per_class=2)
    pd.DataFrame({"path": ["fracture/img00.png", "fracture/img01.png", "normal/img00.png", "normal/img01.png"],
                  "label": ["fracture", "fracture", "normal", "normal"],
                  "patient_id": ["p1", "p7", "p7", "p2"]}).to_csv(root / "manifest.csv", index=False)
    (w,) = card_of(root).warnings
    assert "1 patient(s) have images in more than one class" in w and "patient p7: fracture, normal" in w


def test_warning_class_imbalance(tmp_path):
    root = make_folder(tmp_path / "ds", per_class=2)
    for i in range(2, 6):  # 6 vs 2: exactly the threshold, no warning
        save_png(root / "normal" / f"more{i}.png", np.full((16, 16), 20 * i, np.uint8))
    assert data.IMBALANCE_RATIO == 3.0 and card_of(root).warnings == ()
    save_png(root / "normal" / "more9.png", np.full((16, 16), 250, np.uint8))  # 7 vs 2
    (w,) = card_of(root).warnings
    assert "class sizes differ 3.5-fold (normal 7, fracture 2" in w


def test_warning_mixed_bit_depths(tmp_path):
    root = tmp_path / "ds"
    rng = np.random.default_rng(0)
    for i in range(2):
        save_png(root / "fracture" / f"f{i}.png", rng.integers(0, 256, (16, 16), dtype=np.uint8))
        save_png(root / "normal" / f"n{i}.png", rng.integers(0, 65536, (16, 16), dtype=np.uint16))
    save_png(root / "normal" / "n8.png", rng.integers(0, 256, (16, 16), dtype=np.uint8))
    card = card_of(root)
    assert card.bit_depths == {8: 3, 16: 2}
    (w,) = card.warnings
    assert "mixed bit depths" in w
    assert "8-bit 3 (fracture 2, normal 1; e.g. fracture/f0.png)" in w and "16-bit 2 (normal 2; e.g. normal/n0.png)" in w


def test_data_check_prints_warnings(tmp_path, capsys):
    root = make_folder(tmp_path / "ds", per_class=3)
    (root / "normal" / "copy.png").write_bytes((root / "fracture" / "img01.png").read_bytes())
    assert main(["data", "check", str(root), "--image-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "warnings      1" in out and "warnings:\n  - identical images in two classes" in out


def test_intensity_histograms_one_line_per_class(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from hipaug.book import plots

    ds = load_dataset(make_folder(tmp_path / "ds", per_class=2, classes=("a", "b", "c")), image_size=32, cache=False)
    fig = plots.intensity_histograms(ds, bins=20, title="t")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["a (2)", "b (2)", "c (2)"]
    assert len(ax.patches) == 3  # one step line (StepPatch) per class
    plots.plt.close(fig)


# ------------------------------------------------------------------ real DICOM files (shipped with pydicom)


def pydicom_file(name: str) -> Path:
    """A sample file from the pydicom wheel (never downloaded)."""
    import pydicom

    path = Path(pydicom.__file__).parent / "data" / "test_files" / name
    if not path.is_file():
        pytest.skip(f"{name} is not shipped with this pydicom")
    return path


def test_real_dicom_folder_through_loader_and_cli(tmp_path, capsys):
    import shutil

    import pydicom

    root = tmp_path / "dicom"
    (root / "ct").mkdir(parents=True), (root / "mr").mkdir()
    ct = shutil.copy(pydicom_file("CT_small.dcm"), root / "ct" / "CT_small.dcm")
    mr = shutil.copy(pydicom_file("MR_small.dcm"), root / "mr" / "MR_small.dcm")
    inv = pydicom.dcmread(mr)
    assert inv.PhotometricInterpretation == "MONOCHROME2"
    inv.PhotometricInterpretation = "MONOCHROME1"
    inv.save_as(root / "mr" / "MR_small_m1.dcm")

    # 16-bit CT (rescale, no window): per-image min-max of the modality values, every level kept.
    ref = pydicom.dcmread(ct)
    assert ref.BitsStored == 16
    arr, bits = data.read_image(ct)
    assert bits == 16 and arr.shape == (128, 128)
    hu = ref.pixel_array.astype(np.float64) * float(ref.RescaleSlope) + float(ref.RescaleIntercept)
    np.testing.assert_allclose(arr, (hu - hu.min()) / (hu.max() - hu.min()), atol=1e-6)
    assert len(np.unique(arr)) > 256 and len(np.unique(ref.pixel_array)) == len(np.unique(arr))  # not 8-bit

    # MONOCHROME1 is the inverse of the same pixels read as MONOCHROME2 (after the window).
    m2, m1 = decode_image(mr), decode_image(root / "mr" / "MR_small_m1.dcm")
    assert m2.std() > 0.05
    np.testing.assert_allclose(m1, 1.0 - m2, atol=1e-6)

    ds = load_dataset(root, image_size=64, cache=False)
    assert ds.class_names == ("ct", "mr") and ds.paths == ("ct/CT_small.dcm", "mr/MR_small.dcm", "mr/MR_small_m1.dcm")
    assert ds.source == ((128, 128, 16), (64, 64, 16), (64, 64, 16))
    np.testing.assert_allclose(ds.images[2, 0].numpy(), 1.0 - ds.images[1, 0].numpy(), atol=1e-6)
    assert len(torch.unique(ds.images[0])) > 256  # the 16-bit range survives the resize
    card = dataset_card(ds)
    assert card.bit_depths == {16: 3} and card.source_sizes == {"64x64": 2, "128x128": 1} and card.warnings == ()

    assert main(["data", "check", str(root), "--image-size", "64"]) == 0
    out = capsys.readouterr().out
    assert str(root) in out and "ct 1, mr 2" in out and "bit depth: 16-bit 3" in out and "warnings      none" in out


# ------------------------------------------------------------------ bad input: one line naming the path, exit 2


def _bad_pelvic_three_classes(tmp_path):
    return make_folder(tmp_path / "pelvis3", per_class=2, classes=("fracture", "normal", "unsure")), ["--pelvic"], ["pelvis3", "exactly 2 classes", "unsure"]


def _bad_pelvic_no_positive(tmp_path):
    return make_folder(tmp_path / "pelvisx", per_class=2, classes=("broken", "normal")), ["--pelvic"], ["pelvisx", "'fracture'", "broken, normal"]


def _bad_limb_one_class(tmp_path):
    return make_folder(tmp_path / "limb1", per_class=2, classes=("hand",)), [], ["limb1", "'hand'", "at least 2"]


def _bad_garbage_png(tmp_path):
    root = make_folder(tmp_path / "limbs", per_class=2)
    (root / "normal" / "scan.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    return root, [], [str(root / "normal" / "scan.png"), "not a readable image"]


def _bad_missing_folder(tmp_path):
    return tmp_path / "no_such_folder", [], [str(tmp_path / "no_such_folder"), "does not exist"]


@pytest.mark.parametrize("case", [_bad_pelvic_three_classes, _bad_pelvic_no_positive, _bad_limb_one_class,
                                  _bad_garbage_png, _bad_missing_folder])
def test_bad_folders_one_line_and_exit_2(case, tmp_path, capsys):
    root, flags, needles = case(tmp_path)
    positive = "fracture" if "--pelvic" in flags else None
    assert_data_error(lambda: check_dataset(root, image_size=32, positive_class=positive), *needles)
    capsys.readouterr()
    assert main(["data", "check", str(root), "--image-size", "32", *flags]) == 2
    cap = capsys.readouterr()
    assert cap.out == ""
    err = cap.err.strip()
    assert "\n" not in err and err.startswith("hipaug: error: "), err
    for needle in needles:
        assert needle in err, err


def test_pelvic_check_accepts_two_classes_with_the_positive_one(tmp_path, capsys):
    root = make_folder(tmp_path / "pelvis", per_class=2)
    assert check_dataset(root, image_size=32, positive_class="fracture").class_counts == {"fracture": 2, "normal": 2}
    assert main(["data", "check", str(root), "--image-size", "32", "--pelvic"]) == 0
    assert main(["data", "check", str(root), "--image-size", "32", "--pelvic", "--positive-class", "normal"]) == 0
    assert main(["data", "check", str(root), "--image-size", "32", "--pelvic", "--positive-class", "hip"]) == 2


def test_small_limb_classes_are_left_out_and_named():
    """`data.limb_min_per_class`: a class under the minimum leaves the set, labels are renumbered, its count returned."""
    from hipaug.data import drop_small_classes, from_arrays

    labels = np.array([0] * 5 + [1] * 2 + [2] * 6)
    ds = from_arrays(np.random.default_rng(0).random((len(labels), 8, 8)).astype("float32"), labels,
                     class_names=("a_fracture", "a_normal", "b_normal"))
    kept, small = drop_small_classes(ds, 3)
    assert small == {"a_normal": 2} and kept.class_names == ("a_fracture", "b_normal")
    assert kept.labels.tolist() == [0] * 5 + [1] * 6 and kept.class_counts() == {"a_fracture": 5, "b_normal": 6}
    assert kept.fingerprint and kept.fingerprint != ds.fingerprint
    assert drop_small_classes(ds, None) == (ds, {}) and drop_small_classes(ds, 2) == (ds, {})
