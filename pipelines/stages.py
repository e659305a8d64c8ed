"""Beam wrappers around `filters/` stages, and the registry of corpus-level (global) stages.

Per-document stages that follow each other in the config are fused into one `ApplyStages` DoFn: it
builds the stages in `setup` (models load once per worker), runs batches through them, emits kept
documents on the main output and `Rejection`s on the `rejected` tag, and counts every drop reason as a
Beam metric (`dropped.<reason>`). Global stages (dedup) need the whole corpus and are PTransforms taking a
PCollection of Documents and returning `{"kept": ..., "rejected": ...}`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from filters.base import ConfigError, Stage, run_stages
from filters.document import Document, Rejection
from filters.registry import STAGES, load_entry, stage_class
from pipelines.runners import METRICS_NAMESPACE

REJECTED_TAG = "rejected"
DEFAULT_BATCH_SIZE = 256

GLOBAL_STAGES: dict[str, str] = {
    "exact_dedup": "pipelines.dedup:ExactDedup",
    "line_dedup": "pipelines.dedup:LineDedup",
    "minhash_dedup": "pipelines.dedup:MinHashDedup",
}


def global_stage_class(name: str) -> type[beam.PTransform]:
    return load_entry(GLOBAL_STAGES[name])


def is_global_stage(name: str) -> bool:
    if name in GLOBAL_STAGES:
        return True
    if name in STAGES:
        return False
    known = sorted(set(STAGES) | set(GLOBAL_STAGES))
    raise ConfigError(f"unknown stage {name!r}; known: {', '.join(known)}")


def count_drop(reason: str) -> None:
    Metrics.counter(METRICS_NAMESPACE, f"dropped.{reason}").inc()


def build_stages(names: Sequence[str], options: Mapping[str, Mapping[str, Any]]) -> list[Stage]:
    """Instantiate (and validate the options of) per-document stages; fails fast on bad config."""
    return [stage_class(name).from_options(options.get(name)) for name in names]


class ApplyStages(beam.DoFn):
    """Run a chain of per-document stages over batches of documents."""

    def __init__(
        self, names: Sequence[str], options: Mapping[str, Mapping[str, Any]], batch_size: int = DEFAULT_BATCH_SIZE
    ):
        self._names = list(names)
        self._options = {k: dict(v) for k, v in options.items()}
        self._batch_size = batch_size
        build_stages(self._names, self._options)  # validate at graph-construction time

    def setup(self) -> None:
        self._stages = build_stages(self._names, self._options)
        for stage in self._stages:
            stage.setup()

    def start_bundle(self) -> None:
        self._buffer: list[Document] = []

    def process(self, doc: Document) -> Iterator[Any]:
        self._buffer.append(doc)
        if len(self._buffer) >= self._batch_size:
            yield from self._flush()

    def finish_bundle(self) -> Iterator[Any]:
        for output in self._flush():
            if isinstance(output, beam.pvalue.TaggedOutput):
                yield beam.pvalue.TaggedOutput(
                    output.tag, beam.transforms.window.GlobalWindows.windowed_value(output.value)
                )
            else:
                yield beam.transforms.window.GlobalWindows.windowed_value(output)

    def _flush(self) -> Iterator[Any]:
        batch, self._buffer = self._buffer, []
        kept, rejected = run_stages(self._stages, batch)
        for rejection in rejected:
            count_drop(rejection.reason)
            yield beam.pvalue.TaggedOutput(REJECTED_TAG, rejection)
        yield from kept


def apply_document_stages(
    docs: beam.PCollection, names: Sequence[str], options: Mapping[str, Mapping[str, Any]], label: str
) -> tuple[beam.PCollection, beam.PCollection]:
    """Apply a fused chain of per-document stages; returns (kept, rejected)."""
    outputs = docs | label >> beam.ParDo(ApplyStages(names, options)).with_outputs(REJECTED_TAG, main="kept")
    return outputs.kept, outputs[REJECTED_TAG]


def reject(doc: Document, reason: str) -> Rejection:
    """A rejection from a global stage, counted like per-document ones."""
    count_drop(reason)
    return Rejection(doc, reason)


def stage_config_class(name: str) -> type:
    """The Config dataclass of a per-document or global stage."""
    if is_global_stage(name):
        return global_stage_class(name).Config
    return stage_class(name).Config
