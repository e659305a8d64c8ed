"""Quality classification with a fastText linear classifier, as LLaMA (Touvron et al. 2023, section 2.1).

LLaMA kept CommonCrawl pages that a linear model judged "used as a reference by Wikipedia" rather than
"random page". The stage stores the probability of the positive label in `quality_score`, then keeps a
document either by threshold (`mode = "threshold"`: score >= `min_score`) or by GPT-3's sampling rule
(Brown et al. 2020, appendix A; also NeMo-Curator): keep when `np.random.pareto(alpha) > 1 - score`, with
alpha = 9, so most low-scored pages go but a few survive to keep diversity. The sampling draw is seeded by
the document id, so a rerun keeps exactly the same documents on any runner.

`quality_text` is the one preprocessing used both when training (`llamaprep quality train`) and when
scoring, so the classifier sees the same tokens in both places.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass

import numpy as np

from filters.base import Stage
from filters.document import Document, Rejection
from filters.fasttext_model import (
    check_fasttext_model,
    load_fasttext_model,
    model_labels,
    predict_label_probability,
    strip_label,
)
from filters.model_files import local_model_path
from filters.options import ConfigError, option

POSITIVE_LABEL = "hq"
NEGATIVE_LABEL = "lq"
MODES = ("threshold", "pareto")
_TOKEN_RE = re.compile(r"\w+|[^\w\s]")


def quality_text(text: str) -> str:
    """Lowercased word and punctuation tokens joined by single spaces: one line, as fastText wants."""
    return " ".join(_TOKEN_RE.findall(text.lower()))


@dataclass
class QualityConfig:
    """Options of the `quality` stage.

    model_path: the classifier from `llamaprep quality train` (local path or URL); required.
    min_score: threshold mode: drop documents whose positive probability is lower.
    mode: "threshold" or "pareto" (GPT-3's sampling: keep if pareto(alpha) > 1 - score).
    alpha: shape of the Pareto draw; 9 as in GPT-3 (Brown et al. 2020, appendix A).
    positive_label: the label whose probability is the score (`hq`, the label `quality train` writes).
    seed: mixed with the document id to seed the Pareto draw.
    """

    model_path: str | None = option(None, "fastText model from `llamaprep quality train`", flag="--quality-model")
    min_score: float = option(0.5, "minimum probability of the positive label", flag="--min-quality")
    mode: str = "threshold"
    alpha: float = 9.0
    positive_label: str = POSITIVE_LABEL
    seed: int = 0

    def validate(self) -> None:
        if not self.model_path:
            raise ConfigError("quality.model_path is required (train one with `llamaprep quality train`)")
        if self.mode not in MODES:
            raise ConfigError(f"quality.mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if not 0.0 <= self.min_score <= 1.0:
            raise ConfigError(f"quality.min_score must be within [0, 1], got {self.min_score}")
        if self.alpha <= 0:
            raise ConfigError(f"quality.alpha must be positive, got {self.alpha}")


def pareto_keep(doc_id: str, score: float, alpha: float, seed: int = 0) -> bool:
    """GPT-3's rule `np.random.pareto(alpha) > 1 - score`, drawn from a generator seeded by the id."""
    digest = hashlib.blake2b(f"{seed}:{doc_id}".encode(), digest_size=8).digest()
    rng = np.random.default_rng(int.from_bytes(digest, "little"))
    return bool(rng.pareto(alpha) > 1.0 - score)


class QualityClassifier(Stage):
    """Annotates `quality_score` (probability of the positive label) and drops low-quality documents."""

    name = "quality"
    Config = QualityConfig

    def check(self) -> None:
        check_fasttext_model(self.config.model_path)

    def setup(self) -> None:
        model = load_fasttext_model(local_model_path(self.config.model_path))
        labels = model_labels(model)
        if strip_label(self.config.positive_label) not in labels:
            raise ConfigError(
                f"quality.positive_label {self.config.positive_label!r} is not a label of "
                f"{self.config.model_path} (labels: {', '.join(labels)})"
            )
        self._model = model

    def score(self, texts: list[str]) -> list[float]:
        """Positive-label probabilities of raw texts (the same preprocessing as training)."""
        self.ensure_setup()
        lines = [quality_text(text) for text in texts]
        return predict_label_probability(self._model, lines, self.config.positive_label)

    def keep(self, doc: Document, score: float) -> bool:
        if self.config.mode == "pareto":
            return pareto_keep(doc.id, score, self.config.alpha, self.config.seed)
        return score >= self.config.min_score

    def process_batch(self, docs: list[Document]) -> list[Document | Rejection]:
        results: list[Document | Rejection] = []
        for doc, score in zip(docs, self.score([doc.text for doc in docs]), strict=True):
            doc = dataclasses.replace(doc, quality_score=score)
            results.append(doc if self.keep(doc, score) else Rejection(doc, "quality.low_score"))
        return results
