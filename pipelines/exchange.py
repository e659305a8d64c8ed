"""How key tables move between the units of a `prepare` run: through files (local runs) or through a Beam
shuffle (distributed runners). Documents never move this way; only key rows, decisions and edges do.

A producer (a task of a phase, a partition of a dedup stage) writes its rows to a routed file
(`pipelines.arrow_files.write_routed`: sorted by the uint64 `route` column) and emits a small info dict.
An exchange delivers rows to consumers:

- `group`: every consumer gets all rows of a range of the route space (route = key hash, so a range holds
  whole groups of equal keys);
- `to_tasks`: task t gets the rows routed to it (route = ref, task << 32 | row), every task once, with or
  without rows;
- `gather_all` (files only): one consumer gets every row (the near-duplicate graph on a local run).

`FileExchange` keeps rows in the files: a consumer reads its slice of every producer's file (a binary
search in a memory map), and `group` plans the route ranges from the producers' histograms so that one
range's rows fit the memory budget divided among the workers: key state is bounded however large the
corpus, at the cost of more, smaller passes. Nothing goes through the runner but file names and infos,
so the in-process runner holds no key state either.

`ShuffleExchange` is for Dataflow and other distributed runners, which have a shuffle service and need
no budget: each producer's rows are cut into 2**bits fixed buckets (or per task) and grouped by a
GroupByKey of Arrow IPC chunks, so the shuffle carries key rows in large elements.

Consumers (`Consumer`) own the resume rule: each unit first looks for its completion marker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol

import apache_beam as beam
import numpy as np
import pyarrow as pa

from filters.key_tables import ROUTE, TASK, ref_task, runs
from filters.prepared import iter_batches, read_table
from pipelines.arrow_files import HISTOGRAM_BITS, read_route_range

Info = dict[str, Any]
SLICES = 1 << HISTOGRAM_BITS
SORT_OVERHEAD = 4  # measured: a line-dedup pass of 32 MB of keys raised peak RSS by 130 MB (slices, copies, sort)
MIN_PARALLEL_BYTES = 4 << 20  # below this, one pass: splitting a small key set costs more than it saves


class Consumer(Protocol):
    def setup(self) -> None: ...

    def run(self, item: Info, gather: Callable[[], pa.Table | None]) -> list[Info]: ...


def _with_task(table: pa.Table, info: Info) -> pa.Table:
    """Key rows written by a task carry their task implicitly (one file per task): add it back."""
    if info.get("task") is None or TASK in table.column_names:
        return table
    return table.append_column(TASK, pa.array(np.full(table.num_rows, info["task"], dtype=np.uint32)))


def _concat(tables: list[pa.Table]) -> pa.Table | None:
    tables = [t for t in tables if t.num_rows]
    return pa.concat_tables(tables, promote_options="none") if tables else None


def _task_range(index: int) -> tuple[int, int]:
    return index << 32, (index + 1) << 32


class Spread(beam.PTransform):
    """Deal elements to workers in the order they arrive (the local runner hands a grouped collection to
    its worker processes round-robin by key; the planners emit the largest units first)."""

    def __init__(self, key: Callable[[Any], Any]) -> None:
        super().__init__()
        self._key = key

    def expand(self, items: beam.PCollection) -> beam.PCollection:
        key = self._key
        return (
            items
            | "Key" >> beam.Map(lambda item: (key(item), item))
            | "Group" >> beam.GroupByKey()
            | ("Values" >> beam.FlatMap(lambda kv: kv[1]))
        )


class RunUnits(beam.DoFn):
    """Runs a consumer on each unit; `gather` says how the unit's rows are found."""

    def __init__(self, consumer: Consumer, gather: Callable[..., pa.Table | None]) -> None:
        self._consumer = consumer
        self._gather = gather

    def setup(self) -> None:
        self._consumer.setup()

    def process(self, item, *side):  # no hints: Beam would read one on *side as a tuple type
        unit, gather = self._gather(item, *side)
        yield from self._consumer.run(unit, gather)


