"""Parse the note's annotations: one ``>[!Note]`` callout per highlight, note or image, and the important block.

Book side, literature import. An annotation callout is a header (``<mark>`` in the highlight's
colour, or ``Note``) followed by ``</br></br>`` and the annotated text, image embeds, the
reader's comment (``>>``) and the ``[page N](file://...) [[date]]`` link. Each annotation gets a
stable id (a slug of its first words and a hash of its normalised content), and a quote of the
paper finds its highlight (the claims ledger links claims to highlights this way).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import PurePosixPath

from hipaug.book.literature.blocks import PAGE_RE, Block, Warnings, nl2br_text, strip_one_space, unquote
from hipaug.book.literature.model import COLOUR_CODE, Annotation, ImportantItem, Note
from hipaug.book.literature.text import norm, short, slug_words
from hipaug.errors import DataError

_MARK_COLOUR_RE = re.compile(r"^<mark\b[^>]*?background-color:\s*([^;\"'>\s]+)\s*[;\"']", re.I)


class _AnnotationReader:
    """Sort the lines of one annotation callout into text, images, comment and page link."""

    def __init__(self, warn: Warnings) -> None:
        self.warn = warn
        self.text_lines: list[str] = []
        self.comment_lines: list[str] = []
        self.images: list[str] = []
        self.page: str | None = None
        self.date: str | None = None
        self.header_kind: str | None = None  # "highlight" | "note" | "unknown" | None (no header)
        self.color: str | None = None  # the <mark>'s colour as written, lower case
        self.mode: str | None = None  # what the last line was: "text" | "comment" | "after" (an image) | "done"

    def read(self, idx: int, no: int, raw: str) -> None:
        brs = re.sub(r"<\s*/?\s*br\s*/?\s*>", "</br>", raw)
        head0 = unquote(brs).strip()
        if idx == 0 and ("</br></br>" in brs or head0.startswith("<")
                         or "note</br></br>".startswith(head0.lower())):
            self.header(no, brs, head0)
            return
        if self.image(no, raw) or self.comment(raw) or self.page_link(no, raw):
            return
        self.body(no, raw)

    def header(self, no: int, brs: str, head0: str) -> None:
        """The header line: colour or 'Note', then the first line of the annotated text."""
        if "</br></br>" in brs:
            hdr, _, rest = brs.partition("</br></br>")
        else:  # a header cut short (truncated note) or hand-edited without </br></br>
            hdr, _, rest = brs.partition("</mark>")
            self.warn(f"incomplete annotation header {short(head0, 40)!r} (truncated note?)", no)
        hdr = unquote(hdr).strip()
        m = _MARK_COLOUR_RE.match(hdr)
        if m:
            self.color = m.group(1).strip().lower()
            self.header_kind = "highlight"
        elif hdr.lower() == "note":
            self.header_kind = "note"
        elif hdr:
            self.header_kind = "unknown"
            self.warn(f"unknown annotation header {hdr!r}", no)
        rest = rest.strip() if not rest.startswith(">") else rest
        if rest.startswith(">"):
            self.text_lines.append(strip_one_space(rest[1:]))
            self.mode = "text"
        elif rest:
            self.text_lines.append(rest)
            self.mode = "text"

    def image(self, no: int, raw: str) -> bool:
        """An image embed ``>![[path]]`` (or one cut short)."""
        m = re.match(r"^>[ \t]?!\[\[(.+?)\]\]\s*$", raw)
        if m:
            self.images.append(m.group(1).strip())
        elif re.match(r"^>[ \t]?!(\[|$)", raw):  # an image embed cut short
            frag = re.match(r"^>[ \t]?!\[\[([^\]]+)", raw)
            if frag:
                self.images.append(frag.group(1).strip())
            self.warn(f"image embed cut short: {short(raw.strip(), 40)!r} (truncated note?)", no)
        else:
            return False
        self.mode = "after" if self.mode == "text" else self.mode
        return True

    def comment(self, raw: str) -> bool:
        """A comment line ``>>- ...`` (a new paragraph) or ``>> ...`` (a continuation)."""
        if not raw.startswith(">>"):
            return False
        body = raw[2:]
        if body.startswith("-"):
            if self.comment_lines:
                self.comment_lines.append("")
            self.comment_lines.append(strip_one_space(body[1:]))
        else:
            self.comment_lines.append(strip_one_space(body))
        self.mode = "comment"
        return True

    def page_link(self, no: int, raw: str) -> bool:
        """The ``[page N](file://...) [[date]]`` link that ends the annotation (or one cut short)."""
        link = strip_one_space(unquote(raw))
        pm = PAGE_RE.match(link)
        # annotated text continues on lines without '>', so a '>[p...' line is always the page link
        partial = raw.startswith(">") and not pm and len(link) >= 1 and (
            link.startswith("[page") or "[page ".startswith(link))
        if not ((pm and raw.startswith(">")) or partial):
            return False
        if self.page is not None or self.date is not None:
            self.warn("second page link in one annotation (kept the first)", no)
        elif pm:
            self.page = pm.group(1).strip() or None
            self.date = (pm.group(3) or "").strip() or None
        else:
            cut = re.match(r"^\[page\s*([^\]]*)\]", link)
            self.page = cut.group(1).strip() or None if cut else None
            self.warn("page link cut short (truncated note?)", no)
        self.mode = "done"
        return True

    def body(self, no: int, raw: str) -> None:
        """Any other line: more annotated text or comment, depending on what came before."""
        stripped = raw.strip()
        if self.mode == "done":
            self.warn(f"text after the page link kept in the comment: {short(stripped, 40)!r}", no)
            self.comment_lines.append(unquote(raw).strip())
            return
        content = strip_one_space(raw[1:]) if raw.startswith(">") else raw
        if self.mode == "comment":
            self.comment_lines.append(content)
        elif self.mode == "text" or (self.mode is None and self.header_kind in ("highlight", None, "unknown")):
            self.text_lines.append(content)
            self.mode = "text"
        else:
            # an unexpected line in a note/image callout: keep it as comment text
            self.warn(f"unexpected line in annotation kept in the comment: {short(stripped, 40)!r}", no)
            self.comment_lines.append(content)
            self.mode = "comment"


def parse_annotation(b: Block, warn: Warnings) -> dict:
    """One >[!Note] callout -> dict of Annotation fields (without id)."""
    lines = list(b.lines)
    if b.title:
        lines.insert(0, (b.line, ">" + b.title))
    if not lines:
        warn("empty annotation callout (truncated note?)", b.line)
    r = _AnnotationReader(warn)
    for idx, (no, raw) in enumerate(lines):
        r.read(idx, no, raw)
    text = nl2br_text(r.text_lines)
    comment = nl2br_text(r.comment_lines)
    if r.page is None:
        warn("annotation without a page link (truncated note?)", b.line)
    kind = _kind(r.header_kind, text, comment, r.images, b.line, warn)
    color, colour_name = None, None
    if kind == "highlight":
        color = r.color
        colour_name = COLOUR_CODE.get(color, ("other", ""))[0] if color else "other"
        if color and color not in COLOUR_CODE:
            warn(f"highlight colour {color} is not in the reader's colour code: shown as 'other'", b.line)
    return dict(kind=kind, color=color, colour_name=colour_name, text=text,
                comment=comment, images=tuple(r.images), page=r.page, date=r.date, export=b.export, line=b.line)


def _kind(header_kind: str | None, text: str, comment: str, images: list[str], line: int, warn: Warnings) -> str:
    """'highlight', 'note' or 'image', from the header and what the callout holds."""
    if header_kind == "highlight":
        return "image" if not text and images else "highlight"
    if header_kind == "note":
        if text:
            warn("text note with annotated text: text kept", line)
        return "note"
    if images:
        return "image"
    if text:
        warn("annotation with text but no highlight header (underline?): treated as an uncoloured highlight", line)
        return "highlight"
    if not comment:
        warn("empty annotation (no text, image or comment)", line)
    return "note"


def parse_important(b: Block, warn: Warnings) -> list[ImportantItem]:
    """The items of the ``> [!important]`` block: text or images, each ended by its page link."""
    items: list[ImportantItem] = []
    cur: dict | None = None

    def finish(page: str | None, no: int | None = None) -> None:
        nonlocal cur
        if cur is None:
            return
        text = "\n".join(cur["text"])
        if text.endswith(">"):
            text = text[:-1]  # the template appends '>' after the text
        text = nl2br_text([text]) if text else ""
        if page is None:
            warn("important item without a page link", no)
        items.append(ImportantItem(text=text, images=tuple(cur["images"]), page=page))
        cur = None

    title = b.title.strip()
    if title and title != ">":
        warn(f"text on the [!important] header line kept as an item: {short(title, 40)!r}", b.line)
        cur = {"text": [title], "images": [], "mode": "text"}
    for no, raw in b.lines:
        s = raw.strip()
        if not s or s == ">":
            continue
        pm = PAGE_RE.match(strip_one_space(unquote(s)))
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
            cur = {"text": [strip_one_space(s[2:])], "images": [], "mode": "text"}
            continue
        if cur is not None and cur["mode"] == "text":
            cur["text"].append(unquote(raw).rstrip())
            continue
        warn(f"unexpected line in the important block kept as an item: {short(s, 40)!r}", no)
        if cur is not None:
            finish(None, no)
        cur = {"text": [unquote(raw).strip()], "images": [], "mode": "text"}
    if cur is not None:
        finish(None, b.line)
    return items


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
    digest = hashlib.sha1(norm(base).encode("utf-8")).hexdigest()[:7]
    slug = slug_words(text)
    return f"{prefix}-{slug}-{digest}" if slug else f"{prefix}-{digest}"


def assign_ids(raw: list[dict], warn: Warnings) -> tuple[Annotation, ...]:
    """Annotations with their ids; a repeated id gets a '-2', '-3' ... suffix and a warning."""
    out = []
    used: dict[str, int] = {}
    for r in raw:
        base = annotation_id(r["kind"], r["text"], r["comment"], r["images"])
        aid = base
        if base in used:
            used[base] += 1
            aid = f"{base}-{used[base]}"
            what = short(r["text"] or r["comment"] or ", ".join(r["images"]), 50)
            warn(f"duplicated {r['kind']} (p. {r['page'] or '?'}): {what!r} kept as {aid}", r["line"])
        else:
            used[base] = 1
        out.append(Annotation(id=aid, **r))
    return tuple(out)


def match_highlight(note: Note, quote: str) -> Annotation:
    """The one annotation whose text contains `quote` (whitespace/case/quote-style normalised).

    An exact annotation id also matches; a quote equal to a whole highlight beats longer ones.
    Raises DataError if none or several match.
    """
    for a in note.annotations:
        if a.id == quote.strip():
            return a
    q = norm(quote)
    if not q:
        raise DataError(f"{note.source_name}: empty highlight quote")
    hits = [a for a in note.annotations if a.text and q in norm(a.text)]
    if not hits:
        hits = [a for a in note.annotations if a.comment and q in norm(a.comment)]
    if not hits:
        raise DataError(f"{note.source_name}: no highlight contains {short(quote, 60)!r}")
    if len(hits) > 1:  # a quote equal to one whole highlight wins ("AC-GAN" vs a longer passage)
        exact = [a for a in hits if norm(a.text or a.comment) == q]
        if len(exact) == 1:
            return exact[0]
        pages = ", ".join(f"{a.id} (p. {a.page or '?'})" for a in hits)
        raise DataError(f"{note.source_name}: {short(quote, 60)!r} matches {len(hits)} highlights: {pages}")
    return hits[0]
