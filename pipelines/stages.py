"""The registry of stage names a config can list: per-document stages (`filters.registry`) and
corpus-level dedup stages (`pipelines.dedup`), resolved lazily so that unused stages never import their
dependencies (a pipeline without `langid` never loads fastText)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from filters.base import Stage
from filters.options import ConfigError
from filters.registry import STAGES, load_entry, stage_class

GLOBAL_STAGES: dict[str, str] = {
    "exact_dedup": "pipelines.dedup:ExactDedup",
    "line_dedup": "pipelines.dedup:LineDedup",
    "minhash_dedup": "pipelines.dedup:MinHashDedup",
}


def is_global_stage(name: str) -> bool:
    if name in GLOBAL_STAGES:
        return True
    if name in STAGES:
        return False
    known = sorted(set(STAGES) | set(GLOBAL_STAGES))
    raise ConfigError(f"unknown stage {name!r}; known: {', '.join(known)}")


def build_stages(names: Sequence[str], options: Mapping[str, Mapping[str, Any]]) -> list[Stage]:
    """Instantiate (and validate the options of) per-document stages; fails fast on bad config."""
    return [stage_class(name).from_options(options.get(name)) for name in names]


def stage_config_class(name: str) -> type:
    """The Config dataclass of a per-document or global stage."""
    if is_global_stage(name):
        return load_entry(GLOBAL_STAGES[name]).Config
    return stage_class(name).Config
