"""Import a reader's Zotero literature notes (Obsidian callouts) into the book.

The reader of Lin & Chung (TAAI 2019) annotated the paper in Zotero and exported the note to
Obsidian with the Zotero Integration plugin and a Nunjucks template (Cite, Synthesize,
Metadata, LINK, Abstract and important callouts, then ``%% begin annotations %%`` with one
``>[!Note]`` callout per annotation). This module parses such notes into frozen dataclasses,
renders each as a MyST page (one admonition per highlight, in the reader's colour, with a
``(hl-...)=`` label other pages can ``{ref}``), builds a BibTeX entry from the Metadata callout,
and imports a whole vault folder (pages, a reading-list index and ``references.bib``).

Robustness contract: every oddity (missing section, unknown callout, duplicated highlight,
truncated callout, missing image...) becomes one line in ``note.warnings`` (and a logging
warning); nothing is dropped silently and ``note.counts()`` equals ``written_counts(page)``.
A file that is not such a note at all raises a one-line ``DataError`` naming the file.

Template quirks handled (see the template's whitespace control): creators share one line
separated by ``</br>`` (a leading space marks "Last, First", none a single-field name); the
annotated text follows the callout header on the same line after ``</br></br>``; ``nl2br``
texts continue on lines without ``>``; the abstract is not prefixed by ``>``; the important
block appends a stray ``>`` to the line before each item's image; Windows ``file://C:\\``
links are shown as page numbers only.
"""

from __future__ import annotations

import hashlib
import logging
import re
import shutil
import sys
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import TextIO

from .errors import ConfigError, DataError

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# The reader's colour code (PAPER.md): hex -> (colour name, role)
# ---------------------------------------------------------------------------------------------

COLOUR_CODE: dict[str, tuple[str, str]] = {
    "#ffd400": ("yellow", "motivation"),
    "#2ea8e5": ("blue", "method"),
    "#ff6666": ("red", "dataset"),
    "#5fb236": ("green", "result/claim"),
    "#e56eee": ("magenta", "metric"),
}
COLOUR_HEX: dict[str, str] = {name: hx for hx, (name, _role) in COLOUR_CODE.items()} | {"other": "#999999"}
ROLES: dict[str, str] = {name: role for _hx, (name, role) in COLOUR_CODE.items()} | {"other": "highlight"}

# Zotero creator types; the template writes them through Nunjucks `capitalize` (first letter up,
# the rest down), so "seriesEditor" arrives as "Serieseditor".
CREATOR_TYPES = (
    "author", "contributor", "editor", "translator", "seriesEditor", "bookAuthor", "reviewedAuthor",
    "interviewee", "interviewer", "director", "scriptwriter", "producer", "castMember", "sponsor",
    "cosponsor", "counsel", "inventor", "attorneyAgent", "recipient", "performer", "composer",
    "wordsBy", "cartographer", "programmer", "artist", "commenter", "presenter", "guest", "podcaster",
)
_CREATOR_BY_LOWER = {c.lower(): c for c in CREATOR_TYPES}

# Metadata callout keys -> Metadata field names.
_META_FIELDS = {
    "title": "title", "year": "year", "citekey": "citekey", "itemtype": "item_type",
    "journal": "journal", "volume": "volume", "issue": "issue", "book": "book",
    "publisher": "publisher", "location": "location", "pages": "pages", "doi": "doi", "isbn": "isbn",
}

BIBTEX_TYPES = {
    "conferencePaper": "inproceedings", "journalArticle": "article", "bookSection": "incollection",
    "book": "book", "thesis": "phdthesis", "report": "techreport",
}

# ---------------------------------------------------------------------------------------------
# Data model
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Creator:
    """One Zotero creator: "Last, First" or a single-field `name` (institutions)."""

    kind: str  # Zotero creator type: "author", "editor", "seriesEditor", ...
    last: str | None = None  # family name (two-field creators)
    first: str | None = None  # given names (two-field creators)
    name: str | None = None  # single-field name, e.g. "World Health Organization"

    def display(self) -> str:
        """'First Last' or the single-field name."""
        if self.name:
            return self.name
        return " ".join(p for p in (self.first, self.last) if p)

    def sort_name(self) -> str:
        """'Last, First' or the single-field name."""
        if self.name:
            return self.name
        return ", ".join(p for p in (self.last, self.first) if p)


@dataclass(frozen=True)
class Metadata:
    """The note's ``>[!Metadata]`` callout (None for an absent field)."""

    title: str | None = None  # **Title**
    year: str | None = None  # **Year** (kept as text)
    citekey: str | None = None  # **Citekey** without the leading @
    item_type: str | None = None  # **itemType**, e.g. conferencePaper
    creators: tuple[Creator, ...] = ()  # every creator line, in order
    journal: str | None = None  # **Journal** (journalArticle), italics removed
    volume: str | None = None  # **Volume**
    issue: str | None = None  # **Issue**
    book: str | None = None  # **Book** (bookSection)
    publisher: str | None = None  # **Publisher**
    location: str | None = None  # **Location** (Zotero "place")
    pages: str | None = None  # **Pages**, e.g. "1-5"
    doi: str | None = None  # **DOI**
    isbn: str | None = None  # **ISBN**
    extra: tuple[tuple[str, str], ...] = ()  # unknown keys and derived values, e.g. ("publicationTitle", ...)

    def creators_of(self, kind: str) -> tuple[Creator, ...]:
        return tuple(c for c in self.creators if c.kind == kind)

    @property
    def authors(self) -> tuple[Creator, ...]:
        return self.creators_of("author")

    @property
    def editors(self) -> tuple[Creator, ...]:
        return self.creators_of("editor")

    def get_extra(self, key: str) -> str | None:
        for k, v in self.extra:
            if k == key:
                return v
        return None

    @property
    def container(self) -> str | None:
        """Journal, book or proceedings title (the last one possibly derived from the Cite callout)."""
        return self.journal or self.book or self.get_extra("publicationTitle")


@dataclass(frozen=True)
class Annotation:
    """One ``>[!Note]`` callout of the Annotations section."""

    kind: str  # "highlight" | "note" (Zotero text note) | "image" (image/area annotation)
    color: str | None  # highlight colour as written (lower-case hex), None for notes/images
    colour_name: str | None  # yellow/blue/red/green/magenta/other for highlights, else None
    text: str  # the annotated text, line breaks restored from nl2br ("" for notes and images)
    comment: str  # the reader's comment ("" if none); for a text note, the note itself
    images: tuple[str, ...]  # embedded image paths as written (vault-relative)
    page: str | None  # page label from the [page N](file://...) link
    date: str | None  # annotation date "YYYY-MM-DD HH:mm"
    export: str | None  # the "### Exported:" section it came in
    id: str  # stable slug, e.g. "hl-the-final-hip-fracture-classification-1a2b3c4"
    line: int = 0  # line of the callout header in the source (for messages)

    @property
    def role(self) -> str | None:
        """The colour's meaning in the reader's code (motivation, method, ...)."""
        return ROLES.get(self.colour_name) if self.colour_name else None


@dataclass(frozen=True)
class ImportantItem:
    """One item of the ``> [!important]`` block (annotations whose comment starts with 'important')."""

    text: str  # annotated text ("" for an image item)
    images: tuple[str, ...]  # embedded image paths
    page: str | None  # page label


@dataclass(frozen=True)
class Callout:
    """A callout the template does not produce (kept verbatim, rendered as a plain admonition)."""

    kind: str  # callout type as written, e.g. "Question"
    title: str  # text after the type on the header line
    body: str  # body with one level of '>' removed
    line: int = 0  # header line


