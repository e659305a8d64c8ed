"""Final shards from the per-task outputs of the last phase: merge small ones, split large ones.

Documents keep their input order: tasks sorted by input path, rows in each task's record order. Within a
shard set (all kept documents, or one language with --split-by-language, or the rejected documents), the
shard count is ceil(text bytes / target) and shard i takes the documents whose first byte falls in the
i-th equal slice of the set's text, so shards are close to equal in size and a document never moves
between runs. Each shard is written by its own unit from the task files it overlaps (only its slice of the
boundary files is read), in record batches of BATCH_ROWS rows, so the same inputs give byte-identical
shards whatever the runner, the number of workers or the order of the inputs on the command line.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.document import DOCUMENT_SCHEMA, REJECTED_SCHEMA
from filters.prepared import BATCH_ROWS, DOCUMENTS_DIR, REJECTED_DIR, iter_batches, shard_name
from pipelines.arrow_files import AtomicArrowWriter, join
from pipelines.exchange import Info
from pipelines.workdir import UnitRunner

STEP = "compose"


def _shard_sets(phase_infos: list[Info]) -> dict[tuple[str, str], list[Info]]:
    """(kind, partition) -> the task files of that set, in task (then phase) order."""
    sets: dict[tuple[str, str], list[tuple[int, int, Info]]] = defaultdict(list)
    for info in phase_infos:
        for partition, file in (info.get("partitions") or {}).items():
            if file["rows"]:
                sets[(DOCUMENTS_DIR, partition)].append((info["task"], info["phase"], file))
        if info.get("rejected") and info["rejected"]["rows"]:
            sets[(REJECTED_DIR, "")].append((info["task"], info["phase"], info["rejected"]))
    return {key: [file for _, _, file in sorted(files, key=lambda f: f[:2])] for key, files in sets.items()}


def plan_shards(phase_infos: list[Info], target_bytes: int) -> list[Info]:
    """One unit per final shard: its byte slice of its set and the task files overlapping it."""
    units = []
    for (kind, partition), files in sorted(_shard_sets(phase_infos).items()):
        total = sum(f["text_bytes"] for f in files)
        count = max(1, math.ceil(total / target_bytes))
        offsets = np.cumsum([0] + [f["text_bytes"] for f in files])
        for index in range(count):
            start, stop = index * total // count, (index + 1) * total // count
            if index == count - 1:
                stop = total + 1  # the last shard also takes documents starting at the very end (empty texts)
            overlapping = [
                {**f, "offset": int(offsets[i])}
                for i, f in enumerate(files)
                if offsets[i] < stop and offsets[i + 1] >= start  # a file ending at `start` may end with empty texts
            ]
            folder = f"{kind}/{partition}" if partition else kind
            units.append(
                {
                    "unit": f"{folder.replace('/', '.')}-{index:05d}",
                    "kind": kind,
                    "partition": partition,
                    "relative": f"{folder}/{shard_name(index, count)}",
                    "start": start,
                    "stop": stop,
                    "files": overlapping,
                }
            )
    return sorted(units, key=lambda u: -sum(f["text_bytes"] for f in u["files"]))


class ShardWriter(UnitRunner):
    """Writes one final shard (zstd Arrow IPC, BATCH_ROWS-row batches) from its slice of the task files."""

    def __init__(self, output: str, compression: str | None) -> None:
        super().__init__(output, STEP)
        self._compression = compression

    def work(self, unit: Info, name: str, _: Any) -> list[Info]:
        schema = DOCUMENT_SCHEMA if unit["kind"] == DOCUMENTS_DIR else REJECTED_SCHEMA
        path = join(self.output, unit["relative"])
        with AtomicArrowWriter(path, schema, self._compression, BATCH_ROWS) as writer:
            for file in unit["files"]:
                offset = file["offset"]
                for batch in iter_batches(file["path"]):
                    lengths = pc.binary_length(batch.column("text")).to_numpy(zero_copy_only=False).astype(np.int64)
                    starts = offset + np.cumsum(lengths) - lengths
                    offset += int(lengths.sum())
                    chosen = (starts >= unit["start"]) & (starts < unit["stop"])
                    if chosen.any():
                        writer.write_table(pa.Table.from_batches([batch.filter(pa.array(chosen))]))
                    if offset > unit["stop"]:
                        break
        info = {
            "kind": unit["kind"],
            "path": unit["relative"],
            "documents": writer.rows,
            "bytes": writer.bytes,
            "sha256": writer.sha256,
            "text_bytes": writer.text_bytes,
        }
        if unit["partition"]:
            info["partition"] = unit["partition"]
        return [info]
