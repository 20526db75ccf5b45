"""Read a Zotero Integration note: front matter, callout blocks, annotation markers, then each callout.

Book side, literature import. `parse_note` scans the text into callout blocks (noting the
``%% begin/end annotations %%`` markers, ``### Exported:`` stamps and the Import Date trailer),
hands each block to its parser, and checks what is missing; every oddity becomes one warning.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from hipaug.book.literature.annotations import assign_ids, parse_annotation, parse_important
from hipaug.book.literature.blocks import Block, Warnings, body_text
from hipaug.book.literature.callouts import (
    derive_container,
    parse_abstract,
    parse_cite,
    parse_link,
    parse_metadata,
    parse_synthesize,
)
from hipaug.book.literature.model import Callout, ImportantItem, Metadata, Note
from hipaug.book.literature.text import short, slug_key
from hipaug.errors import DataError

_HEADER_RE = re.compile(r"^>[ \t]*\[!([^\]\s]+)\]([+-]?)[ \t]*(.*)$")
_BEGIN_RE = re.compile(r"^%%\s*begin annotations\s*%%$", re.I)
_END_RE = re.compile(r"^%%\s*end annotations\s*%%$", re.I)
_IMPORT_RE = re.compile(r"^%%\s*Import Date:\s*(.*?)\s*%%$", re.I)
_ANN_HEADING_RE = re.compile(r"^##\s+Annotations\s*$", re.I)
_EXPORTED_RE = re.compile(r"^###\s+Exported:?\s*(.*?)\s*$", re.I)
_HEADING_RE = re.compile(r"^#{1,6}\s")
# the template's callouts, each expected once, with the name the warnings use
_SINGLE_CALLOUTS = (("cite", "Cite"), ("synthesize", "Synthesize"), ("metadata", "Metadata"),
                    ("link", "LINK"), ("abstract", "Abstract"), ("important", "important"))


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
    """Parse the text of a Zotero Integration note; see the package docstring for the format."""
    src_path = Path(source) if source is not None else None
    src_name = str(source) if source is not None else "<note>"
    warn = Warnings(src_name)
    text = text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    lines = text.split("\n")
    scan = _Scan(warn)
    for i in range(_skip_front_matter(lines), len(lines)):
        scan.feed(i + 1, lines[i])
    scan.close()
    has_meta = any(b.kind.lower() == "metadata" for b in scan.blocks)
    has_ann = any(b.kind.lower() == "note" for b in scan.blocks)
    if not has_meta and not has_ann:
        raise DataError(f"{src_name}: not a Zotero literature note (no [!Metadata] callout and no [!Note] annotations)")
    scan.check_structure(has_ann)
    parts = _Parts()
    for b in scan.blocks:
        parts.add(b, warn)
    _check_callouts(parts, has_meta, src_path, warn)
    metadata = derive_container(parts.metadata, parts.cite, warn)
    for no, line in scan.extra:
        warn(f"text outside any callout kept: {short(line.strip(), 60)!r}", no)
    if not parts.raw_anns:
        warn("no annotations in the note")
    annotations = assign_ids(parts.raw_anns, warn)
    return Note(
        metadata=metadata, cite=parts.cite, abstract=parts.abstract, contribution=parts.contribution,
        important=tuple(parts.important), annotations=annotations, link_text=parts.link_text,
        import_date=scan.import_date, source_path=src_path, warnings=tuple(warn.items),
        synthesize=tuple(parts.synthesize), other_callouts=tuple(parts.others),
        extra_text=tuple(line for _no, line in scan.extra), exports=tuple(scan.exports),
    )


def _skip_front_matter(lines: list[str]) -> int:
    """The index of the first line after a YAML front matter (0 if there is none)."""
    if lines and lines[0].strip() == "---":
        for i in range(1, min(len(lines), 200)):
            if lines[i].strip() in ("---", "..."):
                return i + 1
    return 0


@dataclass
class _Scan:
    """The note's lines grouped into callout blocks, plus the markers and stray text around them."""

    warn: Warnings
    blocks: list[Block] = field(default_factory=list)  # every callout, in order
    extra: list[tuple[int, str]] = field(default_factory=list)  # (line, text) outside any callout
    exports: list[str] = field(default_factory=list)  # the "### Exported:" stamps
    import_date: str | None = None  # the first Import Date trailer
    region: str = "pre"  # "pre" -> "heading" (## Annotations) -> "ann" (begin marker) -> "post" (end marker)
    export: str | None = None  # the Exported stamp in force
    cur: Block | None = None  # the callout being read
    saw_begin: bool = False
    saw_end: bool = False
    saw_heading: bool = False

    def close(self) -> None:
        if self.cur is not None:
            self.blocks.append(self.cur)
            self.cur = None

    def in_note(self) -> bool:
        return self.cur is not None and self.cur.kind.lower() == "note"

    def feed(self, no: int, line: str) -> None:
        """Take one line: a marker, a callout header, a heading, or a line of the current callout."""
        s = line.strip()
        if self.marker(no, s):
            return
        m = _HEADER_RE.match(line)
        if m:
            self.close()
            self.cur = Block(m.group(1), m.group(3), no, self.region, self.export)
        elif _HEADING_RE.match(s):
            self.close()
            self.extra.append((no, line))
        elif not s and (self.region in ("ann", "heading") or self.in_note()):
            self.close()  # a blank line ends an annotation callout
        elif self.cur is not None:
            self.cur.lines.append((no, line))
        elif s:
            self.extra.append((no, line))

    def marker(self, no: int, s: str) -> bool:
        """The annotation markers, the Import Date trailer, the Annotations heading, an Exported stamp."""
        if _BEGIN_RE.match(s):
            self.close()
            if self.saw_begin:
                self.warn("second '%% begin annotations %%' marker", no)
            self.region, self.saw_begin = "ann", True
        elif _END_RE.match(s):
            self.close()
            if self.region != "ann":
                self.warn("'%% end annotations %%' without a matching begin marker", no)
            self.region, self.saw_end = "post", True
        elif m := _IMPORT_RE.match(s):
            self.close()
            if self.import_date is not None:
                self.warn("several Import Date trailers; keeping the first", no)
            else:
                self.import_date = m.group(1)
        elif _ANN_HEADING_RE.match(s):
            self.close()
            self.saw_heading = True
            self.region = "heading" if self.region == "pre" else self.region
        elif m := _EXPORTED_RE.match(s):
            self.close()
            self.export = m.group(1) or None
            if self.export:
                self.exports.append(self.export)
            self.region = "heading" if self.region == "pre" else self.region
        else:
            return False
        return True

    def check_structure(self, has_ann: bool) -> None:
        if self.saw_begin and not self.saw_end:
            self.warn("no '%% end annotations %%' marker: the note looks truncated")
        if not self.saw_begin and (self.saw_heading or has_ann):
            self.warn("no '%% begin annotations %%' marker")
        if self.import_date is None:
            self.warn("no '%% Import Date: ... %%' trailer")


