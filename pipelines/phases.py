"""The phases of `prepare`: each task (one input file) streams through them, one file in, files out.

The configured stage list is cut at every corpus-level (dedup) stage. Phase 0 reads the task's input file
and runs the per-document stages before the first dedup stage; phase k applies the decisions of the k-th
dedup stage, then the per-document stages up to the next one. Each phase writes the task's surviving
documents (an intermediate Arrow file, or the final per-partition files in the last phase), its rejected
documents (with `--keep-rejected`), and the key rows of the next dedup stage; documents never go through
the runner. So any order works, CCNet's included (line dedup, language ID, heuristics, MinHash):

    stages:  normalize  exact_dedup  line_dedup  langid gopher c4  minhash_dedup
    phases:  p0 -------keys| p1 -----keys| p2 ------------------keys| p3 (final)

A phase's outputs and counts are recorded in its completion marker (`pipelines.workdir`), from which a
killed run resumes and the manifest's accounting is summed: read = kept + dropped, by reason.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any

import pyarrow as pa
import xxhash

from filters.base import run_stages
from filters.document import DOCUMENT_SCHEMA, REJECTED_SCHEMA, Document, Rejection
from filters.langid import language_partition_key
from filters.prepared import iter_batches
from filters.registry import load_entry
from pipelines import model_staging
from pipelines.arrow_files import AtomicArrowWriter, RoutedWriter
from pipelines.config import PrepareConfig
from pipelines.dedup import GlobalStage
from pipelines.exchange import Info
from pipelines.formats import Oversized, Repaired, Skip
from pipelines.readers import iter_records, truncated_rejection
from pipelines.stages import GLOBAL_STAGES, build_stages
from pipelines.workdir import UnitRunner, unit_of_task

LOG = logging.getLogger(__name__)
STAGE_BATCH = 256  # documents per call of the per-document stages (fastText is much faster on lists)
INTERMEDIATE_COMPRESSION = "lz4"  # between phases: fast to write and read back
LOGGED_SKIPS = 3  # per task, the first skipped records are logged; all are counted
KEY_RUN_BYTES = 64 << 20  # a task writes its dedup keys in sorted runs of about this size
NODE_BATCH_ROWS = 65536


@dataclass(frozen=True)
class Phase:
    index: int
    applies: str | None  # the dedup stage whose decisions open the phase
    stages: tuple[str, ...]  # per-document stages, in order
    keys_for: str | None  # the dedup stage whose keys the phase writes (None: the last phase)

    @property
    def step(self) -> str:
        return f"p{self.index}"

    @property
    def final(self) -> bool:
        return self.keys_for is None


def plan_phases(stages: list[str]) -> list[Phase]:
    """Cut the stage list at its dedup stages."""
    phases: list[Phase] = []
    applies: str | None = None
    segment: list[str] = []
    for name in stages:
        if name in GLOBAL_STAGES:
            phases.append(Phase(len(phases), applies, tuple(segment), name))
            applies, segment = name, []
        else:
            segment.append(name)
    phases.append(Phase(len(phases), applies, tuple(segment), None))
    return phases


def global_stage(config: PrepareConfig, name: str) -> GlobalStage:
    return load_entry(GLOBAL_STAGES[name]).from_options(config.stage_options.get(name))


@dataclass(frozen=True)
class RunContext:
    """What every unit of a run needs: where it writes and how it was configured."""

    output: str
    config: PrepareConfig
    keep_rejected: bool


class _Counts:
    """What a unit saw: records read, kept, dropped/skipped/repaired by reason, and stage metrics."""

    def __init__(self) -> None:
        self.values: Counter = Counter()
        self.dropped: Counter = Counter()
        self.skipped: Counter = Counter()
        self.repaired: Counter = Counter()
        self.metrics: Counter = Counter()

    def as_dict(self) -> dict[str, Any]:
        return {
            **{k: int(v) for k, v in self.values.items()},
            "dropped": dict(self.dropped),
            "skipped": dict(self.skipped),
            "repaired": dict(self.repaired),
        }


class _Outputs:
    """The files one phase of one task writes (created on first use, renamed into place on close)."""

    def __init__(self, runner: PhaseRunner, name: str, keys: Any) -> None:
        self._runner = runner
        self._name = name
        self._documents: dict[str, AtomicArrowWriter] = {}
        self._rejected: AtomicArrowWriter | None = None
        self.kept = 0
        self.keys = keys  # the next dedup stage's key builder (None in the last phase)
        self._key_writer = RoutedWriter(self._path("keys"), keys.keys.schema) if keys else None
        self._node_writer = (
            AtomicArrowWriter(self._path("nodes"), keys.nodes.schema, None, batch_rows=None)
            if keys is not None and keys.nodes is not None
            else None
        )

    def _path(self, kind: str) -> str:
        return self._runner.workdir.file(self._runner.step, kind, self._name)

    def documents(self, docs: list[Document]) -> int:
        """Write kept documents; returns the row index of the first one."""
        first = self.kept
        if self._runner.phase.final and self._runner.context.config.shards.split_by_language:
            by_partition: dict[str, list[Document]] = {}
            for doc in docs:
                by_partition.setdefault(language_partition_key(doc), []).append(doc)
        else:
            by_partition = {"": docs} if docs else {}
        for partition, members in by_partition.items():
            if partition not in self._documents:
                kind = f"documents/{partition}" if partition else "documents"
                self._documents[partition] = AtomicArrowWriter(
                    self._path(kind), DOCUMENT_SCHEMA, INTERMEDIATE_COMPRESSION
                )
            self._documents[partition].write_rows([doc.to_row() for doc in members])
        self.kept += len(docs)
        return first

    def rejected(self, rejections: list[Rejection]) -> None:
        if not rejections:
            return
        if self._rejected is None:
            self._rejected = AtomicArrowWriter(self._path("rejected"), REJECTED_SCHEMA, INTERMEDIATE_COMPRESSION)
        rows = []
        for rejection in rejections:
            row = rejection.doc.to_row()
            row["drop_reason"] = rejection.reason
            rows.append(row)
        self._rejected.write_rows(rows)

    def flush_keys(self, everything: bool = False) -> None:
        """Write the collected keys as a sorted run once they reach KEY_RUN_BYTES (a task's key state in
        memory stays bounded however large its file), and node rows in batches."""
        if self._key_writer is not None and (everything or self.keys.keys.nbytes >= KEY_RUN_BYTES):
            self._key_writer.write_run(self.keys.keys.take())
        if self._node_writer is not None and (everything or self.keys.nodes.rows >= NODE_BATCH_ROWS):
            self._node_writer.write_table(self.keys.nodes.take())

    def close_keys(self) -> Info | None:
        if self._key_writer is None:
            return None
        self.flush_keys(everything=True)
        if self._node_writer is not None:
            self._node_writer.close()
        return self._key_writer.close()

    def close(self) -> tuple[dict[str, Info], Info | None]:
        documents = {}
        for partition, writer in sorted(self._documents.items()):
            writer.close()
            documents[partition] = {"path": writer.path, "rows": writer.rows, "text_bytes": writer.text_bytes}
        rejected = None
        if self._rejected is not None:
            self._rejected.close()
            rejected = {
                "path": self._rejected.path,
                "rows": self._rejected.rows,
                "text_bytes": self._rejected.text_bytes,
            }
        return documents, rejected

    def abort(self) -> None:
        for writer in [*self._documents.values(), self._rejected, self._key_writer, self._node_writer]:
            if writer is not None:
                writer.abort()


class PhaseRunner(UnitRunner):
    """One phase over one task: read, apply the previous dedup stage, run the per-document stages, write
    documents, rejections and the next dedup stage's keys, then the completion marker."""

    def __init__(self, phase: Phase, context: RunContext) -> None:
        super().__init__(context.output, phase.step)
        self.phase = phase
        self.context = context
        config = context.config
        for stage in build_stages(phase.stages, config.stage_options):  # bad options or model files fail here
            stage.check()

    def setup(self) -> None:
        super().setup()
        model_staging.install()
        config = self.context.config
        self._stages = build_stages(self.phase.stages, config.stage_options)
        for stage in self._stages:
            stage.ensure_setup()
        self._applies = global_stage(config, self.phase.applies) if self.phase.applies else None
        self._keys_for = global_stage(config, self.phase.keys_for) if self.phase.keys_for else None

    def unit_name(self, task: Info) -> str:
        return unit_of_task(task["index"])

    def work(self, task: Info, name: str, decisions: pa.Table | None) -> list[Info]:
        counts = _Counts()
        outputs = _Outputs(self, name, self._keys_for.key_builder() if self._keys_for else None)
        applier = self._applies.applier(decisions) if self._applies else None
        try:
            items = self._read_input(task, counts) if self.phase.index == 0 else self._read_previous(task)
            for batch in _batched(items, STAGE_BATCH):
                self._process(batch, applier, outputs, counts)
            documents, rejected = outputs.close()
            keys = outputs.close_keys()
        except BaseException:
            outputs.abort()
            raise
        if applier is not None:
            counts.metrics.update(applier.metrics)
        if self.phase.final:
            counts.values["kept"] = outputs.kept
        info: Info = {"task": task["index"], "phase": self.phase.index, "counts": counts.as_dict()}
        if self.phase.final:
            info["partitions"] = documents
        else:
            info["documents"] = documents.get("")
        info["rejected"] = rejected
        if keys is not None:
            info["keys"] = {**keys, "task": task["index"]}
            counts.metrics[f"exchange_bytes.{self.phase.keys_for}"] += keys["data_bytes"]  # what enters the exchange
            counts.metrics.update(outputs.keys.metrics)
        info["metrics"] = {k: v for k, v in counts.metrics.items() if v}
        return [info]

    def _process(self, batch: list[tuple[int, Any]], applier: Any, outputs: _Outputs, counts: _Counts) -> None:
        rejected: list[Rejection] = []
        docs: list[Document] = []
        for row, item in batch:
            if isinstance(item, Rejection):
                rejected.append(item)
                continue
            result = applier.apply(item, row) if applier is not None else item
            (rejected if isinstance(result, Rejection) else docs).append(result)
        kept, dropped = run_stages(self._stages, docs)
        rejected.extend(dropped)
        first = outputs.documents(kept)
        if outputs.keys is not None:
            for offset, doc in enumerate(kept):
                outputs.keys.add(doc, first + offset)
            outputs.flush_keys()
        counts.dropped.update(r.reason for r in rejected)
        if self.context.keep_rejected:
            outputs.rejected(rejected)

    def _read_input(self, task: Info, counts: _Counts) -> Iterator[tuple[int, Document | Rejection]]:
        """Phase 0: the records of the task's input file (the first `limit` documents with --limit)."""
        reader = self.context.config.reader
        config = replace(reader, source=task.get("source") or reader.source, limit=None)
        counts.values.update(files=1, input_bytes=task.get("size", 0))
        read = 0
        ids = UniqueIds()
        for record in iter_records(task["path"], config, task.get("name")):
            if isinstance(record, Skip):
                counts.skipped[record.reason] += 1
                if sum(counts.skipped.values()) <= LOGGED_SKIPS:
                    LOG.warning("skipped %s: %s", record.reason, record.detail)
                continue
            if isinstance(record, Repaired):
                counts.repaired[record.reason] += 1
                continue
            doc = record.doc if isinstance(record, Oversized) else record
            if ids.make_unique(doc):
                counts.repaired["duplicate_id"] += 1
            if isinstance(record, Oversized):
                counts.values["input_text_bytes"] += record.size
                yield read, truncated_rejection(record)
            else:
                counts.values["input_text_bytes"] += len(record.text.encode("utf-8", errors="surrogatepass"))
                yield read, record
            read += 1
            counts.values["read"] = read
            if task.get("limit") is not None and read >= task["limit"]:
                return

    def _read_previous(self, task: Info) -> Iterator[tuple[int, Document]]:
        """Phase k > 0: the documents the previous phase kept, with their row numbers."""
        previous = self.workdir.read_marker(f"p{self.phase.index - 1}", unit_of_task(task["index"]))
        if previous is None:
            raise RuntimeError(f"phase {self.phase.index - 1} of task {task['index']} has no completion marker")
        documents = previous["outputs"][0]["documents"]
        if not documents:
            return
        row = 0
        for batch in iter_batches(documents["path"]):
            for values in batch.to_pylist():
                yield row, Document.from_row(values)
                row += 1


class UniqueIds:
    """Makes the ids of one file's documents unique: a repeated id gets `~2`, `~3`... in order of appearance
    (deterministic), counted as `repaired.duplicate_id`. Remembers 64-bit hashes, not the ids."""

    def __init__(self) -> None:
        self._seen: set[int] = set()

    def make_unique(self, doc: Document) -> bool:
        key = xxhash.xxh3_64_intdigest(doc.id.encode("utf-8", errors="surrogatepass"))
        if key not in self._seen:
            self._seen.add(key)
            return False
        base, repeat = doc.id, 2
        while key in self._seen:
            doc.id = f"{base}~{repeat}"
            key = xxhash.xxh3_64_intdigest(doc.id.encode("utf-8", errors="surrogatepass"))
            repeat += 1
        self._seen.add(key)
        return True


def _batched(items: Iterator[Any], size: int) -> Iterator[list[Any]]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
