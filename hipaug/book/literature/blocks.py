"""The unit the note's parsers work on: a callout block, its quoted lines, and the warning sink.

Book side, literature import. A block is one ``>[!Kind] title`` callout with its body lines;
helpers here remove the ``>`` quoting and undo the template's ``nl2br``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

BR_RE = re.compile(r"<\s*/?\s*br\s*/?\s*>[ \t]*\n?", re.I)
# a "[page N](file://...) [[date]]" link at the end of an annotation or important item
PAGE_RE = re.compile(r"^\[page\s*([^\]]*)\]\((.*?)\)\s*(?:\[\[([^\]]*)\]\])?\s*>?\s*$")
# a "**Key**:: value" line (a leading space marks a two-field creator)
KV_RE = re.compile(r"^(\s*)\*\*([^*]+?)\*\*::[ \t]?(.*)$")


@dataclass
class Block:
    """One callout as scanned: its header and the raw lines that follow it."""

    kind: str  # callout type as written, e.g. "Metadata", "Note"
    title: str  # text after the type on the header line
    line: int  # header line (1-based)
    region: str  # where it sits: "pre" (before the annotations), "heading", "ann" or "post"
    export: str | None  # the "### Exported:" stamp in force
    lines: list[tuple[int, str]] = field(default_factory=list)  # (line number, raw line) of the body


class Warnings:
    """Collect one-line warnings (and log each) for one note."""

    def __init__(self, source: str) -> None:
        self.items: list[str] = []
        self.source = source

    def __call__(self, msg: str, line: int | None = None) -> None:
        text = f"line {line}: {msg}" if line else msg
        self.items.append(text)
        log.warning("%s: %s", self.source, text)


def unquote(line: str, levels: int = 1) -> str:
    """Remove up to `levels` leading '>'."""
    for _ in range(levels):
        if line.startswith(">"):
            line = line[1:]
        else:
            break
    return line


def strip_one_space(s: str) -> str:
    return s[1:] if s.startswith(" ") else s


def body_text(b: Block) -> str:
    """The block's body with one level of '>' (and the space after it) removed."""
    parts = [strip_one_space(unquote(line)) for _no, line in b.lines]
    return "\n".join(parts).strip("\n")


def nl2br_text(lines: Sequence[str]) -> str:
    """Join the lines of an nl2br'd value and turn <br> tags back into line breaks."""
    text = "\n".join(lines)
    text = BR_RE.sub("\n", text)
    return "\n".join(part.rstrip() for part in text.split("\n")).strip()
