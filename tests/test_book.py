"""Build the smoke book and check the HTML a reader gets (and look at it with a real browser).

This is the slowest test of `make test`: it executes the chapter notebooks with papermill on
the smoke profile (reusing the artifact cache the nbval run filled), generates the pages and
runs `jupyter-book build -W`. Then it checks that every toc page exists, figures are embedded,
citations resolve, and the annotated paper shows every highlight of the note with a verdict or
a context note; headless Chromium, with the network off, writes screenshots of four pages into
`_build/screenshots/` for a person to look at.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
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


SHOT_SIZE = (1280, 1600)  # the browser window: every screenshot has exactly this size


def _shot_url(built_book: Path, rel: str, name: str) -> str:
    """The URL to screenshot for `rel` (a page, optionally with a #fragment) of the book."""
    path, _, fragment = rel.partition("#")
    url = (built_book / path).as_uri()
    if not fragment:
        return url
    # Headless Chromium draws a blank screenshot of a page opened at a #fragment; an iframe scrolled there is drawn.
    frame = SHOTS / f".frame-{name}.html"
    frame.write_text(f'<!doctype html><body style="margin:0"><iframe src="{url}#{fragment}" '
                     'style="border:0;width:100vw;height:100vh;display:block"></iframe></body>', encoding="utf-8")
    return frame.as_uri()


def test_screenshots_with_the_network_off(built_book):
    """Write screenshots for a person to look at into `_build/screenshots/`.

    front.png (top of the front page), front_answer.png (its Table VIII beside the paper's and the
    verdicts), acgan.png (the AC-GAN losses, typeset), table8.png (chapter 5 at Table VIII) and
    annotations.png (the annotated paper). Headless Chromium with networking off (a proxy on a
    closed port) opens each page, so math and figures must come from the build folder. Each file
    must be a PNG of the window's size that is not blank (varied pixels, text or figures drawn).
    """
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is required for the browser check (make test installs it)"
    from PIL import Image, ImageStat

    SHOTS.mkdir(parents=True, exist_ok=True)
    pages = {"front": "book/index.html", "front_answer": "book/index.html#front-headline",
             "acgan": "book/generated/notebooks/03_acgan.html",
             "table8": "book/generated/notebooks/05_transfer.html#table8",
             "annotations": "book/generated/annotations.html"}
    for name, rel in pages.items():
        out = SHOTS / f"{name}.png"
        out.unlink(missing_ok=True)
        subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        "--proxy-server=127.0.0.1:9", f"--user-data-dir={SHOTS / '.profile-offline'}",
                        "--hide-scrollbars", f"--window-size={SHOT_SIZE[0]},{SHOT_SIZE[1]}",
                        "--virtual-time-budget=10000", f"--screenshot={out}", _shot_url(built_book, rel, name)],
                       capture_output=True, timeout=120)
        assert out.is_file(), f"{name}: no screenshot"
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{name}: not a PNG"
        img = Image.open(out)
        assert img.size == SHOT_SIZE, f"{name}: {img.size}, not the window's {SHOT_SIZE}"
        grey = img.convert("L")
        assert ImageStat.Stat(grey).stddev[0] > 10, f"{name}: the screenshot is blank"
        inked = sum(grey.histogram()[:160]) / (SHOT_SIZE[0] * SHOT_SIZE[1])
        assert inked > 0.01, f"{name}: almost nothing drawn ({inked:.3%} dark pixels)"
    print(f"\nscreenshots for a person to look at: {SHOTS}")


