"""Corpus-level dedup stages: exact documents, CCNet lines, MinHash near-duplicates.

A corpus-level stage runs in three steps around the phases of `prepare` (`pipelines.phases`):

1. keys: while a phase streams a task's documents, each surviving document adds its key rows (a builder
   from `filters/`) to the task's key file;
2. decide: the key files of all tasks are exchanged by key hash (`pipelines.exchange`) and each partition
   of the hash space is decided on its own (vectorized, in `filters/`); near-duplicates add one global
   step, the connected components of the candidate edges;
3. apply: the decisions, routed back to their tasks, are applied while the next phase streams the task's
   documents (drop, annotate, or remove lines).

Documents never leave their task; only key rows and decisions move. Every decision is a function of the
keys alone (survivor rules are total orders, see `filters.survivors`), so any runner, any exchange and any
order of the inputs give the same result.

Kept documents carry `dup_cluster` (the id of the cluster's survivor, their own id when unique) and
`dup_cluster_size` (how many input documents the survivor stands for, summed across dedup stages);
rejected ones carry the cluster they were folded into.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy as np
import pyarrow as pa

from filters.base import Configurable
from filters.document import Document, Rejection
from filters.exact_dedup import NORMALIZATIONS, ExactKeys, exact_decisions
from filters.key_tables import ROUTE, ref_row, ref_task, runs, scatter
from filters.line_dedup import LineKeys, line_removals, remove_lines
from filters.minhash import SHINGLE_TYPES, MinHasher, optimal_bands
from filters.near_duplicates import NearDuplicateKeys, band_edges, component_labels, jaccard_estimates
from filters.options import ConfigError
from filters.prepared import read_table
from filters.survivors import check_keep_rule, choose_survivors, represented
from pipelines.arrow_files import write_routed
from pipelines.connected_components import DEFAULT_MAX_ROUNDS, ConnectedComponents
from pipelines.exchange import FileExchange, Info, RunUnits
from pipelines.workdir import UnitRunner, WorkDir, unit_of_task

Decided = tuple[beam.PCollection, list[beam.PCollection]]


@dataclass(frozen=True)
class StageContext:
    """Where a corpus-level stage's units write (`step`) and which phase wrote its keys (`keys_step`)."""

    output: str
    step: str
    keys_step: str

    def node_file(self, task: int) -> str:
        return WorkDir(self.output).file(self.keys_step, "nodes", unit_of_task(task))


class GlobalStage(Configurable):
    """Base of corpus-level stages: the key builder of the phase before, the decision steps, and the
    applier of the phase after."""

    def key_builder(self) -> Any:
        raise NotImplementedError

    def applier(self, decisions: pa.Table | None) -> Any:
        raise NotImplementedError

    def decide(self, exchange: Any, keys: beam.PCollection, context: StageContext) -> Decided:
        """The decisions (routed by ref) and every collection of unit infos whose metrics count."""
        raise NotImplementedError


class _PartitionRunner(UnitRunner):
    """A unit deciding one partition of a key space: `decide(table)` -> one routed output file."""

    def __init__(self, context: StageContext, decide: Any, kind: str) -> None:
        super().__init__(context.output, context.step)
        self._decide = decide
        self._kind = kind

    def work(self, item: Info, name: str, rows: pa.Table | None) -> list[Info]:
        if rows is None:
            return []
        table, metrics = self._decide(rows)
        info = write_routed(self.workdir.file(self.step, self._kind, name), table)
        info["metrics"] = metrics
        return [info]


class DecisionApplier:
    """Applies keep/drop decisions (DECISION_SCHEMA rows of one task) to the task's documents."""

    def __init__(self, decisions: pa.Table | None, reason: str, unique_cluster: Any) -> None:
        self._reason = reason
        self._unique_cluster = unique_cluster
        self.metrics: dict[str, int] = {}
        if decisions is None:
            self._index: dict[int, int] = {}
            return
        self._index = {row: i for i, row in enumerate(ref_row(decisions.column(ROUTE).to_numpy()).tolist())}
        self._cluster = decisions.column("cluster").to_pylist()
        self._size = decisions.column("size").to_pylist()
        self._keep = decisions.column("keep").to_pylist()

    def apply(self, doc: Document, row: int) -> Document | Rejection:
        at = self._index.get(row)
        if at is None:
            return dataclasses.replace(doc, dup_cluster=self._unique_cluster(doc), dup_cluster_size=represented(doc))
        annotated = dataclasses.replace(doc, dup_cluster=self._cluster[at], dup_cluster_size=self._size[at])
        return annotated if self._keep[at] else Rejection(annotated, self._reason)


