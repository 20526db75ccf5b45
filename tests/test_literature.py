"""hipaug.book.literature: the reader's Zotero/Obsidian note -> MyST page, BibTeX, vault import."""

from __future__ import annotations

import logging
import re
import shutil
from pathlib import Path

import pytest
from pybtex.database import parse_string

from hipaug.book import literature as lit
from hipaug.cli import main
from hipaug.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "book" / "literature" / "linMedicalDataAugmentation2019.md"
SEED_IMAGE = "sources/images/linMedicalDataAugmentation2019/image-5-x43-y631.png"
NOTES = ROOT / "tests" / "fixtures" / "notes"
JOURNAL = NOTES / "garciaBiasSmallData2021.md"
BOOKSEC = NOTES / "doeBookSection2018.md"
NOT_A_NOTE = NOTES / "not_a_note.md"


@pytest.fixture(autouse=True)
def _quiet_logs(caplog):
    caplog.set_level(logging.ERROR, logger="hipaug.book.literature")


@pytest.fixture(scope="module")
def seed() -> lit.Note:
    return lit.read_note(SEED)


@pytest.fixture(scope="module")
def journal() -> lit.Note:
    return lit.read_note(JOURNAL)


@pytest.fixture(scope="module")
def booksec() -> lit.Note:
    return lit.read_note(BOOKSEC)


# -- helpers -----------------------------------------------------------------------------------


def parse_bibtex(text: str) -> dict[str, tuple[str, dict[str, str]]]:
    """The entries as pybtex reads them: {key: (type, {field: value})}, name lists joined by ' and '."""
    entries = {}
    for key, e in parse_string(text, "bibtex").entries.items():
        names = {role: " and ".join(str(p) for p in people) for role, people in e.persons.items()}
        entries[key] = (e.type, {**names, **dict(e.fields)})
    return entries


def fences_balanced(md: str) -> bool:
    """Every ``` / ```` fence is closed, with CommonMark's nesting rule (a closer is at least as long)."""
    stack: list[int] = []
    for line in md.split("\n"):
        m = re.match(r"^(`{3,})\s*(\S.*)?$", line)
        if not m:
            continue
        n, info = len(m.group(1)), m.group(2)
        if stack and info is None and n >= stack[-1]:
            stack.pop()
        elif info is not None or not stack:
            stack.append(n)
    return not stack


def unescape(md: str) -> str:
    return re.sub(r"\\(.)", r"\1", md)


def render(note, tmp_path=None, **kw) -> str:
    md, written, _w = lit.render_page_report(note, **kw)
    assert written == note.counts()
    assert fences_balanced(md)
    assert "file://" not in md
    return md


# -- the seed note -----------------------------------------------------------------------------


def test_seed_counts(seed):
    text = SEED.read_text(encoding="utf-8")
    assert text.count("<mark") == 8
    assert seed.counts() == {"annotations": 9, "highlights": 8, "notes": 0, "images": 1, "comments": 1}
    assert [a.kind for a in seed.annotations].count("image") == 1


def test_seed_metadata(seed):
    md = seed.metadata
    assert [(c.kind, c.last, c.first, c.name) for c in md.creators] == [
        ("author", "Lin", "Ying-Jia", None), ("author", "Chung", "I-Fang", None)]
    assert md.title.startswith("Medical Data Augmentation Using Generative Adversarial Networks")
    assert md.year == "2019"
    assert md.citekey == seed.citekey == "linMedicalDataAugmentation2019"
    assert md.item_type == "conferencePaper"
    assert md.doi == "10.1109/TAAI48200.2019.8959908"
    assert md.isbn == "978-1-72814-666-9"
    assert md.pages == "1-5"
    assert md.publisher == "IEEE"
    assert md.location == "Kaohsiung, Taiwan"
    assert md.journal is None and md.volume is None and md.issue is None and md.book is None
    # the proceedings title comes from the Cite callout's italic span (ligature "ﬁ" fixed), with a warning
    assert md.container == "2019 International Conference on Technologies and Applications of Artificial Intelligence (TAAI)"
    assert any("Cite callout" in w for w in seed.warnings)
    assert seed.abstract.startswith("In the medical domain, it is difficult")
    assert seed.abstract.endswith("for hip fracture detection.")
    assert seed.contribution == "" and seed.important == ()
    assert seed.cite.startswith("Y.-J. Lin e I.-F. Chung")  # IEEE label "[1]" removed, Portuguese kept
    assert seed.link_text == ("Lin and Chung - 2019 - Medical Data Augmentation Using Generative Adversa.pdf",)
    assert seed.import_date == "2024-05-19T21:41:27.764-03:00"
    assert seed.exports == ("2024-05-19 21:41",)


