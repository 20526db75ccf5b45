"""Render a parsed note as a MyST page: one admonition per annotation, in the reader's colour.

Book side, literature import. Each annotation gets a ``(hl-...)=`` label other pages can
``{ref}``; images are copied beside the page (a placeholder admonition when missing); every
text from the note is escaped so MyST shows it literally, and ``file://`` links never reach the page.
"""

from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath

from hipaug.book.literature.model import Annotation, ImportantItem, Note
from hipaug.book.literature.text import plural

log = logging.getLogger(__name__)

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


def role_title(s: str) -> str:
    """A title fit for {ref}`title <label>`: no backticks or angle brackets, one line."""
    return " ".join(re.sub(r"[`<>]", "", s).split())


def strip_file_links(md: str) -> str:
    """Drop local ``file://`` links (keeping their text): the reader's paths never reach the book."""
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
    """The image file under `image_root`, the note's folder or its parents (None if missing)."""
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
    """Build one note's page, collecting the warnings (missing or uncopyable images) on the way."""

    def __init__(self, note: Note, links, extras, image_root, image_dest) -> None:
        self.note = note
        self.links = links or {}
        self.extras = extras or {}
        self.image_root = Path(image_root) if image_root is not None else None
        self.image_dest = Path(image_dest) if image_dest is not None else None
        self.warnings: list[str] = []

    def warn(self, msg: str) -> None:
        self.warnings.append(msg)
        log.warning("%s: %s", self.note.source_name, msg)

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
                title_ = role_title(str(title_ or ""))
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
        L += [f"% Generated by hipaug.book.literature from {src.replace(chr(10), ' ')}: "
              "edit the note, not this page.", ""]
        c = note.counts()
        L += [f"The reader's annotated copy of {{cite:p}}`{note.citekey}`: {plural(c['highlights'], 'highlight')}, "
              f"{plural(c['notes'], 'note')}, {plural(c['images'], 'image')} and "
              f"{plural(c['comments'], 'comment')}, in the order of the note.", ""]
        L += self.metadata_lines() + [""]
        if note.cite:
            L += ["Reference as formatted in the reader's Zotero:", "", "> " + _light_escape(strip_file_links(
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
                heading = escape_md("Exported " + a.export) if a.export else "Annotations without an export date"
                L += [f"### {heading}", ""]
                last_export = a.export
            L += [self.annotation(a), ""]
        if note.extra_text:
            L += ["## Other text in the note", "", self.paragraphs("\n".join(note.extra_text)), ""]
        md = strip_file_links("\n".join(L).rstrip("\n") + "\n")
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


def render_page_report(note: Note, *, links: Mapping[str, Sequence[tuple[str, str]]] | None = None,
                       extras: Mapping[str, str] | None = None, image_root: str | Path | None = None,
                       image_dest: str | Path | None = None,
                       label: str | None = None) -> tuple[str, dict[str, int], list[str]]:
    """Render a note as a MyST page; return (page, written counts, rendering warnings).

    `links`: {annotation id: [(title, target label), ...]} -> "Tested in:" lines; `extras`:
    {annotation id: markdown} appended inside the admonition (verdict badges). Images are looked
    up under `image_root` (then the note's folder and its parents), copied to
    ``image_dest/<vault-relative path>`` and embedded with that relative path, so the page must be
    written into `image_dest` (without `image_dest` nothing is copied and the page is assumed to
    sit in `image_root`). Missing images become a placeholder admonition.
    """
    r = _Renderer(note, links, extras, image_root, image_dest)
    md, written = r.render(label)
    return md, written, r.warnings
