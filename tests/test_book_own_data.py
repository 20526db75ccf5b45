"""The book on your own radiographs: keys follow the data, bad input stops first, builds never mix.

These are the fast checks (no notebook runs): the whole custom book is built in
tests/test_docs_commands.py (slow tier).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from hipaug.book import build as book
from hipaug.cli import main as cli_main

ROOT = Path(__file__).resolve().parents[1]


def test_notebook_key_follows_data_and_folders():
    src = book.notebook_sources(ROOT)[0]
    params = {"profile": "smoke", "limb_dir": "/a", "pelvic_dir": "/b"}
    data = {"limb": "f1", "pelvic": "f2"}
    key = book.notebook_key(src, params, "lib", data)
    assert key == book.notebook_key(src, dict(params), "lib", dict(data)), "an unchanged folder is reused"
    assert key != book.notebook_key(src, params, "lib", {**data, "limb": "f3"}), "changed images re-execute"
    assert key != book.notebook_key(src, {**params, "limb_dir": "/c"}, "lib", data), "another folder re-executes"
    assert key != book.notebook_key(src, {"profile": "smoke"}, "lib"), "the phantom book has its own key"


# ------------------------------------------------------------------ bad input: one line, exit 2, nothing touched
def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".hipaug_cache", "manifest.csv"))
    return dst


def _bad_case(name: str, small_folders, tmp: Path) -> tuple[Path, Path, str]:
    """(limb_dir, pelvic_dir, text the one error line must contain) of a bad-input case."""
    limb, pelvic = small_folders
    if name == "pelvic-three-classes":
        p = _copy(pelvic, tmp / "pelvis3")
        shutil.copytree(p / "normal", p / "other")
        return limb, p, f"pelvic_dir='{p}': pelvic set must have exactly 2 classes, found 3"
    if name == "limb-one-class":
        one = tmp / "limb1"
        shutil.copytree(limb / "forearm_fracture", one / "forearm_fracture")
        return one, pelvic, f"limb_dir='{one}': the limb set needs at least 2 classes, found 1 (forearm_fracture)"
    if name == "unreadable-image":
        lb = _copy(limb, tmp / "limb-broken")
        bad = lb / "knee_normal" / "zz_broken.png"
        bad.write_bytes(b"\x89PNG\r\n\x1a\n this is not an image")
        return lb, pelvic, str(bad)
    if name == "missing-folder":
        return tmp / "no-such-folder", pelvic, f"limb_dir='{tmp / 'no-such-folder'}' is not a directory"
    raise ValueError(name)


BAD = ("pelvic-three-classes", "limb-one-class", "unreadable-image", "missing-folder")


def _one_error_line(err: str, needle: str) -> None:
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("hipaug: error:")]
    assert len(errors) == 1 and errors[0] == lines[-1], err
    assert needle in errors[0], (needle, errors[0])


@pytest.fixture
def isolated_build(tmp_path, monkeypatch):
    """The build's _build folder moved into tmp_path, with a previously built book in place."""
    build = tmp_path / "_build"
    monkeypatch.setattr(book, "build_dir", lambda root: build)
    monkeypatch.setenv("HIPAUG_RESULTS", str(tmp_path / "results"))
    (build / "html").mkdir(parents=True)
    (build / "html" / "index.html").write_text("the previous book")
    (tmp_path / "results" / "smoke" / "phantom").mkdir(parents=True)
    (tmp_path / "results" / "smoke" / "phantom" / "table8_folds.csv").write_text("previous results")
    return build


def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("case", BAD)
def test_bad_input_stops_the_book_in_one_line_before_anything_runs(case, small_folders, tmp_path, isolated_build,
                                                                  capsys):
    limb, pelvic, needle = _bad_case(case, small_folders, tmp_path)
    before = _snapshot(tmp_path / "results"), _snapshot(isolated_build)
    rc = book.main(["--profile", "smoke", "--limb-dir", str(limb), "--pelvic-dir", str(pelvic),
                    "--out", str(tmp_path / "mybook")])
    assert rc == 2
    _one_error_line(capsys.readouterr().err, needle)
    assert (_snapshot(tmp_path / "results"), _snapshot(isolated_build)) == before, "bad input touched a build"
    assert not (tmp_path / "mybook").exists()


