"""CCNet's line normalization for deduplication: two lines that differ only in case, accents, digits,
punctuation or spacing hash alike.

Follows cc_net's `text_normalizer.normalize` / `dedup.normalize_for_dedup` (facebookresearch/cc_net):
strip, lowercase, strip accents (NFD, drop combining marks), every digit to "0", remove punctuation and
non-printing characters. Two deliberate differences, both making more true repeats match: cc_net removes a
fixed list of punctuation characters, here every Unicode punctuation or symbol character (categories P*
and S*) goes; and runs of whitespace collapse to one space.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache

_DIGIT_RE = re.compile(r"\d")
_SPACE_RE = re.compile(r"\s+")


@lru_cache(maxsize=1)
def _removal_table() -> dict[int, None]:
    """`str.translate` table deleting punctuation, symbols, combining marks and control/format characters."""
    drop = ("P", "S", "Mn", "Cc", "Cf")
    table: dict[int, None] = {}
    for code in range(sys.maxunicode + 1):
        category = unicodedata.category(chr(code))
        if category.startswith(drop) and chr(code) not in "\t\n\r":
            table[code] = None
    return table


def normalize_line(line: str) -> str:
    """The CCNet dedup key of one line (empty for a line with no letters or digits)."""
    line = line.strip()
    if not line:
        return ""
    line = unicodedata.normalize("NFD", line.lower())
    line = _DIGIT_RE.sub("0", line)
    line = line.translate(_removal_table())
    return _SPACE_RE.sub(" ", line).strip()


def normalize_text(text: str) -> str:
    """Every line normalized, blank results dropped: a whitespace- and punctuation-insensitive form of a
    whole document, used as the key for exact document dedup."""
    return "\n".join(filter(None, map(normalize_line, text.splitlines())))