# ---------------------------------------------------------------- files


def plan_ranges(infos: list[Info], budget_bytes: int, workers: int) -> list[Info]:
    """Contiguous ranges of the route space (in 256ths) whose rows fit `budget_bytes / workers` each in
    memory; at least `workers` ranges when there is enough to share. Largest first."""
    per_slice = np.zeros(SLICES, dtype=np.float64)
    for info in infos:
        if info.get("rows"):
            per_slice += np.asarray(info["histogram"], dtype=np.float64) * (info["data_bytes"] / info["rows"])
    total = float(per_slice.sum())
    if total == 0:
        return []
    limit = max(1.0, budget_bytes / max(workers, 1) / SORT_OVERHEAD)
    if total > MIN_PARALLEL_BYTES:
        limit = min(limit, total / workers)
    ranges, start, size = [], 0, 0.0
    for index in range(SLICES):
        if index > start and size + per_slice[index] > limit:
            ranges.append((start, index, size))
            start, size = index, 0.0
        size += per_slice[index]
    ranges.append((start, SLICES, size))
    units = [{"unit": f"r{lo:03d}-{hi:03d}", "low": lo, "high": hi, "bytes": int(b)} for lo, hi, b in ranges if b]
    return sorted(units, key=lambda u: -u["bytes"])


def _route_bounds(low_slice: int, high_slice: int) -> tuple[int, int | None]:
    shift = 64 - HISTOGRAM_BITS
    return low_slice << shift, (None if high_slice >= SLICES else high_slice << shift)


def _gather_range(item: Info, infos: list[Info]) -> tuple[Info, Callable[[], pa.Table | None]]:
    def gather() -> pa.Table | None:
        low, high = _route_bounds(item["low"], item["high"])
        pieces = []
        for info in infos:
            if info.get("rows") and sum(info["histogram"][item["low"] : item["high"]]):
                pieces.append(_with_task(read_route_range(info["path"], low, high), info))
        return _concat(pieces)

    return item, gather


def _gather_task(task: Info, infos: list[Info] | None = None) -> tuple[Info, Callable[[], pa.Table | None]]:
    def gather() -> pa.Table | None:
        low, high = _task_range(task["index"])
        return _concat([read_route_range(info["path"], low, high) for info in infos or [] if info.get("rows")])

    return task, gather


def _gather_all(infos: list[Info]) -> tuple[Info, Callable[[], pa.Table | None]]:
    def gather() -> pa.Table | None:
        return _concat([_with_task(read_table(i["path"]), i) for i in infos if i.get("rows")])

    return {"unit": "all"}, gather


class FileExchange:
    """Rows stay in files; consumers read their slices (local runs, bounded memory)."""

    name = "files"

    def __init__(self, budget_bytes: int, workers: int) -> None:
        self.budget_bytes = budget_bytes
        self.workers = workers

    def group(self, label: str, produced: beam.PCollection, consumer: Consumer) -> beam.PCollection:
        infos = beam.pvalue.AsList(produced)
        return (
            produced
            | f"{label}/Collect" >> beam.combiners.ToList()
            | f"{label}/Plan" >> beam.FlatMap(plan_ranges, self.budget_bytes, self.workers)
            | f"{label}/Spread" >> Spread(lambda unit: unit["unit"])
            | f"{label}/Run" >> beam.ParDo(RunUnits(consumer, _gather_range), infos)
        )

    def gather_all(self, label: str, produced: beam.PCollection, consumer: Consumer) -> beam.PCollection:
        return (
            produced
            | f"{label}/Collect" >> beam.combiners.ToList()
            | f"{label}/Run" >> beam.ParDo(RunUnits(consumer, _gather_all))
        )

    def to_tasks(
        self, label: str, tasks: beam.PCollection, produced: beam.PCollection | None, consumer: Consumer
    ) -> beam.PCollection:
        side = [] if produced is None else [beam.pvalue.AsList(produced)]
        return tasks | f"{label}/Run" >> beam.ParDo(RunUnits(consumer, _gather_task), *side)


