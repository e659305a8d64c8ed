"""CCNet's two line normalizations (facebookresearch/cc_net `text_normalizer.normalize`), in one place.

Both strip, lowercase, strip accents (NFD, drop combining marks) and turn every digit into "0"; they
differ in punctuation, as cc_net's `punct` argument does:
- `normalize_line_for_dedup` (dedup keys, cc_net's punct=2): punctuation and symbols removed, so two lines that
  differ only in case, accents, digits, punctuation or spacing hash alike. Two deliberate differences from
  cc_net, both making more true repeats match: every Unicode punctuation or symbol character (categories
  P* and S*) goes, not a fixed list; and runs of whitespace collapse to one space.
- `normalize_for_lm` (language-model input, cc_net's punct=1): CJK and typographic punctuation mapped to
  ASCII and control characters deleted, exactly as the CCNet KenLM models were trained.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache

UNICODE_PUNCTUATION = {
    "，": ",",
    "。": ".",
    "、": ",",
    "„": '"',
    "”": '"',
    "“": '"',
    "«": '"',
    "»": '"',
    "１": '"',
    "」": '"',
    "「": '"',
    "《": '"',
    "》": '"',
    "´": "'",
    "∶": ":",
    "：": ":",
    "？": "?",
    "！": "!",
    "（": "(",
    "）": ")",
    "；": ";",
    "–": "-",
    "—": " - ",
    "．": ". ",
    "～": "~",
    "’": "'",
    "…": "...",
    "━": "-",
    "〈": "<",
    "〉": ">",
    "【": "[",
    "】": "]",
    "％": "%",
    "►": "-",
}
_PUNCTUATION_TABLE = str.maketrans(UNICODE_PUNCTUATION)
_CONTROL_CHARACTERS_RE = re.compile("[" + "".join(map(chr, [*range(32), *range(127, 160)])) + "]")
_CONTROL_CHARACTERS_RE = re.compile("[" + "".join(map(chr, [*range(32), *range(127, 160)])) + "]")
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


def normalize_line_for_dedup(line: str) -> str:
    """The CCNet dedup key of one line (empty for a line with no letters or digits)."""
    line = line.strip()
    if not line:
        return ""
    line = unicodedata.normalize("NFD", line.lower())
    line = _DIGIT_RE.sub("0", line)
    line = line.translate(_removal_table())
    return _SPACE_RE.sub(" ", line).strip()


def normalize_for_dedup(text: str) -> str:
    """Every line normalized, blank results dropped: a whitespace- and punctuation-insensitive form of a
    whole document, used as the key for exact document dedup."""
    return "\n".join(filter(None, map(normalize_line_for_dedup, text.splitlines())))


def strip_accents(text: str) -> str:
    """Remove combining marks after canonical decomposition (é -> e)."""
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def normalize_for_lm(line: str) -> str:
    """CCNet's default normalization of one line before SentencePiece and KenLM (accents, case, digits,
    punctuation mapped, control characters deleted)."""
    line = line.strip()
    if not line:
        return line
    line = strip_accents(line.lower())
    line = _DIGIT_RE.sub("0", line)
    line = line.translate(_PUNCTUATION_TABLE)
    return _CONTROL_CHARACTERS_RE.sub("", line)
