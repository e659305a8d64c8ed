"""Word splitting and small text measurements shared by the heuristic filters.

The published heuristics (Gopher, C4) count whitespace-separated words, which makes every Chinese or
Japanese line a single "word". Here each Han, kana or CJK-punctuation-free ideograph counts as one word
instead, so word-count rules mean roughly the same amount of text in every script; for space-separated
scripts the split is exactly a whitespace split. All functions are linear in the text length.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache

# Scripts written without spaces between words: Hiragana, Katakana, CJK ideographs (BMP + extensions).
_CJK_CHARS = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
_WORD_RE = re.compile(rf"[{_CJK_CHARS}]|[^\s{_CJK_CHARS}]+")
_CJK_RE = re.compile(rf"[{_CJK_CHARS}]")
# A position where a token cannot continue across: before whitespace or before a CJK character.
TOKEN_BOUNDARY = re.compile(rf"[\s{_CJK_CHARS}]")


def split_words(text: str) -> list[str]:
    """Whitespace-separated tokens, with each CJK ideograph or kana as a token of its own."""
    return _WORD_RE.findall(text)


def count_words(text: str, limit: int | None = None) -> int:
    """Number of `split_words` tokens, stopping at `limit` so a huge document costs bounded work."""
    count = 0
    for _ in _WORD_RE.finditer(text):
        count += 1
        if limit is not None and count >= limit:
            break
    return count


def is_cjk_char(token: str) -> bool:
    """True for a single CJK ideograph or kana (a token `split_words` produced from unspaced script)."""
    return len(token) == 1 and _CJK_RE.match(token) is not None


@lru_cache(maxsize=4096)
def _is_symbol_char(char: str) -> bool:
    return unicodedata.category(char)[0] in "PS"


def is_symbol_word(word: str) -> bool:
    """True when a token is only punctuation or symbols ("-", "|", "©", "..."): not a word to count."""
    return all(_is_symbol_char(c) for c in word)


def has_alpha(word: str) -> bool:
    """True when a token contains at least one alphabetic character (any script)."""
    return any(c.isalpha() for c in word)


def nonempty_lines(text: str) -> list[str]:
    """Lines with content, stripped of surrounding whitespace."""
    return [stripped for line in text.split("\n") if (stripped := line.strip())]


def sentence_end_pattern(end_marks: Iterable[str]) -> re.Pattern[str]:
    """Regex matching one sentence end: a run of end marks, optional closing quotes or brackets, then
    whitespace or the end of the line. CJK full stops end a sentence without a following space. Quote marks
    (which C4 accepts as line endings) are not sentence ends on their own."""
    marks = sorted(set(end_marks) - set(_QUOTES))
    spaced = "".join(re.escape(m) for m in marks if len(m) == 1 and not _is_fullwidth(m))
    unspaced = "".join(re.escape(m) for m in marks if len(m) == 1 and _is_fullwidth(m))
    parts = []
    if spaced:
        parts.append(rf"[{spaced}]+[\"'”’)\]]*(?=\s|$)")
    if unspaced:
        parts.append(rf"[{unspaced}]+[」』”’）]*")
    return re.compile("|".join(parts) if parts else r"(?!x)x")


_QUOTES = "\"'”’「」『』"


def _is_fullwidth(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")
