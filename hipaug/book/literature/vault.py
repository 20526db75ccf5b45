"""Import notes into a book folder: one note as a page, or a whole vault with a reading list and BibTeX.

Book side, literature import: what `hipaug literature` does. The functions write the files and
return a report whose `summary()` is the command's output; they never print.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from hipaug.book.literature.bibtex import note_to_bibtex
from hipaug.book.literature.model import Note, format_counts
from hipaug.book.literature.parse import read_note
from hipaug.book.literature.render import escape_md, render_page_report, role_title, strip_file_links
from hipaug.book.literature.text import short
from hipaug.errors import ConfigError, DataError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PageReport:
    """What import_note did."""

    page: Path  # the page written (as given)
    name: str  # the note's file name, which prefixes each line of the summary
    found: dict[str, int]  # Note.counts()
    written: dict[str, int]  # written_counts(page)
    warnings: tuple[str, ...]  # the note's warnings, then the rendering warnings

    def summary(self) -> str:
        """The counts found and written, each warning, and the page written: one line each."""
        lines = [f"{self.name}: found {format_counts(self.found)}; written {format_counts(self.written)}"]
        lines += [f"warning: {self.name}: {w}" for w in self.warnings]
        return "\n".join([*lines, f"wrote {self.page}"])


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

    def summary(self) -> str:
        """The counts of each page, each warning, and what was written: one line each."""
        lines = [f"{stem}: found {format_counts(self.found[stem])}; written {format_counts(self.written[stem])}"
                 for stem in self.found]
        lines += [f"warning: {w}" for w in self.warnings]
        lines.append(f"wrote {len(self.pages)} pages, {self.index} and {self.bib} ({len(self.skipped)} files skipped)")
        return "\n".join(lines)


@contextmanager
def quiet_log() -> Iterator[None]:
    """Keep the logging copies of the import's warnings off the console, for a caller that prints them."""
    logger = logging.getLogger("hipaug.book.literature")
    saved = logger.propagate
    quiet = logging.NullHandler()
    logger.addHandler(quiet)
    logger.propagate = False
    try:
        yield
    finally:
        logger.removeHandler(quiet)
        logger.propagate = saved


def default_vault_root(note_path: str | Path) -> Path:
    """Walk up from the note to the first folder holding ``sources/images`` (else the note's folder)."""
    start = Path(note_path).resolve().parent
    for d in (start, *start.parents):
        if (d / "sources" / "images").is_dir():
            return d
    return start


def import_note(note: Note | str | Path, out: str | Path, *, vault_root: str | Path | None = None) -> PageReport:
    """Render one note (a Note or its file) as the MyST page `out`, its images copied beside it.

    Embedded image paths are relative to `vault_root` (default: the first folder above the note
    holding ``sources/images``).
    """
    if not isinstance(note, Note):
        note = read_note(note)
    out = Path(out)
    if out.suffix.lower() != ".md":
        raise ConfigError(f"--out {out}: expected a .md page path")
    src = note.source_path
    if src is not None and out.resolve() == src.resolve():
        raise ConfigError(f"--out {out}: is the note itself; choose another page path")
    if vault_root is not None:
        root: Path | None = Path(vault_root)
    else:
        root = default_vault_root(src) if src is not None else None
    md, written, render_warnings = render_page_report(note, image_root=root, image_dest=out.parent)
    _write(out, md)
    return PageReport(page=out, name=src.name if src is not None else note.citekey, found=note.counts(),
                      written=written, warnings=(*note.warnings, *render_warnings))