@dataclass(frozen=True)
class Note:
    """A parsed literature note."""

    metadata: Metadata
    cite: str  # the formatted reference of the Cite callout (numeric label removed)
    abstract: str  # "" if empty
    contribution: str  # **Contribution** of the Synthesize callout ("" if empty)
    important: tuple[ImportantItem, ...]
    annotations: tuple[Annotation, ...]
    link_text: tuple[str, ...]  # titles of the LINK callout's attachments (never the file:// paths)
    import_date: str | None  # the "%% Import Date: ... %%" trailer
    source_path: Path | None
    warnings: tuple[str, ...]
    synthesize: tuple[tuple[str, str], ...] = ()  # other **Key**:: lines (or free text, key "") of Synthesize
    other_callouts: tuple[Callout, ...] = ()  # unknown callout types, kept
    extra_text: tuple[str, ...] = ()  # text outside any recognised structure, kept
    exports: tuple[str, ...] = ()  # the "### Exported:" stamps in order

    @property
    def citekey(self) -> str:
        if self.metadata.citekey:
            return self.metadata.citekey
        if self.source_path is not None:
            return _slug_key(self.source_path.stem)
        return "note"

    @property
    def title(self) -> str:
        return self.metadata.title or (self.source_path.stem if self.source_path else self.citekey)

    @property
    def highlights(self) -> tuple[Annotation, ...]:
        return tuple(a for a in self.annotations if a.kind == "highlight")

    def annotation(self, id: str) -> Annotation:
        for a in self.annotations:
            if a.id == id:
                return a
        raise KeyError(id)

    def counts(self) -> dict[str, int]:
        """What the note holds: annotations, highlights, notes, images (embeds), comments."""
        return _counts(self.annotations)


def _counts(annotations: Iterable[Annotation]) -> dict[str, int]:
    anns = list(annotations)
    return {
        "annotations": len(anns),
        "highlights": sum(a.kind == "highlight" for a in anns),
        "notes": sum(a.kind == "note" for a in anns),
        "images": sum(len(a.images) for a in anns),
        "comments": sum(bool(a.comment) for a in anns),
    }


def format_counts(c: Mapping[str, int]) -> str:
    return ", ".join(f"{c.get(k, 0)} {k}" for k in ("highlights", "notes", "images", "comments"))


# ---------------------------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------------------------

_HEADER_RE = re.compile(r"^>[ \t]*\[!([^\]\s]+)\]([+-]?)[ \t]*(.*)$")
_BEGIN_RE = re.compile(r"^%%\s*begin annotations\s*%%$", re.I)
_END_RE = re.compile(r"^%%\s*end annotations\s*%%$", re.I)
_IMPORT_RE = re.compile(r"^%%\s*Import Date:\s*(.*?)\s*%%$", re.I)
_ANN_HEADING_RE = re.compile(r"^##\s+Annotations\s*$", re.I)
_EXPORTED_RE = re.compile(r"^###\s+Exported:?\s*(.*?)\s*$", re.I)
_HEADING_RE = re.compile(r"^#{1,6}\s")
_BR_RE = re.compile(r"<\s*/?\s*br\s*/?\s*>[ \t]*\n?", re.I)
_MARK_COLOUR_RE = re.compile(r"^<mark\b[^>]*?background-color:\s*([^;\"'>\s]+)\s*[;\"']", re.I)
_PAGE_RE = re.compile(r"^\[page\s*([^\]]*)\]\((.*?)\)\s*(?:\[\[([^\]]*)\]\])?\s*>?\s*$")
_KV_RE = re.compile(r"^(\s*)\*\*([^*]+?)\*\*::[ \t]?(.*)$")


@dataclass
class _Block:
    kind: str
    title: str
    line: int
    region: str
    export: str | None
    lines: list[tuple[int, str]] = field(default_factory=list)


class _Warnings:
    def __init__(self, source: str) -> None:
        self.items: list[str] = []
        self.source = source

    def __call__(self, msg: str, line: int | None = None) -> None:
        text = f"line {line}: {msg}" if line else msg
        self.items.append(text)
        log.warning("%s: %s", self.source, text)


def read_note(path: str | Path) -> Note:
    """Read and parse a note file (UTF-8); a file that is not a note raises DataError."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such note file") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder, not a note file (use --vault for a folder)") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read note ({exc.strerror or exc})") from None
    if b"\x00" in data[:8192]:
        raise DataError(f"{path}: not a literature note (binary file)")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not a literature note (not UTF-8 text: byte {exc.start})") from None
    return parse_note(text, source=path)


def parse_note(text: str, source: str | Path | None = None) -> Note:
    """Parse the text of a Zotero Integration note; see the module docstring for the format."""
    src_path = Path(source) if source is not None else None
    src_name = str(source) if source is not None else "<note>"
    warn = _Warnings(src_name)
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    start = _skip_front_matter(lines)

    blocks: list[_Block] = []
    extra: list[tuple[int, str]] = []
    exports: list[str] = []
    region, export, cur = "pre", None, None
    saw_begin = saw_end = saw_heading = False
    import_date = None

    def close() -> None:
        nonlocal cur
        if cur is not None:
            blocks.append(cur)
            cur = None

    for i in range(start, len(lines)):
        line, no = lines[i], i + 1
        s = line.strip()
        if _BEGIN_RE.match(s):
            close()
            if saw_begin:
                warn("second '%% begin annotations %%' marker", no)
            region, saw_begin = "ann", True
            continue
        if _END_RE.match(s):
            close()
            if region != "ann":
                warn("'%% end annotations %%' without a matching begin marker", no)
            region, saw_end = "post", True
            continue
        m = _IMPORT_RE.match(s)
        if m:
            close()
            if import_date is not None:
                warn("several Import Date trailers; keeping the first", no)
            else:
                import_date = m.group(1)
            continue
        if _ANN_HEADING_RE.match(s):
            close()
            saw_heading = True
            if region == "pre":
                region = "heading"
            continue
        m = _EXPORTED_RE.match(s)
        if m:
            close()
            export = m.group(1) or None
            if export:
                exports.append(export)
            if region == "pre":
                region = "heading"
            continue
        m = _HEADER_RE.match(line)
        if m:
            close()
            cur = _Block(m.group(1), m.group(3), no, region, export)
            continue
        if _HEADING_RE.match(s):
            close()
            extra.append((no, line))
            continue
        if not s and (region in ("ann", "heading") or (cur is not None and cur.kind.lower() == "note")):
            close()  # a blank line ends an annotation callout
            continue
        if cur is not None:
            cur.lines.append((no, line))
        elif s:
            extra.append((no, line))

    close()

    has_meta = any(b.kind.lower() == "metadata" for b in blocks)
    has_ann = any(b.kind.lower() == "note" for b in blocks)
    if not has_meta and not has_ann:
        raise DataError(f"{src_name}: not a Zotero literature note (no [!Metadata] callout and no [!Note] annotations)")

    # Structural oddities
    if saw_begin and not saw_end:
        warn("no '%% end annotations %%' marker: the note looks truncated")
    if not saw_begin and (saw_heading or has_ann):
        warn("no '%% begin annotations %%' marker")
    if import_date is None:
        warn("no '%% Import Date: ... %%' trailer")

    cite = abstract = contribution = ""
    synthesize: list[tuple[str, str]] = []
    link_text: tuple[str, ...] = ()
    metadata = Metadata()
    important: list[ImportantItem] = []
    others: list[Callout] = []
    raw_anns: list[dict] = []
    seen: set[str] = set()

    for b in blocks:
        k = b.kind.lower()
        if k == "note":
            if b.region == "pre":
                warn("annotation callout outside the Annotations section (kept)", b.line)
            raw_anns.append(_parse_annotation(b, warn))
            continue
        if k in ("cite", "synthesize", "metadata", "link", "abstract", "important"):
            if k in seen:
                warn(f"second [!{b.kind}] callout: kept as an extra callout", b.line)
                others.append(Callout(b.kind, b.title, _body_text(b), b.line))
                continue
            seen.add(k)
        if k == "cite":
            cite = _parse_cite(b)
        elif k == "synthesize":
            contribution, synthesize = _parse_synthesize(b)
        elif k == "metadata":
            metadata = _parse_metadata(b, warn)
        elif k == "link":
            link_text = _parse_link(b)
        elif k == "abstract":
            abstract = _parse_abstract(b)
        elif k == "important":
            important = _parse_important(b, warn)
        else:
            warn(f"unknown callout type [!{b.kind}] (kept)", b.line)
            others.append(Callout(b.kind, b.title, _body_text(b), b.line))

    for k, name in (("cite", "Cite"), ("synthesize", "Synthesize"), ("metadata", "Metadata"),
                    ("link", "LINK"), ("abstract", "Abstract"), ("important", "important")):
        if k not in seen:
            warn(f"no [!{name}] callout")
    if has_meta:
        for fld, label in (("title", "Title"), ("citekey", "Citekey"), ("year", "Year"), ("item_type", "itemType")):
            if not getattr(metadata, fld):
                warn(f"the Metadata callout has no {label}")
        if metadata.year and not re.fullmatch(r"\d{4}", metadata.year):
            warn(f"Year {metadata.year!r} is not a four-digit year")
    if not metadata.citekey:
        if src_path is not None:
            warn(f"no citekey: using the file name {_slug_key(src_path.stem)!r}")
        else:
            warn("no citekey: using 'note'")
    metadata = _derive_container(metadata, cite, warn)

    for no, line in extra:
        warn(f"text outside any callout kept: {_short(line.strip(), 60)!r}", no)
    if not raw_anns:
        warn("no annotations in the note")

    annotations = _assign_ids(raw_anns, warn)
    return Note(
        metadata=metadata, cite=cite, abstract=abstract, contribution=contribution,
        important=tuple(important), annotations=annotations, link_text=link_text,
        import_date=import_date, source_path=src_path, warnings=tuple(warn.items),
        synthesize=tuple(synthesize), other_callouts=tuple(others),
        extra_text=tuple(line for _no, line in extra), exports=tuple(exports),
    )


def _skip_front_matter(lines: list[str]) -> int:
    if lines and lines[0].strip() == "---":
        for i in range(1, min(len(lines), 200)):
            if lines[i].strip() in ("---", "..."):
                return i + 1
    return 0


def _unquote(line: str, levels: int = 1) -> str:
    """Remove up to `levels` leading '>' (and one space after the last)."""
    for _ in range(levels):
        if line.startswith(">"):
            line = line[1:]
        else:
            break
    return line


def _body_text(b: _Block) -> str:
    parts = [_strip_one_space(_unquote(line)) for _no, line in b.lines]
    return "\n".join(parts).strip("\n")


def _strip_one_space(s: str) -> str:
    return s[1:] if s.startswith(" ") else s


def _nl2br_text(lines: Sequence[str]) -> str:
    """Join the lines of an nl2br'd value and turn <br> tags back into line breaks."""
    text = "\n".join(lines)
    text = _BR_RE.sub("\n", text)
    return "\n".join(part.rstrip() for part in text.split("\n")).strip()