def test_seed_colours_pages_dates(seed):
    got = [(a.kind, a.colour_name, a.role, a.page) for a in seed.annotations]
    assert got == [
        ("highlight", "yellow", "motivation", "1"),
        ("highlight", "blue", "method", "1"),
        ("highlight", "green", "result/claim", "1"),
        ("highlight", "red", "dataset", "2"),
        ("highlight", "red", "dataset", "2"),
        ("highlight", "red", "dataset", "2"),
        ("highlight", "blue", "method", "3"),
        ("image", None, None, "5"),
        ("highlight", "green", "result/claim", "5"),
    ]
    assert seed.annotations[0].color == "#ffd400"
    assert seed.annotations[0].date == "2024-05-19 21:37"
    assert all(a.export == "2024-05-19 21:41" for a in seed.annotations)
    assert seed.annotations[7].images == (SEED_IMAGE,)
    assert seed.annotations[1].text == "AC-GAN"
    assert seed.annotations[8].text.endswith("than the model of the \u201cwithout GAN\u201d group")


def test_seed_portuguese_comment_intact(seed):
    first = seed.annotations[0]
    assert first.comment == "Métodos clássicos não são suficientes em alguns casos para ganhos de desempenho."
    assert first.text.startswith("\u2014In the medical domain")
    md = render(seed)
    assert "**Reader's comment:** Métodos clássicos não são suficientes em alguns casos para ganhos de desempenho." in md


def test_seed_bibtex(seed):
    bib = lit.note_to_bibtex(seed)
    entries = parse_bibtex(bib)
    etype, f = entries["linMedicalDataAugmentation2019"]
    assert etype == "inproceedings"
    assert list(f) == ["author", "title", "booktitle", "year", "pages", "publisher", "address", "doi", "isbn"]
    assert f["author"] == "Lin, Ying-Jia and Chung, I-Fang"
    assert "{X-ray}" in f["title"] and f["title"].startswith("Medical Data Augmentation")
    assert f["booktitle"] == ("2019 International Conference on Technologies and Applications of "
                              "Artificial Intelligence ({TAAI})")
    assert (f["year"], f["pages"], f["publisher"], f["address"]) == ("2019", "1--5", "IEEE", "Kaohsiung, Taiwan")
    assert f["doi"] == "10.1109/TAAI48200.2019.8959908" and f["isbn"] == "978-1-72814-666-9"
    assert lit.note_to_bibtex(seed) == bib  # deterministic


def test_bibtex_parses_with_pybtex(seed, journal, booksec):
    db = parse_string("\n".join(lit.note_to_bibtex(n) for n in (seed, journal, booksec)), "bibtex")
    e = db.entries["linMedicalDataAugmentation2019"]
    assert [str(p) for p in e.persons["author"]] == ["Lin, Ying-Jia", "Chung, I-Fang"]
    g = db.entries["garciaBiasSmallData2021"]
    assert len(g.persons["author"]) == 3 and str(g.persons["editor"][0]) == "Müller, Hans"
    assert db.entries["doeTransferLearningRadiographs2018"].type == "incollection"