@dataclass
class _VaultImport:
    """The pages, BibTeX entries and warnings of a vault import so far."""

    out: Path  # output folder
    root: Path  # folder the notes' image paths are relative to
    pages: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    rows: list[tuple[Note, str]] = field(default_factory=list)  # (note, its first highlight) per page
    bibs: list[str] = field(default_factory=list)  # one BibTeX entry per citekey
    found: dict[str, dict[str, int]] = field(default_factory=dict)
    written: dict[str, dict[str, int]] = field(default_factory=dict)
    keys: dict[str, Path] = field(default_factory=dict)  # citekey -> first note with it
    labels: dict[str, Path] = field(default_factory=dict)  # annotation id -> first note with it
    stems: set[str] = field(default_factory=lambda: {"index", "references"})  # page names taken (lower case)

    def add(self, f: Path) -> None:
        """Import one file: a page, a BibTeX entry and a reading-list row, or a skip with its reason."""
        try:
            note = read_note(f)
        except DataError as exc:
            reason = str(exc).split(": ", 1)[-1]
            self.skipped.append((f, reason))
            self.warnings.append(f"{f.name}: skipped: {reason}")
            return
        self.warnings.extend(f"{f.name}: {w}" for w in note.warnings)
        stem = self.page_stem(f)
        md, wc, rw = render_page_report(note, image_root=self.root, image_dest=self.out)
        self.warnings.extend(f"{f.name}: {w}" for w in rw)
        for a in note.annotations:
            if a.id in self.labels:
                self.warnings.append(f"{f.name}: label {a.id} also used by {self.labels[a.id].name} (Sphinx will warn)")
            self.labels.setdefault(a.id, f)
        page = self.out / f"{stem}.md"
        _write(page, md)
        self.pages.append(page)
        self.found[stem], self.written[stem] = note.counts(), wc
        if self.found[stem] != wc:
            self.warnings.append(f"{f.name}: found {format_counts(self.found[stem])} but wrote {format_counts(wc)}")
        if note.citekey in self.keys:
            self.warnings.append(f"{f.name}: citekey {note.citekey} already used by {self.keys[note.citekey].name}: "
                                 "BibTeX entry not repeated")
        else:
            self.keys[note.citekey] = f
            self.bibs.append(note_to_bibtex(note))
        first = next((a.text for a in note.annotations if a.kind == "highlight" and a.text), "")
        self.rows.append((note, first))

    def page_stem(self, f: Path) -> str:
        """A free page name from the note's file name ('-2', '-3' ... when taken)."""
        stem = re.sub(r"[^A-Za-z0-9._-]+", "-", f.stem).strip("-") or "note"
        base, n = stem, 1
        while stem.lower() in self.stems:
            n += 1
            stem = f"{base}-{n}"
        if stem != base:
            self.warnings.append(f"{f.name}: page renamed to {stem}.md (name taken)")
        self.stems.add(stem.lower())
        return stem


def import_vault(vault_or_folder: str | Path, out_dir: str | Path, *,
                 vault_root: str | Path | None = None) -> VaultReport:
    """Render every note of a vault (``DIR/sources/*.md``) or folder into `out_dir`.

    Writes one page per note (images copied beside it), ``index.md`` (reading list) and
    ``references.bib``. Files that are not notes are skipped and reported, never silently.
    """
    folder = Path(vault_or_folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: vault folder not found")
    out = Path(out_dir)
    src = folder / "sources"
    notes_dir = src if src.is_dir() and any(src.glob("*.md")) else folder
    files = sorted(p for p in notes_dir.glob("*.md") if p.is_file())
    if files and out.resolve() == files[0].parent.resolve():
        raise ConfigError(f"--out {out}: is the folder of the notes themselves; pages would overwrite them")
    if not files:
        raise DataError(f"{folder}: no .md notes in {folder / 'sources'} or {folder}")
    out.mkdir(parents=True, exist_ok=True)
    run = _VaultImport(out, Path(vault_root) if vault_root is not None else folder)
    for f in files:
        run.add(f)
    index = _write(out / "index.md", _reading_list(folder.name, run.rows, run.skipped))
    bib = _write(out / "references.bib", "\n".join(run.bibs))
    for w in run.warnings:
        log.warning("%s", w)
    return VaultReport(out_dir=out, pages=tuple(run.pages), index=index, bib=bib, skipped=tuple(run.skipped),
                       warnings=tuple(run.warnings), found=run.found, written=run.written)


def _write(path: Path, text: str) -> Path:
    # hipaug.core imports torch: load it only when a page is written, so reading notes stays light
    from hipaug.core import atomic_write_text

    return atomic_write_text(path, text)


def _table_cell(s: str) -> str:
    return escape_md(" ".join(s.split())).replace("|", "\\|") if s else ""


def _reading_list(folder_name: str, rows: list[tuple[Note, str]], skipped: list[tuple[Path, str]]) -> str:
    """The vault's index page: one table row per note, then the files skipped."""
    lines = ["(literature-index)=", "# Reading list", "",
             f"% Generated by hipaug.book.literature from {folder_name}: edit the notes, not this page.", ""]
    if rows:
        lines += ["| Title | Year | Citekey | Highlights | First highlight |", "|---|---|---|---|---|"]
        for note, first in rows:
            title = role_title(note.title)
            lines.append(f"| {{ref}}`{title} <annotations-{note.citekey}>` | {_table_cell(note.metadata.year or '')} "
                         f"| `{note.citekey}` | {note.counts()['highlights']} | {_table_cell(short(first, 80))} |")
    else:
        lines.append("No notes were imported.")
    if skipped:
        lines += ["", "Files skipped (not literature notes):", ""]
        lines += [f"- {_table_cell(p.name)}: {_table_cell(r)}" for p, r in skipped]
    return strip_file_links("\n".join(lines) + "\n")