def _parse_cite(b: _Block) -> str:
    parts = [b.title] + [_unquote(line) for _no, line in b.lines]
    text = "\n".join(parts).strip()
    # CSL numeric styles (IEEE) put the label "[1]" first
    text = re.sub(r"^\[\d+\]\s*", "", text)
    return "\n".join(p.strip() for p in text.split("\n") if p.strip())


def _parse_synthesize(b: _Block) -> tuple[str, list[tuple[str, str]]]:
    items: list[list[str]] = []
    lines = ([b.title] if b.title else []) + [_unquote(line) for _no, line in b.lines]
    for line in lines:
        m = _KV_RE.match(line)
        if m:
            items.append([m.group(2).strip(), m.group(3).rstrip()])
        elif items:
            items[-1][1] += "\n" + line.rstrip()
        elif line.strip():
            items.append(["", line.strip()])
    contribution = ""
    rest = []
    for key, value in items:
        value = _nl2br_text([value])
        if key.lower() == "contribution" and not contribution:
            contribution = value
        elif value or key.lower() != "contribution":
            if value:
                rest.append((key, value))
    return contribution, rest


def _parse_link(b: _Block) -> tuple[str, ...]:
    text = "\n".join([b.title] + [line for _no, line in b.lines])
    return tuple(t.strip() for t in re.findall(r"\[([^\]]*)\]\(", text) if t.strip())


def _parse_abstract(b: _Block) -> str:
    raw = [line for _no, line in b.lines]
    nonblank = [line for line in raw if line.strip()]
    if nonblank and all(line.startswith(">") for line in nonblank):
        raw = [_strip_one_space(_unquote(line)) for line in raw]
    if b.title:
        raw = [b.title] + raw
    return "\n".join(line.rstrip() for line in raw).strip()


def _parse_metadata(b: _Block, warn: _Warnings) -> Metadata:
    values: dict[str, str | None] = {}
    creators: list[Creator] = []
    extra: list[tuple[str, str]] = []
    last_field: str | None = None
    lines = ([(b.line, b.title)] if b.title else []) + b.lines
    for no, raw in lines:
        if raw.startswith(">"):
            line = raw[1:]
        else:
            line = raw
            if raw.strip():
                warn("Metadata line without '>' (kept)", no)
        if not line.strip():
            continue
        pieces = re.split(r"<\s*/?\s*br\s*/?\s*>", line, flags=re.I)
        for j, seg in enumerate(pieces):
            if not seg.strip():
                continue
            followed_by_br = j < len(pieces) - 1
            m = _KV_RE.match(seg)
            if not m:
                if last_field is not None and last_field in values and values[last_field] is not None:
                    values[last_field] = f"{values[last_field]} {seg.strip()}"
                    warn(f"Metadata line continued the {last_field} field: {_short(seg.strip(), 40)!r}", no)
                else:
                    extra.append(("", seg.strip()))
                    warn(f"unrecognised Metadata line kept: {_short(seg.strip(), 40)!r}", no)
                continue
            space, key, value = m.group(1), m.group(2).strip(), m.group(3).strip()
            fld = _META_FIELDS.get(key.lower().replace(" ", ""))
            if fld is not None:
                value = _clean_meta_value(fld, value)
                if fld in values:
                    warn(f"duplicate Metadata field {key} (kept the first, the second in extra)", no)
                    if value:
                        extra.append((key, value))
                    continue
                values[fld] = value or None
                last_field = fld
            elif key.lower() in _CREATOR_BY_LOWER or followed_by_br:
                kind = _CREATOR_BY_LOWER.get(key.lower(), key[:1].lower() + key[1:])
                if not value:
                    warn(f"empty {key} creator skipped", no)
                    continue
                creators.append(_make_creator(kind, value, two_field=bool(space)))
                last_field = None
            else:
                if value:
                    extra.append((key, value))
                last_field = None
    return Metadata(creators=tuple(creators), extra=tuple(extra), **values)


def _clean_meta_value(fld: str, value: str) -> str:
    value = value.strip()
    if fld == "citekey":
        value = value.lstrip("@").strip()
    elif fld == "journal":
        m = re.fullmatch(r"\*(.*)\*|_(.*)_", value)
        if m:
            value = (m.group(1) if m.group(1) is not None else m.group(2)).strip()
        if value == "**":
            value = ""
    return value


def _make_creator(kind: str, value: str, two_field: bool) -> Creator:
    # The template writes " **Type**:: last, first" (leading space) for two-field creators and
    # "**Type**:: name" (no space) for single-field ones.
    if two_field:
        last, sep, first = value.partition(",")
        return Creator(kind=kind, last=last.strip() or None, first=first.strip() or None if sep else None)
    return Creator(kind=kind, name=value)


