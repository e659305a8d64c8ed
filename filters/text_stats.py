"""Word splitting and small text measurements shared by the heuristic filters.

The published heuristics (Gopher, C4) count whitespace-separated words, which makes every Chinese or
Japanese line a single "word". Here each CJK ideograph or kana counts as one word instead, so word-count
rules mean roughly the same amount of text in every script; for space-separated scripts the split is
exactly `str.split()`, punctuation attached, as those rules are stated. (MinHash shingles need words
without punctuation: `filters.words`, which owns the CJK table both use.) All functions are linear in
the text length.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

import numpy as np

from filters.words import CJK_CHARS  # BMP blocks only: a fast bitmap class in `re`

_WORD_RE = re.compile(rf"[{CJK_CHARS}]|[^\s{CJK_CHARS}]+")
_CJK_RE = re.compile(rf"[{CJK_CHARS}]")
_COUNT_CHUNK = 1 << 16
# A position where a token cannot continue across: before whitespace or before a CJK character.
TOKEN_BOUNDARY = re.compile(rf"[\s{CJK_CHARS}]")
# Byte -> is it whitespace, for numpy scans of ASCII text: exactly the ASCII characters str.split() splits on.
ASCII_WHITESPACE = np.zeros(256, dtype=bool)
ASCII_WHITESPACE[[0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x1F, 0x20]] = True


def split_words(text: str) -> list[str]:
    """Whitespace-separated tokens, with each CJK ideograph or kana as a token of its own."""
    if not contains_cjk(text):
        return text.split()
    return _WORD_RE.findall(text)


def count_words(text: str, limit: int | None = None) -> int:
    """Number of `split_words` tokens, counted chunk by chunk and stopping once past `limit`, so a huge
    document costs bounded work."""
    count = start = 0
    while start < len(text) and (limit is None or count < limit):
        end = min(start + _COUNT_CHUNK, len(text))
        if end < len(text):
            boundary = TOKEN_BOUNDARY.search(text, end)
            end = boundary.start() if boundary else len(text)
        count += len(split_words(text[start:end]))
        start = end
    return count if limit is None else min(count, limit)


def contains_cjk(text: str) -> bool:
    return not text.isascii() and _CJK_RE.search(text) is not None


def is_cjk_char(token: str) -> bool:
    """True for a single CJK ideograph or kana (a token `split_words` produced from unspaced script)."""
    return len(token) == 1 and _CJK_RE.match(token) is not None


_LETTER_OR_DIGIT = re.compile(r"[^\W_]")
_LETTER = re.compile(r"[^\W\d_]")


def is_symbol_word(word: str) -> bool:
    """True when a token has no letter or digit ("-", "|", "©", "..."): not a word to measure."""
    return _LETTER_OR_DIGIT.search(word) is None


def has_alpha(word: str) -> bool:
    """True when a token contains at least one alphabetic character (any script)."""
    return _LETTER.search(word) is not None


def nonempty_lines(text: str) -> list[str]:
    """Lines with content, stripped of surrounding whitespace."""
    return [stripped for line in text.split("\n") if (stripped := line.strip())]


_QUOTES = "\"'”’「」『』"


def sentence_end_pattern(end_marks: Iterable[str]) -> re.Pattern[str]:
    """Regex matching one sentence end: a run of end marks, optional closing quotes or brackets, then
    whitespace or the end of the line. CJK full stops end a sentence without a following space. Quote marks
    (which C4 accepts as line endings) are not sentence ends on their own; multi-character marks only count
    as line endings."""
    marks = sorted(set(end_marks) - set(_QUOTES))
    spaced = "".join(re.escape(m) for m in marks if len(m) == 1 and not _is_fullwidth(m))
    unspaced = "".join(re.escape(m) for m in marks if len(m) == 1 and _is_fullwidth(m))
    parts = []
    if spaced:
        parts.append(rf"[{spaced}]+[\"'”’)\]]*(?=\s|$)")
    if unspaced:
        parts.append(rf"[{unspaced}]+[」』”’）]*")
    return re.compile("|".join(parts) if parts else r"(?!x)x")


def _is_fullwidth(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")
