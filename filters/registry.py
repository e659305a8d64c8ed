"""Names of the per-document stages a config can list, resolved lazily so that unused stages never
import their dependencies (a pipeline without `langid` never loads fastText)."""

from __future__ import annotations

import importlib
from typing import Any

from filters.base import Stage
from filters.options import ConfigError

STAGES: dict[str, str] = {
    "normalize": "filters.normalize:NormalizeStage",
    "c4": "filters.c4:C4Filter",
    "gopher_repetition": "filters.gopher:GopherRepetitionFilter",
    "gopher_quality": "filters.gopher:GopherQualityFilter",
    "langid": "filters.langid:LanguageIdentifier",
    "quality": "filters.quality:QualityClassifier",
    "perplexity": "filters.perplexity:PerplexityStage",
    "arxiv_clean": "filters.latex:ArxivCleaner",
    "code_quality": "filters.code:CodeFilter",
    "gutenberg": "filters.books:GutenbergStrip",
}


def load_entry(spec: str) -> Any:
    """Import what a "module:name" entry names (a stage class, a parser, a command function) on first use."""
    module_name, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def stage_class(name: str) -> type[Stage]:
    """The Stage class registered under `name`."""
    if name not in STAGES:
        raise ConfigError(f"unknown stage {name!r}; known: {', '.join(sorted(STAGES))}")
    return load_entry(STAGES[name])