_ITALIC_RE = re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])|(?<![\w_])_(?!\s)([^_\n]+?)(?<!\s)_(?![\w_])")
_LIGATURES = {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl", "\ufb05": "st", "\ufb06": "st"}


def fix_ligatures(s: str) -> str:
    """Replace typographic ligatures (ﬁ, ﬂ, ...) that PDF metadata extraction leaves behind."""
    return "".join(_LIGATURES.get(ch, ch) for ch in s)


def _derive_container(md: Metadata, cite: str, warn: _Warnings) -> Metadata:
    """For a conference paper (or an empty Journal/Book), take the container from the Cite callout."""
    need = None
    if md.item_type == "conferencePaper":
        need = "proceedings title"
    elif md.item_type == "journalArticle" and not md.journal:
        need = "journal"
    elif md.item_type == "bookSection" and not md.book:
        need = "book title"
    if need is None or md.get_extra("publicationTitle"):
        return md
    title_norm = _norm(md.title or "")
    found = None
    for m in _ITALIC_RE.finditer(cite):
        span = (m.group(1) or m.group(2) or "").strip()
        if span and _norm(span) != title_norm and not re.fullmatch(r"[\d\s()]+", span):
            found = span
            break
    if found is None:
        warn(f"the Metadata callout has no {need} and the Cite callout has no italic span to take it from")
        return md
    fixed = fix_ligatures(found)
    msg = f"{need} taken from the Cite callout's italic span: {fixed!r}"
    if fixed != found:
        msg += " (typographic ligatures replaced)"
    warn(msg)
    return replace(md, extra=md.extra + (("publicationTitle", fixed),))


def _parse_annotation(b: _Block, warn: _Warnings) -> dict:
    """One >[!Note] callout -> dict of Annotation fields (without id)."""
    text_lines: list[str] = []
    comment_lines: list[str] = []
    images: list[str] = []
    page = date = None
    header_kind, color = None, None
    mode = None  # "text" | "comment" | "after"
    lines = list(b.lines)
    if b.title:
        lines.insert(0, (b.line, ">" + b.title))
    if not lines:
        warn("empty annotation callout (truncated note?)", b.line)
    for idx, (no, raw) in enumerate(lines):
        brs = re.sub(r"<\s*/?\s*br\s*/?\s*>", "</br>", raw)
        head0 = _unquote(brs).strip()
        if idx == 0 and ("</br></br>" in brs or head0.startswith("<")
                         or "note</br></br>".startswith(head0.lower())):
            if "</br></br>" in brs:
                hdr, _, rest = brs.partition("</br></br>")
            else:  # a header cut short (truncated note) or hand-edited without </br></br>
                hdr, _, rest = brs.partition("</mark>")
                warn(f"incomplete annotation header {_short(head0, 40)!r} (truncated note?)", no)
            hdr = _unquote(hdr).strip()
            m = _MARK_COLOUR_RE.match(hdr)
            if m:
                color = m.group(1).strip().lower()
                header_kind = "highlight"
            elif hdr.lower() == "note":
                header_kind = "note"
            elif hdr:
                header_kind = "unknown"
                warn(f"unknown annotation header {hdr!r}", no)
            rest = rest.strip() if not rest.startswith(">") else rest
            if rest.startswith(">"):
                text_lines.append(_strip_one_space(rest[1:]))
                mode = "text"
            elif rest:
                text_lines.append(rest)
                mode = "text"
            continue
        stripped = raw.strip()
        m = re.match(r"^>[ \t]?!\[\[(.+?)\]\]\s*$", raw)
        if m:
            images.append(m.group(1).strip())
            mode = "after" if mode == "text" else mode
            continue
        if re.match(r"^>[ \t]?!(\[|$)", raw):  # an image embed cut short
            frag = re.match(r"^>[ \t]?!\[\[([^\]]+)", raw)
            if frag:
                images.append(frag.group(1).strip())
            warn(f"image embed cut short: {_short(stripped, 40)!r} (truncated note?)", no)
            mode = "after" if mode == "text" else mode
            continue
        if raw.startswith(">>"):
            body = raw[2:]
            if body.startswith("-"):
                if comment_lines:
                    comment_lines.append("")
                comment_lines.append(_strip_one_space(body[1:]))
            else:
                comment_lines.append(_strip_one_space(body))
            mode = "comment"
            continue
        link = _strip_one_space(_unquote(raw))
        pm = _PAGE_RE.match(link)
        # annotated text continues on lines without '>', so a '>[p...' line is always the page link
        partial = raw.startswith(">") and not pm and len(link) >= 1 and (
            link.startswith("[page") or "[page ".startswith(link))
        if (pm and raw.startswith(">")) or partial:
            if page is not None or date is not None:
                warn("second page link in one annotation (kept the first)", no)
            elif pm:
                page = pm.group(1).strip() or None
                date = (pm.group(3) or "").strip() or None
            else:
                cut = re.match(r"^\[page\s*([^\]]*)\]", link)
                page = cut.group(1).strip() or None if cut else None
                warn("page link cut short (truncated note?)", no)
            mode = "done"
            continue
        if mode == "done":
            warn(f"text after the page link kept in the comment: {_short(stripped, 40)!r}", no)
            comment_lines.append(_unquote(raw).strip())
            continue
        content = _strip_one_space(raw[1:]) if raw.startswith(">") else raw
        if mode == "comment":
            comment_lines.append(content)
        elif mode == "text" or (mode is None and header_kind in ("highlight", None, "unknown")):
            text_lines.append(content)
            mode = "text"
        else:
            # an unexpected line in a note/image callout: keep it as comment text
            warn(f"unexpected line in annotation kept in the comment: {_short(stripped, 40)!r}", no)
            comment_lines.append(content)
            mode = "comment"
    text = _nl2br_text(text_lines)
    comment = _nl2br_text(comment_lines)
    if page is None:
        warn("annotation without a page link (truncated note?)", b.line)
    if header_kind == "highlight":
        kind = "highlight"
        if not text and images:
            kind = "image"
    elif header_kind == "note":
        kind = "note"
        if text:
            warn("text note with annotated text: text kept", b.line)
    else:
        if images:
            kind = "image"
        elif text:
            kind = "highlight"
            warn("annotation with text but no highlight header (underline?): treated as an uncoloured highlight", b.line)
        else:
            kind = "note"
            if not comment:
                warn("empty annotation (no text, image or comment)", b.line)
    if kind == "highlight":
        colour_name = COLOUR_CODE.get(color, ("other", ""))[0] if color else "other"
        if color and color not in COLOUR_CODE:
            warn(f"highlight colour {color} is not in the reader's colour code: shown as 'other'", b.line)
    else:
        colour_name = None
        color = None
    return dict(kind=kind, color=color, colour_name=colour_name, text=text,
                comment=comment, images=tuple(images), page=page, date=date, export=b.export, line=b.line)


def _parse_important(b: _Block, warn: _Warnings) -> list[ImportantItem]:
    items: list[ImportantItem] = []
    cur: dict | None = None

    def finish(page: str | None, no: int | None = None) -> None:
        nonlocal cur
        if cur is None:
            return
        text = "\n".join(cur["text"])
        if text.endswith(">"):
            text = text[:-1]  # the template appends '>' after the text
        text = _nl2br_text([text]) if text else ""
        if page is None:
            warn("important item without a page link", no)
        items.append(ImportantItem(text=text, images=tuple(cur["images"]), page=page))
        cur = None

    title = b.title.strip()
    if title and title != ">":
        warn(f"text on the [!important] header line kept as an item: {_short(title, 40)!r}", b.line)
        cur = {"text": [title], "images": [], "mode": "text"}
    for no, raw in b.lines:
        s = raw.strip()
        if not s or s == ">":
            continue
        pm = _PAGE_RE.match(_strip_one_space(_unquote(s)))
        if pm:
            if cur is None:
                cur = {"text": [], "images": [], "mode": None}
                warn("important page link without an item", no)
            finish(pm.group(1).strip() or None, no)
            continue
        m = re.match(r"^>-[ \t]?!\[\[(.+?)\]\]>?$", s)
        if m:
            if cur is None:
                cur = {"text": [], "images": [], "mode": None}
            cur["images"].append(m.group(1).strip())
            cur["mode"] = "image"
            continue
        if s.startswith(">-"):
            if cur is not None:
                finish(None, no)
            cur = {"text": [_strip_one_space(s[2:])], "images": [], "mode": "text"}
            continue
        if cur is not None and cur["mode"] == "text":
            cur["text"].append(_unquote(raw).rstrip())
            continue
        warn(f"unexpected line in the important block kept as an item: {_short(s, 40)!r}", no)
        if cur is not None:
            finish(None, no)
        cur = {"text": [_unquote(raw).strip()], "images": [], "mode": "text"}
    if cur is not None:
        finish(None, b.line)
    return items


# ---------------------------------------------------------------------------------------------
# Identifiers and matching
# ---------------------------------------------------------------------------------------------

_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
                         "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2032": "'",
                         "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2010": "-", "\u2011": "-", "\u00a0": " "})


def _norm(s: str) -> str:
    """Whitespace-collapsed, case-folded, NFKC text with straight quotes and plain hyphens."""
    s = unicodedata.normalize("NFKC", s).translate(_QUOTES)
    return " ".join(s.split()).casefold()


def _slug_words(s: str, words: int = 5, max_len: int = 40) -> str:
    ascii_ = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode().lower()
    toks = re.findall(r"[a-z0-9]+", ascii_)[:words]
    slug = "-".join(toks)[:max_len].strip("-")
    return slug


def _slug_key(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9_:-]+", "-", s).strip("-") or "note"


def annotation_id(kind: str, text: str, comment: str = "", images: Sequence[str] = ()) -> str:
    """Stable id of an annotation: a slug of its first words plus a short hash of its content.

    Highlights hash their normalised text (so a re-export with other whitespace or case gives the
    same id), image annotations their image path, text notes their comment.
    """
    if kind == "highlight" and text:
        prefix, base = "hl", text
    elif images:
        prefix, base = "img", images[0]
        text = PurePosixPath(images[0].split("|")[0]).stem
    else:
        prefix, base = "note", comment
        text = comment
    digest = hashlib.sha1(_norm(base).encode("utf-8")).hexdigest()[:7]
    slug = _slug_words(text)
    return f"{prefix}-{slug}-{digest}" if slug else f"{prefix}-{digest}"


