"""The Gopher heuristic document filters (Rae et al. 2021, "Scaling Language Models: Methods, Analysis &
Insights from Training Gopher", appendix A.1.1 "MassiveWeb" quality and repetition filters, table A1).

Defaults are the published values. Both filters only drop whole documents, never edit text. Each rule has
a reason name (`gopher_quality.<rule>`, `gopher_repetition.<rule>`) that becomes a drop counter.

Multilingual behaviour: words are whitespace tokens, except that each CJK ideograph or kana counts as a
word (see `filters.text_stats`), so word-count and repetition rules mean about the same amount of text in
Chinese or Japanese. The stop-word rule is English (the paper's list) and applies only to documents whose
`language` is in `stop_words_languages` or unknown; the mean-word-length rule ignores CJK single-character
words and is skipped when they are the majority (word length is undefined for scripts written without
spaces).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from filters.base import Stage
from filters.document import Document, Rejection
from filters.options import ConfigError
from filters.text_stats import (
    ASCII_WHITESPACE,
    TOKEN_BOUNDARY,
    contains_cjk,
    count_words,
    has_alpha,
    is_cjk_char,
    is_symbol_word,
    nonempty_lines,
    split_words,
)

# ---------------------------------------------------------------------------------------------------------
# Quality filter
# ---------------------------------------------------------------------------------------------------------

GOPHER_STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]
BULLETS = ["•", "●", "○", "◦", "‣", "⁃", "▪", "■", "□", "-", "*", "–", "—"]
_EDGE_PUNCTUATION = "\"'“”‘’«»()[]{}<>.,;:!?¿¡…-–—*_/\\|"


@dataclass
class GopherQualityConfig:
    """Gopher quality thresholds (Rae et al. 2021, appendix A.1.1, "Quality filters")."""

    min_doc_words: int = 50
    max_doc_words: int = 100_000
    min_avg_word_length: float = 3.0
    max_avg_word_length: float = 10.0
    max_hash_word_ratio: float = 0.1  # "#" symbols per word
    max_ellipsis_word_ratio: float = 0.1  # "..." or "…" per word
    max_bullet_lines_ratio: float = 0.9  # fraction of non-empty lines starting with a bullet
    max_ellipsis_lines_ratio: float = 0.3  # fraction of non-empty lines ending with an ellipsis
    min_alpha_words_ratio: float = 0.8  # fraction of words with at least one alphabetic character
    min_stop_words: int = 2  # occurrences of `stop_words` a document needs
    stop_words: list[str] = field(default_factory=lambda: list(GOPHER_STOP_WORDS))
    stop_words_languages: list[str] = field(default_factory=lambda: ["en"])  # where the rule applies
    bullets: list[str] = field(default_factory=lambda: list(BULLETS))

    def validate(self) -> None:
        if not 0 <= self.min_doc_words <= self.max_doc_words:
            raise ConfigError("gopher_quality: need 0 <= min_doc_words <= max_doc_words")
        if not 0 <= self.min_avg_word_length <= self.max_avg_word_length:
            raise ConfigError("gopher_quality: need 0 <= min_avg_word_length <= max_avg_word_length")
        for name in ("max_bullet_lines_ratio", "max_ellipsis_lines_ratio", "min_alpha_words_ratio"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"gopher_quality.{name}: must be between 0 and 1")


def gopher_quality_reason(text: str, config: GopherQualityConfig, language: str | None = None) -> str | None:
    """The first Gopher quality rule `text` breaks (e.g. "word_count"), or None if it passes.

    Cost is linear in the text and bounded: words are counted with an early stop at `max_doc_words`, so
    a huge document is rejected before it is split into words.
    """
    # Each word takes at least one character, so only a longer text needs the bounded count first.
    if len(text) > config.max_doc_words and count_words(text, limit=config.max_doc_words + 1) > config.max_doc_words:
        return "word_count"
    words = split_words(text)
    n_words = len(words)
    if n_words < config.min_doc_words or n_words == 0:
        return "word_count"

    cjk = contains_cjk(text)
    spaced_words = [w for w in words if not is_symbol_word(w) and not (cjk and is_cjk_char(w))]
    if len(spaced_words) * 2 >= n_words:  # undefined for text mostly in unspaced (CJK) script
        mean_length = sum(map(len, spaced_words)) / len(spaced_words)
        if not config.min_avg_word_length <= mean_length <= config.max_avg_word_length:
            return "mean_word_length"

    if text.count("#") / n_words > config.max_hash_word_ratio:
        return "hash_ratio"
    if (text.count("...") + text.count("…")) / n_words > config.max_ellipsis_word_ratio:
        return "ellipsis_ratio"

    lines = nonempty_lines(text)
    if lines:
        bullets = tuple(config.bullets)
        if bullets and sum(line.startswith(bullets) for line in lines) / len(lines) > config.max_bullet_lines_ratio:
            return "bullet_lines"
        if sum(line.endswith(("...", "…")) for line in lines) / len(lines) > config.max_ellipsis_lines_ratio:
            return "ellipsis_lines"

    if sum(1 for w in words if has_alpha(w)) / n_words < config.min_alpha_words_ratio:
        return "alpha_words"

    if config.min_stop_words > 0 and (language is None or language in config.stop_words_languages):
        stop_words = {w.lower() for w in config.stop_words}
        found = 0
        for word in words:
            if word.lower().strip(_EDGE_PUNCTUATION) in stop_words:
                found += 1
                if found >= config.min_stop_words:
                    break
        if found < config.min_stop_words:
            return "stop_words"
    return None


class GopherQualityFilter(Stage):
    """Drop documents failing a Gopher quality rule (reason `gopher_quality.<rule>`)."""

    name: ClassVar[str] = "gopher_quality"
    Config: ClassVar[type] = GopherQualityConfig

    def process(self, doc: Document) -> Document | Rejection:
        reason = gopher_quality_reason(doc.text, self.config, doc.language)
        return doc if reason is None else Rejection(doc, f"{self.name}.{reason}")


# ---------------------------------------------------------------------------------------------------------
# Repetition filter
# ---------------------------------------------------------------------------------------------------------


@dataclass
class GopherRepetitionConfig:
    """Gopher repetition thresholds (Rae et al. 2021, table A1). N-gram sizes and their maximum character
    fractions are parallel lists so they can be set from the CLI (`--set ...dup_ngram_max_fracs=...`)."""

    max_dup_line_frac: float = 0.30  # lines that repeat an earlier line / lines
    max_dup_para_frac: float = 0.30  # paragraphs that repeat an earlier paragraph / paragraphs
    max_dup_line_char_frac: float = 0.20  # characters in repeated lines / characters in lines
    max_dup_para_char_frac: float = 0.20  # characters in repeated paragraphs / characters in paragraphs
    top_ngram_sizes: list[int] = field(default_factory=lambda: [2, 3, 4])
    top_ngram_max_fracs: list[float] = field(default_factory=lambda: [0.20, 0.18, 0.16])
    dup_ngram_sizes: list[int] = field(default_factory=lambda: [5, 6, 7, 8, 9, 10])
    dup_ngram_max_fracs: list[float] = field(default_factory=lambda: [0.15, 0.14, 0.13, 0.12, 0.11, 0.10])

    def validate(self) -> None:
        for sizes, fracs in (("top_ngram_sizes", "top_ngram_max_fracs"), ("dup_ngram_sizes", "dup_ngram_max_fracs")):
            if len(getattr(self, sizes)) != len(getattr(self, fracs)):
                raise ConfigError(f"gopher_repetition: {sizes} and {fracs} must have the same length")
            if any(n < 1 for n in getattr(self, sizes)):
                raise ConfigError(f"gopher_repetition.{sizes}: n-gram sizes must be >= 1")


_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_CHUNK_CHARS = 1 << 20
_HASH_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constant (golden ratio) for n-gram hashing


def duplicate_fractions(elements: Sequence[str]) -> tuple[float, float]:
    """(fraction of elements that repeat an earlier one, fraction of their characters); first occurrences
    do not count as duplicates, as in the paper."""
    seen: set[str] = set()
    dup_count = dup_chars = total_chars = 0
    for element in elements:
        total_chars += len(element)
        if element in seen:
            dup_count += 1
            dup_chars += len(element)
        else:
            seen.add(element)
    if not elements or total_chars == 0:
        return 0.0, 0.0
    return dup_count / len(elements), dup_chars / total_chars


def word_hashes_and_lengths(text: str) -> tuple[np.ndarray, np.ndarray]:
    """64-bit hashes and character lengths of the words of `text` (`split_words`), computed chunk by
    chunk so a huge document never exists as one giant list of Python strings or arrays. Text whose words
    are separated by ASCII whitespace only (no CJK, no exotic spaces: nearly all text after `normalize`)
    is hashed on its UTF-8 bytes with numpy, without creating a Python string per word."""
    hash_chunk = _utf8_chunk_hashes if _splits_on_ascii_whitespace(text) else _str_chunk_hashes
    hashes, lengths = [np.zeros(0, np.uint64)], [np.zeros(0, np.int64)]
    start = 0
    while start < len(text):
        end = min(start + _CHUNK_CHARS, len(text))
        if end < len(text):  # move the cut to a word boundary so no word is split
            boundary = TOKEN_BOUNDARY.search(text, end)
            end = boundary.start() if boundary else len(text)
        chunk_hashes, chunk_lengths = hash_chunk(text[start:end])
        hashes.append(chunk_hashes)
        lengths.append(chunk_lengths)
        start = end
    return np.concatenate(hashes), np.concatenate(lengths)


def _splits_on_ascii_whitespace(text: str) -> bool:
    """True if `split_words(text)` is a split on ASCII whitespace only (one hashing scheme per document)."""
    if text.isascii():
        return True
    return not contains_cjk(text) and not any(space in text for space in _NON_ASCII_WHITESPACE)


def _str_chunk_hashes(chunk: str) -> tuple[np.ndarray, np.ndarray]:
    words = split_words(chunk)
    hashes = np.fromiter(map(hash, words), dtype=np.int64, count=len(words)).view(np.uint64)
    return hashes, np.fromiter(map(len, words), dtype=np.int64, count=len(words))


_NON_ASCII_WHITESPACE = [chr(c) for c in range(128, 0x3001) if chr(c).isspace()]
# Tabulation (Zobrist) hashing: a word hashes to the XOR of one random 64-bit entry per (byte offset mod 64,
# byte), mixed with its length. Fixed seed: hashes are stable across processes.
_TABULATION = np.random.default_rng(0x60F4E5).integers(0, 2**63, size=(64, 256), dtype=np.int64).view(np.uint64)


def _utf8_chunk_hashes(chunk: str) -> tuple[np.ndarray, np.ndarray]:
    data = np.frombuffer(chunk.encode("utf-8", "surrogatepass"), dtype=np.uint8)
    positions = np.flatnonzero(~ASCII_WHITESPACE[data]).astype(np.int32)
    if len(positions) == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.int64)
    is_start = np.ones(len(positions), dtype=bool)
    is_start[1:] = positions[1:] != positions[:-1] + 1
    starts = np.flatnonzero(is_start)
    byte_lengths = np.diff(np.append(starts, len(positions)))
    offset_in_word = np.arange(len(positions), dtype=np.int32) - np.repeat(starts, byte_lengths).astype(np.int32)
    word_bytes = data[positions]
    entries = _TABULATION[offset_in_word % 64, word_bytes]
    hashes = np.bitwise_xor.reduceat(entries, starts) ^ (byte_lengths.astype(np.uint64) * _HASH_MULTIPLIER)
    char_lengths = np.add.reduceat((word_bytes & 0xC0) != 0x80, starts, dtype=np.int64)  # skip continuation bytes
    return hashes, char_lengths


def _ngram_hashes(word_hashes: np.ndarray, n: int) -> np.ndarray:
    """One hash per n-gram start position (polynomial rolling combination, wrapping at 2**64)."""
    ngrams = word_hashes.copy()
    for k in range(1, n):
        ngrams = ngrams[:-1] * _HASH_MULTIPLIER + word_hashes[k:]
    return ngrams


def _ngram_chars(lengths: np.ndarray, n: int) -> np.ndarray:
    """Character count (spaces excluded) of the n-gram starting at each position."""
    cumulative = np.concatenate(([0], np.cumsum(lengths)))
    return cumulative[n:] - cumulative[:-n]


def _sorted_runs(ngrams: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct values of `ngrams` (sorted) and how often each occurs: a sort plus a linear pass, the
    cheapest exact count numpy offers (np.unique with indices is several times slower)."""
    ordered = np.sort(ngrams)
    starts = np.concatenate(([0], np.flatnonzero(ordered[1:] != ordered[:-1]) + 1))
    counts = np.diff(np.concatenate((starts, [len(ordered)])))
    return ordered[starts], counts


