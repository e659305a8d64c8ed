"""Train a SentencePiece BPE model with LLaMA's settings on the text of prepared shards.

Sentences go from the shards to SentencePiece through its `sentence_iterator` (no temporary text file),
after a seeded sample (`tokenizer.sentences`). The output directory gets `tokenizer.model`,
`tokenizer.vocab` (piece and score per line, as `spm_train` writes it) and `tokenizer.json`: the exact
trainer flags, the sample record, the SentencePiece version and timings.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sentencepiece as spm

from filters.options import ConfigError
from tokenizer.sentences import SampleRecord, sample_sentences
from tokenizer.settings import NORMALIZER_FIELDS, trainer_settings

MODEL_NAME = "tokenizer.model"
VOCAB_NAME = "tokenizer.vocab"
RECORD_NAME = "tokenizer.json"

_TOO_LARGE = re.compile(r"Vocabulary size is too high \((\d+)\)\. Please set it to a value <= (\d+)")
_TOO_SMALL = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")


def _print_progress(record: SampleRecord) -> None:
    print(
        f"  read {record.documents_read:,} documents, {record.lines_read:,} lines "
        f"({record.lines_offered:,} offered to the sample)",
        file=sys.stderr,
    )


def _vocab_error(error: RuntimeError, vocab_size: int) -> ConfigError:
    """A SentencePiece vocabulary-size failure as a message that says what to change."""
    message = str(error)
    if match := _TOO_LARGE.search(message):
        return ConfigError(
            f"--vocab-size {vocab_size} is too large for this text: SentencePiece can build at most "
            f"{match.group(2)} pieces from it. Use --vocab-size {match.group(2)} or less, or train on more text."
        )
    if match := _TOO_SMALL.search(message):
        return ConfigError(
            f"--vocab-size {vocab_size} is too small for this text: the characters kept at its character coverage, "
            f"the 256 byte-fallback pieces and <unk>/<s>/</s> need {match.group(2)} ids before any merge. Use a "
            f"--vocab-size well above {match.group(2)}, or a lower --character-coverage (LLaMA's is 0.99995; "
            "the characters left out are still encoded, as bytes)."
        )
    return ConfigError(f"SentencePiece training failed: {message}")


def train_tokenizer(
    paths: list[str],
    output: str | Path,
    vocab_size: int,
    input_sentence_size: int,
    seed: int = 0,
    weights: Mapping[tuple[str, str], float] | None = None,
    num_threads: int | None = None,
    character_coverage: float | None = None,
    verbose: bool = False,
) -> dict[str, Any]:
    """Train on the shards at `paths`, write the model, vocab and record to `output`; returns the record."""
    if not paths:
        raise ConfigError("no input shards to train on")
    if vocab_size < 1 or input_sentence_size < 1:
        raise ConfigError("--vocab-size and --input-sentence-size must be positive")
    overrides: dict[str, Any] = {"vocab_size": vocab_size, "input_sentence_size": input_sentence_size}
    if num_threads:
        overrides["num_threads"] = num_threads
    if character_coverage is not None:
        if not 0 < character_coverage <= 1:
            raise ConfigError("--character-coverage must be in (0, 1]")
        overrides["character_coverage"] = character_coverage
    settings = trainer_settings(**overrides)
    output = Path(output)
    created = not output.exists()
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ConfigError(f"cannot write to {output}: {error}") from None
    try:
        return _train(paths, output, vocab_size, input_sentence_size, seed, weights, settings, verbose)
    except BaseException:
        if created and output.is_dir() and not any(output.iterdir()):
            output.rmdir()  # a failed run leaves no empty folder behind
        raise


def _train(
    paths: list[str],
    output: Path,
    vocab_size: int,
    input_sentence_size: int,
    seed: int,
    weights: dict | None,
    settings: dict,
    verbose: bool,
) -> dict:
    started = time.monotonic()
    print(f"sampling up to {input_sentence_size:,} sentences from {len(paths)} shard(s), seed {seed}", file=sys.stderr)
    sentences, sample = sample_sentences(
        paths, input_sentence_size, seed, weights or {}, settings["max_sentence_length"], progress=_print_progress
    )
    if not sentences:
        raise ConfigError("the input shards hold no text to train on")
    sampled = time.monotonic()
    print(
        f"training BPE, vocab {vocab_size:,}, on {sample.sentences:,} sentences ({sample.bytes / 1e6:.1f} MB) "
        f"with {settings['num_threads']} threads",
        file=sys.stderr,
    )
    spm.set_random_generator_seed(seed)
    model = bytearray()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sentences),
            model_writer=_BytesWriter(model),
            minloglevel=0 if verbose else 1,
            **settings,
        )
    except RuntimeError as error:
        raise _vocab_error(error, vocab_size) from None
    trained = time.monotonic()

    (output / MODEL_NAME).write_bytes(bytes(model))
    processor = spm.SentencePieceProcessor(model_proto=bytes(model))
    with open(output / VOCAB_NAME, "w", encoding="utf-8") as vocab:
        for i in range(processor.get_piece_size()):
            vocab.write(f"{processor.id_to_piece(i)}\t{processor.get_score(i):g}\n")
    record = {
        "model": MODEL_NAME,
        "vocab": VOCAB_NAME,
        "sentencepiece_version": spm.__version__,
        "trainer_flags": {k: v for k, v in settings.items() if k not in NORMALIZER_FIELDS},
        "normalizer_flags": {k: v for k, v in settings.items() if k in NORMALIZER_FIELDS},
        "inputs": list(paths),
        "sample": sample.to_json(),
        "seconds": {"sampling": round(sampled - started, 3), "training": round(trained - sampled, 3)},
    }
    (output / RECORD_NAME).write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {output / MODEL_NAME} in {trained - started:.1f}s", file=sys.stderr)
    return record


class _BytesWriter:
    """The `model_writer` SentencePiece calls with the serialized model."""

    def __init__(self, buffer: bytearray):
        self._buffer = buffer

    def write(self, data: bytes) -> None:
        self._buffer.extend(data)