def _assign_ids(raw: list[dict], warn: _Warnings) -> tuple[Annotation, ...]:
    out = []
    used: dict[str, int] = {}
    for r in raw:
        base = annotation_id(r["kind"], r["text"], r["comment"], r["images"])
        aid = base
        if base in used:
            used[base] += 1
            aid = f"{base}-{used[base]}"
            what = _short(r["text"] or r["comment"] or ", ".join(r["images"]), 50)
            warn(f"duplicated {r['kind']} (p. {r['page'] or '?'}): {what!r} kept as {aid}", r["line"])
        else:
            used[base] = 1
        out.append(Annotation(id=aid, **r))
    return tuple(out)


def match_highlight(note: Note, quote: str) -> Annotation:
    """The one annotation whose text contains `quote` (whitespace/case/quote-style normalised).

    An exact annotation id also matches; a quote equal to a whole highlight beats longer ones. Raises DataError if none or several match.
    """
    for a in note.annotations:
        if a.id == quote.strip():
            return a
    q = _norm(quote)
    if not q:
        raise DataError(f"{_note_name(note)}: empty highlight quote")
    hits = [a for a in note.annotations if a.text and q in _norm(a.text)]
    if not hits:
        hits = [a for a in note.annotations if a.comment and q in _norm(a.comment)]
    if not hits:
        raise DataError(f"{_note_name(note)}: no highlight contains {_short(quote, 60)!r}")
    if len(hits) > 1:  # a quote equal to one whole highlight wins ("AC-GAN" vs a longer passage)
        exact = [a for a in hits if _norm(a.text or a.comment) == q]
        if len(exact) == 1:
            return exact[0]
        pages = ", ".join(f"{a.id} (p. {a.page or '?'})" for a in hits)
        raise DataError(f"{_note_name(note)}: {_short(quote, 60)!r} matches {len(hits)} highlights: {pages}")
    return hits[0]


def _note_name(note: Note) -> str:
    return str(note.source_path) if note.source_path else note.citekey


def load_links(path: str | Path, note: Note | None = None) -> dict[str, list[tuple[str, str]]]:
    """Read a links YAML file -> {annotation id: [(title, target), ...]}.

    Format: a list of entries, or a mapping with ``links:`` (and optionally ``note:``, the note
    path relative to the YAML file, used when `note` is None)::

        - match: "with GAN group has better performance"   # quoted substring of the highlight
          chapters: [{title: "Transfer learning", ref: "ch-transfer"}]
        - id: hl-ac-gan-1234567                            # or an exact annotation id
          chapters: [ch-acgan]                             # a bare label is fine too

    An entry that matches no highlight or several raises ConfigError naming the entry.
    """
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such links file") from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: not valid YAML ({first})") from None
    entries = data
    if isinstance(data, dict):
        if note is None and data.get("note"):
            note = read_note((path.parent / str(data["note"])).resolve())
        entries = data.get("links", [])
    if entries is None:
        entries = []
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: expected a list of link entries (or a mapping with 'links:')")
    if note is None:
        raise ConfigError(f"{path}: no note given to match the links against (pass note= or add 'note: PATH')")
    out: dict[str, list[tuple[str, str]]] = {}
    for n, entry in enumerate(entries, 1):
        if not isinstance(entry, dict):
            raise ConfigError(f"{path}: entry {n} is not a mapping with match/id and chapters")
        label = f"entry {n} ({'id' if 'id' in entry else 'match'}: {_short(str(entry.get('id', entry.get('match', ''))), 50)!r})"
        quote = entry.get("id", entry.get("match"))
        if not isinstance(quote, str) or not quote.strip():
            raise ConfigError(f"{path}: entry {n} needs a non-empty 'match' (quoted highlight text) or 'id'")
        try:
            ann = match_highlight(note, quote)
        except DataError as exc:
            reason = str(exc).split(": ", 1)[-1]
            raise ConfigError(f"{path}: {label}: {reason}") from None
        chapters = entry.get("chapters", entry.get("refs", []))
        if isinstance(chapters, (str, dict)):
            chapters = [chapters]
        if not isinstance(chapters, list) or not chapters:
            raise ConfigError(f"{path}: {label}: 'chapters' must be a non-empty list")
        for ch in chapters:
            if isinstance(ch, str):
                title, target = "", ch
            elif isinstance(ch, dict) and isinstance(ch.get("ref", ch.get("target")), str):
                title, target = str(ch.get("title", "") or ""), ch.get("ref", ch.get("target"))
            else:
                raise ConfigError(f"{path}: {label}: each chapter is a label or {{title, ref}}")
            pair = (title, target.strip())
            if pair not in out.setdefault(ann.id, []):
                out[ann.id].append(pair)
    return out


# ---------------------------------------------------------------------------------------------
# MyST rendering
# ---------------------------------------------------------------------------------------------

_MD_SPECIAL_RE = re.compile(r"([\\`*_$<>&|~])")


def escape_md(text: str) -> str:
    """Escape text so MyST renders it literally (one line or several)."""
    out = []
    for line in text.split("\n"):
        line = line.strip()
        line = _MD_SPECIAL_RE.sub(r"\\\1", line)
        line = line.replace("{{", "\\{\\{").replace("}}", "\\}\\}")
        if re.search(r"\]\s*[(\[:]", line):
            line = line.replace("[", "\\[").replace("]", "\\]")
        m = re.match(r"^(\d{1,9})([.)])(\s|$)", line)
        if m:
            line = f"{m.group(1)}\\{line[len(m.group(1)):]}"
        elif line[:1] in ("#", "+", "-", "=", "%", ":", "(") and not line.startswith("\\"):
            line = "\\" + line
        out.append(line)
    return "\n".join(out)


def _light_escape(md: str) -> str:
    """Neutralise math, HTML, substitutions and code in Zotero's own markdown (keeps _italics_ and links)."""
    md = re.sub(r"([\\$<`])", r"\\\1", md)
    return md.replace("{{", "\\{\\{").replace("}}", "\\}\\}")


def _esc_role_title(s: str) -> str:
    return " ".join(re.sub(r"[`<>]", "", s).split())


def _strip_file_links(md: str) -> str:
    md = re.sub(r"\[([^\]\n]*)\]\(file://[^\n]*?\)", r"\1", md)
    return re.sub(r"file://\S*", "(local file)", md)


def _fence(content: str, minimum: int = 3) -> str:
    runs = [len(m.group(0)) for m in re.finditer(r"^ *(`{3,})", content, re.M)]
    return "`" * max(minimum, max(runs, default=0) + 1)


def _safe_rel(target: str) -> PurePosixPath:
    """A vault-relative image path made safe to copy and embed (no '..', no spaces)."""
    p = PurePosixPath(target.replace("\\", "/"))
    parts = [x for x in p.parts if x not in ("/", "")]
    if p.is_absolute() or ".." in parts or re.match(r"^[A-Za-z]:", target) or not parts:
        parts = ["images", p.name or "image"]
    clean = [re.sub(r"[^A-Za-z0-9._-]+", "-", x).strip("-") or "x" for x in parts]
    return PurePosixPath(*clean)


def _find_image(target: str, note: Note, image_root: Path | None) -> Path | None:
    roots: list[Path] = []
    if image_root is not None:
        roots.append(Path(image_root))
    if note.source_path is not None:
        d = Path(note.source_path).resolve().parent
        roots.extend([d, *d.parents][:8])
    rel = target.replace("\\", "/")
    for r in roots:
        p = r / rel
        if p.is_file():
            return p
    if "/" not in rel:  # Obsidian resolves a bare file name anywhere in the vault
        for r in roots[:1] + [r / "sources" / "images" for r in roots[:1]]:
            if r.is_dir():
                for hit in sorted(r.rglob(rel)):
                    if hit.is_file():
                        return hit
    return None