def test_bibtex_escapes_once_and_keeps_the_doi_verbatim():
    """Values are escaped once (pybtex's own LaTeX encoding is off), and a Springer chapter DOI keeps its '_'."""
    note = lit.parse_note(">[!Metadata]\n>**Title**:: Costs & Benefits: 50% of \\& done\n>**Citekey**:: @spec2020\n"
                          ">**itemType**:: book\n>**Publisher**:: A&B\n>**DOI**:: 10.1007/978-3-030-32248-9_8\n"
                          "> **Author**:: Smith and Jones, Al</br>**Author**:: Smith & Sons</br> **Author**:: , Ana\n")
    bib = lit.note_to_bibtex(note)
    etype, f = parse_bibtex(bib)["spec2020"]
    assert etype == "book"
    assert f["title"] == r"Costs \& Benefits: 50\% of \& done" and f["publisher"] == r"A\&B"
    assert f["doi"] == "10.1007/978-3-030-32248-9_8"
    assert f["author"] == r"{Smith and Jones}, Al and {Smith \& Sons} and Ana"
    assert "\\\\" not in bib


def test_seed_image_found_and_copied(seed, tmp_path):
    md = render(seed, image_root=SEED.parent, image_dest=tmp_path)
    copied = tmp_path / SEED_IMAGE
    assert copied.is_file() and copied.read_bytes() == (SEED.parent / SEED_IMAGE).read_bytes()
    assert f"```{{image}} {SEED_IMAGE}" in md
    assert "Image not available" not in md


def test_seed_image_found_from_note_folder(seed, tmp_path):
    md = render(seed, image_dest=tmp_path)  # no image_root: resolved from the note's folder
    assert (tmp_path / SEED_IMAGE).is_file() and "Image not available" not in md


def test_round_trip_every_highlight_verbatim(seed, journal):
    md = render(seed)
    for a in seed.annotations:
        if a.text:
            assert a.text in md  # the seed needs no escaping at all
    for line in SEED.read_text(encoding="utf-8").splitlines():  # and against the raw input
        if "<mark" in line:
            assert line.split("</br></br>> ", 1)[1] in md
    md = unescape(render(journal))
    for a in journal.annotations:
        for part in (a.text + "\n" + a.comment).split("\n"):
            assert part.strip() in md


def test_page_structure(seed):
    md = render(seed, label="paper-notes")
    assert md.startswith("(paper-notes)=\n# Medical Data Augmentation")
    assert "{cite:p}`linMedicalDataAugmentation2019`" in md
    assert "## Abstract" in md and "## Annotations" in md
    assert "## The reader's synthesis" not in md and "## Marked important" not in md  # empty blocks omitted
    for a in seed.annotations:
        assert f"({a.id})=\n````{{admonition}}" in md
    assert "````{admonition} p. 1 · motivation\n:class: hl-yellow hl-kind-highlight" in md
    assert ":class: hl-green hl-kind-highlight" in md and ":class: hl-magenta" not in md
    assert "[page" not in md and "C:\\Users" not in md
    assert "Lin and Chung - 2019" in md  # attachment title as text only
    assert lit.render_page_report(seed) == lit.render_page_report(seed)
    # every label is followed by a heading or a directive
    lines = md.split("\n")
    for i, line in enumerate(lines):
        if re.fullmatch(r"\([^)]+\)=", line):
            assert lines[i + 1].startswith(("#", "```"))


def test_missing_image_placeholder(seed, tmp_path):
    md = render(seed, image_root=tmp_path / "nowhere", image_dest=tmp_path / "out")
    # the note's own folder still holds the image: copy it away to make it really missing
    note = lit.parse_note(SEED.read_text(encoding="utf-8"), source=tmp_path / "lonely.md")
    md = render(note, image_root=tmp_path, image_dest=tmp_path / "out")
    assert f"Image not available in this export: {SEED_IMAGE}" in md
    assert "```{image}" not in md
    assert lit.written_counts(md)["images"] == 1  # the placeholder is counted as written
    _md, _c, warnings = lit.render_page_report(note, image_root=tmp_path)
    assert any("image not available" in w for w in warnings)


