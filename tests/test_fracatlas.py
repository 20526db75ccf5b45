"""The FracAtlas data layer: the import of the shared copy, its defect report, zip input, bad input, an interrupted
import, the resumable download from a loopback server, full-size images through the loaders, boxes in stored pixels.

The shared copy is `$HIPAUG_FRACATLAS`, else `../shared/fracatlas` beside the repository; without it the tests that
need it skip with one line saying where they looked (CI fails on that skip: scripts/check_no_skips.py).
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import threading
import zipfile
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hipaug.cli import main
from hipaug.data import boxes_on_square, check_pelvic, import_release, load_dataset
from hipaug.data.fracatlas import LIMB_CLASSES, LIMB_PARTS, RECORD_NAME
from hipaug.data.fracatlas_fetch import ResumingDownloader
from hipaug.data.fracatlas_release import COCO_PATH, COLUMNS
from hipaug.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ["HIPAUG_FRACATLAS"]) if os.environ.get("HIPAUG_FRACATLAS") else ROOT.parent / "shared" / "fracatlas"
FULL_SIZE = ("IMG0002180.jpg", "IMG0000097.jpg")  # the two originals the shared copy keeps as released


@pytest.fixture(scope="module")
def shared() -> Path:
    """The shared copy's release folder (the one holding dataset.csv); skip in one line when it is absent."""
    for root in (SHARED / "FracAtlas", SHARED):
        if (root / "dataset.csv").is_file():
            return root
    pytest.skip(f"no FracAtlas copy at {SHARED} or {SHARED / 'FracAtlas'} (set HIPAUG_FRACATLAS)")


@pytest.fixture(scope="module")
def imported(shared, tmp_path_factory):
    """The shared copy imported once: (report, out)."""
    out = tmp_path_factory.mktemp("fracatlas") / "out"
    return import_release(shared, out), out


@pytest.fixture(scope="module")
def table(shared) -> pd.DataFrame:
    return pd.read_csv(shared / "dataset.csv").set_index("image_id")


def expected_set(row) -> str | None:
    """The multi-part rule, written again from its docstring: 'hip/<label>', 'limb/<part>_<label>' or None."""
    label = "fracture" if row["fractured"] else "normal"
    if row["hip"]:
        return f"hip/{label}"
    limb = [p for p in ("hand", "leg", "shoulder") if row[p]]
    return f"limb/{limb[0]}_{label}" if len(limb) == 1 else None


def manifest(out: Path, which: str) -> pd.DataFrame:
    return pd.read_csv(out / which / "manifest.csv")


def left_out_names(report) -> set[str]:
    """File names the report says are skipped or left out (by any rule that names the file)."""
    return {Path(d.file).name for d in report.defects if d.action.startswith(("skipped", "left out"))}


# ------------------------------------------------------------------ the shared copy
@pytest.mark.slow
def test_class_counts_follow_dataset_csv(imported, table):
    report, out = imported
    left = left_out_names(report)
    want = Counter(s for name, s in ((n, expected_set(r)) for n, r in table.iterrows()) if s and name not in left)
    got = Counter(f"{w}/{lab}" for w in ("limb", "hip") for lab in manifest(out, w)["label"])
    assert got == want
    assert report.limb_counts == {k.split("/")[1]: v for k, v in sorted(want.items()) if k.startswith("limb/")}
    assert report.hip_counts == {k.split("/")[1]: v for k, v in sorted(want.items()) if k.startswith("hip/")}
    assert set(report.limb_counts) == set(LIMB_CLASSES) and set(report.hip_counts) == {"fracture", "normal"}