class _Renderer:
    def __init__(self, note: Note, links, extras, image_root, image_dest) -> None:
        self.note = note
        self.links = links or {}
        self.extras = extras or {}
        self.image_root = Path(image_root) if image_root is not None else None
        self.image_dest = Path(image_dest) if image_dest is not None else None
        self.warnings: list[str] = []
        self.copied: list[Path] = []

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        log.warning("%s: %s", _note_name(self.note), msg)

    def image(self, target: str, alt: str, cls: str) -> str:
        """An {image} directive, or a placeholder admonition if the file is not available."""
        path_part = target.split("|")[0].strip()
        src = _find_image(path_part, self.note, self.image_root)
        rel = _safe_rel(path_part)
        if src is not None and self.image_dest is not None:
            dest = self.image_dest / Path(*rel.parts)
            try:
                if not (dest.is_file() and dest.read_bytes() == src.read_bytes()):
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, dest)
                self.copied.append(dest)
            except OSError as exc:
                self.warn(f"cannot copy image {path_part} to {dest}: {exc.strerror or exc}")
                src = None
        elif src is not None and str(rel) != path_part.replace("\\", "/"):
            self.warn(f"image {path_part}: name needs copying (spaces or '..'); pass image_dest")
            src = None
        if src is None:
            self.warn(f"image not available in this export: {path_part}")
            return "\n".join([
                "```{admonition} Image not available",
                f":class: hl-missing-image {cls}",
                "",
                f"Image not available in this export: {escape_md(path_part)}",
                "```",
            ])
        return "\n".join(["```{image} " + rel.as_posix(), f":alt: {' '.join(alt.split())}", f":class: {cls}", "```"])

    def quote(self, text: str) -> str:
        lines = escape_md(text).split("\n")
        return "\n".join(f"> {line}" + ("\\" if i < len(lines) - 1 and line else "") if line else ">"
                         for i, line in enumerate(lines))

    @staticmethod
    def paragraph_lines(text: str) -> str:
        lines = escape_md(text).split("\n")
        return "\n".join(line + ("\\" if i < len(lines) - 1 and line and lines[i + 1] else "")
                         for i, line in enumerate(lines))

    def annotation(self, a: Annotation) -> str:
        page = f"p. {a.page}" if a.page else "page unknown"
        if a.kind == "highlight":
            title = f"{page} · {a.role or 'highlight'}"
            classes = f"hl-{a.colour_name or 'other'} hl-kind-highlight"
        elif a.kind == "note":
            title = f"{page} · reader's note"
            classes = "hl-note hl-kind-note"
        else:
            title = f"{page} · image"
            classes = "hl-image hl-kind-image"
        body: list[str] = []
        if a.text:
            body.append(self.quote(a.text))
        for n, img in enumerate(a.images, 1):
            alt = f"Image annotation, {page}" + (f" ({n})" if len(a.images) > 1 else "")
            body.append(self.image(img, alt, "hl-annotation-image"))
        if a.comment:
            body.append("**Reader's comment:** " + self.paragraph_lines(a.comment))
        targets = self.links.get(a.id, [])
        if targets:
            refs = []
            for t in targets:
                title_, target = (t if isinstance(t, (tuple, list)) else ("", t))[:2]
                title_ = _esc_role_title(str(title_ or ""))
                refs.append(f"{{ref}}`{title_} <{target}>`" if title_ else f"{{ref}}`{target}`")
            body.append("Tested in: " + ", ".join(refs))
        extra = self.extras.get(a.id)
        if extra:
            body.append(str(extra).strip("\n"))
        stamp = [x for x in (a.date and f"annotated {a.date}", a.export and f"exported {a.export}") if x]
        body.append("*" + escape_md(" · ".join(stamp + [f"id {a.id}"])) + "*")
        content = "\n\n".join(body)
        fence = _fence(content, 4)
        return "\n".join([f"({a.id})=", f"{fence}{{admonition}} {escape_md(title)}", f":class: {classes}", "",
                          content, fence])

    def important_item(self, item: ImportantItem) -> str:
        page = f"p. {item.page}" if item.page else "page unknown"
        body = []
        if item.text:
            body.append(self.quote(item.text))
        for img in item.images:
            body.append(self.image(img, f"Marked important, {page}", "hl-important-image"))
        if not body:
            body.append("*(empty item)*")
        content = "\n\n".join(body)
        fence = _fence(content, 4)
        return "\n".join([f"{fence}{{admonition}} {escape_md(page)} · marked important", ":class: hl-important", "",
                          content, fence])

    def metadata_lines(self) -> list[str]:
        md, note = self.note.metadata, self.note
        out = []
        authors = [c.display() for c in md.creators if c.kind == "author"]
        if authors:
            out.append(f"- **Authors:** {escape_md(', '.join(authors))}")
        others: dict[str, list[str]] = {}
        for c in md.creators:
            if c.kind != "author":
                others.setdefault(c.kind, []).append(c.display())
        for kind, names in others.items():
            label = re.sub(r"(?<!^)([A-Z])", r" \1", kind).lower().capitalize()
            out.append(f"- **{label}{'s' if len(names) > 1 else ''}:** {escape_md(', '.join(names))}")
        if md.year:
            out.append(f"- **Year:** {escape_md(md.year)}")
        container = md.container
        if container:
            label = {"journalArticle": "Journal", "bookSection": "Book", "conferencePaper": "Proceedings"}.get(
                md.item_type or "", "Published in")
            vol = "".join(x for x in (md.volume and f", vol. {md.volume}", md.issue and f", no. {md.issue}") if x)
            out.append(f"- **{label}:** {escape_md(container + vol)}")
        elif md.volume or md.issue:
            out.append(f"- **Volume/issue:** {escape_md(' / '.join(x for x in (md.volume, md.issue) if x))}")
        pub = ", ".join(x for x in (md.publisher, md.location) if x)
        if pub:
            out.append(f"- **Publisher:** {escape_md(pub)}")
        if md.pages:
            out.append(f"- **Pages:** {escape_md(md.pages)}")
        if md.doi:
            doi = md.doi.strip()
            if re.fullmatch(r"10\.\d{4,9}/[^\s<>\[\]()]+", doi):
                out.append(f"- **DOI:** [{escape_md(doi)}](https://doi.org/{doi})")
            else:
                out.append(f"- **DOI:** {escape_md(doi)}")
        if md.isbn:
            out.append(f"- **ISBN:** {escape_md(md.isbn)}")
        if md.item_type:
            out.append(f"- **Item type:** {escape_md(md.item_type)}")
        out.append(f"- **Citekey:** `{note.citekey}`")
        for k, v in md.extra:
            if k == "publicationTitle":
                continue
            out.append(f"- **{escape_md(k) or 'Other'}:** {escape_md(v)}")
        if note.link_text:
            out.append("- **Reader's attachments (local files, not linked):** "
                       + "; ".join(escape_md(t) for t in note.link_text))
        if note.import_date:
            out.append(f"- **Imported from Zotero:** {escape_md(note.import_date)}")
        return out

    def render(self, label: str | None) -> tuple[str, dict[str, int]]:
        note = self.note
        label = label or f"annotations-{note.citekey}"
        L: list[str] = [f"({label})=", f"# {escape_md(note.title)}", ""]
        src = note.source_path.name if note.source_path else "a Zotero note"
        L += [f"% Generated by hipaug.literature from {src.replace(chr(10), ' ')}: edit the note, not this page.", ""]
        c = note.counts()
        L += [f"The reader's annotated copy of {{cite:p}}`{note.citekey}`: {_plural(c['highlights'], 'highlight')}, "
              f"{_plural(c['notes'], 'note')}, {_plural(c['images'], 'image')} and "
              f"{_plural(c['comments'], 'comment')}, in the order of the note.", ""]
        L += self.metadata_lines() + [""]
        if note.cite:
            L += ["Reference as formatted in the reader's Zotero:", "", "> " + _light_escape(_strip_file_links(
                note.cite.replace("\n", " "))), ""]
        L += ["Highlight colours follow the reader's code: yellow = motivation, blue = method, red = data set, "
              "green = result or claim, magenta = metric; other colours are shown in grey.", ""]
        if note.abstract:
            L += ["## Abstract", "", self.paragraphs(note.abstract), ""]
        if note.contribution or note.synthesize:
            L += ["## The reader's synthesis", ""]
            if note.contribution:
                L += ["**Contribution:** " + self.paragraph_lines(note.contribution), ""]
            for k, v in note.synthesize:
                L += [(f"**{escape_md(k)}:** " if k else "") + self.paragraph_lines(v), ""]
        if note.important:
            L += ["## Marked important", ""]
            for item in note.important:
                L += [self.important_item(item), ""]
        if note.other_callouts:
            L += ["## Other callouts in the note", ""]
            for c in note.other_callouts:
                content = self.paragraphs(c.body) or "*(empty)*"
                fence = _fence(content, 3)
                title = escape_md(f"{c.kind}: {c.title}" if c.title else c.kind)
                L += [f"{fence}{{admonition}} {title}", ":class: hl-callout", "", content, fence, ""]
        L += ["## Annotations", ""]
        if not note.annotations:
            L += ["The note has no annotations.", ""]
        multi = len({a.export for a in note.annotations}) > 1 or any(a.export for a in note.annotations)
        last_export = object()
        for a in note.annotations:
            if multi and a.export != last_export:
                L += [f"### {escape_md('Exported ' + a.export) if a.export else 'Annotations without an export date'}", ""]
                last_export = a.export
            L += [self.annotation(a), ""]
        if note.extra_text:
            L += ["## Other text in the note", "", self.paragraphs("\n".join(note.extra_text)), ""]
        md = _strip_file_links("\n".join(L).rstrip("\n") + "\n")
        return md, written_counts(md)

    def paragraphs(self, text: str) -> str:
        paras = re.split(r"\n\s*\n", text.strip())
        return "\n\n".join(self.paragraph_lines(p) for p in paras if p.strip())