# ---------------------------------------------------------------- shuffle


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


class _SplitByBucket(beam.DoFn):
    def __init__(self, bits: int) -> None:
        self._bits = bits

    def process(self, info: Info) -> Iterator[tuple[int, tuple[int | None, bytes]]]:
        if not info.get("rows"):
            return
        pieces: dict[int, list[pa.Table]] = {}
        for batch in iter_batches(info["path"]):  # one sorted run per batch
            buckets = (batch.column(ROUTE).to_numpy() >> np.uint64(64 - self._bits)).astype(np.int64)
            bounds = np.searchsorted(buckets, np.arange((1 << self._bits) + 1))
            for bucket in np.flatnonzero(np.diff(bounds)):
                rows = batch.slice(bounds[bucket], bounds[bucket + 1] - bounds[bucket])
                pieces.setdefault(int(bucket), []).append(pa.Table.from_batches([rows]))
        for bucket, tables in sorted(pieces.items()):
            yield bucket, (info.get("task"), _ipc(pa.concat_tables(tables)))  # the task travels once per chunk


class _SplitByTask(beam.DoFn):
    def process(self, info: Info) -> Iterator[tuple[int, bytes]]:
        if not info.get("rows"):
            return
        table = read_table(info["path"])
        tasks = ref_task(table.column(ROUTE).to_numpy())
        for start, stop in runs(tasks):
            yield int(tasks[start]), _ipc(table.slice(start, stop - start))


def _bucket_unit(bits: int) -> Callable[[tuple[int, Any]], tuple[Info, Callable[[], pa.Table | None]]]:
    def unit(element: tuple[int, Any]) -> tuple[Info, Callable[[], pa.Table | None]]:
        bucket, chunks = element

        def gather() -> pa.Table | None:
            return _concat([_with_task(_from_ipc(data), {"task": task}) for task, data in chunks])

        return {"unit": f"b{bits}-{bucket:05d}"}, gather

    return unit


def _task_group(element: tuple[int, dict[str, Any]]) -> tuple[Info, Callable[[], pa.Table | None]]:
    _, joined = element
    (task,) = joined["task"]
    return task, lambda: _concat([_from_ipc(chunk) for chunk in joined["rows"]])


class ShuffleExchange:
    """Rows go through a Beam GroupByKey as Arrow IPC chunks (Dataflow, Flink, Spark, portable runners)."""

    name = "shuffle"

    def __init__(self, bits: int = 10) -> None:
        self.bits = bits

    def group(self, label: str, produced: beam.PCollection, consumer: Consumer) -> beam.PCollection:
        return (
            produced
            | f"{label}/Split" >> beam.ParDo(_SplitByBucket(self.bits))
            | f"{label}/Shuffle" >> beam.GroupByKey()
            | f"{label}/Run" >> beam.ParDo(RunUnits(consumer, _bucket_unit(self.bits)))
        )

    def to_tasks(
        self, label: str, tasks: beam.PCollection, produced: beam.PCollection | None, consumer: Consumer
    ) -> beam.PCollection:
        if produced is None:
            return tasks | f"{label}/Run" >> beam.ParDo(RunUnits(consumer, _gather_task))
        chunks = produced | f"{label}/Split" >> beam.ParDo(_SplitByTask())
        keyed = tasks | f"{label}/KeyTasks" >> beam.Map(lambda task: (task["index"], task))
        return (
            {"task": keyed, "rows": chunks}
            | f"{label}/Shuffle" >> beam.CoGroupByKey()
            | f"{label}/Run" >> beam.ParDo(RunUnits(consumer, _task_group))
        )
