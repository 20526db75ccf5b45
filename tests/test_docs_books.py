"""The docs' whole-book commands on a user's folders: `make book LIMB_DIR=...` and `python -m hipaug.book --out`.

A module of its own (the commands and their substitutions are `tests/test_docs_commands.py`'s) so that
`make test`'s two workers can run it beside the other docs commands.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_docs_commands import DOCS, ROOT, _run_doc


@pytest.fixture(scope="module")
def outdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("docs-books")


@pytest.mark.book
def test_whole_book_commands_run(small_folders, outdir):
    """`make book LIMB_DIR=...` and `python -m hipaug.book --limb-dir ... --out` on the small folders (smoke)."""
    from bs4 import BeautifulSoup

    from hipaug.book.build import MARKER, build_dir, locked

    BUILD = build_dir(ROOT)
    phantom_index = BUILD / "html" / "index.html"
    # Hold the phantom book's build lock meanwhile (tests/test_book.py may build it on the other worker): while
    # it is held nothing else writes the phantom book, so any change to it is these commands'.
    with locked(BUILD / "stage" / "phantom"):
        before = phantom_index.stat().st_mtime_ns if phantom_index.is_file() else None
        for doc in DOCS:
            _run_doc(doc.relative_to(ROOT).as_posix(), small_folders, outdir, slow=True)
        after = phantom_index.stat().st_mtime_ns if phantom_index.is_file() else None
    html = outdir / "mybook"
    about = json.loads((html / MARKER).read_text())
    assert about["source"].startswith("custom-") and about["limb_dir"] == str(small_folders[0])
    assert (BUILD / f"html-{about['source']}" / "index.html").is_file(), "make book wrote no HTML"
    # The second command builds the same book into another folder: its render is reused, not made again.
    rendered = (BUILD / "stage" / about["source"] / "_build" / ".hipaug-rendered").stat().st_mtime_ns
    assert rendered <= (BUILD / f"html-{about['source']}" / MARKER).stat().st_mtime_ns, "the same book rendered twice"
    fp = about["source"].removeprefix("custom-")
    front = BeautifulSoup((html / "book" / "index.html").read_text("utf-8"), "html.parser").get_text(" ")
    assert str(small_folders[0]) in front and str(small_folders[1]) in front and "your radiographs" in front
    for nb in ("01_data", "05_transfer"):
        page = (html / "book" / "generated" / "notebooks" / f"{nb}.html").read_text("utf-8")
        assert str(small_folders[1]) in page and "your radiographs" in page, nb
    findings = (html / "book" / "generated" / "findings.html").read_text("utf-8")
    assert f"custom-{fp}" in findings, "the findings page is not measured on the custom data"
    assert after == before, "building on other data touched the phantom book"