def written_counts(markdown: str) -> dict[str, int]:
    """Count what a rendered page holds (same keys as Note.counts())."""
    kinds = re.findall(r"^:class: .*\bhl-kind-(highlight|note|image)\b", markdown, re.M)
    return {
        "annotations": len(kinds),
        "highlights": kinds.count("highlight"),
        "notes": kinds.count("note"),
        "images": len(re.findall(r"^:class: .*\bhl-annotation-image\b", markdown, re.M)),
        "comments": len(re.findall(r"^\*\*Reader's comment:\*\* ", markdown, re.M)),
    }


def render_page(note: Note, *, links: Mapping[str, Sequence[tuple[str, str]]] | None = None,
                extras: Mapping[str, str] | None = None, image_root: str | Path | None = None,
                image_dest: str | Path | None = None, label: str | None = None) -> str:
    """Render a note as a MyST page.

    `links`: {annotation id: [(title, target label), ...]} -> "Tested in:" lines; `extras`:
    {annotation id: markdown} appended inside the admonition (verdict badges). Images are looked
    up under `image_root` (then the note's folder and its parents), copied to
    ``image_dest/<vault-relative path>`` and embedded with that relative path, so the page must be
    written into `image_dest` (without `image_dest` nothing is copied and the page is assumed to
    sit in `image_root`). Missing images become a placeholder admonition.
    """
    return render_page_report(note, links=links, extras=extras, image_root=image_root,
                              image_dest=image_dest, label=label)[0]


def render_page_report(note: Note, *, links=None, extras=None, image_root=None, image_dest=None,
                       label=None) -> tuple[str, dict[str, int], list[str]]:
    """Like render_page, also returning (written counts, rendering warnings)."""
    r = _Renderer(note, links, extras, image_root, image_dest)
    md, written = r.render(label)
    return md, written, r.warnings


def highlight_css() -> str:
    """CSS for the admonition classes render_page emits (include it from the book's _static)."""
    out = ["/* hipaug.literature: the reader's highlight colours (Zotero): yellow motivation, blue method,",
           "   red data set, green result/claim, magenta metric, grey anything else. */"]
    for name, hx in COLOUR_HEX.items():
        out += [f".admonition.hl-{name} {{ border-left-color: {hx} !important; border-color: {hx} !important; }}",
                f".admonition.hl-{name} > .admonition-title {{ background-color: {hx}33 !important; }}",
                f".admonition.hl-{name} > .admonition-title::before,",
                f".admonition.hl-{name} > .admonition-title::after {{ color: {hx} !important; background-color: {hx} !important; }}"]
    out += [".admonition.hl-note, .admonition.hl-image, .admonition.hl-callout { border-left-color: #7e57c2 !important; }",
            ".admonition.hl-important { border-left-color: #ef6c00 !important; }",
            ".admonition.hl-missing-image { border-left-color: #b71c1c !important; font-style: italic; }",
            "img.hl-annotation-image, img.hl-important-image { max-width: 100%; height: auto; }"]
    return "\n".join(out) + "\n"


# ---------------------------------------------------------------------------------------------
# BibTeX
# ---------------------------------------------------------------------------------------------

_BIB_ESCAPES = {"&": r"\&", "%": r"\%", "#": r"\#", "$": r"\$"}


def _bib_text(value: str) -> str:
    value = fix_ligatures(" ".join(value.split()))
    value = re.sub(r"(?<!\\)([&%#$])", lambda m: _BIB_ESCAPES[m.group(1)], value)
    depth = 0
    for ch in value:
        depth += (ch == "{") - (ch == "}")
        if depth < 0:
            break
    if depth != 0:  # unbalanced braces would break the .bib file
        value = value.replace("{", "(").replace("}", ")")
    return value


def protect_title(title: str) -> str:
    """Brace words whose capitals a BibTeX style must keep (acronyms, X-ray, CamelCase)."""
    def protect(word: str) -> str:
        m = re.match(r"^([^\w{]*)(.*?)([^\w}]*)$", word)
        lead, core, trail = m.groups()
        if not core or "{" in core or "\\" in core:
            return word
        parts = re.split(r"[-/]", core)
        keep = any(any(ch.isupper() for ch in p[1:]) or (len(p) == 1 and p.isupper()) for p in parts if p)
        return f"{lead}{{{core}}}{trail}" if keep else word
    return " ".join(protect(w) for w in title.split())


def _bib_names(creators: Sequence[Creator]) -> str:
    names = []
    for c in creators:
        if c.name:
            names.append("{" + c.name + "}")
        else:
            last = c.last or ""
            if re.search(r"\band\b", last) or "," in last:
                last = "{" + last + "}"
            names.append(", ".join(x for x in (last, c.first) if x))
    return " and ".join(_bib_text(n) for n in names)


def _bib_pages(pages: str) -> str:
    return re.sub(r"(?<=\w)\s*[-\u2010-\u2015]+\s*(?=\w)", "--", pages.strip())


def note_to_bibtex(note: Note) -> str:
    """A BibTeX entry built from the note's Metadata callout (UTF-8, deterministic field order)."""
    md = note.metadata
    etype = BIBTEX_TYPES.get(md.item_type or "", "misc")
    fields: list[tuple[str, str]] = []
    if md.authors:
        fields.append(("author", _bib_names(md.authors)))
    if md.editors:
        fields.append(("editor", _bib_names(md.editors)))
    if md.title:
        fields.append(("title", protect_title(_bib_text(md.title))))
    container = md.container
    if container:
        if md.item_type == "journalArticle":
            fields.append(("journal", _bib_text(container)))
        elif etype in ("inproceedings", "incollection"):
            fields.append(("booktitle", protect_title(_bib_text(container))))
        else:
            fields.append(("howpublished", _bib_text(container)))
    if md.year:
        fields.append(("year", _bib_text(md.year)))
    if md.volume:
        fields.append(("volume", _bib_text(md.volume)))
    if md.issue:
        fields.append(("number", _bib_text(md.issue)))
    if md.pages:
        fields.append(("pages", _bib_text(_bib_pages(md.pages))))
    if md.publisher:
        key = {"phdthesis": "school", "techreport": "institution"}.get(etype, "publisher")
        fields.append((key, _bib_text(md.publisher)))
    if md.location:
        fields.append(("address", _bib_text(md.location)))
    if md.doi:
        fields.append(("doi", md.doi.strip()))
    if md.isbn:
        fields.append(("isbn", _bib_text(md.isbn)))
    for role in ("translator", "bookAuthor", "seriesEditor", "contributor"):
        people = md.creators_of(role)
        if people:
            fields.append((role.lower(), _bib_names(people)))
    dropped = {c.kind for c in md.creators} - {"author", "editor", "translator", "bookAuthor", "seriesEditor", "contributor"}
    if dropped:
        log.warning("%s: creator roles not exported to BibTeX: %s", _note_name(note), ", ".join(sorted(dropped)))
    width = max((len(k) for k, _ in fields), default=0)
    body = ",\n".join(f"  {k.ljust(width)} = {{{v}}}" for k, v in fields)
    return f"@{etype}{{{note.citekey},\n{body}\n}}\n"