def test_front_page_shows_the_answer(built_book):
    """The front page has both generated figures (caption, alt text, file) and this run's numbers and verdicts."""
    from bs4 import BeautifulSoup

    from hipaug.core.numbers import percent
    from hipaug.pipeline import default_results_root

    page = built_book / "book" / "index.html"
    soup = BeautifulSoup(page.read_text(encoding="utf-8"), "html.parser")
    for png in ("front_pipeline.png", "front_headline.png"):
        img = soup.find("img", src=re.compile(re.escape(png)))
        assert img is not None, f"the front page has no {png}"
        assert (page.parent / img["src"]).resolve().is_file(), f"{img['src']} is not in the build"
        assert png not in img.get("alt", "") and len(img.get("alt", "")) > 40, f"{png}: no real alt text"
        caption = img.find_parent("figure").find("figcaption")
        assert caption is not None and re.search(r"Fig(ure|\.) ?\d", caption.get_text(" ")), f"{png}: no numbered caption"
    text = _text(page)
    folds = pd.read_csv(default_results_root() / "smoke" / "phantom" / "table8_folds.csv")
    for c in ("without_gan", "with_gan"):
        assert f"{percent(folds.loc[folds['condition'] == c, 'accuracy'].mean())} [" in text, c
    assert "profile smoke" in text and "built-in phantom" in text and "Verdicts of the" in text


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


CHAPTERS = ("01_data", "02_classic_augmentation", "03_acgan", "04_filter", "05_transfer", "06_beyond")


def _browser_dom(chromium: str, page: Path, profile: Path) -> str:
    """The page's DOM after headless Chromium has run its scripts, with every network request failing."""
    res = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                          "--disable-background-networking", "--disable-component-update", "--disable-sync",
                          "--proxy-server=127.0.0.1:9", f"--user-data-dir={profile}",
                          "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert "<html" in res.stdout, f"{page.name}: Chromium returned no DOM: {res.stderr[-500:]}"
    return res.stdout


def test_every_chapter_figure_is_numbered_captioned_and_described(built_book):
    """Each chapter has figures; each figure has "Fig. N.M", a caption naming its profile, real alt text and a reference.

    Read from the DOM Chromium renders: every plot of a chapter is a `<figure>` (none is left as a
    bare cell output), its number is the chapter's, its `<img>` has alt text that is a description
    rather than a file name, and the chapter's prose links to it by number ({numref}).
    """
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is required for the browser check (make test installs it)"
    from bs4 import BeautifulSoup

    file_like = re.compile(r"^[\w.-]*\.(?:png|jpe?g|svg|gif)$|^[0-9a-f]{16,}", re.I)
    for chapter_no, stem in enumerate(CHAPTERS, start=1):
        page = built_book / "book" / "generated" / "notebooks" / f"{stem}.html"
        soup = BeautifulSoup(_browser_dom(chromium, page, SHOTS / ".profile-figures"), "html.parser")
        main = soup.find("main") or soup
        figures = main.find_all("figure")
        assert figures, f"{stem}: no figure"
        for fig in figures:
            number = fig.select_one("figcaption .caption-number")
            assert number, f"{stem}: a figure without a numbered caption: {str(fig)[:200]}"
            assert re.fullmatch(rf"Fig\. {chapter_no}\.\d+", number.get_text(" ", strip=True)), number.get_text()
            caption = _norm(fig.find("figcaption").get_text(" ", strip=True))
            assert "profile" in caption and len(caption) > 60, f"{stem}: caption names no profile: {caption}"
            imgs = fig.find_all("img")
            assert len(imgs) == 1, f"{stem} {number.get_text()}: {len(imgs)} images"
            alt = (imgs[0].get("alt") or "").strip()
            assert alt and not file_like.search(alt) and alt != Path(imgs[0]["src"]).name, \
                f"{stem} {number.get_text()}: alt text {alt!r} is not a description"
            assert len(alt.split()) >= 5, f"{stem} {number.get_text()}: alt text {alt!r} is too short to describe"
            target = fig.get("id") or (fig.find_parent(id=True) or {}).get("id")
            assert target and main.select(f'a[href$="#{target}"]'), f"{stem}: the prose never refers to {target}"
        stray = [img["src"] for img in main.find_all("img") if not img.find_parent("figure")]
        assert not stray, f"{stem}: plots outside a numbered figure (a figure cell without remove-output?): {stray}"


