"""Training the fastText quality classifier the way LLaMA describes it, from two piles of texts.

LLaMA (Touvron et al. 2023, 2.1) trained a linear model to tell pages used as references by Wikipedia
(positives) from random CommonCrawl pages (negatives). Here: texts go through `quality_text` (the same
preprocessing the `quality` stage applies when scoring), empty ones are counted and skipped, the larger
class is downsampled to the size of the smaller one (balanced classes, so the classifier's 0.5 means
"as likely one as the other"), each class is split into train and held-out parts, and fastText trains
single-threaded with a fixed seed, which makes the model file a deterministic function of the inputs.

Each training runs in a fresh (spawned) process: fasttext 0.9.3 is not reproducible when it trains several
models in one process (the third identical `train_supervised` call in a process gave a different model or
"Encountered NaN"), while a fresh process gives byte-identical models every time.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import tempfile
from collections.abc import Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass

from filters.classifier_metrics import BinaryReport, binary_report
from filters.fasttext_model import LABEL_PREFIX, predict_label_probability
from filters.options import option
from filters.quality import NEGATIVE_LABEL, POSITIVE_LABEL, quality_text


@dataclass(frozen=True)
class TrainingParams:
    """fastText supervised settings. Word bigrams as in fastText's text classification paper (Joulin et al.
    2017); more epochs and a larger learning rate than fastText's defaults (5, 0.1) because the bundled
    demo corpora are small; 100k n-gram hash buckets instead of 2M keep the model file ~26 MB, not 500 MB."""

    seed: int = option(0, "sampling and fastText seed")
    valid_fraction: float = option(0.1, "held-out share of each class")
    max_per_class: int | None = option(None, "cap on documents per class (default: all)")
    epoch: int = option(20, "fastText epochs")
    lr: float = option(0.5, "fastText learning rate")
    word_ngrams: int = option(2, "word n-grams (2: unigrams and bigrams)")
    dim: int = option(64, "word vector size")
    min_count: int = option(2, "words seen fewer times are ignored")
    bucket: int = option(100_000, "hash buckets of word n-grams")
    threshold: float = option(0.5, "decision threshold of the held-out report")


@dataclass(frozen=True)
class TrainingResult:
    positives_read: int
    negatives_read: int
    empty_skipped: int
    train_size: int
    valid_report: BinaryReport

    def format(self) -> str:
        return "\n".join(
            [
                f"read {self.positives_read} positive and {self.negatives_read} negative documents "
                f"({self.empty_skipped} empty after preprocessing, skipped)",
                f"balanced training set: {self.train_size} documents",
                self.valid_report.format("held-out"),
            ]
        )


def _prepared(texts: Iterable[str]) -> tuple[list[str], int, int]:
    """Preprocessed non-empty lines, the number read, and the number that came out empty."""
    lines, read, empty = [], 0, 0
    for text in texts:
        read += 1
        line = quality_text(text)
        if line:
            lines.append(line)
        else:
            empty += 1
    return lines, read, empty


def balanced_split(
    positives: list[str], negatives: list[str], params: TrainingParams
) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    """(train, valid) lists of (label, line): classes downsampled to equal size, split per class."""
    rng = random.Random(params.seed)
    size = min(len(positives), len(negatives))
    if params.max_per_class is not None:
        size = min(size, params.max_per_class)
    train: list[tuple[int, str]] = []
    valid: list[tuple[int, str]] = []
    for label, lines in ((1, positives), (0, negatives)):
        chosen = rng.sample(lines, size)
        n_valid = round(size * params.valid_fraction)
        valid += [(label, line) for line in chosen[:n_valid]]
        train += [(label, line) for line in chosen[n_valid:]]
    rng.shuffle(train)
    return train, valid


def _fasttext_train(train_file: str, output: str, params: TrainingParams) -> None:
    import fasttext

    model = fasttext.train_supervised(
        input=train_file,
        epoch=params.epoch,
        lr=params.lr,
        wordNgrams=params.word_ngrams,
        dim=params.dim,
        minCount=params.min_count,
        bucket=params.bucket,
        seed=params.seed,
        thread=1,
        verbose=0,
    )
    model.save_model(output)


def train_quality_model(
    positives: Iterable[str], negatives: Iterable[str], output: str, params: TrainingParams | None = None
) -> TrainingResult:
    """Train, save the model to `output`, and evaluate it on the held-out split."""
    import fasttext

    params = params or TrainingParams()
    if not 0.0 < params.valid_fraction < 1.0:
        raise ValueError(f"valid_fraction must be within (0, 1), got {params.valid_fraction}")
    positive_lines, positives_read, positive_empty = _prepared(positives)
    negative_lines, negatives_read, negative_empty = _prepared(negatives)
    if min(len(positive_lines), len(negative_lines)) < 2:
        raise ValueError(
            f"need at least 2 non-empty documents per class, got {len(positive_lines)} positive "
            f"and {len(negative_lines)} negative"
        )
    train, valid = balanced_split(positive_lines, negative_lines, params)
    names = {1: LABEL_PREFIX + POSITIVE_LABEL, 0: LABEL_PREFIX + NEGATIVE_LABEL}
    with tempfile.TemporaryDirectory(prefix="llamaprep-quality-") as tmp:
        train_file = os.path.join(tmp, "train.txt")
        with open(train_file, "w", encoding="utf-8") as f:
            f.writelines(f"{names[label]} {line}\n" for label, line in train)
        os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            try:
                pool.submit(_fasttext_train, train_file, output, params).result()
            except RuntimeError as error:
                raise ValueError(f"fastText training failed ({error}); a lower learning rate usually helps") from None
    model = fasttext.load_model(output)
    scores = predict_label_probability(model, [line for _, line in valid], POSITIVE_LABEL)
    report = binary_report([label for label, _ in valid], scores, params.threshold)
    return TrainingResult(
        positives_read=positives_read,
        negatives_read=negatives_read,
        empty_skipped=positive_empty + negative_empty,
        train_size=len(train),
        valid_report=report,
    )