def test_links_and_extras(seed):
    ac = lit.match_highlight(seed, "ac-gan")
    assert ac is seed.annotations[1]
    md = render(seed, links={ac.id: [("AC-GAN training", "ch-acgan"), ("", "ch-filter")]},
                extras={ac.id: "{bdg-success}`supported`"})
    block = md.split(f"({ac.id})=")[1].split("\n````\n")[0]
    assert "Tested in: {ref}`AC-GAN training <ch-acgan>`, {ref}`ch-filter`" in block
    assert "{bdg-success}`supported`" in block


def test_match_highlight_normalises(seed):
    a = lit.match_highlight(seed, 'the  "WITH GAN" group has better\nperformance')
    assert a.page == "5" and a.colour_name == "green"
    assert lit.match_highlight(seed, a.id) is a
    with pytest.raises(DataError, match="no highlight contains"):
        lit.match_highlight(seed, "not in the paper at all")
    with pytest.raises(DataError, match="matches 4 highlights"):
        lit.match_highlight(seed, "X-ray")  # "Limb X-ray", "Pelvic X-ray" ... and more
    assert lit.match_highlight(seed, "Pelvic X-ray").id.startswith("hl-pelvic-x-ray-")


def test_ids_are_stable_across_reexport(seed):
    text = SEED.read_text(encoding="utf-8")
    # a re-export with other line endings and whitespace inside the highlight gives the same ids
    changed = text.replace("\n", "\r\n").replace("Classic data augmentation", "Classic  data augmentation")
    again = lit.parse_note(changed, source=SEED)
    assert [a.id for a in again.annotations] == [a.id for a in seed.annotations]
    assert seed.annotations[1].id == "hl-ac-gan-71e7b5e"
    assert seed.annotations[7].id.startswith("img-image-5-x43-y631-")
    assert len({a.id for a in seed.annotations}) == len(seed.annotations)
    assert all(re.fullmatch(r"(hl|img|note)-[a-z0-9-]+", a.id) for a in seed.annotations)


# -- template branches (fixtures) --------------------------------------------------------------


def test_journal_article_creators_and_fields(journal):
    md = journal.metadata
    assert [(c.kind, c.last, c.first, c.name) for c in md.creators] == [
        ("author", "García", "María José", None),
        ("author", "Chen", "Wei", None),
        ("editor", "Müller", "Hans", None),
        ("author", None, None, "World Health Organization"),  # single-field creator
        ("seriesEditor", "Rossi", "Anna", None),  # "Serieseditor" after Nunjucks capitalize
    ]
    assert (md.item_type, md.journal, md.volume, md.issue, md.pages) == (
        "journalArticle", "Journal of Imaging Research", "12", "3", "101-115")
    assert md.doi is None and md.isbn is None and md.publisher is None and md.book is None
    assert md.title == "Bias in \u201cSmall Data\u201d: A Review of GAN-based Augmentation for Radiographs"
    assert not any("Cite callout" in w for w in journal.warnings)  # the journal is in the Metadata
    etype, f = parse_bibtex(lit.note_to_bibtex(journal))["garciaBiasSmallData2021"]
    assert etype == "article"
    assert f["author"] == "García, María José and Chen, Wei and {World Health Organization}"
    assert f["editor"] == "Müller, Hans"
    assert (f["journal"], f["volume"], f["number"], f["pages"]) == ("Journal of Imaging Research", "12", "3", "101--115")
    assert "doi" not in f and "booktitle" not in f
    assert "{GAN-based}" in f["title"]


def test_journal_windows_links_and_attachments(journal):
    assert journal.link_text == ("García et al. - 2021 - Bias in Small Data.pdf", "Supplement (tables).pdf")
    assert [a.page for a in journal.annotations] == ["2", "3", "4", "4", "5", "5", "6", "7", "8"]
    md = render(journal)
    assert "Supplement (tables).pdf" in md and "Zotero\\storage" not in md


