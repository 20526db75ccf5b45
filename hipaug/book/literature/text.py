"""Text helpers shared by the note's parser, the highlight matcher and the page renderer.

Book side, literature import: normalised comparison, slugs, ligature repair, short quotes in
warnings.
"""

from __future__ import annotations

import re
import unicodedata

_QUOTES = str.maketrans({"\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
                         "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u2032": "'",
                         "\u2013": "-", "\u2014": "-", "\u2212": "-", "\u2010": "-", "\u2011": "-", "\u00a0": " "})
_LIGATURES = {"\ufb00": "ff", "\ufb01": "fi", "\ufb02": "fl", "\ufb03": "ffi", "\ufb04": "ffl",
              "\ufb05": "st", "\ufb06": "st"}


def norm(s: str) -> str:
    """Whitespace-collapsed, case-folded, NFKC text with straight quotes and plain hyphens."""
    s = unicodedata.normalize("NFKC", s).translate(_QUOTES)
    return " ".join(s.split()).casefold()


def fix_ligatures(s: str) -> str:
    """Replace typographic ligatures (ﬁ, ﬂ, ...) that PDF metadata extraction leaves behind."""
    return "".join(_LIGATURES.get(ch, ch) for ch in s)


def slug_words(s: str, words: int = 5, max_len: int = 40) -> str:
    """The first `words` ASCII words of `s`, lower-case and joined by '-'."""
    ascii_ = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode().lower()
    toks = re.findall(r"[a-z0-9]+", ascii_)[:words]
    return "-".join(toks)[:max_len].strip("-")


def slug_key(s: str) -> str:
    """A citekey made from a file name."""
    return re.sub(r"[^A-Za-z0-9_:-]+", "-", s).strip("-") or "note"


def short(s: str, n: int) -> str:
    """`s` on one line, cut to `n` characters with an ellipsis."""
    s = " ".join(s.split())
    return s if len(s) <= n else s[: n - 1].rstrip() + "…"


def plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")
