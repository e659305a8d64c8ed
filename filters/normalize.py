"""Unicode and whitespace normalization, the first stage of every pipeline.

Later stages (dedup hashes, n-gram statistics, the tokenizer) should see one spelling of the same text:
one Unicode normal form, one line ending, no invisible control or format characters and no runs of
spaces. The steps run in an order that makes the result idempotent (normalizing twice changes nothing):
line endings -> invisible characters removed -> Unicode normal form -> whitespace. Removing characters
before composing matters: "e<NUL><COMBINING ACUTE>" only composes to "é" once the NUL is gone.

CCNet (Wenzek et al. 2020, cc_net/text_normalizer.py) and datatrove's formatters do similar cleaning; the
choices here are conservative (no lowercasing, no punctuation or digit folding: the model should see the
text as written).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import ClassVar

from filters.base import ConfigError, Stage
from filters.document import Document, Rejection

_LINE_BREAKS = re.compile("\r\n|[\r\x0b\x0c\x85\u2028\u2029]")
# Zero-width joiner/non-joiner are format characters that spell words in Persian, Indic scripts and
# emoji sequences: removing them would change the text, so they survive the format-character purge.
_KEEP_FORMAT = frozenset("\u200c\u200d")
_NONCHARACTERS = frozenset(chr(c) for c in range(0xFDD0, 0xFDF0)) | frozenset(
    chr(plane << 16 | low) for plane in range(17) for low in (0xFFFE, 0xFFFF)
)
# Unicode space separators (category Zs) other than U+0020: no-break, Ogham, en/em/thin, ideographic...
_SPACE_SEPARATORS = "\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000"
_SPACE_RUN = re.compile(rf"[ {_SPACE_SEPARATORS}]+")
_TRAILING_SPACE = re.compile(r"[ \t]+$", re.MULTILINE)
_LEADING_SPACE = re.compile(r"^[ \t]+", re.MULTILINE)
_NORMAL_FORMS = ("NFC", "NFKC", "NFD", "NFKD")


@lru_cache(maxsize=1)
def _invisible_char_pattern() -> re.Pattern[str]:
    """Control (Cc, except tab and newline), format (Cf, except ZWJ/ZWNJ), surrogate (Cs, from broken
    JSON escapes: they cannot be written as UTF-8) and noncharacter code points."""
    drop = []
    for code in range(0x110000):
        char = chr(code)
        category = unicodedata.category(char)
        if (
            (category == "Cc" and char not in "\t\n")
            or (category == "Cf" and char not in _KEEP_FORMAT)
            or category == "Cs"
            or char in _NONCHARACTERS
        ):
            drop.append(code)
    ranges = []
    start = prev = drop[0]
    for code in drop[1:]:
        if code != prev + 1:
            ranges.append((start, prev))
            start = code
        prev = code
    ranges.append((start, prev))
    return re.compile("[" + "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges) + "]")


@dataclass
class NormalizeConfig:
    """Options of the `normalize` stage. Defaults keep the text as written, minus invisible noise."""

    form: str = "NFC"  # Unicode normal form: NFC (default, lossless), NFKC (folds compatibility chars), ...
    remove_invisible: bool = True  # drop control/format/surrogate/noncharacter code points (not \n, \t)
    collapse_spaces: bool = True  # runs of spaces and Unicode space separators -> one ASCII space
    strip_lines: bool = True  # remove spaces and tabs at both ends of every line
    max_blank_lines: int = 1  # longer runs of empty lines are collapsed to this many (1 keeps paragraphs)
    strip_document: bool = True  # remove leading/trailing blank lines and spaces of the whole text

    def validate(self) -> None:
        if self.form not in _NORMAL_FORMS:
            raise ConfigError(f"normalize.form: expected one of {', '.join(_NORMAL_FORMS)}, got {self.form!r}")
        if self.max_blank_lines < 0:
            raise ConfigError(f"normalize.max_blank_lines: must be >= 0, got {self.max_blank_lines}")


def normalize_text(text: str, config: NormalizeConfig | None = None) -> str:
    """The normalized text (idempotent: `normalize_text(normalize_text(t)) == normalize_text(t)`)."""
    config = config or NormalizeConfig()
    text = _LINE_BREAKS.sub("\n", text)
    if config.remove_invisible:
        text = _invisible_char_pattern().sub("", text)
    text = unicodedata.normalize(config.form, text)
    if config.collapse_spaces:
        text = _SPACE_RUN.sub(" ", text)
    text = _TRAILING_SPACE.sub("", text)
    if config.strip_lines:
        text = _LEADING_SPACE.sub("", text)
    text = re.sub(f"\n{{{config.max_blank_lines + 2},}}", "\n" * (config.max_blank_lines + 1), text)
    if config.strip_document:
        text = text.strip()
    return text


class NormalizeStage(Stage):
    """Normalize Unicode and whitespace; a document with nothing left is rejected as `normalize.empty`."""

    name: ClassVar[str] = "normalize"
    Config: ClassVar[type] = NormalizeConfig

    def process(self, doc: Document) -> Document | Rejection:
        text = normalize_text(doc.text or "", self.config)
        if not text.strip():
            return Rejection(doc, "normalize.empty")
        return doc if text == doc.text else replace(doc, text=text)