@pytest.mark.parametrize("case", BAD)
def test_bad_input_stops_reproduce_in_one_line(case, small_folders, tmp_path, capsys):
    limb, pelvic, needle = _bad_case(case, small_folders, tmp_path)
    out = tmp_path / "results"
    rc = cli_main(["reproduce", "--profile", "smoke", "--limb-dir", str(limb), "--pelvic-dir", str(pelvic),
                   "--out", str(out)])
    assert rc == 2
    _one_error_line(capsys.readouterr().err, needle)
    assert not out.exists(), "reproduce wrote results before checking its data"


def test_make_book_with_bad_input_exits_2(small_folders, tmp_path):
    limb, pelvic, needle = _bad_case("pelvic-three-classes", small_folders, tmp_path)
    res = subprocess.run(["make", "--no-print-directory", "book", f"LIMB_DIR={limb}", f"PELVIC_DIR={pelvic}",
                          "PROFILE=smoke"], cwd=ROOT, capture_output=True, text=True, timeout=600,
                         env=dict(os.environ, HIPAUG_PROGRESS="0"))
    assert res.returncode == 2, res.stdout + res.stderr
    errors = [ln for ln in res.stderr.splitlines() if ln.startswith("hipaug: error:")]
    assert len(errors) == 1 and needle in errors[0], res.stderr


# ------------------------------------------------------------------ builds never mix
def test_replace_tree_swaps_a_book_and_refuses_a_foreign_folder(tmp_path):
    new = tmp_path / "new"
    new.mkdir()
    (new / "index.html").write_text("new")
    (new / book.MARKER).write_text("{}")
    out = tmp_path / "out"
    book.replace_tree(new, out, tmp_path / "_build")
    assert (out / "index.html").read_text() == "new"
    (new / "index.html").write_text("newer")
    book.replace_tree(new, out, tmp_path / "_build")  # a previous hipaug book is replaced whole
    assert (out / "index.html").read_text() == "newer"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new", "out"], "a temporary folder was left behind"
    foreign = tmp_path / "documents"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    with pytest.raises(book.HipaugError, match="not a hipaug book"):
        book.replace_tree(new, foreign, tmp_path / "_build")
    assert (foreign / "thesis.tex").read_text() == "precious"


def test_stage_mirrors_the_book_sources_and_keeps_unchanged_files(tmp_path):
    stage = tmp_path / "stage"
    book.stage_sources(ROOT, stage)
    assert (stage / "_toc.yml").is_file() and (stage / "book" / "index.md").is_file()
    assert not (stage / "book" / "generated").exists(), "generated pages are written per build, never mirrored"
    (stage / "book" / "stale.md").write_text("removed from book/")
    (stage / "book" / "generated").mkdir()
    (stage / "book" / "generated" / "findings.md").write_text("this build's page")
    mtime = (stage / "book" / "index.md").stat().st_mtime_ns
    book.stage_sources(ROOT, stage)
    assert not (stage / "book" / "stale.md").exists()
    assert (stage / "book" / "generated" / "findings.md").read_text() == "this build's page"
    assert (stage / "book" / "index.md").stat().st_mtime_ns == mtime, "an unchanged page was rewritten"


def test_default_outputs_are_per_source():
    assert book.default_out(ROOT, "phantom") == ROOT / "_build" / "html"
    assert book.default_out(ROOT, "custom-0123456789") == ROOT / "_build" / "html-custom-0123456789"


def test_data_summary_names_folders_fingerprints_classes_and_counts(small_folders):
    from hipaug.book.chapter import data_summary_text
    from hipaug.pipeline import Pipeline

    limb, pelvic = small_folders
    pipe = Pipeline("smoke", limb_dir=limb, pelvic_dir=pelvic)
    text = data_summary_text(pipe)
    assert "your radiographs" in text and f"`smoke/{pipe.source}`" in text
    for ds, folder in ((pipe.limb, limb), (pipe.pelvic, pelvic)):
        assert f"`{folder}`" in text and f"`{ds.fingerprint[:12]}`" in text
        for c, n in ds.class_counts().items():
            assert f"`{c}` {n}" in text
