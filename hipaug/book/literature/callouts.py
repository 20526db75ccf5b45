"""Parse the note's front callouts: Cite, Synthesize, LINK, Abstract and Metadata.

Book side, literature import. The Metadata callout gives the paper's bibliographic record
(creators share one line separated by ``</br>``; a leading space marks "Last, First"); a
conference paper's proceedings title is taken from the Cite callout's italic span.
"""

from __future__ import annotations

import re
from dataclasses import replace

from hipaug.book.literature.blocks import KV_RE, Block, Warnings, nl2br_text, strip_one_space, unquote
from hipaug.book.literature.model import Creator, Metadata
from hipaug.book.literature.text import fix_ligatures, norm, short

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

_ITALIC_RE = re.compile(r"(?<![\w*])\*(?!\s)([^*\n]+?)(?<!\s)\*(?![\w*])|(?<![\w_])_(?!\s)([^_\n]+?)(?<!\s)_(?![\w_])")


def parse_cite(b: Block) -> str:
    """The formatted reference, without a numeric style's "[1]" label."""
    parts = [b.title] + [unquote(line) for _no, line in b.lines]
    text = "\n".join(parts).strip()
    # CSL numeric styles (IEEE) put the label "[1]" first
    text = re.sub(r"^\[\d+\]\s*", "", text)
    return "\n".join(p.strip() for p in text.split("\n") if p.strip())


def parse_synthesize(b: Block) -> tuple[str, list[tuple[str, str]]]:
    """(the Contribution, the other non-empty (key, value) lines)."""
    items: list[list[str]] = []
    lines = ([b.title] if b.title else []) + [unquote(line) for _no, line in b.lines]
    for line in lines:
        m = KV_RE.match(line)
        if m:
            items.append([m.group(2).strip(), m.group(3).rstrip()])
        elif items:
            items[-1][1] += "\n" + line.rstrip()
        elif line.strip():
            items.append(["", line.strip()])
    contribution = ""
    rest = []
    for key, value in items:
        value = nl2br_text([value])
        if key.lower() == "contribution" and not contribution:
            contribution = value
        elif value or key.lower() != "contribution":
            if value:
                rest.append((key, value))
    return contribution, rest


def parse_link(b: Block) -> tuple[str, ...]:
    """The attachments' titles (never their file:// paths)."""
    text = "\n".join([b.title] + [line for _no, line in b.lines])
    return tuple(t.strip() for t in re.findall(r"\[([^\]]*)\]\(", text) if t.strip())


def parse_abstract(b: Block) -> str:
    """The abstract; the template does not prefix it by '>', so quoting is removed only if every line has it."""
    raw = [line for _no, line in b.lines]
    nonblank = [line for line in raw if line.strip()]
    if nonblank and all(line.startswith(">") for line in nonblank):
        raw = [strip_one_space(unquote(line)) for line in raw]
    if b.title:
        raw = [b.title] + raw
    return "\n".join(line.rstrip() for line in raw).strip()


class _MetadataReader:
    """Accumulate the Metadata callout's fields, creators and unknown keys, one segment at a time."""

    def __init__(self, warn: Warnings) -> None:
        self.warn = warn
        self.values: dict[str, str | None] = {}
        self.creators: list[Creator] = []
        self.extra: list[tuple[str, str]] = []
        self.last_field: str | None = None  # a field a key-less segment continues

    def line(self, no: int, raw: str) -> None:
        if raw.startswith(">"):
            line = raw[1:]
        else:
            line = raw
            if raw.strip():
                self.warn("Metadata line without '>' (kept)", no)
        if not line.strip():
            return
        pieces = re.split(r"<\s*/?\s*br\s*/?\s*>", line, flags=re.I)
        for j, seg in enumerate(pieces):
            if seg.strip():
                self.segment(no, seg, followed_by_br=j < len(pieces) - 1)

    def segment(self, no: int, seg: str, followed_by_br: bool) -> None:
        m = KV_RE.match(seg)
        if not m:
            self.loose_text(no, seg.strip())
            return
        space, key, value = m.group(1), m.group(2).strip(), m.group(3).strip()
        fld = _META_FIELDS.get(key.lower().replace(" ", ""))
        if fld is not None:
            self.field(no, fld, key, _clean_meta_value(fld, value))
        elif key.lower() in _CREATOR_BY_LOWER or followed_by_br:
            kind = _CREATOR_BY_LOWER.get(key.lower(), key[:1].lower() + key[1:])
            if not value:
                self.warn(f"empty {key} creator skipped", no)
                return
            self.creators.append(_make_creator(kind, value, two_field=bool(space)))
            self.last_field = None
        else:
            if value:
                self.extra.append((key, value))
            self.last_field = None

    def loose_text(self, no: int, text: str) -> None:
        values, last = self.values, self.last_field
        if last is not None and last in values and values[last] is not None:
            values[last] = f"{values[last]} {text}"
            self.warn(f"Metadata line continued the {last} field: {short(text, 40)!r}", no)
        else:
            self.extra.append(("", text))
            self.warn(f"unrecognised Metadata line kept: {short(text, 40)!r}", no)

    def field(self, no: int, fld: str, key: str, value: str) -> None:
        if fld in self.values:
            self.warn(f"duplicate Metadata field {key} (kept the first, the second in extra)", no)
            if value:
                self.extra.append((key, value))
            return
        self.values[fld] = value or None
        self.last_field = fld


def parse_metadata(b: Block, warn: Warnings) -> Metadata:
    """The Metadata callout; odd lines are kept (in `extra` or a continued field) with a warning."""
    reader = _MetadataReader(warn)
    for no, raw in ([(b.line, b.title)] if b.title else []) + b.lines:
        reader.line(no, raw)
    return Metadata(creators=tuple(reader.creators), extra=tuple(reader.extra), **reader.values)


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


def derive_container(md: Metadata, cite: str, warn: Warnings) -> Metadata:
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
    title_norm = norm(md.title or "")
    found = None
    for m in _ITALIC_RE.finditer(cite):
        span = (m.group(1) or m.group(2) or "").strip()
        if span and norm(span) != title_norm and not re.fullmatch(r"[\d\s()]+", span):
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