def test_journal_annotation_kinds(journal):
    kinds = [(a.kind, a.colour_name) for a in journal.annotations]
    assert kinds == [("highlight", "yellow"), ("note", None), ("image", None), ("highlight", "blue"),
                     ("highlight", "green"), ("highlight", "green"), ("highlight", "magenta"),
                     ("highlight", "other"), ("highlight", "red")]
    assert journal.counts() == {"annotations": 9, "highlights": 7, "notes": 1, "images": 1, "comments": 5}
    # multi-line highlight and comment (nl2br with <br /> and <br>)
    first = journal.annotations[0]
    assert first.text == "Classic augmentation\nis not enough for small radiograph sets"
    assert first.comment == ("important: this is the motivation\n"
                             "second line of the comment with \u201ccurly quotes\u201d, ação and Müller")
    assert journal.annotations[8].comment == "public data set\nbut a research licence is needed"
    # text note without a highlight
    note = journal.annotations[1]
    assert note.text == "" and note.comment.startswith("A text note without a highlight") and note.id.startswith("note-")
    # image-only annotation with a comment
    img = journal.annotations[2]
    assert img.images == ("sources/images/garciaBiasSmallData2021/image-4-x10-y20.png",) and img.comment == "important"
    assert journal.annotations[7].color == "#aaaaaa"
    assert any("#aaaaaa" in w and "other" in w for w in journal.warnings)


def test_journal_several_exports(journal):
    assert journal.exports == ("2021-06-01 10:00", "2021-07-15 18:30")
    assert [a.export for a in journal.annotations] == ["2021-06-01 10:00"] * 4 + ["2021-07-15 18:30"] * 5
    md = render(journal)
    assert "### Exported 2021-06-01 10:00" in md and "### Exported 2021-07-15 18:30" in md


def test_journal_important_block(journal):
    assert journal.important == (
        lit.ImportantItem("Classic augmentation\nis not enough for small radiograph sets", (), "2"),
        lit.ImportantItem("", ("sources/images/garciaBiasSmallData2021/image-4-x10-y20.png",), "4"),
    )
    md = render(journal)
    assert "## Marked important" in md and md.count(":class: hl-important") == 2


def test_journal_empty_abstract_contribution_unknown_callout(journal):
    assert journal.abstract == "" and journal.contribution == "" and journal.synthesize == ()
    assert journal.other_callouts == (lit.Callout("Question", "Does this hold for pelvic radiographs?",
                                                  "Compare with the hip fracture paper before trusting it.", 6),)
    assert any("unknown callout type [!Question]" in w for w in journal.warnings)
    md = render(journal)
    assert "## Abstract" not in md and "## The reader's synthesis" not in md
    assert "Compare with the hip fracture paper before trusting it." in md


def test_journal_duplicated_highlight(journal):
    a, b = journal.annotations[4], journal.annotations[5]
    assert b.id == a.id + "-2"
    assert any("duplicated highlight" in w and b.id in w for w in journal.warnings)
    md = render(journal)
    assert f"({a.id})=" in md and f"({b.id})=" in md


def test_journal_escaping_keeps_text(journal):
    md = render(journal)
    assert r"(p \< 0.05 for \*all\* folds)" in md  # escaped so MyST shows it literally
    assert "(p < 0.05 for *all* folds)" in unescape(md)


def test_journal_missing_image_placeholder(journal, tmp_path):
    md = render(journal, image_dest=tmp_path)
    assert md.count("Image not available in this export: sources/images/garciaBiasSmallData2021/image-4-x10-y20.png") == 2
    assert not any(tmp_path.rglob("*.png"))


def test_book_section(booksec):
    md = booksec.metadata
    assert (md.item_type, md.book, md.publisher, md.location, md.pages, md.isbn, md.doi) == (
        "bookSection", "Deep Learning in Medical Imaging", "Springer", "Cham", "45-67", "978-3-319-00000-0", None)
    assert [(c.kind, c.last, c.name) for c in md.creators] == [
        ("author", "Doe", None), ("editor", "Smith", None), ("editor", None, "IEEE Press Committee")]
    etype, f = parse_bibtex(lit.note_to_bibtex(booksec))["doeTransferLearningRadiographs2018"]
    assert etype == "incollection"
    assert f["booktitle"] == "Deep Learning in Medical Imaging" and f["editor"] == "Smith, John and {IEEE Press Committee}"
    assert f["publisher"] == "Springer" and f["address"] == "Cham" and "doi" not in f
    assert booksec.link_text == ()
    assert booksec.contribution == "Shows that ImageNet pre-training helps\neven on grey-scale radiographs."
    assert booksec.abstract == ("Transfer learning moves features learned on one task to another.\n\n"
                                "A second paragraph of the abstract, with an accent: naïve.")