@pytest.mark.slow
def test_hip_images_never_in_the_limb_set_and_flags_are_carried(imported, table):
    _, out = imported
    limb, hip = manifest(out, "limb"), manifest(out, "hip")
    assert not set(limb["image_id"]) & set(table.index[table["hip"] == 1])
    assert (table.loc[hip["image_id"], "hip"] == 1).all()
    rows = table.loc[limb["image_id"]]
    assert (rows[list(LIMB_PARTS)].sum(axis=1) == 1).all() and (rows["hip"] == 0).all()
    for df in (limb, hip):
        assert all(Path(p).is_absolute() and Path(p).is_file() for p in df["path"])
        assert (df["patient_id"] == df["image_id"]).all() and df["image_id"].is_unique
        flags = ["hardware", "multiscan", "frontal", "lateral", "oblique", "fractured", "fracture_count", "mixed"]
        assert (df[flags].to_numpy() == table.loc[df["image_id"], flags].to_numpy()).all()
        assert ((df["label"].str.endswith("fracture")) == (df["fractured"] == 1)).all()
    assert (limb["part"] + "_" + limb["label"].str.split("_").str[1] == limb["label"]).all()


@pytest.mark.slow
def test_defect_report_names_the_real_defects(imported, shared):
    from PIL import Image

    report, out = imported
    by_file = {}
    for d in report.defects:
        by_file.setdefault(d.file, []).append(d)
    # Truncation: every file the report calls unreadable fails a full PIL decode, and every other one decodes.
    unreadable = {d.file for d in report.defects if d.kind == "unreadable"}
    failing = set()
    for f in sorted((shared / "images").glob("*/*")):
        try:
            with Image.open(f) as im:
                im.load()
        except OSError:
            failing.add(f.relative_to(shared).as_posix())
    assert unreadable == failing and failing
    assert {d.kind for d in by_file["images/Fractured/IMG0003298.jpg"]} == {"label_disagreement", "annotation"}
    dup = by_file["images/Fractured/IMG0002299.jpg"]
    assert dup[0].kind == "duplicate_bytes" and "IMG0000261.jpg" in dup[0].detail
    # identical pixels under both labels: both copies are left out
    for name in ("images/Fractured/IMG0002886.jpg", "images/Non_fractured/IMG0004243.jpg"):
        assert any(d.kind.startswith("duplicate") and "different classes" in d.action for d in by_file[name])
    names = set(manifest(out, "limb")["image_id"]) | set(manifest(out, "hip")["image_id"])
    assert not names & {"IMG0003298.jpg", "IMG0002299.jpg", "IMG0002886.jpg", "IMG0004243.jpg"}
    assert not names & {Path(f).name for f in unreadable}
    text = (out / "defects.txt").read_text()
    assert text == report.text and all(d.line() in text for d in report.defects)
    modes = re.search(r"PIL modes: (.*) \(total (\d+)\)", text)
    assert int(modes.group(2)) == len(list((shared / "images").glob("*/*"))) - len(unreadable)
    assert re.search(r"width min \d+, median \d+, max \d+; height min \d+, median \d+, max \d+", text)
    assert re.search(r"downscaled \d+ .*full size \d+", text)
    card = (out / "card.md").read_text()
    assert "10.6084/m9.figshare.22363012" in card and "CC BY 4.0" in card and "10.1038/s41597-023-02432-4" in card
    assert f"| hip flag only | {report.rule_counts['hip flag only']} |" in card


@pytest.mark.slow
def test_full_size_images_load_through_the_loaders(imported, capsys):
    _, out = imported
    ds = load_dataset(out / "hip", image_size=64)
    assert check_pelvic(ds, "fracture") == ds.class_names.index("fracture")
    source = {Path(p).name: s for p, s in zip(ds.paths, ds.source)}
    for name in FULL_SIZE:
        if name in set(manifest(out, "hip")["image_id"]):
            assert name in source
    if "IMG0000097.jpg" in source:
        assert source["IMG0000097.jpg"][:2] == (2880, 2304)
    assert f"| fingerprint | {ds.fingerprint[:12]} |" in (out / "card.md").read_text()  # the card saw the loader's pixels
    assert main(["data", "check", str(out / "hip"), "--pelvic"]) == 0
    assert "fracture" in capsys.readouterr().out