@dataclass
class _Parts:
    """What the callout blocks hold, each parsed by its own reader."""

    cite: str = ""
    abstract: str = ""
    contribution: str = ""
    synthesize: list[tuple[str, str]] = field(default_factory=list)
    link_text: tuple[str, ...] = ()
    metadata: Metadata = field(default_factory=Metadata)
    important: list[ImportantItem] = field(default_factory=list)
    others: list[Callout] = field(default_factory=list)  # unknown or repeated callouts, kept
    raw_anns: list[dict] = field(default_factory=list)  # Annotation fields without the id
    seen: set[str] = field(default_factory=set)  # the single callouts met so far

    def add(self, b: Block, warn: Warnings) -> None:
        k = b.kind.lower()
        if k == "note":
            if b.region == "pre":
                warn("annotation callout outside the Annotations section (kept)", b.line)
            self.raw_anns.append(parse_annotation(b, warn))
            return
        if k in self.seen:
            warn(f"second [!{b.kind}] callout: kept as an extra callout", b.line)
            self.others.append(Callout(b.kind, b.title, body_text(b), b.line))
            return
        if k == "cite":
            self.cite = parse_cite(b)
        elif k == "synthesize":
            self.contribution, self.synthesize = parse_synthesize(b)
        elif k == "metadata":
            self.metadata = parse_metadata(b, warn)
        elif k == "link":
            self.link_text = parse_link(b)
        elif k == "abstract":
            self.abstract = parse_abstract(b)
        elif k == "important":
            self.important = parse_important(b, warn)
        else:
            warn(f"unknown callout type [!{b.kind}] (kept)", b.line)
            self.others.append(Callout(b.kind, b.title, body_text(b), b.line))
            return
        self.seen.add(k)


def _check_callouts(parts: _Parts, has_meta: bool, src_path: Path | None, warn: Warnings) -> None:
    """Warn about missing callouts, missing Metadata fields and a missing citekey."""
    for k, name in _SINGLE_CALLOUTS:
        if k not in parts.seen:
            warn(f"no [!{name}] callout")
    metadata = parts.metadata
    if has_meta:
        for fld, label in (("title", "Title"), ("citekey", "Citekey"), ("year", "Year"), ("item_type", "itemType")):
            if not getattr(metadata, fld):
                warn(f"the Metadata callout has no {label}")
        if metadata.year and not re.fullmatch(r"\d{4}", metadata.year):
            warn(f"Year {metadata.year!r} is not a four-digit year")
    if not metadata.citekey:
        if src_path is not None:
            warn(f"no citekey: using the file name {slug_key(src_path.stem)!r}")
        else:
            warn("no citekey: using 'note'")
