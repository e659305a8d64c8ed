"""Training sentences for SentencePiece, streamed from prepared Arrow shards and sampled with a seed.

SentencePiece learns from "sentences" (LLaMA's trainer read lines of a text file). Here a sentence is one
non-blank line of a document. Lines longer than `max_sentence_length` bytes, which SentencePiece would
skip, are cut into pieces at whitespace (or at a character boundary), and those cuts are counted.

Sampling is a seeded reservoir over the weighted stream (Li's "algorithm L", ACM TOMS 1994: it draws
random numbers only when a line enters the sample, not for every line), so memory is bounded by the sample
size and the same inputs and seed give the same sample. Weights per source or language are the expected
number of copies of each line: 0 drops a source, 0.5 keeps half of its lines, 2 doubles them, with the
fractional part drawn from the same seeded generator.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from filters.document import UNKNOWN_LANGUAGE
from filters.options import ConfigError
from filters.prepared import iter_texts

WEIGHT_KINDS = ("source", "language")


def parse_weights(specs: Iterable[str]) -> dict[tuple[str, str], float]:
    """`source:NAME=W` / `language:CODE=W` flags as {(kind, name): weight}."""
    weights: dict[tuple[str, str], float] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        kind, colon, name = key.partition(":")
        if not sep or not colon or kind not in WEIGHT_KINDS or not name:
            raise ConfigError(f"bad weight {spec!r}: expected source:NAME=WEIGHT or language:CODE=WEIGHT")
        try:
            weight = float(value)
        except ValueError:
            raise ConfigError(f"bad weight {spec!r}: {value!r} is not a number") from None
        if weight < 0:
            raise ConfigError(f"bad weight {spec!r}: weights are expected copies per line, so >= 0")
        weights[(kind, name)] = weight
    return weights


def split_long_line(line: str, max_bytes: int) -> list[str]:
    """Cut a line into pieces of at most `max_bytes` UTF-8 bytes, at the last space when there is one."""
    data = line.encode("utf-8")
    pieces = []
    while len(data) > max_bytes:
        cut = max_bytes
        while data[cut] & 0xC0 == 0x80:  # never cut inside a character
            cut -= 1
        space = data.rfind(b" ", max_bytes // 2, cut)
        if space > 0:
            cut = space
        pieces.append(data[:cut].decode("utf-8"))
        data = data[cut:]
    pieces.append(data.decode("utf-8"))
    return pieces


@dataclass
class SampleRecord:
    """What went into the sample: the JSON record written next to the model."""

    seed: int
    input_sentence_size: int
    weights: dict[str, float]
    documents_read: int = 0
    lines_read: int = 0
    long_lines_split: int = 0
    lines_offered: int = 0
    sentences: int = 0
    bytes: int = 0
    sentences_by_source: dict[str, int] = field(default_factory=dict)
    sentences_by_language: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "seed": self.seed,
            "input_sentence_size": self.input_sentence_size,
            "weights": self.weights,
            "documents_read": self.documents_read,
            "lines_read": self.lines_read,
            "long_lines_split": self.long_lines_split,
            "lines_offered_after_weights": self.lines_offered,
            "sentences_sampled": self.sentences,
            "bytes_sampled": self.bytes,
            "sentences_by_source": dict(sorted(self.sentences_by_source.items())),
            "sentences_by_language": dict(sorted(self.sentences_by_language.items())),
        }


def _document_lines(batches: Iterable, record: SampleRecord, max_bytes: int) -> Iterator[tuple[str, str, str]]:
    """(line, source, language) for every non-blank line of every document."""
    for batch in batches:
        columns = batch.select(["text", "source", "language"]).to_pydict()
        for text, source, language in zip(columns["text"], columns["source"], columns["language"], strict=True):
            record.documents_read += 1
            language = language or UNKNOWN_LANGUAGE
            for line in text.split("\n"):
                if not line.strip():
                    continue
                record.lines_read += 1
                if len(line) * 4 > max_bytes and len(line.encode("utf-8")) > max_bytes:
                    record.long_lines_split += 1
                    for piece in split_long_line(line, max_bytes):
                        yield piece, source, language
                else:
                    yield line, source, language


class _SkipCounter:
    """Algorithm L's state: the 1-based index of the next offered line that enters a full reservoir.

    W is kept as its logarithm and 1 - W computed with expm1, so a reservoir of 200M lines (W within 1e-9
    of 1) keeps its precision."""

    def __init__(self, rng: random.Random, size: int):
        self._rng = rng
        self._size = size
        self._log_w = self._log_uniform() / size
        self.next_index = size
        self._advance()

    def _log_uniform(self) -> float:
        return math.log(1.0 - self._rng.random())  # 1 - random() is in (0, 1], so the log is defined

    def _advance(self) -> None:
        skip = 0
        if self._log_w < 0:  # W < 1; at W == 1 (a 0.0 draw) the next line is taken
            skip = math.floor(self._log_uniform() / math.log(-math.expm1(self._log_w)))
        self.next_index += skip + 1

    def replace_slot(self) -> int:
        """The reservoir slot the current line replaces; moves on to the next line to take."""
        slot = self._rng.randrange(self._size)
        self._log_w += self._log_uniform() / self._size
        self._advance()
        return slot


def sample_sentences(
    paths: list[str],
    input_sentence_size: int,
    seed: int,
    weights: Mapping[tuple[str, str], float],
    max_sentence_length: int,
    progress: Callable[[SampleRecord], None] | None = None,
    progress_every_s: float = 5.0,
) -> tuple[list[str], SampleRecord]:
    """A seeded, weighted reservoir sample of at most `input_sentence_size` lines of the shards."""
    rng = random.Random(seed)
    record = SampleRecord(
        seed=seed, input_sentence_size=input_sentence_size, weights={f"{k}:{n}": w for (k, n), w in weights.items()}
    )
    sample: list[str] = []
    tags: list[tuple[str, str]] = []
    reservoir = _SkipCounter(rng, input_sentence_size)
    last_report = time.monotonic()
    for line, source, language in _document_lines(iter_texts(paths), record, max_sentence_length):
        weight = weights.get(("source", source), 1.0) * weights.get(("language", language), 1.0) if weights else 1.0
        copies = 1 if weight == 1.0 else int(weight) + (rng.random() < weight - int(weight))
        for _ in range(copies):
            record.lines_offered += 1
            if len(sample) < input_sentence_size:
                sample.append(line)
                tags.append((source, language))
            elif record.lines_offered == reservoir.next_index:
                slot = reservoir.replace_slot()
                sample[slot] = line
                tags[slot] = (source, language)
        if progress is not None and time.monotonic() - last_report > progress_every_s:
            progress(record)
            last_report = time.monotonic()
    record.sentences = len(sample)
    record.bytes = sum(len(s.encode("utf-8")) for s in sample)
    record.sentences_by_source = dict(Counter(source for source, _ in tags))
    record.sentences_by_language = dict(Counter(language for _, language in tags))
    return sample, record
