"""The one shape every per-document stage has, and typed config building.

A stage takes a batch of documents and returns, for each, either the (possibly modified) document or a
`Rejection` with a reason. Batching is the unit because model-backed stages (fastText) are much faster on
lists; simple stages implement `process` and inherit the batch loop. `setup` loads heavy resources once
per worker (Beam calls it from `DoFn.setup`), never per document.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, TypeVar

from filters.document import Document, Rejection

ConfigT = TypeVar("ConfigT")


class ConfigError(ValueError):
    """A bad option value or an unknown option name, with a message meant for the user."""


def _coerce(value: Any, annotation: Any, where: str) -> Any:
    """Convert a config value (from TOML, YAML or a `--set k=v` string) to the annotated type."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        if isinstance(value, str) and value.lower() in ("none", "null") and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(value, non_none[0], where)
    if origin in (list, tuple, Sequence) or annotation in (list, tuple):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        item = args[0] if args else Any
        items = [_coerce(v, item, where) for v in value]
        return tuple(items) if origin is tuple or annotation is tuple else items
    if origin in (dict, Mapping):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table/mapping, got {value!r}")
        return dict(value)
    try:
        if annotation is bool:
            if isinstance(value, str):
                if value.lower() in ("1", "true", "yes", "on"):
                    return True
                if value.lower() in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if annotation in (int, float, str):
            if annotation is int and isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return annotation(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}") from None
    return value


def build_config(config_cls: type[ConfigT], values: Mapping[str, Any] | None, where: str) -> ConfigT:
    """Build a config dataclass from a mapping, rejecting unknown keys and mistyped values clearly."""
    values = dict(values or {})
    hints = typing.get_type_hints(config_cls)
    names = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(f"{where}: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(names))}")
    kwargs = {k: _coerce(v, hints[k], f"{where}.{k}") for k, v in values.items()}
    config = config_cls(**kwargs)
    validate = getattr(config, "validate", None)
    if validate is not None:
        validate()
    return config


class Stage:
    """Base of every per-document stage. Subclasses set `name`, `Config` and override `process` or
    `process_batch`; `setup` is the place to load models."""

    name: ClassVar[str]
    Config: ClassVar[type]

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> Stage:
        return cls(build_config(cls.Config, options, cls.name))

    def setup(self) -> None:
        """Load heavy resources (models). Called once per worker before the first batch."""

    def process(self, doc: Document) -> Document | Rejection:
        raise NotImplementedError

    def process_batch(self, docs: list[Document]) -> list[Document | Rejection]:
        return [self.process(doc) for doc in docs]


def run_stages(stages: Sequence[Stage], docs: list[Document]) -> tuple[list[Document], list[Rejection]]:
    """Run a batch through stages in order; a rejected document leaves the batch at its stage."""
    rejected: list[Rejection] = []
    for stage in stages:
        if not docs:
            break
        survivors = []
        for result in stage.process_batch(docs):
            if isinstance(result, Rejection):
                rejected.append(result)
            else:
                survivors.append(result)
        docs = survivors
    return docs, rejected
