"""What a word is, for MinHash shingles: a run of letters, digits or underscores (combining marks of
Indic, Arabic, Hebrew and other scripts included), and every Han or Kana character on its own, so that
Chinese and Japanese text without spaces still yields word n-grams.

There are two word definitions on purpose, sharing one table of scripts written without spaces
(`CJK_RANGES`): this one ignores punctuation, as near-duplicate detection must (datatrove, the bench's
ground truth), while `filters.text_stats.split_words` keeps whitespace tokens with their punctuation,
because the published Gopher and C4 rules are stated on those.

Kept free of heavy imports (only numpy) so the benchmark can give the same word definition to a
baseline running in another virtual environment.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import lru_cache

import numpy as np

CJK_RANGES = (
    (0x3005, 0x3007),
    (0x3040, 0x30FF),
    (0x31F0, 0x31FF),
    (0x3400, 0x4DBF),
    (0x4E00, 0x9FFF),
    (0xF900, 0xFAFF),
)
_MARK_RANGES = ((0x0300, 0x036F), (0x0483, 0x0489), (0x0591, 0x05C7), (0x0610, 0x061A), (0x064B, 0x065F))
_MARK_RANGES += ((0x0670, 0x0670), (0x06D6, 0x06ED), (0x0900, 0x0DFF), (0x0E00, 0x0FFF), (0x1000, 0x109F))
_MARK_RANGES += ((0x1780, 0x17FF), (0x200C, 0x200D))


def _class_pattern(ranges: tuple[tuple[int, int], ...]) -> str:
    return "".join(f"{chr(low)}-{chr(high)}" for low, high in ranges)


CJK_CHARS = _class_pattern(CJK_RANGES)  # a regex character class body
_MARKS = _class_pattern(_MARK_RANGES)
WORD_RE = re.compile(f"[{CJK_CHARS}]|(?:[^\\W{CJK_CHARS}]|[{_MARKS}])+")


_BLOCK = 1 << 16


def _matching(pattern: str) -> np.ndarray:
    """Per code point, whether `pattern` matches that character alone; built 64k code points at a time,
    so building the table never holds a million one-character strings at once."""
    regex = re.compile(pattern)
    result = np.zeros(sys.maxunicode + 1, dtype=bool)
    for start in range(0, sys.maxunicode + 1, _BLOCK):
        block = "".join(map(chr, range(start, min(start + _BLOCK, sys.maxunicode + 1))))
        marked = re.sub(r"[^\x01]", "\x00", regex.sub("\x01", block))
        result[start : start + len(block)] = np.frombuffer(marked.encode("latin-1"), dtype=np.uint8) == 1
    return result


@lru_cache(maxsize=1)
def char_classes() -> np.ndarray:
    """Per code point: 0 separator, 1 word character, 2 a Han/Kana character (a word by itself); the
    table form of WORD_RE, for vectorized tokenization (built once with two regex passes)."""
    classes = _matching(r"\w").astype(np.uint8)
    classes[ord("_")] = 1
    for low, high in _MARK_RANGES:
        classes[low : high + 1] = 1
    for low, high in CJK_RANGES:
        classes[low : high + 1] = 2
    return classes


# Scripts whose precomposed letters carry accents worth folding (Latin, Greek, Cyrillic and their extensions).
_ACCENTED_RANGES = ((0x00C0, 0x024F), (0x0370, 0x04FF), (0x1E00, 0x1FFF))


@lru_cache(maxsize=1)
def fold_table() -> np.ndarray:
    """Per code point, the code point it counts as for near-duplicate shingles: every decimal digit is "0"
    (so shifted dates and numbers still match, as in CCNet and datatrove's text simplification) and a
    precomposed accented letter is its base letter (an accent fix is not a different word)."""
    table = np.arange(sys.maxunicode + 1, dtype=np.uint32)
    table[_matching(r"\d")] = ord("0")
    for low, high in _ACCENTED_RANGES:
        for code in range(low, high + 1):
            base = unicodedata.normalize("NFD", chr(code))[0]
            if base != chr(code) and base.isalpha():
                table[code] = ord(base)
    return table
