"""The note's BibTeX entry, built from its Metadata callout and written by pybtex.

Book side, literature import: `hipaug literature --bib`, the vault's ``references.bib`` and the
generated block of ``book/references.bib`` (the paper's own entry) all come from here.
"""

from __future__ import annotations

import logging
import re

from pybtex.database import BibliographyData, Entry, Person
from pybtex.database.output.bibtex import Writer

from hipaug.book.literature.model import Creator, Note
from hipaug.book.literature.text import fix_ligatures

log = logging.getLogger(__name__)

# Zotero item type -> BibTeX entry type (anything else is @misc)
BIBTEX_TYPES = {
    "conferencePaper": "inproceedings", "journalArticle": "article", "bookSection": "incollection",
    "book": "book", "thesis": "phdthesis", "report": "techreport",
}
# creator roles written as BibTeX name lists, in this order; other roles are dropped with a warning
_PERSON_ROLES = ("author", "editor", "translator", "bookAuthor", "seriesEditor", "contributor")
_BIB_ESCAPES = {"&": r"\&", "%": r"\%", "#": r"\#", "$": r"\$"}


class _Writer(Writer):
    """pybtex's BibTeX writer for values that are already BibTeX text.

    pybtex LaTeX-encodes every value (``_`` -> ``\\_``, ``\\&`` -> ``\\\\&``), which would double the
    escapes `_bib_text` makes and break a DOI such as ``10.1007/978-3-030-32248-9_8``.
    """

    def _encode(self, text: str) -> str:
        return text


def _bib_text(value: str) -> str:
    """One line, ligatures replaced, ``& % # $`` escaped, unbalanced braces made parentheses."""
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


def _person(c: Creator) -> Person:
    """A BibTeX name: a braced single-field name, or "Last, First" (a last name with 'and' or ',' braced)."""
    if c.name:
        return Person(last=_bib_text("{" + c.name + "}"))
    last = c.last or ""
    if re.search(r"\band\b", last) or "," in last:
        last = "{" + last + "}"
    if not last:  # a given name alone: BibTeX reads a lone name as the last name
        return Person(last=_bib_text(c.first or ""))
    return Person(last=_bib_text(last), first=_bib_text(c.first or ""))


def _bib_pages(pages: str) -> str:
    return re.sub(r"(?<=\w)\s*[-\u2010-\u2015]+\s*(?=\w)", "--", pages.strip())


def _fields(note: Note, etype: str) -> list[tuple[str, str]]:
    """The entry's fields in a fixed order (names are persons, see `_entry`)."""
    md = note.metadata
    fields: list[tuple[str, str]] = []
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
    for key, value in (("year", md.year), ("volume", md.volume), ("number", md.issue)):
        if value:
            fields.append((key, _bib_text(value)))
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
    return fields


def note_to_bibtex(note: Note) -> str:
    """A BibTeX entry built from the note's Metadata callout (UTF-8, deterministic field order)."""
    md = note.metadata
    etype = BIBTEX_TYPES.get(md.item_type or "", "misc")
    persons = {role.lower(): [_person(c) for c in md.creators_of(role)] for role in _PERSON_ROLES
               if md.creators_of(role)}
    dropped = {c.kind for c in md.creators} - set(_PERSON_ROLES)
    if dropped:
        log.warning("%s: creator roles not exported to BibTeX: %s", note.source_name, ", ".join(sorted(dropped)))
    entry = Entry(etype, fields=_fields(note, etype), persons=persons)
    return _Writer().to_string(BibliographyData({note.citekey: entry}))