# ---------------------------------------------------------------------------------------------
# Vault import and CLI
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VaultReport:
    """What import_vault did."""

    out_dir: Path  # output folder
    pages: tuple[Path, ...]  # one page per note
    index: Path  # the reading list
    bib: Path  # references.bib
    skipped: tuple[tuple[Path, str], ...]  # files that are not notes, with the reason
    warnings: tuple[str, ...]  # every warning, prefixed with the file name
    found: dict[str, dict[str, int]]  # page stem -> Note.counts()
    written: dict[str, dict[str, int]]  # page stem -> written_counts(page)


def default_vault_root(note_path: str | Path) -> Path:
    """Walk up from the note to the first folder holding ``sources/images`` (else the note's folder)."""
    start = Path(note_path).resolve().parent
    for d in (start, *start.parents):
        if (d / "sources" / "images").is_dir():
            return d
    return start


def _note_files(folder: Path) -> tuple[list[Path], Path]:
    """Note files of a vault (DIR/sources/*.md) or a plain folder, and the image root."""
    src = folder / "sources"
    if src.is_dir() and any(src.glob("*.md")):
        return sorted(p for p in src.glob("*.md") if p.is_file()), folder
    return sorted(p for p in folder.glob("*.md") if p.is_file()), folder


def _table_cell(s: str) -> str:
    return escape_md(" ".join(s.split())).replace("|", "\\|") if s else ""


def import_vault(vault_or_folder: str | Path, out_dir: str | Path, *, vault_root: str | Path | None = None) -> VaultReport:
    """Render every note of a vault (``DIR/sources/*.md``) or folder into `out_dir`.

    Writes one page per note (images copied beside it), ``index.md`` (reading list) and
    ``references.bib``. Files that are not notes are skipped and reported, never silently.
    """
    from .utils import atomic_write_text

    folder = Path(vault_or_folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: vault folder not found")
    out = Path(out_dir)
    files, root = _note_files(folder)
    if files and out.resolve() == files[0].parent.resolve():
        raise ConfigError(f"--out {out}: is the folder of the notes themselves; pages would overwrite them")
    root = Path(vault_root) if vault_root is not None else root
    if not files:
        raise DataError(f"{folder}: no .md notes in {folder / 'sources'} or {folder}")
    out.mkdir(parents=True, exist_ok=True)
    pages, skipped, warnings, rows, bibs = [], [], [], [], []
    found, written = {}, {}
    keys: dict[str, Path] = {}
    labels: dict[str, Path] = {}
    stems: set[str] = {"index", "references"}
    for f in files:
        try:
            note = read_note(f)
        except DataError as exc:
            reason = str(exc).split(": ", 1)[-1]
            skipped.append((f, reason))
            warnings.append(f"{f.name}: skipped: {reason}")
            continue
        warnings += [f"{f.name}: {w}" for w in note.warnings]
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", f.stem).strip("-") or "note"
        base, n = stem, 1
        while stem.lower() in stems:
            n += 1
            stem = f"{base}-{n}"
        if stem != base:
            warnings.append(f"{f.name}: page renamed to {stem}.md (name taken)")
        stems.add(stem.lower())
        md, wc, rw = render_page_report(note, image_root=root, image_dest=out)
        warnings += [f"{f.name}: {w}" for w in rw]
        for a in note.annotations:
            if a.id in labels:
                warnings.append(f"{f.name}: label {a.id} also used by {labels[a.id].name} (Sphinx will warn)")
            labels.setdefault(a.id, f)
        page = out / f"{stem}.md"
        atomic_write_text(page, md)
        pages.append(page)
        found[stem], written[stem] = note.counts(), wc
        if found[stem] != wc:
            warnings.append(f"{f.name}: found {format_counts(found[stem])} but wrote {format_counts(wc)}")
        if note.citekey in keys:
            warnings.append(f"{f.name}: citekey {note.citekey} already used by {keys[note.citekey].name}: "
                            "BibTeX entry not repeated")
        else:
            keys[note.citekey] = f
            bibs.append(note_to_bibtex(note))
        first = next((a.text for a in note.annotations if a.kind == "highlight" and a.text), "")
        rows.append((note, first))
    lines = ["(literature-index)=", "# Reading list", "",
             f"% Generated by hipaug.literature from {folder.name}: edit the notes, not this page.", ""]
    if rows:
        lines += ["| Title | Year | Citekey | Highlights | First highlight |", "|---|---|---|---|---|"]
        for note, first in rows:
            title = _esc_role_title(note.title)
            lines.append(f"| {{ref}}`{title} <annotations-{note.citekey}>` | {_table_cell(note.metadata.year or '')} "
                         f"| `{note.citekey}` | {note.counts()['highlights']} | {_table_cell(_short(first, 80))} |")
    else:
        lines.append("No notes were imported.")
    if skipped:
        lines += ["", "Files skipped (not literature notes):", ""]
        lines += [f"- {_table_cell(p.name)}: {_table_cell(r)}" for p, r in skipped]
    index = atomic_write_text(out / "index.md", _strip_file_links("\n".join(lines) + "\n"))
    bib = atomic_write_text(out / "references.bib", "\n".join(bibs))
    for w in warnings:
        log.warning("%s", w)
    return VaultReport(out_dir=out, pages=tuple(pages), index=index, bib=bib, skipped=tuple(skipped),
                       warnings=tuple(warnings), found=found, written=written)


def run(note: str | Path | None = None, out: str | Path | None = None, vault: str | Path | None = None,
        vault_root: str | Path | None = None, bib: bool = False, stdout: TextIO | None = None) -> int:
    """`hipaug literature`: one page (NOTE --out PAGE), a vault (--vault DIR --out DIR) or BibTeX (NOTE --bib).

    Prints the counts found and written and each warning, one line each. Errors raise
    DataError/ConfigError (the CLI prints them as one line and returns 2).
    """
    stdout = stdout if stdout is not None else sys.stdout
    # run() prints every warning itself: keep the logging copies off the console meanwhile
    saved = log.propagate
    quiet = logging.NullHandler()
    log.addHandler(quiet)
    log.propagate = False
    try:
        return _run(note, out, vault, vault_root, bib, stdout)
    finally:
        log.removeHandler(quiet)
        log.propagate = saved


def _run(note, out, vault, vault_root, bib, stdout: TextIO) -> int:
    from .utils import atomic_write_text

    def say(s: str) -> None:
        print(s, file=stdout)

    if vault is not None:
        if note is not None or bib:
            raise ConfigError("literature: give either NOTE or --vault DIR, not both (--bib needs NOTE)")
        if out is None:
            raise ConfigError("literature: --vault needs --out DIR")
        rep = import_vault(vault, out, vault_root=vault_root)
        for stem in rep.found:
            say(f"{stem}: found {format_counts(rep.found[stem])}; written {format_counts(rep.written[stem])}")
        for w in rep.warnings:
            say(f"warning: {w}")
        say(f"wrote {len(rep.pages)} pages, {rep.index} and {rep.bib} ({len(rep.skipped)} files skipped)")
        return 0
    if note is None:
        raise ConfigError("literature: give a NOTE.md (with --out PAGE.md or --bib) or --vault DIR --out DIR")
    n = read_note(note)
    if bib:
        if out is not None:
            raise ConfigError("literature: --bib prints the entry; do not combine it with --out")
        stdout.write(note_to_bibtex(n))
        return 0
    if out is None:
        raise ConfigError("literature: --out PAGE.md is required (or --bib to print the BibTeX entry)")
    out = Path(out)
    if out.suffix.lower() != ".md":
        raise ConfigError(f"--out {out}: expected a .md page path")
    if out.resolve() == Path(note).resolve():
        raise ConfigError(f"--out {out}: is the note itself; choose another page path")
    root = Path(vault_root) if vault_root is not None else default_vault_root(note)
    md, wc, rw = render_page_report(n, image_root=root, image_dest=out.parent)
    atomic_write_text(out, md)
    name = Path(note).name
    say(f"{name}: found {format_counts(n.counts())}; written {format_counts(wc)}")
    for w in list(n.warnings) + rw:
        say(f"warning: {name}: {w}")
    say(f"wrote {out}")
    return 0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def _short(s: str, n: int) -> str:
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1].rstrip() + "…"