@pytest.mark.slow
def test_boxes_are_scaled_to_the_stored_file(imported, shared):
    from PIL import Image, ImageOps

    _, out = imported
    boxes = pd.read_csv(out / "hip" / "boxes.csv")
    coco = json.loads((shared / COCO_PATH).read_text())
    ids = {im["file_name"]: im for im in coco["images"]}
    scaled = 0
    for name, rows in boxes.groupby("image_id"):
        im = ids[name]
        with Image.open(rows["path"].iloc[0]) as f:
            w, h = ImageOps.exif_transpose(f).size
        assert (rows["width"] == w).all() and (rows["height"] == h).all()
        want = np.array([[x * w / im["width"], y * h / im["height"], (x + bw) * w / im["width"], (y + bh) * h / im["height"]]
                         for a in coco["annotations"] if a["image_id"] == im["id"] for x, y, bw, bh in [a["bbox"]]])
        got = rows.sort_values("box")[["x0", "y0", "x1", "y1"]].to_numpy()
        assert np.allclose(got, np.clip(want, 0, [w, h, w, h]), atol=0.01), name
        scaled += (w, h) != (im["width"], im["height"])
    assert scaled, "no downscaled hip image with boxes to check the scaling on"
    if "IMG0002180.jpg" in set(boxes["image_id"]):  # kept as released: its boxes are the COCO ones
        assert (boxes.loc[boxes["image_id"] == "IMG0002180.jpg", "width"] == ids["IMG0002180.jpg"]["width"]).all()
    sq = boxes_on_square(boxes, 64)
    assert ((sq[["x0", "y0", "x1", "y1"]] >= 0) & (sq[["x0", "y0", "x1", "y1"]] <= 64)).all(axis=None)


# ------------------------------------------------------------------ a subset of the shared copy, as a folder and a zip
@pytest.fixture(scope="module")
def subset(shared, table, tmp_path_factory) -> tuple[Path, Path, bytes]:
    """About 60 images of the shared copy with a consistent dataset.csv and COCO JSON: (folder, zip, zip bytes)."""
    picks = [n for n in FULL_SIZE + ("IMG0004028.jpg", "IMG0000261.jpg", "IMG0002299.jpg", "IMG0003298.jpg")
             if n in table.index]
    sets = {n: expected_set(r) for n, r in table.iterrows()}
    for s in sorted(set(sets.values()) - {None}):
        picks += [n for n, v in sets.items() if v == s and n not in picks][:6]
    base = tmp_path_factory.mktemp("subset")
    root = base / "folder" / "FracAtlas"
    files = {f.name: f for f in (shared / "images").glob("*/*")}
    for n in picks:
        dest = root / files[n].relative_to(shared)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(files[n], dest)
    table.loc[picks].reset_index()[list(COLUMNS)].to_csv(root / "dataset.csv", index=False)
    coco = json.loads((shared / COCO_PATH).read_text())
    keep = {im["id"] for im in coco["images"] if im["file_name"] in picks}
    coco["images"] = [im for im in coco["images"] if im["id"] in keep]
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
    (root / COCO_PATH).parent.mkdir(parents=True)
    (root / COCO_PATH).write_text(json.dumps(coco))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for f in sorted(root.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(root.parent).as_posix())
    (base / "FracAtlas.zip").write_bytes(buf.getvalue())
    return root, base / "FracAtlas.zip", buf.getvalue()


def relative(out: Path, which: str, release: Path) -> pd.DataFrame:
    df = manifest(out, which)
    df["path"] = [Path(p).relative_to(release).as_posix() for p in df["path"]]
    return df


def test_zip_gives_the_same_sets_as_the_folder(subset, tmp_path):
    folder, zpath, _ = subset
    a = import_release(folder, tmp_path / "from-folder")
    b = import_release(zpath, tmp_path / "from-zip")
    assert b.release == tmp_path / "from-zip" / "release" / "FracAtlas" and a.release == folder.resolve()
    for which in ("limb", "hip"):
        assert relative(a.out, which, a.release).equals(relative(b.out, which, b.release))
        assert all(Path(p).is_file() for p in manifest(b.out, which)["path"])
    ba, bb = (pd.read_csv(r.out / "hip" / "boxes.csv") for r in (a, b))
    assert ba.drop(columns="path").equals(bb.drop(columns="path")) and len(ba)
    assert a.text.replace(str(a.release), "R") == b.text.replace(str(b.release), "R")
    assert "images/Non_fractured/IMG0004028.jpg" in {d.file for d in b.defects if d.kind == "unreadable"}


