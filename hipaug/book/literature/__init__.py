"""Import a reader's Zotero literature notes (Obsidian callouts) into the book.

The reader of Lin & Chung (TAAI 2019) annotated the paper in Zotero and exported the note to
Obsidian with the Zotero Integration plugin and a Nunjucks template (Cite, Synthesize,
Metadata, LINK, Abstract and important callouts, then ``%% begin annotations %%`` with one
``>[!Note]`` callout per annotation). This package parses such notes into frozen dataclasses
(`parse`, `callouts`, `annotations`, `model`), renders each as a MyST page with one admonition
per highlight in the reader's colour and a ``(hl-...)=`` label other pages can ``{ref}``
(`render`), builds a BibTeX entry from the Metadata callout (`bibtex`), and imports one note or
a whole vault folder: pages, a reading-list index and ``references.bib`` (`vault`).

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

from hipaug.book.literature.annotations import annotation_id, match_highlight
from hipaug.book.literature.bibtex import note_to_bibtex, protect_title
from hipaug.book.literature.model import (
    COLOUR_CODE,
    ROLES,
    Annotation,
    Callout,
    Creator,
    ImportantItem,
    Metadata,
    Note,
    format_counts,
)
from hipaug.book.literature.parse import parse_note, read_note
from hipaug.book.literature.render import escape_md, render_page_report, written_counts
from hipaug.book.literature.text import fix_ligatures
from hipaug.book.literature.vault import (
    PageReport,
    VaultReport,
    default_vault_root,
    import_note,
    import_vault,
    quiet_log,
)

__all__ = [
    "COLOUR_CODE", "ROLES", "Annotation", "Callout", "Creator", "ImportantItem", "Metadata", "Note", "PageReport",
    "VaultReport", "annotation_id", "default_vault_root", "escape_md", "fix_ligatures", "format_counts",
    "import_note", "import_vault", "match_highlight", "note_to_bibtex", "parse_note", "protect_title", "quiet_log",
    "read_note", "render_page_report", "written_counts",
]
