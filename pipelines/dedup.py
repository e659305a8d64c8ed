"""Corpus-level dedup stages as Beam PTransforms: exact documents, CCNet lines, MinHash near-duplicates.

Each takes a PCollection of Documents and returns {"kept", "rejected"}. Nothing is gathered in one
worker: groups form through GroupByKey (group values are streamed, twice at most, never listed), documents
meet their dedup decisions through CoGroupByKey on the document id, and near-duplicate clusters come from
the distributed connected components in `pipelines.connected_components`. Every decision is a function of
ids and content only, so any runner and any input order give the same survivors.

Kept documents carry `dup_cluster` (the id of the cluster's representative, their own id when unique) and
`dup_cluster_size` (how many input documents the survivor stands for, summed across dedup stages);
rejected ones carry the cluster they were folded into. Line dedup and near-dup dedup need unique document
ids and fail with a clear error otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics

from filters.base import ConfigError, build_config
from filters.document import Document
from filters.exact_dedup import NORMALIZATIONS, check_keep_rule, rank_key, represented, text_key
from filters.line_dedup import duplicate_occurrences, line_hashes, remove_lines
from filters.minhash import SHINGLE_TYPES, MinHasher, lean_minhash, optimal_bands
from pipelines.connected_components import DEFAULT_MAX_ROUNDS, ConnectedComponents
from pipelines.runners import METRICS_NAMESPACE
from pipelines.stages import REJECTED_TAG, reject


class DuplicateIdError(ValueError):
    """Two input documents share an id; dedup decisions are joined back to documents by id."""


def _counter(name: str) -> Metrics.DelegatingCounter:
    return Metrics.counter(METRICS_NAMESPACE, name)


def _annotated(doc: Document, cluster: str, size: int) -> Document:
    return dataclasses.replace(doc, dup_cluster=cluster, dup_cluster_size=size)


def _single_document(doc_id: str, docs: Iterable[Document]) -> Document:
    docs = list(docs)
    if len(docs) != 1:
        raise DuplicateIdError(f"document id {doc_id!r} occurs {len(docs)} times; dedup needs unique ids")
    return docs[0]


def _outputs(results: beam.pvalue.DoOutputsTuple) -> dict[str, beam.PCollection]:
    return {"kept": results.kept, "rejected": results[REJECTED_TAG]}


class _GlobalStage(beam.PTransform):
    """Shared construction of global stages: `Cls(config)` or `Cls.from_options(mapping)`."""

    name: ClassVar[str]
    Config: ClassVar[type]

    def __init__(self, config: Any = None) -> None:
        super().__init__()
        self.config = config if config is not None else self.Config()

    @classmethod
    def from_options(cls, options: Mapping[str, Any] | None) -> _GlobalStage:
        return cls(build_config(cls.Config, options, cls.name))


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


def _cluster_member(doc: Document, cluster: str, size: int, survives: bool, reason: str) -> Any:
    """A cluster member annotated with its cluster: kept if it is the representative, else rejected."""
    annotated = _annotated(doc, cluster, size)
    return annotated if survives else beam.pvalue.TaggedOutput(REJECTED_TAG, reject(annotated, reason))


def _choose_exact(key: bytes, docs: Iterable[Document], keep: str = "smallest_id") -> Iterator[Any]:
    best = min(rank_key(doc, keep) for doc in docs)
    size = sum(represented(doc) for doc in docs)
    cluster = best[-1]
    kept = False
    for doc in docs:
        survives = not kept and rank_key(doc, keep) == best
        kept = kept or survives
        yield _cluster_member(doc, cluster, size, survives, "exact_dedup.duplicate")


class ExactDedup(_GlobalStage):
    """Keep one document per group of identical (normalized) texts."""

    name = "exact_dedup"
    Config = ExactDedupConfig

    def expand(self, docs: beam.PCollection) -> dict[str, beam.PCollection]:
        normalization, keep = self.config.normalization, self.config.keep
        results = (
            docs
            | "KeyByText" >> beam.Map(lambda doc: (text_key(doc.text, normalization), doc))
            | "GroupByText" >> beam.GroupByKey()
            | "KeepOne" >> beam.FlatMapTuple(_choose_exact, keep).with_outputs(REJECTED_TAG, main="kept")
        )
        return _outputs(results)


# ---------------------------------------------------------------- CCNet lines


@dataclass
class LineDedupConfig:
    """min_chars: a document that lost lines and has fewer characters left (stripped) is dropped
    (default 300, cc_net's `min_len`)."""

    min_chars: int = 300

    def validate(self) -> None:
        if self.min_chars < 0:
            raise ConfigError("line_dedup.min_chars must be >= 0")


def _line_occurrences(doc: Document) -> Iterator[tuple[int, tuple[str, int]]]:
    for number, line_hash in line_hashes(doc.text):
        yield line_hash, (doc.id, number)


def _apply_line_removals(doc_id: str, joined: Mapping[str, Iterable[Any]], min_chars: int = 0) -> Iterator[Any]:
    doc = _single_document(doc_id, joined["doc"])
    numbers = list(joined["drop"])
    if not numbers:
        yield doc
        return
    text, lines, removed_bytes = remove_lines(doc.text, numbers)
    _counter("line_dedup.lines_removed").inc(lines)
    _counter("line_dedup.bytes_removed").inc(removed_bytes)
    _counter("line_dedup.documents_changed").inc()
    if len(text.strip()) < min_chars:
        yield beam.pvalue.TaggedOutput(REJECTED_TAG, reject(doc, "line_dedup.too_short"))
    else:
        yield dataclasses.replace(doc, text=text)


class LineDedup(_GlobalStage):
    """CCNet line dedup: drop every line whose normalized form occurred earlier in the corpus (in
    (document id, line number) order), then documents left too short."""

    name = "line_dedup"
    Config = LineDedupConfig

    def expand(self, docs: beam.PCollection) -> dict[str, beam.PCollection]:
        removals = (
            docs
            | "LineHashes" >> beam.FlatMap(_line_occurrences)
            | "GroupByLine" >> beam.GroupByKey()
            | "LaterOccurrences" >> beam.FlatMapTuple(lambda _, occurrences: duplicate_occurrences(occurrences))
        )
        keyed_docs = docs | "KeyById" >> beam.Map(lambda doc: (doc.id, doc))
        results = (
            {"doc": keyed_docs, "drop": removals}
            | "JoinRemovals" >> beam.CoGroupByKey()
            | "RemoveLines"
            >> beam.FlatMapTuple(_apply_line_removals, self.config.min_chars).with_outputs(REJECTED_TAG, main="kept")
        )
        return _outputs(results)


# ---------------------------------------------------------------- MinHash near-duplicates


@dataclass
class MinHashDedupConfig:
    """Near-duplicate documents by MinHash LSH. Defaults: word 5-grams (datatrove, Gopher), 128
    permutations, seed 1, Jaccard threshold 0.8 (the usual choice in RefinedWeb/FineWeb-style pipelines)
    giving 9 bands x 13 rows via datasketch's optimal parameters; set `bands` and `rows` to override.

    verify: keep only candidate pairs whose estimated Jaccard reaches `threshold` (buckets of up to
    `pairwise_bucket_size` members are checked pair by pair, larger ones member-to-anchor). Without it, every
    member of a band bucket is linked to the bucket's smallest id (a star: same components as all pairs,
    linear in the bucket size). max_rounds: connected-components rounds before failing loudly."""

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


class _Signatures(beam.DoFn):
    """(id, signature bytes) of every document that has at least one shingle."""

    def __init__(self, hasher: MinHasher) -> None:
        self._hasher = hasher

    def process(self, doc: Document) -> Iterator[tuple[str, bytes]]:
        sig = self._hasher.signature(doc.text)
        if sig is None:
            _counter("minhash_dedup.no_shingles").inc()
            return
        yield doc.id, sig.tobytes()


def _bucket_edges(members: Iterable[str]) -> Iterator[tuple[str, str]]:
    """Star edges of one band bucket: every member to the smallest one (no quadratic pair explosion)."""
    anchor = min(members)
    for member in members:
        if member != anchor:
            yield member, anchor


def _bucket_candidates(members: Iterable[str], pairwise_size: int) -> Iterator[tuple[str, str]]:
    """Candidate pairs to verify: all pairs of a small bucket, member-to-anchor for a large one."""
    small = []
    for member in members:
        small.append(member)
        if len(small) > pairwise_size:
            yield from _bucket_edges(members)
            return
    small.sort()
    for i, first in enumerate(small):
        for second in small[i + 1 :]:
            yield second, first


def _attach_signature(node: str, joined: Mapping[str, Iterable[Any]]) -> Iterator[tuple[str, tuple[str, bytes]]]:
    for sig in joined["sig"]:
        for other in joined["edge"]:
            yield other, (node, sig)


def _verified_edges(
    node: str, joined: Mapping[str, Iterable[Any]], threshold: float = 0.0, seed: int = 1
) -> Iterator[tuple[str, str]]:
    """Candidate edges at `node` whose datasketch (LeanMinHash) Jaccard estimate reaches the threshold."""
    for sig in joined["sig"]:
        mine = lean_minhash(_u32(sig), seed)
        for other, other_sig in joined["edge"]:
            if mine.jaccard(lean_minhash(_u32(other_sig), seed)) >= threshold:
                yield node, other
            else:
                _counter("minhash_dedup.candidates_rejected").inc()


def _cluster_members(doc_id: str, joined: Mapping[str, Iterable[Any]]) -> Iterator[tuple[str, tuple]]:
    for cluster in joined["cluster"]:
        for rank, size in joined["rank"]:
            yield cluster, (rank, doc_id, size)


def _cluster_decisions(_: str, members: Iterable[tuple]) -> Iterator[tuple[str, tuple[str, int]]]:
    best = min(rank for rank, _, _ in members)
    size = sum(size for _, _, size in members)
    for _, doc_id, _ in members:
        yield doc_id, (best[-1], size)


def _apply_cluster_decision(doc_id: str, joined: Mapping[str, Iterable[Any]]) -> Iterator[Any]:
    doc = _single_document(doc_id, joined["doc"])
    decisions = list(joined["decision"])
    if not decisions:
        yield _annotated(doc, doc.dup_cluster or doc.id, represented(doc))
        return
    cluster, size = decisions[0]
    yield _cluster_member(doc, cluster, size, cluster == doc.id, "minhash_dedup.near_duplicate")


class MinHashDedup(_GlobalStage):
    """Keep one document per cluster of near-duplicates (MinHash LSH + connected components)."""

    name = "minhash_dedup"
    Config = MinHashDedupConfig

    def expand(self, docs: beam.PCollection) -> dict[str, beam.PCollection]:
        config = self.config
        hasher = config.hasher()
        signatures = docs | "Signatures" >> beam.ParDo(_Signatures(hasher))
        buckets = (
            signatures
            | "BandKeys" >> beam.FlatMapTuple(lambda doc_id, sig: ((k, doc_id) for k in hasher.band_keys(_u32(sig))))
            | "GroupByBand" >> beam.GroupByKey()
            | "Collisions" >> beam.Filter(lambda bucket: _has_two(bucket[1]))
        )
        if config.verify:
            candidates = (
                buckets
                | "Candidates"
                >> beam.FlatMapTuple(lambda _, members: _bucket_candidates(members, config.pairwise_bucket_size))
                | "DistinctCandidates" >> beam.Distinct()
            )
            with_first = (
                {"sig": signatures, "edge": candidates | "BySecond" >> beam.Map(lambda e: (e[1], e[0]))}
                | "JoinFirst" >> beam.CoGroupByKey()
                | "AttachFirst" >> beam.FlatMapTuple(_attach_signature)
            )
            edges = (
                {"sig": signatures, "edge": with_first}
                | "JoinSecond" >> beam.CoGroupByKey()
                | "Verify" >> beam.FlatMapTuple(_verified_edges, config.threshold, config.seed)
            )
        else:
            edges = buckets | "StarEdges" >> beam.FlatMapTuple(lambda _, members: _bucket_edges(members))
        clusters = edges | "Components" >> ConnectedComponents(config.max_rounds)

        keyed_docs = docs | "KeyById" >> beam.Map(lambda doc: (doc.id, doc))
        ranks = docs | "Ranks" >> beam.Map(lambda doc: (doc.id, (rank_key(doc, config.keep), represented(doc))))
        decisions = (
            {"cluster": clusters, "rank": ranks}
            | "JoinRanks" >> beam.CoGroupByKey()
            | "ClusterMembers" >> beam.FlatMapTuple(_cluster_members)
            | "GroupClusters" >> beam.GroupByKey()
            | "Decide" >> beam.FlatMapTuple(_cluster_decisions)
        )
        results = (
            {"doc": keyed_docs, "decision": decisions}
            | "JoinDecisions" >> beam.CoGroupByKey()
            | "KeepRepresentatives"
            >> beam.FlatMapTuple(_apply_cluster_decision).with_outputs(REJECTED_TAG, main="kept")
        )
        return _outputs(results)


def _u32(sig: bytes) -> np.ndarray:
    return np.frombuffer(sig, dtype=np.uint32)


def _has_two(members: Iterable[str]) -> bool:
    iterator = iter(members)
    return next(iterator, None) is not None and next(iterator, None) is not None