def _occurs_in(values: np.ndarray, sorted_set: np.ndarray) -> np.ndarray:
    """Boolean mask: which `values` are in `sorted_set` (binary search, no extra sort of `values`)."""
    if len(sorted_set) == 0:
        return np.zeros(len(values), dtype=bool)
    found = np.searchsorted(sorted_set, values)
    return sorted_set[np.minimum(found, len(sorted_set) - 1)] == values


def top_ngram_char_frac(word_hashes: np.ndarray, lengths: np.ndarray, n: int) -> float:
    """Characters covered by the most frequent repeated n-gram (count x its length) / all word characters.
    An n-gram seen only once is not "repeated" and scores 0, so short documents are not penalised."""
    total = int(lengths.sum())
    if len(word_hashes) < n or total == 0:
        return 0.0
    ngrams = _ngram_hashes(word_hashes, n)
    values, counts = _sorted_runs(ngrams)
    top = int(counts.max())
    if top < 2:
        return 0.0
    tied = values[counts == top]
    occurrences = ngrams == tied[0] if len(tied) == 1 else _occurs_in(ngrams, tied)
    chars = int(_ngram_chars(lengths, n)[occurrences].max())
    return top * chars / total


def dup_ngram_char_frac(word_hashes: np.ndarray, lengths: np.ndarray, n: int) -> float:
    """Characters of words covered by any n-gram occurring more than once / all word characters; a word
    inside several overlapping duplicate n-grams counts once (as the paper specifies)."""
    total = int(lengths.sum())
    n_words = len(word_hashes)
    if n_words < n or total == 0:
        return 0.0
    ngrams = _ngram_hashes(word_hashes, n)
    values, counts = _sorted_runs(ngrams)
    repeated = values[counts > 1]
    if len(repeated) == 0:
        return 0.0
    starts = np.zeros(n_words, dtype=np.int64)
    starts[: len(ngrams)] = _occurs_in(ngrams, repeated)
    cumulative = np.concatenate(([0], np.cumsum(starts)))
    positions = np.arange(1, n_words + 1)
    covering = cumulative[positions] - cumulative[np.maximum(positions - n, 0)]  # duplicate starts covering
    return float(lengths[covering > 0].sum() / total)


