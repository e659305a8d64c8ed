"""Reading inputs: the Beam source used by `prepare`, and a local iterator for small jobs.

Inputs are paths, globs or URLs (anything Beam's FileSystems can match: local, gs://, s3://), optionally
prefixed with a source label (`books=/data/gutenberg/*.txt`). Files are matched at run time on the
workers, so the same job runs unchanged on Dataflow; the CLI checks local inputs up front so a wrong path
fails before a pipeline is built.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from filters.base import ConfigError
from filters.document import Document, Rejection
from pipelines.formats import Oversized, ReaderConfig, Record, Repaired, Skip, detect_format, parse_stream
from pipelines.runners import METRICS_NAMESPACE
from pipelines.stages import count_drop

LOG = logging.getLogger(__name__)
TOO_LARGE_REASON = "reader.too_large"
REJECTED_TEXT_CHARS = 4096  # an oversized document's text is kept only this long in rejected shards
_LABEL = re.compile(r"^([A-Za-z0-9_.-]+)=(.+)$")


@dataclass(frozen=True)
class InputSpec:
    """One input pattern and the source label its documents get (None: from the records/file name)."""

    pattern: str
    source: str | None = None


def parse_input(spec: str) -> InputSpec:
    match = _LABEL.match(spec)
    if match and "://" not in match.group(1):
        return InputSpec(match.group(2), match.group(1))
    return InputSpec(spec)


def match_files(pattern: str) -> list[str]:
    """Files a pattern names; a directory means every file in it (recursively for local paths)."""
    if "://" not in pattern and not any(ch in pattern for ch in "*?[") and os.path.isdir(pattern):
        pattern = os.path.join(pattern, "**")
    result = FileSystems.match([pattern])[0]
    return sorted(m.path for m in result.metadata_list if not m.path.endswith("/"))


def check_inputs(specs: Iterable[InputSpec], fmt: str | None = None) -> None:
    """Fail early, with the offending pattern named, when an input matches nothing or a matched file's
    format cannot be told from its name."""
    for spec in specs:
        try:
            files = match_files(spec.pattern)
        except Exception as error:  # FileSystems raises BeamIOError / ValueError for bad schemes
            raise ConfigError(f"cannot read input {spec.pattern!r}: {error}") from None
        if not files:
            raise FileNotFoundError(f"input {spec.pattern!r} matches no file")
        if fmt is None:
            for path in files:
                detect_format(path)


def iter_records(path: str, config: ReaderConfig) -> Iterator[Record]:
    """All records of one file, opened through Beam FileSystems (compression handled by the parser)."""
    try:
        raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    except Exception as error:
        yield Skip("unreadable_file", f"{path}: {error}")
        return
    with raw:
        yield from parse_stream(raw, path, config)


def truncated_rejection(record: Oversized) -> Rejection:
    doc = replace(record.doc, text=record.doc.text[:REJECTED_TEXT_CHARS])
    doc.metadata = {**doc.metadata, "original_bytes": record.size}
    return Rejection(doc, TOO_LARGE_REASON)


def iter_documents_from(inputs: Iterable[str], fmt: str | None = None, **options: object) -> Iterator[Document]:
    """Documents of local or remote inputs, without Beam (quality-model training, tools, tests).
    Skips and oversized documents are logged with counts at the end."""
    config = ReaderConfig(format=fmt, **options)  # type: ignore[arg-type]
    config.validate()
    specs = [parse_input(spec) for spec in inputs]
    check_inputs(specs, fmt)
    counts: dict[str, int] = {}
    produced = 0
    for spec in specs:
        file_config = replace(config, source=spec.source or config.source)
        for path in match_files(spec.pattern):
            for record in iter_records(path, file_config):
                if isinstance(record, Document):
                    yield record
                    produced += 1
                    if config.limit is not None and produced >= config.limit:
                        _log_counts(counts)
                        return
                else:
                    key = type(record).__name__.lower() + "." + getattr(record, "reason", "too_large")
                    counts[key] = counts.get(key, 0) + 1
    _log_counts(counts)


def _log_counts(counts: dict[str, int]) -> None:
    if counts:
        LOG.warning("records not read as documents: %s", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))


class _ExpandPattern(beam.DoFn):
    def process(self, spec: InputSpec) -> Iterator[tuple[str, str | None]]:
        files = match_files(spec.pattern)
        if not files:
            Metrics.counter(METRICS_NAMESPACE, "skipped.empty_input_pattern").inc()
            LOG.error("input %r matches no file", spec.pattern)
        for path in files:
            yield path, spec.source


class _ReadFile(beam.DoFn):
    """Parse one file into ((path, index), Document | Rejection), counting skips and repairs."""

    def __init__(self, config: ReaderConfig):
        self._config = config

    def process(self, item: tuple[str, str | None]) -> Iterator[tuple[tuple[str, int], Document | Rejection]]:
        path, source = item
        config = replace(self._config, source=source or self._config.source)
        Metrics.counter(METRICS_NAMESPACE, "files").inc()
        index = 0
        for record in iter_records(path, config):
            if isinstance(record, Skip):
                Metrics.counter(METRICS_NAMESPACE, f"skipped.{record.reason}").inc()
                LOG.warning("skipped %s: %s", record.reason, record.detail)
                continue
            if isinstance(record, Repaired):
                Metrics.counter(METRICS_NAMESPACE, f"repaired.{record.reason}").inc()
                continue
            out = truncated_rejection(record) if isinstance(record, Oversized) else record
            yield (path, index), out
            index += 1
            if config.limit is not None and index >= config.limit:
                return


def _count_read(item: Document | Rejection) -> Document | Rejection:
    Metrics.counter(METRICS_NAMESPACE, "read").inc()
    if isinstance(item, Rejection):
        count_drop(item.reason)
    return item


class ReadDocuments(beam.PTransform):
    """Inputs -> {"kept": Documents, "rejected": Rejections (oversized)}; counts `read`, skips, repairs.

    `spread_files` reshuffles the matched file names so that a glob's files spread over a distributed
    runner's workers instead of staying fused on the one that matched them. The local runner splits its
    input between worker processes by itself and runs the stage after a reshuffle in one process, so
    `prepare` turns it off there.

    With `limit`, the first `limit` documents in (path, position) order are read: deterministic whatever
    the runner, at the cost of gathering at most `limit` documents in one place.
    """

    def __init__(self, inputs: Iterable[str], config: ReaderConfig, spread_files: bool = True):
        super().__init__()
        self._specs = [parse_input(spec) for spec in inputs]
        if not self._specs:
            raise ConfigError("no input given")
        self._config = config
        self._spread_files = spread_files

    def expand(self, pbegin: beam.pvalue.PBegin) -> dict[str, beam.PCollection]:
        files = pbegin | "Inputs" >> beam.Create(self._specs) | "MatchFiles" >> beam.ParDo(_ExpandPattern())
        if self._spread_files:
            files = files | "SpreadFiles" >> beam.Reshuffle()
        keyed = files | "ReadFiles" >> beam.ParDo(_ReadFile(self._config))
        if self._config.limit is not None:
            keyed = (
                keyed
                | "FirstN" >> beam.combiners.Top.Smallest(self._config.limit, key=lambda kv: kv[0])
                | "Unpack" >> beam.FlatMap(lambda items: items)
            )
        items = keyed | "Values" >> beam.Values() | "CountRead" >> beam.Map(_count_read)
        kept, rejected = items | "SplitOversized" >> beam.Partition(lambda item, _: int(isinstance(item, Rejection)), 2)
        return {"kept": kept, "rejected": rejected}