# ------------------------------------------------------------------ a tiny fake release with seeded defects
def _jpeg(seed: int, mode: str = "L") -> bytes:
    from PIL import Image

    rng = np.random.default_rng(seed)
    a = (rng.random((50, 40)) * 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).convert(mode).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def _row(image_id: str, parts: tuple[str, ...], fractured: int, **kw) -> dict:
    row = {c: 0 for c in COLUMNS}
    row.update(image_id=image_id, fractured=fractured, fracture_count=fractured, frontal=1, mixed=int(len(parts) > 1))
    row.update({p: 1 for p in parts}, **kw)
    return row


def fake_release(where: Path, n_good: int = 24, missing: int = 1) -> Path:
    """A release folder with seeded defects: truncated, label disagreement, byte and pixel copies, missing, unlisted,
    a repeated row, a two-limb-part image and a hip+leg image."""
    from PIL import Image

    root = where / "FracAtlas"
    for f in ("Fractured", "Non_fractured"):
        (root / "images" / f).mkdir(parents=True)
    rows = []

    def put(name: str, data: bytes, row: dict | None, folder: str | None = None):
        folder = folder or ("Fractured" if row and row["fractured"] else "Non_fractured")
        (root / "images" / folder / name).write_bytes(data)
        if row:
            rows.append(row)

    parts = ("hand", "leg", "shoulder", "hip")
    for i in range(n_good):  # every class of both sets
        put(f"G{i:02d}.jpg", _jpeg(i), _row(f"G{i:02d}.jpg", (parts[(i // 2) % 4],), i % 2))
    put("T.jpg", _jpeg(100)[:-600], _row("T.jpg", ("hand",), 0))  # truncated
    put("D.jpg", _jpeg(101), _row("D.jpg", ("leg",), 0), folder="Fractured")  # folder says fractured, flag says not
    put("Z.jpg", (root / "images/Non_fractured/G00.jpg").read_bytes(), _row("Z.jpg", ("hand",), 0))  # byte copy of G00
    g01 = np.asarray(Image.open(root / "images/Fractured/G01.jpg"))
    png = io.BytesIO()
    Image.fromarray(g01).save(png, format="PNG")
    put("P.png", png.getvalue(), _row("P.png", ("hand",), 1))  # pixel copy of G01
    put("U.jpg", _jpeg(102), None, folder="Non_fractured")  # no row
    put("X.jpg", _jpeg(103), _row("X.jpg", ("hand", "leg"), 0))  # two limb parts: left out by the rule
    put("H.jpg", _jpeg(104), _row("H.jpg", ("hip", "leg"), 1))  # hip and leg: hip set
    put("B.jpg", _jpeg(105), _row("B.jpg", ("hand",), 0, hardware="yes"))  # a flag that is not 0/1
    put("Q.jpg", _jpeg(106), _row("Q.jpg", ("leg",), 0, mixed=1))  # mixed, yet one part: the part flags decide
    rows += [_row(f"M{i}.jpg", ("hand",), 0) for i in range(missing)]  # rows naming no image
    rows.append(dict(rows[2]))  # G02's row again
    pd.DataFrame(rows, columns=list(COLUMNS)).to_csv(root / "dataset.csv", index=False)
    return root


def test_fake_release_defects_are_reported_by_file(tmp_path):
    root = fake_release(tmp_path / "src")
    report = import_release(root, tmp_path / "out")
    found = {(d.kind, d.file): d for d in report.defects}
    assert found["unreadable", "images/Non_fractured/T.jpg"].action == "skipped"
    assert found["label_disagreement", "images/Fractured/D.jpg"].action == "left out"
    copy = found["duplicate_bytes", "images/Non_fractured/Z.jpg"]
    assert copy.action == "left out (copy of images/Non_fractured/G00.jpg)"
    assert found["duplicate_pixels", "images/Fractured/P.png"].action == "left out (copy of images/Fractured/G01.jpg)"
    assert ("missing_image", "M0.jpg") in found and ("unlisted_image", "images/Non_fractured/U.jpg") in found
    assert any(k == "duplicate_row" and "G02.jpg" in d.detail for (k, _), d in found.items())
    assert any(k == "bad_row" and "hardware='yes'" in d.detail for (k, _), d in found.items())
    assert found["part_flags", "images/Non_fractured/Q.jpg"].action.startswith("kept")
    limb, hip = (set(manifest(tmp_path / "out", w)["image_id"]) for w in ("limb", "hip"))
    assert {"G00.jpg", "G01.jpg", "G02.jpg", "Q.jpg"} <= limb
    assert not limb & {"T.jpg", "D.jpg", "Z.jpg", "P.png", "U.jpg", "X.jpg", "B.jpg"}
    assert "H.jpg" in hip and "H.jpg" not in limb
    assert report.rule_counts["several limb parts, no hip: left out"] == 1
    text = (tmp_path / "out" / "defects.txt").read_text()
    assert "images/Non_fractured/T.jpg: truncated image" in text
    assert json.loads((tmp_path / "out" / RECORD_NAME).read_text())["findings"]["unreadable"] == 1


# ------------------------------------------------------------------ bad input: one line, exit 2
def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("hipaug: error: ")]
    assert len(err) == 1, err
    return err[0]


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    out = tmp_path / "out"
    notzip = tmp_path / "FracAtlas.zip"
    notzip.write_text("not a zip")
    assert main(["data", "fracatlas", str(notzip), "--out", str(out)]) == 2
    assert str(notzip) in _one_error_line(capsys)
    other = tmp_path / "other.zip"
    with zipfile.ZipFile(other, "w") as zf:
        zf.writestr("something/readme.txt", "hello")
    assert main(["data", "fracatlas", str(other), "--out", str(out)]) == 2
    assert f"{other}: no dataset.csv" in _one_error_line(capsys)
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    assert main(["data", "fracatlas", str(empty), "--out", str(out)]) == 2
    assert f"{empty}: no dataset.csv" in _one_error_line(capsys)
    root = fake_release(tmp_path / "mostly-missing", n_good=4, missing=20)
    assert main(["data", "fracatlas", str(root), "--out", str(out)]) == 2
    line = _one_error_line(capsys)
    assert str(root / "dataset.csv") in line and "rows name images that are not" in line
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".out.")]


def test_an_interrupted_import_leaves_the_previous_one(tmp_path, monkeypatch):
    import hipaug.data.fracatlas as fa

    root = fake_release(tmp_path / "src")
    out = tmp_path / "out"
    import_release(root, out)
    before = {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()}

    def boom(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(fa, "card_markdown", boom)  # after the manifests, before the card
    for target in (out, tmp_path / "fresh"):
        with pytest.raises(RuntimeError, match="interrupted"):
            import_release(root, target)
    assert {p.relative_to(out): p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "fresh").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "src"]  # no temporary folder left
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not a FracAtlas import"):
        import_release(root, tmp_path / "mine")


# ------------------------------------------------------------------ the download, from a loopback server
class LoopbackServer:
    """Serve one payload over HTTP on 127.0.0.1: the first `cuts` responses break off after `cut_at` bytes,
    then it honours Range requests. `ranges` records each request's Range header."""

    def __init__(self, payload: bytes, cut_at: int = 0, cuts: int = 0):
        self.payload, self.cut_at, self.cuts, self.ranges = payload, cut_at, cuts, []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):
                rng = self.headers.get("Range")
                server.ranges.append(rng)
                data, start = server.payload, int(re.match(r"bytes=(\d+)-", rng).group(1)) if rng else 0
                self.send_response(206 if rng else 200)
                if rng:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                if server.cuts > 0:
                    server.cuts -= 1
                    self.wfile.write(data[start:start + server.cut_at])
                    self.close_connection = True
                    return
                self.wfile.write(data[start:])

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/FracAtlas.zip"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)


def test_fetch_resumes_a_broken_download_and_checks_the_content(subset, tmp_path, capsys):
    _, _, payload = subset
    cut = len(payload) // 3
    with LoopbackServer(payload, cut_at=cut, cuts=1) as srv:  # the first response breaks off; the retry resumes
        assert main(["data", "fetch", "fracatlas", "--out", str(tmp_path / "a"), "--url", srv.url]) == 0
        assert len(srv.ranges) == 2 and srv.ranges[0] is None
        assert 0 < int(re.fullmatch(r"bytes=(\d+)-", srv.ranges[1]).group(1)) <= cut  # resumed, not restarted
    assert (tmp_path / "a" / "FracAtlas.zip").read_bytes() == payload
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["FracAtlas.zip"]
    assert "FracAtlas.zip" in capsys.readouterr().out
    # a broken download left by an earlier run is resumed by the next one
    part = tmp_path / "b" / "FracAtlas.zip.part"
    part.parent.mkdir()
    with LoopbackServer(payload, cut_at=cut, cuts=1) as srv:
        with pytest.raises(DataError, match="run again to resume"):
            ResumingDownloader(part, progress=False, attempts=1)(srv.url, str(tmp_path / "b" / "x"))
        have = part.stat().st_size
        assert 0 < have <= cut
        assert main(["data", "fetch", "fracatlas", "--out", str(tmp_path / "b"), "--url", srv.url]) == 0
        assert srv.ranges == [None, f"bytes={have}-"]
    assert (tmp_path / "b" / "FracAtlas.zip").read_bytes() == payload and not part.exists()


def test_fetch_refuses_a_download_that_is_not_the_release(tmp_path, capsys):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("FracAtlas/readme.txt", "not the release")
    with LoopbackServer(buf.getvalue()) as srv:
        assert main(["data", "fetch", "fracatlas", "--out", str(tmp_path), "--url", srv.url]) == 2
    assert "no dataset.csv" in _one_error_line(capsys)
    assert not (tmp_path / "FracAtlas.zip").exists() and (tmp_path / "FracAtlas.zip.rejected").exists()


# ------------------------------------------------------------------ CI's no-skip check
def test_check_no_skips_reads_junit_and_rs_output(tmp_path):
    import subprocess
    import sys

    script = ROOT / "scripts" / "check_no_skips.py"
    xml = ('<?xml version="1.0"?><testsuites><testsuite>'
           '<testcase classname="tests.test_fracatlas" name="test_a"/>'
           '<testcase classname="tests.test_fracatlas" name="test_b"><skipped type="pytest.skip" message="no copy"/></testcase>'
           '<testcase classname="tests.test_data" name="test_c"><skipped type="pytest.skip" message="x"/></testcase>'
           '</testsuite></testsuites>')
    cases = {"skip.xml": (xml, 1), "ok.xml": (xml.replace('<skipped type="pytest.skip" message="no copy"/>', ""), 0),
             "none.xml": (xml.replace("test_fracatlas", "test_other"), 1),
             "rs.txt": ("SKIPPED [3] tests/test_fracatlas.py:40: no FracAtlas copy\n1 passed, 3 skipped\n", 1)}
    for name, (text, status) in cases.items():
        (tmp_path / name).write_text(text)
        res = subprocess.run([sys.executable, str(script), str(tmp_path / name), "--file", "tests/test_fracatlas.py"],
                             capture_output=True, text=True)
        assert res.returncode == status, (name, res.stdout, res.stderr)
    # By default both files that need the copy are checked: the edition's tests missing from the report fail it.
    res = subprocess.run([sys.executable, str(script), str(tmp_path / "ok.xml")], capture_output=True, text=True)
    assert res.returncode == 1 and "tests/test_fracatlas_edition.py" in res.stderr
