"""KenLM perplexity and CCNet's head/middle/tail buckets (Wenzek et al. 2020, cc_net/perplexity.py).

CCNet scores each document with a per-language 5-gram KenLM model trained on Wikipedia: every line is
normalized (`normalize_for_lm`), cut into SentencePiece pieces with the model the LM was trained on, and
scored with sentence boundaries; the document perplexity is 10 ** (-sum of log10 scores / number of
tokens), counting one end-of-sentence token per line. Documents are then bucketed per language by two
cut-offs, the 30th and 60th percentiles of that language's perplexities: head (< first), middle, tail.

Needs the `kenlm` extra (`pip install 'llamaprep[kenlm]'`). Model paths may contain `{language}`, filled
with the document's language (CCNet's `lm_dir/{lang}.arpa.bin` and `{lang}.sp.model` layout); they are
loaded once per worker in `setup`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from filters.base import Stage
from filters.ccnet_normalize import normalize_for_lm
from filters.document import Document, Rejection
from filters.model_files import is_url, local_model_path
from filters.options import ConfigError

LANGUAGE_PLACEHOLDER = "{language}"
ANY_LANGUAGE = "*"
BUCKETS = ("head", "middle", "tail")
NO_CUTOFF_BUCKET = "all"


@dataclass
class PerplexityConfig:
    """Options of the `perplexity` stage.

    model_path: KenLM model, ARPA or binary (local path or URL); may contain {language}.
    sp_model_path: the SentencePiece model the KenLM model was trained on; may contain {language}.
    languages: languages to score; required with {language} paths, otherwise empty = score every document.
    cutoffs: language (or "*" for any) -> [head, tail] perplexity cut-offs; documents of a language without
        cut-offs get bucket "all" (as CCNet). CCNet uses the 30th and 60th percentiles per language.
    drop_buckets: buckets to drop (e.g. ["tail"]); empty = annotate only.
    """

    model_path: str = ""
    sp_model_path: str = ""
    languages: list[str] = field(default_factory=list)
    cutoffs: dict[str, Any] = field(default_factory=dict)
    drop_buckets: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if not self.model_path or not self.sp_model_path:
            raise ConfigError("perplexity.model_path and perplexity.sp_model_path are both required")
        templated = LANGUAGE_PLACEHOLDER in self.model_path or LANGUAGE_PLACEHOLDER in self.sp_model_path
        if templated and not self.languages:
            raise ConfigError("perplexity.languages must list the languages when model paths contain {language}")
        self.cutoffs = {language: _cutoff_pair(language, pair) for language, pair in self.cutoffs.items()}
        unknown = sorted(set(self.drop_buckets) - {*BUCKETS, NO_CUTOFF_BUCKET})
        if unknown:
            raise ConfigError(f"perplexity.drop_buckets: unknown bucket(s) {', '.join(unknown)}")


def _cutoff_pair(language: str, pair: Any) -> tuple[float, float]:
    try:
        head, tail = (float(value) for value in pair)
    except (TypeError, ValueError):
        raise ConfigError(f"perplexity.cutoffs.{language}: expected [head, tail] numbers, got {pair!r}") from None
    if not 0 < head <= tail:
        raise ConfigError(f"perplexity.cutoffs.{language}: need 0 < head <= tail, got {pair!r}")
    return head, tail


def perplexity_bucket(perplexity: float, language: str | None, cutoffs: Mapping[str, tuple[float, float]]) -> str:
    """CCNet's bucket of a document: head, middle, tail, or "all" without cut-offs for its language."""
    pair = cutoffs.get(language or "") or cutoffs.get(ANY_LANGUAGE)
    if pair is None:
        return NO_CUTOFF_BUCKET
    head, tail = pair
    if perplexity < head:
        return "head"
    if perplexity < tail:
        return "middle"
    return "tail"


def document_perplexity(text: str, sentence_piece: Any, language_model: Any) -> float:
    """Perplexity of a document under KenLM, line by line as CCNet computes it."""
    log_score, length = 0.0, 0
    for line in text.split("\n"):
        pieces = sentence_piece.encode_as_pieces(normalize_for_lm(line))
        log_score += language_model.score(" ".join(pieces), bos=True, eos=True)
        length += len(pieces) + 1
    return 10.0 ** (-log_score / length)


class PerplexityStage(Stage):
    """Annotates `perplexity` and `perplexity_bucket`; drops the buckets listed in `drop_buckets`."""

    name = "perplexity"
    Config = PerplexityConfig

    def _paths(self, language: str) -> tuple[str, str]:
        return (
            self.config.model_path.replace(LANGUAGE_PLACEHOLDER, language),
            self.config.sp_model_path.replace(LANGUAGE_PLACEHOLDER, language),
        )

    def check(self) -> None:
        for language in self.config.languages or [ANY_LANGUAGE]:
            for path in self._paths(language):
                if not is_url(path) and not Path(path).is_file():
                    raise FileNotFoundError(f"perplexity model file not found: {path}")

    def setup(self) -> None:
        try:
            import kenlm
        except ImportError:
            raise ConfigError("the perplexity stage needs KenLM: pip install 'llamaprep[kenlm]'") from None
        import sentencepiece

        loaded: dict[tuple[str, str], tuple[Any, Any]] = {}  # one load per distinct pair of files
        models = {}
        for language in self.config.languages or [ANY_LANGUAGE]:
            paths = self._paths(language)
            if paths not in loaded:
                lm_path, sp_path = paths
                sentence_piece = sentencepiece.SentencePieceProcessor(model_file=local_model_path(sp_path))
                loaded[paths] = (sentence_piece, kenlm.Model(local_model_path(lm_path)))
            models[language] = loaded[paths]
        self._models = models

    def _models_for(self, doc: Document) -> tuple[Any, Any] | None:
        if not self.config.languages:
            return self._models[ANY_LANGUAGE]
        return self._models.get(doc.language or "")

    def process_batch(self, docs: list[Document]) -> list[Document | Rejection]:
        results: list[Document | Rejection] = []
        for doc in docs:
            models = self._models_for(doc)
            if models is None or not doc.text.strip():
                results.append(doc)
                continue
            perplexity = document_perplexity(doc.text, *models)
            bucket = perplexity_bucket(perplexity, doc.language, self.config.cutoffs)
            doc = dataclasses.replace(doc, perplexity=perplexity, perplexity_bucket=bucket)
            if doc.perplexity_bucket in self.config.drop_buckets:
                results.append(Rejection(doc, f"perplexity.{doc.perplexity_bucket}"))
            else:
                results.append(doc)
        return results
