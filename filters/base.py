"""The one shape every per-document stage has.

A stage takes a batch of documents and returns, for each, either a document or a `Rejection` with a
reason (`stage.rule`). The rules every stage follows, owned by this base class where code can own them:

- **Configuration**: a stage is built from its `Config` dataclass (`Cls(config)`, or `Cls.from_options`
  from a mapping, validated by `filters.options.build_config`); `validate()` only checks, never changes.
- **Setup**: heavy resources (models) load in `setup`, which the base class calls once, before the first
  batch, on the worker that uses the stage (`ensure_setup`), never per document; `check` looks at them
  (a model file's header) where the job is built, so a wrong file fails before any work.
- **Batches**: `run` is the entry point; a stage implements `process` (one document) and inherits the batch
  loop, or `process_batch` when its model is much faster on lists (fastText, KenLM).
- **Documents are values**: a stage returns a changed document as a new object
  (`dataclasses.replace`), never changing the one it was given, which the caller may still hold.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from filters.document import Document, Rejection
from filters.options import build_config


class Configurable:
    """Something built from its `Config` dataclass (per-document stages, corpus-level dedup stages)."""

    name: ClassVar[str]
    Config: ClassVar[type]

    def __init__(self, config: Any = None) -> None:
        self.config = config if config is not None else self.Config()

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> Any:
        return cls(build_config(cls.Config, options, cls.name))


class Stage(Configurable):
    """Base of every per-document stage: subclasses set `name` and `Config`, override `process` or
    `process_batch`, and `setup` if they load a model."""

    def __init__(self, config: Any = None) -> None:
        super().__init__(config)
        self._set_up = False

    def check(self) -> None:
        """Fail with one line, before any work, on what can be checked without loading (model files)."""

    def setup(self) -> None:
        """Load heavy resources (models); called once by `ensure_setup`."""

    def ensure_setup(self) -> Stage:
        if not self._set_up:
            self.setup()
            self._set_up = True
        return self

    def run(self, docs: list[Document]) -> list[Document | Rejection]:
        """One result per document, in order (the entry point: sets the stage up on first use)."""
        return self.ensure_setup().process_batch(docs)

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
        for result in stage.run(docs):
            if isinstance(result, Rejection):
                rejected.append(result)
            else:
                survivors.append(result)
        docs = survivors
    return docs, rejected
