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

from filters.base import Stage
from filters.document import Document, Rejection
from filters.options import ConfigError

_LINE_BREAKS = ("\r\n", "\r", "\x0b", "\x0c", "\x85", "\u2028", "\u2029")
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
# Zero-width joiner/non-joiner are format characters that spell words in Persian, Indic scripts and
# emoji sequences: removing them would change the text, so they survive the format-character purge.
_KEEP_FORMAT = frozenset("\u200c\u200d")
_NONCHARACTERS = frozenset(chr(c) for c in range(0xFDD0, 0xFDF0)) | frozenset(
    chr(plane << 16 | low) for plane in range(17) for low in (0xFFFE, 0xFFFF)
)
# Unicode space separators (category Zs) other than U+0020: no-break, Ogham, en/em/thin, ideographic...
_SPACE_CHARS = "\u00a0\u1680" + "".join(map(chr, range(0x2000, 0x200B))) + "\u202f\u205f\u3000"
_SPACE_RUN = re.compile("  +")  # a literal prefix: `re` then scans with a fast substring search
_ASCII_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f]")
_NORMAL_FORMS = ("NFC", "NFKC", "NFD", "NFKD")


def _is_invisible(char: str) -> bool:
    category = unicodedata.category(char)
    if category == "Cc":
        return char not in "\t\n"
    if category == "Cf":
        return char not in _KEEP_FORMAT
    return category == "Cs" or char in _NONCHARACTERS


@lru_cache(maxsize=1)
def _invisible_chars() -> tuple[re.Pattern[str], frozenset[str]]:
    """Control (Cc, except tab and newline), format (Cf, except ZWJ/ZWNJ), surrogate (Cs, from broken JSON
    escapes: they cannot be written as UTF-8) and noncharacter code points: a regex for those in the Basic
    Multilingual Plane and a set for the astral ones. Kept apart because `re` matches a BMP-only class
    with a bitmap, but a class with astral ranges is ten times slower on every character."""
    drop = [code for code in range(0x110000) if _is_invisible(chr(code))]
    ranges: list[tuple[int, int]] = []
    for code in drop:
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))

    bmp = "".join(f"\\U{a:08x}-\\U{b:08x}" for a, b in ranges if b <= 0xFFFF)
    astral = frozenset(chr(code) for a, b in ranges if a > 0xFFFF for code in range(a, b + 1))
    return re.compile(f"[{bmp}]"), astral


def remove_invisible(text: str) -> str:
    """Drop control, format (except ZWJ/ZWNJ), surrogate and noncharacter code points."""
    if text.isascii():
        return _ASCII_CONTROLS.sub("", text)
    bmp, astral = _invisible_chars()
    text = bmp.sub("", text)
    for char in astral.intersection(_ASTRAL.findall(text)):  # astral characters are few, even in emoji text
        text = text.replace(char, "")
    return text


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


def clean_text(text: str, config: NormalizeConfig | None = None) -> str:
    """The normalized text (idempotent: `clean_text(clean_text(t)) == clean_text(t)`)."""
    config = config or NormalizeConfig()
    for line_break in _LINE_BREAKS:  # str.replace is a fast C scan; most texts contain none of these
        if line_break in text:
            text = text.replace(line_break, "\n")
    if config.remove_invisible:
        text = remove_invisible(text)
    text = unicodedata.normalize(config.form, text)
    if config.collapse_spaces:
        if not text.isascii():
            for space in _SPACE_CHARS:  # a few fast substring scans beat one slow character-class regex
                if space in text:
                    text = text.replace(space, " ")
        if "  " in text:
            text = _SPACE_RUN.sub(" ", text)
    strip_chars = " \t" if config.collapse_spaces else " \t" + _SPACE_CHARS
    if config.strip_lines:
        text = "\n".join(line.strip(strip_chars) for line in text.split("\n"))
    else:
        text = "\n".join(line.rstrip(strip_chars) for line in text.split("\n"))
    blank_run = "\n" * (config.max_blank_lines + 2)
    if blank_run in text:
        text = re.sub(f"{blank_run}\n*", "\n" * (config.max_blank_lines + 1), text)
    if config.strip_document:
        text = text.strip()
    return text


class NormalizeStage(Stage):
    """Normalize Unicode and whitespace; a document with nothing left is rejected as `normalize.empty`."""

    name: ClassVar[str] = "normalize"
    Config: ClassVar[type] = NormalizeConfig

    def process(self, doc: Document) -> Document | Rejection:
        text = clean_text(doc.text or "", self.config)
        if not text.strip():
            return Rejection(doc, "normalize.empty")
        return doc if text == doc.text else replace(doc, text=text)
