"""CCNet's line normalization (Wenzek et al. 2020, cc_net/text_normalizer.py `normalize`), re-implemented.

Applied to each line before SentencePiece and the KenLM model in the `perplexity` stage, exactly as the
CCNet language models were trained: strip, lowercase, remove accents (NFD, drop combining marks), every
digit to 0, map CJK/typographic punctuation to ASCII, delete control characters. One pure function, so
the pipeline and anyone scoring text directly apply the same normalization.
"""

from __future__ import annotations

import re
import unicodedata

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
_DIGIT_RE = re.compile(r"\d")


def strip_accents(text: str) -> str:
    """Remove combining marks after canonical decomposition (é -> e)."""
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def ccnet_normalize(line: str) -> str:
    """CCNet's default normalization of one line (accents, case, digits, punctuation, control chars)."""
    line = line.strip()
    if not line:
        return line
    line = strip_accents(line.lower())
    line = _DIGIT_RE.sub("0", line)
    line = line.translate(_PUNCTUATION_TABLE)
    return _CONTROL_CHARACTERS_RE.sub("", line)
