"""Names of the per-document stages a config can list, resolved lazily so that unused stages never
import their dependencies (a pipeline without `langid` never loads fastText)."""

from __future__ import annotations

import importlib

from filters.base import ConfigError, Stage

STAGES: dict[str, str] = {
    "normalize": "filters.normalize:NormalizeStage",
    "c4": "filters.c4:C4Filter",
    "gopher_repetition": "filters.gopher:GopherRepetitionFilter",
    "gopher_quality": "filters.gopher:GopherQualityFilter",
    "langid": "filters.langid:LanguageIdentifier",
    "quality": "filters.quality:QualityClassifier",
    "perplexity": "filters.perplexity:PerplexityStage",
}


def stage_class(name: str) -> type[Stage]:
    """The Stage class registered under `name`."""
    try:
        module_name, _, attr = STAGES[name].partition(":")
    except KeyError:
        raise ConfigError(f"unknown stage {name!r}; known: {', '.join(sorted(STAGES))}") from None
    return getattr(importlib.import_module(module_name), attr)