# ---------------------------------------------------------------- exact documents


@dataclass
class ExactDedupConfig:
    """normalization: what two texts must share to be duplicates: "none" (bytes), "whitespace" (collapsed
    whitespace) or "ccnet" (every line CCNet-normalized, blank lines dropped). keep: which member survives
    ("smallest_id", "highest_quality", "longest"; ties by smallest id)."""

    normalization: str = "ccnet"
    keep: str = "smallest_id"

    def validate(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ConfigError(f"exact_dedup.normalization must be one of {', '.join(NORMALIZATIONS)}")
        check_keep_rule(self.keep)


class ExactDedup(GlobalStage):
    """Keep one document per group of identical (normalized) texts."""

    name = "exact_dedup"
    Config = ExactDedupConfig

    def key_builder(self) -> ExactKeys:
        return ExactKeys(self.config.normalization, self.config.keep)

    def applier(self, decisions: pa.Table | None) -> DecisionApplier:
        return DecisionApplier(decisions, "exact_dedup.duplicate", lambda doc: doc.id)

    def decide(self, exchange: Any, keys: beam.PCollection, context: StageContext) -> Decided:
        runner = _PartitionRunner(context, lambda rows: (exact_decisions(rows), {}), "decisions")
        decisions = exchange.group(context.step, keys, runner)
        return decisions, [decisions]


# ---------------------------------------------------------------- CCNet lines


@dataclass
class LineDedupConfig:
    """min_chars: a document that lost lines and has fewer characters left (stripped) is dropped
    (default 300, cc_net's `min_len`)."""

    min_chars: int = 300

    def validate(self) -> None:
        if self.min_chars < 0:
            raise ConfigError("line_dedup.min_chars must be >= 0")


class LineApplier:
    """Removes a task's repeated lines (REMOVAL_SCHEMA rows) and drops documents left too short."""

    def __init__(self, removals: pa.Table | None, min_chars: int) -> None:
        self._min_chars = min_chars
        self.metrics = {"line_dedup.lines_removed": 0, "line_dedup.bytes_removed": 0, "line_dedup.documents_changed": 0}
        if removals is None:
            self._rows = self._lines = np.empty(0, dtype=np.uint32)
        else:
            rows, lines = ref_row(removals.column(ROUTE).to_numpy()), removals.column("line").to_numpy()
            order = np.lexsort((lines, rows))  # rows arrive from several partitions, each sorted on its own
            self._rows, self._lines = rows[order], lines[order]

    def apply(self, doc: Document, row: int) -> Document | Rejection:
        start, stop = np.searchsorted(self._rows, [row, row + 1])
        if start == stop:
            return doc
        text, lines, removed_bytes = remove_lines(doc.text, self._lines[start:stop].tolist())
        self.metrics["line_dedup.lines_removed"] += lines
        self.metrics["line_dedup.bytes_removed"] += removed_bytes
        self.metrics["line_dedup.documents_changed"] += 1
        if len(text.strip()) < self._min_chars:
            return Rejection(doc, "line_dedup.too_short")
        return dataclasses.replace(doc, text=text)


class LineDedup(GlobalStage):
    """CCNet line dedup: drop every line whose normalized form occurred earlier in the corpus (in input
    order), then documents left too short."""

    name = "line_dedup"
    Config = LineDedupConfig

    def key_builder(self) -> LineKeys:
        return LineKeys()

    def applier(self, decisions: pa.Table | None) -> LineApplier:
        return LineApplier(decisions, self.config.min_chars)

    def decide(self, exchange: Any, keys: beam.PCollection, context: StageContext) -> Decided:
        runner = _PartitionRunner(context, lambda rows: (line_removals(rows), {}), "removals")
        removals = exchange.group(context.step, keys, runner)
        return removals, [removals]


# ---------------------------------------------------------------- MinHash near-duplicates


@dataclass
class MinHashDedupConfig:
    """Near-duplicate documents by MinHash LSH. Defaults: word 5-grams (datatrove, Gopher), 128
    permutations, seed 1, Jaccard threshold 0.8 (the usual choice in RefinedWeb/FineWeb-style pipelines)
    giving 9 bands x 13 rows via datasketch's optimal parameters; set `bands` and `rows` to override.

    verify: keep only candidate pairs whose estimated Jaccard reaches `threshold` (buckets of up to
    `pairwise_bucket_size` members are checked pair by pair, larger ones member-to-anchor). Without it, every
    member of a band bucket is linked to the bucket's first member (a star: same components as all pairs,
    linear in the bucket size). max_rounds: connected-components rounds on distributed runners before
    failing loudly (local runs compute components exactly in one step)."""

    shingle: str = "word"
    ngram: int = 5
    num_perm: int = 128
    seed: int = 1
    threshold: float = 0.8
    bands: int = 0
    rows: int = 0
    false_positive_weight: float = 0.5
    false_negative_weight: float = 0.5
    verify: bool = False
    pairwise_bucket_size: int = 16
    keep: str = "smallest_id"
    max_rounds: int = DEFAULT_MAX_ROUNDS

    def validate(self) -> None:
        if self.shingle not in SHINGLE_TYPES:
            raise ConfigError(f"minhash_dedup.shingle must be one of {', '.join(SHINGLE_TYPES)}")
        if not 0.0 < self.threshold <= 1.0:
            raise ConfigError("minhash_dedup.threshold must be in (0, 1]")
        if (self.bands == 0) != (self.rows == 0):
            raise ConfigError("minhash_dedup: give both bands and rows, or neither (derived from threshold)")
        if self.num_perm < 1 or self.max_rounds < 1 or self.pairwise_bucket_size < 2:
            raise ConfigError("minhash_dedup: num_perm, max_rounds >= 1 and pairwise_bucket_size >= 2")
        check_keep_rule(self.keep)
        self.hasher()

    def hasher(self) -> MinHasher:
        bands, rows = self.bands, self.rows
        if not bands:
            bands, rows = optimal_bands(
                self.threshold, self.num_perm, self.false_positive_weight, self.false_negative_weight
            )
        return MinHasher(self.shingle, self.ngram, self.num_perm, self.seed, bands, rows)


def lookup_nodes(context: StageContext, refs: np.ndarray, columns: list[str]) -> pa.Table:
    """Node rows (written by the keys phase, one row per document) of `refs`, in the order of `refs`."""
    order = np.argsort(refs, kind="stable")
    sorted_refs = refs[order]
    tasks = ref_task(sorted_refs)
    pieces = []
    for start, stop in runs(tasks):
        table = read_table(context.node_file(int(tasks[start])), columns)
        pieces.append(table.take(pa.array(ref_row(sorted_refs[start:stop]))))
    if not pieces:
        return pa.table({c: pa.array([], type=pa.null()) for c in columns})
    gathered = pa.concat_tables(pieces)
    return gathered.take(pa.array(np.argsort(order, kind="stable")))


def _signatures(nodes: pa.Table) -> np.ndarray:
    data = nodes.column("signature").combine_chunks()
    width = data.type.byte_width
    return np.frombuffer(data.buffers()[1], dtype=np.uint32, count=len(data) * width // 4, offset=data.offset * width)


def candidate_edges(context: StageContext, config: MinHashDedupConfig, rows: pa.Table) -> tuple[pa.Table, Info]:
    """Candidate edges of one partition of the band-key space (verified against signatures if asked)."""
    edges = band_edges(rows, config.pairwise_bucket_size if config.verify else 0)
    metrics = {"minhash_dedup.candidate_edges": edges.num_rows}
    if config.verify and edges.num_rows:
        ends = np.concatenate([edges.column(ROUTE).to_numpy(), edges.column("anchor").to_numpy()])
        # both ends in one lookup: each node file the partition touches is read once
        first, second = np.split(_signatures(lookup_nodes(context, ends, ["signature"])).reshape(len(ends), -1), 2)
        width = config.num_perm
        similar = jaccard_estimates(first.reshape(-1, width), second.reshape(-1, width)) >= config.threshold
        metrics["minhash_dedup.candidates_rejected"] = int((~similar).sum())
        edges = edges.filter(pa.array(similar))
    return edges, metrics


def cluster_decisions(context: StageContext, nodes: np.ndarray, labels: np.ndarray) -> pa.Table:
    """Keep/drop decisions for every document of a near-duplicate cluster, from its component label."""
    ranks = lookup_nodes(context, nodes, ["id", "rank", "represented"])
    return choose_survivors(
        [labels], ranks.column("rank").to_numpy(), ranks.column("id"), nodes, ranks.column("represented").to_numpy()
    )


def clusters(context: StageContext, edges: pa.Table) -> tuple[pa.Table, Info]:
    """Local runs: connected components of all candidate edges in one step (scipy), then survivors."""
    nodes, labels = component_labels(edges)
    return cluster_decisions(context, nodes, labels), {"minhash_dedup.clustered_documents": len(nodes)}


def _edge_tuples(info: Info) -> Iterator[tuple[int, int]]:
    if info.get("rows"):
        edges = read_table(info["path"])
        yield from zip(edges.column(ROUTE).to_pylist(), edges.column("anchor").to_pylist(), strict=True)


class _ClusterMembers(UnitRunner):
    """Distributed runs: the labelled members of one task, with their ranks, routed by cluster label."""

    def __init__(self, context: StageContext) -> None:
        super().__init__(context.output, context.step + "-members")
        self._context = context

    def unit_name(self, item: Info) -> str:
        return unit_of_task(item["task"])

    def work(self, item: Info, name: str, labelled: list[tuple[int, int]]) -> list[Info]:
        nodes = np.array([node for node, _ in labelled], dtype=np.uint64)
        labels = np.array([label for _, label in labelled], dtype=np.uint64)
        ranks = lookup_nodes(self._context, nodes, ["id", "rank", "represented"])
        table = pa.table(
            {
                ROUTE: scatter(labels),  # labels are refs, dense in the low end: spread them over the buckets
                "ref": nodes,
                "id": ranks.column("id"),
                "rank": ranks.column("rank"),
                "represented": ranks.column("represented"),
            }
        )
        return [write_routed(self.workdir.file(self.step, "members", name), table)]


def _task_members(element: tuple[int, Any]) -> tuple[Info, Any]:
    """A task's grouped (node, label) pairs as a unit for `_ClusterMembers`, in a deterministic order."""
    task, labelled = element
    return {"task": task}, lambda: sorted(labelled)


def _survivors_of_members(rows: pa.Table) -> tuple[pa.Table, dict[str, int]]:
    decisions = choose_survivors(
        [rows.column(ROUTE).to_numpy()],
        rows.column("rank").to_numpy(),
        rows.column("id"),
        rows.column("ref").to_numpy(),
        rows.column("represented").to_numpy(),
    )
    return decisions, {"minhash_dedup.clustered_documents": rows.num_rows}


class MinHashDedup(GlobalStage):
    """Keep one document per cluster of near-duplicates (MinHash LSH + connected components)."""

    name = "minhash_dedup"
    Config = MinHashDedupConfig

    def key_builder(self) -> NearDuplicateKeys:
        return NearDuplicateKeys(self.config.hasher(), self.config.keep, self.config.verify)

    def applier(self, decisions: pa.Table | None) -> DecisionApplier:
        return DecisionApplier(decisions, "minhash_dedup.near_duplicate", lambda doc: doc.dup_cluster or doc.id)

    def decide(self, exchange: Any, keys: beam.PCollection, context: StageContext) -> Decided:
        config = self.config
        edges = exchange.group(
            context.step, keys, _PartitionRunner(context, lambda rows: candidate_edges(context, config, rows), "edges")
        )
        if isinstance(exchange, FileExchange):
            step = dataclasses.replace(context, step=context.step + "-clusters")
            runner = _PartitionRunner(step, lambda edges: clusters(context, edges), "decisions")
            decisions = exchange.gather_all(step.step, edges, runner)
            return decisions, [edges, decisions]
        labelled = (
            edges
            | f"{context.step}/EdgeTuples" >> beam.FlatMap(_edge_tuples)
            | f"{context.step}/Components" >> ConnectedComponents(self.config.max_rounds)
            | f"{context.step}/ByTask" >> beam.Map(lambda nl: (int(ref_task(np.uint64(nl[0]))), nl))
            | f"{context.step}/GroupByTask" >> beam.GroupByKey()
        )
        members = labelled | f"{context.step}/Members" >> beam.ParDo(RunUnits(_ClusterMembers(context), _task_members))
        survivors = _PartitionRunner(
            dataclasses.replace(context, step=context.step + "-survivors"),
            _survivors_of_members,
            "decisions",
        )
        decisions = exchange.group(context.step + "-survivors", members, survivors)
        return decisions, [edges, decisions]
