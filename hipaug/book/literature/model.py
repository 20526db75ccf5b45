"""What a parsed literature note holds: metadata, creators, annotations, callouts, counts.

Book side, literature import: frozen dataclasses the parser fills and the renderer, the BibTeX
writer and the claims ledger read; the reader's colour code (`COLOUR_CODE` below).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hipaug.book.literature.text import slug_key

# The reader's colour code, used consistently across their notes: hex -> (colour name, role)
COLOUR_CODE: dict[str, tuple[str, str]] = {
    "#ffd400": ("yellow", "motivation"),
    "#2ea8e5": ("blue", "method"),
    "#ff6666": ("red", "dataset"),
    "#5fb236": ("green", "result/claim"),
    "#e56eee": ("magenta", "metric"),
}
ROLES: dict[str, str] = {name: role for _hx, (name, role) in COLOUR_CODE.items()} | {"other": "highlight"}


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

    metadata: Metadata  # the Metadata callout
    cite: str  # the formatted reference of the Cite callout (numeric label removed)
    abstract: str  # "" if empty
    contribution: str  # **Contribution** of the Synthesize callout ("" if empty)
    important: tuple[ImportantItem, ...]  # the items of the important block
    annotations: tuple[Annotation, ...]  # every annotation callout, in the note's order
    link_text: tuple[str, ...]  # titles of the LINK callout's attachments (never the file:// paths)
    import_date: str | None  # the "%% Import Date: ... %%" trailer
    source_path: Path | None  # the note file (None for parsed text)
    warnings: tuple[str, ...]  # every oddity found, one line each
    synthesize: tuple[tuple[str, str], ...] = ()  # other **Key**:: lines (or free text, key "") of Synthesize
    other_callouts: tuple[Callout, ...] = ()  # unknown callout types, kept
    extra_text: tuple[str, ...] = ()  # text outside any recognised structure, kept
    exports: tuple[str, ...] = ()  # the "### Exported:" stamps in order

    @property
    def citekey(self) -> str:
        if self.metadata.citekey:
            return self.metadata.citekey
        if self.source_path is not None:
            return slug_key(self.source_path.stem)
        return "note"

    @property
    def title(self) -> str:
        return self.metadata.title or (self.source_path.stem if self.source_path else self.citekey)

    @property
    def source_name(self) -> str:
        """The note's file path, else its citekey (for messages)."""
        return str(self.source_path) if self.source_path else self.citekey

    @property
    def highlights(self) -> tuple[Annotation, ...]:
        return tuple(a for a in self.annotations if a.kind == "highlight")

    def counts(self) -> dict[str, int]:
        """What the note holds: annotations, highlights, notes, images (embeds), comments."""
        anns = self.annotations
        return {
            "annotations": len(anns),
            "highlights": sum(a.kind == "highlight" for a in anns),
            "notes": sum(a.kind == "note" for a in anns),
            "images": sum(len(a.images) for a in anns),
            "comments": sum(bool(a.comment) for a in anns),
        }


def format_counts(c: Mapping[str, int]) -> str:
    """'N highlights, N notes, N images, N comments'."""
    return ", ".join(f"{c.get(k, 0)} {k}" for k in ("highlights", "notes", "images", "comments"))