def gopher_repetition_reason(text: str, config: GopherRepetitionConfig) -> str | None:
    """The first Gopher repetition rule `text` breaks (e.g. "dup_line_frac", "top_2gram_char_frac",
    "dup_5gram_char_frac"), or None. O(W log W) in the number of words W (hashing plus a sort per n), never
    quadratic, and streaming over the text in chunks."""
    lines = [line for line in text.split("\n") if line.strip()]
    line_frac, line_char_frac = duplicate_fractions(lines)
    if line_frac > config.max_dup_line_frac:
        return "dup_line_frac"
    paragraphs = [p for p in _PARAGRAPH_BREAK.split(text.strip()) if p.strip()]
    para_frac, para_char_frac = duplicate_fractions(paragraphs)
    if para_frac > config.max_dup_para_frac:
        return "dup_para_frac"
    if line_char_frac > config.max_dup_line_char_frac:
        return "dup_line_char_frac"
    if para_char_frac > config.max_dup_para_char_frac:
        return "dup_para_char_frac"

    word_hashes, lengths = word_hashes_and_lengths(text)
    for n, max_frac in zip(config.top_ngram_sizes, config.top_ngram_max_fracs, strict=True):
        if top_ngram_char_frac(word_hashes, lengths, n) > max_frac:
            return f"top_{n}gram_char_frac"
    # Words covered by duplicate (n+1)-grams are covered by duplicate n-grams too, so the fraction never
    # grows with n: once it is under every threshold still to check, the larger n cannot fail.
    dup_rules = sorted(zip(config.dup_ngram_sizes, config.dup_ngram_max_fracs, strict=True))
    for index, (n, max_frac) in enumerate(dup_rules):
        frac = dup_ngram_char_frac(word_hashes, lengths, n)
        if frac > max_frac:
            return f"dup_{n}gram_char_frac"
        if all(frac <= later for _, later in dup_rules[index + 1 :]):
            break
    return None


class GopherRepetitionFilter(Stage):
    """Drop documents with too much repeated content (reason `gopher_repetition.<rule>`)."""

    name: ClassVar[str] = "gopher_repetition"
    Config: ClassVar[type] = GopherRepetitionConfig

    def process(self, doc: Document) -> Document | Rejection:
        reason = gopher_repetition_reason(doc.text, self.config)
        return doc if reason is None else Rejection(doc, f"{self.name}.{reason}")