def test_each_chapter_states_its_parameters_once(built_book):
    """One "This chapter ran with" table per chapter; papermill's cells hidden, still in the downloadable .ipynb."""
    import nbformat

    for stem in CHAPTERS:
        page = built_book / "book" / "generated" / "notebooks" / f"{stem}.html"
        raw, text = page.read_text(encoding="utf-8"), _text(page)
        assert text.count("This chapter ran with") == 1, f"{stem}: not exactly one parameters block"
        assert "injected-parameters" not in raw and "tag_parameters" not in raw, f"{stem}: a parameters cell shows"
        assert "# Parameters" not in text, f"{stem}: papermill's injected cell shows"
        link = f"_sources/book/generated/notebooks/{stem}.ipynb"
        assert f'{link}"' in raw, f"{stem}: no download of the executed notebook"
        tags = [t for c in nbformat.read(built_book / link, as_version=4).cells for t in c.metadata.get("tags", [])]
        assert {"parameters", "injected-parameters"} <= set(tags), f"{stem}: the download lost a parameters cell"


def test_citations_and_cross_references_have_hover_previews(built_book):
    """sphinx-tippy's data for a chapter holds previews of its citations, figures and sections, from local scripts."""
    import json

    page = built_book / "book" / "generated" / "notebooks" / "05_transfer.html"
    raw = page.read_text(encoding="utf-8")
    for lib in ("_static/vendor/popper/popper.min.js", "_static/vendor/tippy/tippy-bundle.umd.min.js"):
        assert lib in raw, f"{lib} is not loaded"
    src = re.search(r'<script[^>]+src="([^"?]*_static/tippy/[^"?]+\.js)"', raw)
    assert src, "no hover-preview data on the Table VIII chapter"
    data = (page.parent / src.group(1)).read_text(encoding="utf-8")
    tips = json.loads(re.search(r"selector_to_html = (\{.*?\})\n", data, re.S).group(1))
    cites = [v for k, v in tips.items() if "bibliography.html#" in k]
    assert any("Lin" in v and "Chung" in v for v in cites), "no preview of the paper's citation"
    assert any("<figure" in v for k, v in tips.items()), "no preview of a figure reference"
    assert any(k.startswith('a[href="#') and "<h" in v for k, v in tips.items()), "no preview of a section reference"


def test_reproduce_writes_the_books_results_store(built_book, tmp_path):
    """One results store however it was built: `hipaug reproduce --ablations` writes the files the book's chapters
    wrote, byte for byte, and `hipaug claims` gives the same verdicts on both."""
    from hipaug.book.claims import evaluate, load_ledger, load_results

    res = subprocess.run([sys.executable, "-m", "hipaug", "reproduce", "--profile", "smoke", "--ablations",
                          "--out", str(tmp_path)], cwd=ROOT, env=dict(os.environ, HIPAUG_PROGRESS="0"),
                         capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, res.stderr[-3000:]
    book_store = ROOT / "results" / "smoke" / "phantom"
    cli_store = tmp_path / "smoke" / "phantom"
    names = sorted(p.name for p in book_store.iterdir() if p.is_file())
    assert names == sorted(p.name for p in cli_store.iterdir() if p.is_file())
    assert {"table8_folds.csv", "paired_tests.csv", "gan_quality.json", "ablation_folds.csv", "run.json"} <= set(names)
    differ = [n for n in names if (book_store / n).read_bytes() != (cli_store / n).read_bytes()]
    assert differ == [], f"the book's and reproduce's results differ in {differ}"
    ledger = load_ledger()
    verdicts = [{r.claim.id: r.verdict for r in evaluate(ledger, load_results(d))} for d in (book_store, cli_store)]
    assert verdicts[0] == verdicts[1]
