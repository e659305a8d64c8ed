"""Language identification with a fastText LID model (lid.176 by default), with CCNet's semantics.

CCNet (Wenzek et al. 2020, cc_net/split_by_lang.py) classifies the whole document with its newlines
replaced by spaces, stores the top language and its probability, and keeps documents whose score reaches
0.5; LLaMA then kept English only. Here the language filter is opt-in (`languages`, empty = keep all and
annotate) and the score threshold applies to every document. Any supervised fastText model can replace
lid.176 (`model_path`): labels are taken as they are once the `__label__` prefix is removed.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

from filters.base import Stage
from filters.document import UNKNOWN_LANGUAGE, Document, Rejection
from filters.fasttext_model import (
    check_fasttext_model,
    load_fasttext_model,
    packaged_lid_model_path,
    predict_top,
    single_line,
    strip_label,
)
from filters.model_files import local_model_path
from filters.options import ConfigError, option


@dataclass
class LangIdConfig:
    """Options of the `langid` stage.

    model_path: a fastText LID model (local path or URL such as gs://...); None = the packaged lid.176.ftz.
    languages: keep only these labels (e.g. ["en"], as LLaMA); empty = keep every language.
    min_score: drop documents whose top-language probability is lower (CCNet's default threshold 0.5).
    """

    model_path: str | None = None
    languages: list[str] = option(
        help="keep only these languages, comma-separated (e.g. en,de)", factory=list, flag="--languages"
    )
    min_score: float = option(0.5, "minimum top-language probability (CCNet: 0.5)", flag="--min-language-score")

    def validate(self) -> None:
        if not 0.0 <= self.min_score <= 1.0:
            raise ConfigError(f"langid.min_score must be within [0, 1], got {self.min_score}")

    def kept_languages(self) -> frozenset[str]:
        """The labels to keep, without fastText's `__label__` prefix if the user wrote it."""
        return frozenset(strip_label(language) for language in self.languages)


def language_decision(language: str | None, score: float, kept: frozenset[str], min_score: float) -> str | None:
    """The rejection reason for a prediction, or None to keep the document (`kept`: empty keeps any language)."""
    if language is None:
        return "langid.empty" if kept or min_score > 0 else None
    if kept and language not in kept:
        return "langid.language"
    if score < min_score:
        return "langid.low_score"
    return None


def language_partition_key(doc: Document) -> str:
    """The shard-set name of a document when output is split by language (CCNet's split_by_lang):
    its language label made safe for a path component, or UNKNOWN_LANGUAGE ("und") when it has none."""
    if not doc.language:
        return UNKNOWN_LANGUAGE
    return re.sub(r"[^A-Za-z0-9_-]", "_", doc.language)


class LanguageIdentifier(Stage):
    """Annotates `language` and `language_score`; drops documents by language and score."""

    name = "langid"
    Config = LangIdConfig

    def check(self) -> None:
        if self.config.model_path:
            check_fasttext_model(self.config.model_path)

    def setup(self) -> None:
        path = self.config.model_path or packaged_lid_model_path()
        self._model = load_fasttext_model(local_model_path(path))
        self._kept = self.config.kept_languages()

    def process_batch(self, docs: list[Document]) -> list[Document | Rejection]:
        lines = [single_line(doc.text) for doc in docs]
        to_predict = [i for i, line in enumerate(lines) if line.strip()]
        predictions = dict(zip(to_predict, predict_top(self._model, [lines[i] for i in to_predict]), strict=True))
        results: list[Document | Rejection] = []
        for i, doc in enumerate(docs):
            language, score = predictions.get(i, (None, 0.0))
            doc = dataclasses.replace(doc, language=language, language_score=score if language is not None else None)
            reason = language_decision(language, score, self._kept, self.config.min_score)
            results.append(doc if reason is None else Rejection(doc, reason))
        return results
