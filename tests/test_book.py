"""Build the smoke book and check the HTML a reader gets (and look at it with a real browser).

This is the slowest test of `make test`: it executes the chapter notebooks with papermill on
the smoke profile (reusing the artifact cache the nbval run filled), generates the pages and
runs `jupyter-book build -W`. Then it checks that every toc page exists, figures are embedded,
citations resolve, and the annotated paper shows every highlight of the note with a verdict or
a context note; headless Chromium takes screenshots of three pages.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"

pytestmark = pytest.mark.book


@pytest.fixture(scope="module")
def built_book():
    env = dict(os.environ, HIPAUG_PROGRESS="0")
    res = subprocess.run([sys.executable, "-m", "hipaug.book", "--profile", "smoke"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return HTML


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [c["file"] for c in part["chapters"]]
    return files


QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"'})


def _norm(text: str) -> str:
    """Whitespace collapsed, curly quotes made straight (Sphinx's smartquotes curls straight ones)."""
    return re.sub(r"\s+", " ", text.translate(QUOTES))


def _text(path: Path) -> str:
    """The visible text of a page, normalised by `_norm`."""
    from bs4 import BeautifulSoup

    soup = BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")
    main = soup.find("main") or soup
    return _norm(html.unescape(main.get_text(" ")))


def test_every_toc_page_exists(built_book):
    missing = [f for f in _toc_files() if not (built_book / f"{f}.html").is_file()]
    assert not missing, missing


def test_figures_are_embedded(built_book):
    for nb in ("01_data", "03_acgan", "04_filter", "05_transfer", "06_beyond"):
        page = (built_book / "book" / "generated" / "notebooks" / f"{nb}.html").read_text(encoding="utf-8")
        srcs = re.findall(r'<img[^>]+src="([^"]+\.png)"', page)
        assert srcs, f"{nb}: no figure"
        for s in srcs:
            assert (built_book / "book" / "generated" / "notebooks" / s).resolve().is_file(), f"{nb}: missing {s}"


def test_citations_resolve(built_book):
    for f in _toc_files():
        text = _text(built_book / f"{f}.html")
        assert "??" not in text, f"unresolved reference in {f}"
    bib = _text(built_book / "book" / "bibliography.html")
    # pybtex's plain style sentence-cases titles
    assert "medical data augmentation using generative adversarial networks" in bib.lower()
    assert "10.1109/TAAI48200.2019.8959908" in bib
    preface = (built_book / "book" / "index.html").read_text(encoding="utf-8")
    assert 'href="bibliography.html#id' in preface or "bibliography.html#" in preface


def test_annotation_page_has_every_highlight_with_a_verdict(built_book):
    from bs4 import BeautifulSoup

    from hipaug.book.literature import read_note

    note = read_note(ROOT / "book" / "literature" / "linMedicalDataAugmentation2019.md")
    page = built_book / "book" / "generated" / "annotations.html"
    text = _text(page)
    for a in note.highlights:
        assert _norm(a.text) in text, a.text[:60]
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    boxes = [d for d in soup.select("div.admonition") if any(c.startswith("hl-") for c in d.get("class", []))
             and "hl-missing-image" not in d.get("class", [])]
    assert len(boxes) == len(note.annotations)
    for box in boxes:
        badges = box.select("span.verdict")
        assert badges, box.get_text(" ")[:80]
    assert soup.find("img", src=re.compile(r"image-5-x43-y631\.png")), "the reader's Table VIII clip is not shown"


def test_findings_page_lists_every_claim(built_book):
    from hipaug.book.claims import load_ledger

    text = _text(built_book / "book" / "generated" / "findings.html")
    for c in load_ledger(ROOT / "book" / "claims.yml").claims:
        assert c.title in text, c.title


def test_browser_screenshots(built_book):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is required for the browser check (.ci/run installs it)"
    from PIL import Image, ImageStat

    SHOTS.mkdir(parents=True, exist_ok=True)
    pages = {"index": "index.html", "table8": "book/generated/notebooks/05_transfer.html",
             "annotations": "book/generated/annotations.html"}
    for name, rel in pages.items():
        out = SHOTS / f"{name}.png"
        out.unlink(missing_ok=True)
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        f"--user-data-dir={SHOTS / '.profile'}", "--hide-scrollbars", "--window-size=1280,1600",
                        "--virtual-time-budget=5000", f"--screenshot={out}", (built_book / rel).as_uri()],
                       capture_output=True, timeout=120)
        assert out.is_file() and out.stat().st_size > 20_000, f"{name}: no screenshot"
        stat = ImageStat.Stat(Image.open(out).convert("L"))
        assert stat.stddev[0] > 10, f"{name}: the screenshot is blank"


def test_no_page_loads_a_script_or_stylesheet_from_the_internet(built_book):
    external = re.compile(r'<(?:script|link)\b[^>]*\b(?:src|href)="(?:https?:)?//[^"]+"', re.I)
    offenders = {p.relative_to(built_book).as_posix(): external.search(p.read_text(encoding="utf-8")).group(0)
                 for p in built_book.rglob("*.html") if external.search(p.read_text(encoding="utf-8"))}
    assert not offenders, f"pages load from the internet: {dict(list(offenders.items())[:3])}"


def test_math_is_typeset_with_the_network_off(built_book):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is required for the browser check (.ci/run installs it)"
    page = built_book / "book" / "generated" / "notebooks" / "03_acgan.html"
    assert r"\[L_D" in page.read_text(encoding="utf-8"), "the AC-GAN page no longer has its loss equations"
    # --proxy-server to a closed port: every network request fails, as on a machine with no network.
    res = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          "--proxy-server=127.0.0.1:9", f"--user-data-dir={SHOTS / '.profile-offline'}",
                          "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    dom = res.stdout
    assert "mjx-container" in dom, "MathJax did not typeset the AC-GAN losses with the network off"
    assert r"\[L_D" not in dom, "raw LaTeX is left on the AC-GAN page"