def test_empty_annotations_section(booksec):
    assert booksec.annotations == () and booksec.important == ()
    assert booksec.counts()["annotations"] == 0
    assert "no annotations in the note" in booksec.warnings
    md = render(booksec)
    assert "The note has no annotations." in md and "## The reader's synthesis" in md


def test_every_warning_is_one_line(seed, journal, booksec):
    for n in (seed, journal, booksec):
        assert all("\n" not in w for w in n.warnings)


# -- malformed input ---------------------------------------------------------------------------


def test_not_a_note_is_refused_in_one_line(tmp_path):
    with pytest.raises(DataError) as exc:
        lit.read_note(NOT_A_NOTE)
    msg = str(exc.value)
    assert "\n" not in msg and str(NOT_A_NOTE) in msg and "not a Zotero literature note" in msg
    binary = tmp_path / "picture.md"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(DataError, match=r"picture\.md: not a literature note \(binary"):
        lit.read_note(binary)
    latin = tmp_path / "latin1.md"
    latin.write_bytes("Métodos clássicos".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1\.md: .*not UTF-8"):
        lit.read_note(latin)
    with pytest.raises(DataError, match=r"missing\.md: no such note file"):
        lit.read_note(tmp_path / "missing.md")
    with pytest.raises(DataError, match="not a Zotero literature note"):
        lit.parse_note("")


def test_truncated_note_mid_callout():
    text = SEED.read_text(encoding="utf-8")
    cut = text.index("than the model of the")  # inside the last highlight, before its page link
    note = lit.parse_note(text[:cut], source="truncated.md")
    assert note.counts() == {"annotations": 9, "highlights": 8, "notes": 0, "images": 1, "comments": 1}
    assert note.annotations[-1].text.endswith("has better performance in hip fracture classification")
    assert note.annotations[-1].page is None
    w = " | ".join(note.warnings)
    assert "without a page link" in w and "end annotations" in w and "Import Date" in w
    md = render(note)
    assert note.annotations[-1].text in md and "page unknown" in md


@pytest.mark.parametrize("path", [SEED, JOURNAL], ids=["seed", "journal"])
def test_truncated_note_every_cut_point(path):
    """Cut a note anywhere after its Metadata header: it imports, and nothing found is lost."""
    text = path.read_text(encoding="utf-8")
    start = text.index(">[!Metadata]") + len(">[!Metadata]")
    for cut in range(start, len(text), STEP):
        part = text[:cut]
        note = lit.parse_note(part, source="cut.md")
        c = note.counts()
        assert c["highlights"] == len(re.findall(r'<mark style="background-color: #[0-9a-f]{6}"', part)), cut
        assert c["images"] == len(re.findall(r"^>!\[\[[^\]\n]", part, re.M)), cut
        assert c["comments"] == len(re.findall(r"^>>- ?\S", part, re.M)), cut
        md, written, _w = lit.render_page_report(note)
        assert written == c and fences_balanced(md) and "file://" not in md, cut
        plain = unescape(md)
        for a in note.annotations:
            for part_line in (a.text + "\n" + a.comment).split("\n"):
                assert part_line.strip() in plain, cut


STEP = 5  # every 5th character (all of them pass; this keeps the test under a few seconds)


def test_missing_sections_and_hand_made_note():
    text = (">[!Metadata]\n>**Title**:: A hand-made note\n>**Citekey**:: @handMade2020\n\n"
            ">[!Note]\n></br></br>> an underlined passage without a colour\n>[page 3](file://C:\\x.pdf) [[2020-01-01 10:00]]\n\n"
            "Some text the reader typed outside any callout.\n")
    note = lit.parse_note(text)
    w = " | ".join(note.warnings)
    for missing in ("[!Cite]", "[!Synthesize]", "[!LINK]", "[!Abstract]", "[!important]", "begin annotations", "Import Date"):
        assert missing in w
    assert "outside the Annotations section" in w and "underline" in w and "text outside any callout" in w
    (a,) = note.annotations
    assert (a.kind, a.colour_name, a.text, a.page) == ("highlight", "other", "an underlined passage without a colour", "3")
    assert note.extra_text == ("Some text the reader typed outside any callout.",)
    md = render(note)
    assert "Some text the reader typed outside any callout." in md and ":class: hl-other hl-kind-highlight" in md


def test_metadata_only_note_is_accepted():
    note = lit.parse_note(">[!Metadata]\n>**Title**:: Only metadata\n", source="x/onlyMeta.md")
    assert note.citekey == "onlyMeta" and note.annotations == ()
    assert any("no citekey" in w for w in note.warnings)


# -- vault import and CLI ----------------------------------------------------------------------


def _make_vault(tmp_path: Path) -> Path:
    vault = tmp_path / "vault"
    (vault / "sources").mkdir(parents=True)
    for f in (SEED, JOURNAL, BOOKSEC, NOT_A_NOTE):
        shutil.copy(f, vault / "sources" / f.name)
    img = vault / SEED_IMAGE
    img.parent.mkdir(parents=True)
    shutil.copy(SEED.parent / SEED_IMAGE, img)
    (vault / "README.md").write_text("# not in sources/, ignored\n", encoding="utf-8")
    return vault


def test_import_vault(tmp_path):
    vault = _make_vault(tmp_path)
    out = tmp_path / "out"
    rep = lit.import_vault(vault, out)
    assert sorted(p.name for p in rep.pages) == [
        "doeBookSection2018.md", "garciaBiasSmallData2021.md", "linMedicalDataAugmentation2019.md"]
    assert [(p.name, "not a Zotero" in r) for p, r in rep.skipped] == [("not_a_note.md", True)]
    assert rep.found == rep.written
    assert rep.found["linMedicalDataAugmentation2019"]["highlights"] == 8
    assert (out / SEED_IMAGE).is_file()
    entries = parse_bibtex(rep.bib.read_text(encoding="utf-8"))
    assert sorted(entries) == ["doeTransferLearningRadiographs2018", "garciaBiasSmallData2021",
                               "linMedicalDataAugmentation2019"]
    index = rep.index.read_text(encoding="utf-8")
    assert index.startswith("(literature-index)=\n# Reading list")
    assert "{ref}`Transfer Learning for Radiographs <annotations-doeTransferLearningRadiographs2018>` | 2018" in index
    assert "| `linMedicalDataAugmentation2019` | 8 | \u2014In the medical domain" in index
    assert "not\\_a\\_note.md" in index  # the skipped file is listed, not silently dropped
    assert any("not_a_note.md: skipped" in w for w in rep.warnings)
    for p in rep.pages:
        md = p.read_text(encoding="utf-8")
        assert fences_balanced(md) and "file://" not in md


def test_import_plain_folder_and_errors(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    shutil.copy(JOURNAL, folder)
    rep = lit.import_vault(folder, tmp_path / "out")
    assert [p.name for p in rep.pages] == ["garciaBiasSmallData2021.md"] and rep.skipped == ()
    with pytest.raises(DataError, match="vault folder not found"):
        lit.import_vault(tmp_path / "nope", tmp_path / "out")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no .md notes"):
        lit.import_vault(tmp_path / "empty", tmp_path / "out")


def test_import_note_page(tmp_path):
    vault = _make_vault(tmp_path)
    page = tmp_path / "book" / "paper.md"
    rep = lit.import_note(vault / "sources" / SEED.name, page)
    lines = rep.summary().splitlines()
    assert lines[0] == ("linMedicalDataAugmentation2019.md: found 8 highlights, 0 notes, 1 images, 1 comments; "
                        "written 8 highlights, 0 notes, 1 images, 1 comments")
    assert any(line.startswith("warning: linMedicalDataAugmentation2019.md: proceedings title") for line in lines)
    assert lines[-1] == f"wrote {page}"
    assert (page.parent / SEED_IMAGE).is_file()  # vault root found by walking up to sources/images
    assert "```{image} " + SEED_IMAGE in page.read_text(encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a .md page"):
        lit.import_note(SEED, tmp_path / "page.txt")


def test_quiet_log_keeps_warnings_off_the_log(caplog):
    caplog.set_level(logging.WARNING, logger="hipaug.book.literature")
    with lit.quiet_log():
        note = lit.read_note(JOURNAL)
    assert note.warnings and not caplog.records
    lit.read_note(JOURNAL)
    assert len(caplog.records) == len(note.warnings)


def test_cli_page_bib_vault_and_errors(tmp_path, capsys):
    """`hipaug literature`: the summary on stdout, no logging copies of the warnings, errors in one line."""
    page = tmp_path / "page.md"
    assert main(["literature", str(SEED), "--out", str(page)]) == 0
    out, err = capsys.readouterr()
    assert out == lit.import_note(SEED, page).summary() + "\n" and err == ""
    assert main(["literature", str(SEED), "--bib"]) == 0
    assert capsys.readouterr().out == lit.note_to_bibtex(lit.read_note(SEED))
    vault = _make_vault(tmp_path)
    assert main(["literature", "--vault", str(vault), "--out", str(tmp_path / "out")]) == 0
    out, err = capsys.readouterr()
    assert "warning: not_a_note.md: skipped" in out and "wrote 3 pages" in out and err == ""
    assert "warning: garciaBiasSmallData2021.md: line 6: unknown callout type [!Question] (kept)" in out
    for argv, message in [([str(SEED)], "--out PAGE.md is required"), (["--vault", str(vault)], "--vault needs --out"),
                          ([], "give a NOTE.md"), ([str(SEED), "--vault", str(vault)], "not both"),
                          ([str(SEED), "--bib", "--out", str(page)], "do not combine"),
                          ([str(NOT_A_NOTE), "--out", str(page)], "not a Zotero literature note"),
                          ([str(NOT_A_NOTE), "--bib"], "not a Zotero literature note")]:
        assert main(["literature", *argv]) == 2
        out, err = capsys.readouterr()
        assert out == "" and err.startswith("hipaug: error: ") and message in err and err.count("\n") == 1, argv


def test_escape_md_neutralises_markdown():
    cases = ["# heading", "- item", "1. first", "% comment", "(label)=", "{{ subst }}", "$x$", "<b>",
             "[text](http://x)", "`code`", "a_b*c*", ":::", "+++", "&amp;"]
    for s in cases:
        e = lit.escape_md(s)
        assert unescape(e) == s
        assert not re.match(r"^(#|- |\d+\.|%|\(|:::|\+)", e), e
    assert lit.escape_md("VGG-16 model [18] “with GAN”") == "VGG-16 model [18] “with GAN”"


def test_outputs_never_overwrite_notes(tmp_path):
    folder = tmp_path / "notes"
    folder.mkdir()
    shutil.copy(JOURNAL, folder)
    with pytest.raises(ConfigError, match="overwrite"):
        lit.import_vault(folder, folder)
    with pytest.raises(ConfigError, match="the note itself"):
        lit.import_note(folder / JOURNAL.name, folder / JOURNAL.name)
    assert (folder / JOURNAL.name).read_bytes() == JOURNAL.read_bytes()


def test_cite_line_is_neutralised():
    text = SEED.read_text(encoding="utf-8").replace("nov. 2019", "nov. 2019 $5 <b> {{x}}")
    md = render(lit.parse_note(text))
    assert r"\$5 \<b> \{\{x\}\}" in md and "em _2019 International" in md
