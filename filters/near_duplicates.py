"""MinHash LSH near-duplicate dedup, the engine-free half: band key rows, candidate edges of one partition
of the band-key space, their optional verification, and connected components of the edges.

Each document with at least one shingle contributes one key row per band (a 64-bit hash of the band's
signature values, seeded by the band number, and its row: 12 bytes), and one row-aligned node row (its id,
rank under the keep rule, how many documents it stands for, and with `verify` its signature). Documents
sharing a band key are candidates. Without verification every member of a bucket is linked to the
bucket's first member (a star: the same components as all pairs, linear in the bucket size); with it,
small buckets give all pairs and every pair is kept only when the signatures' Jaccard estimate reaches
the threshold (datasketch's `LeanMinHash.jaccard`: the share of equal values). Components come from
scipy's `connected_components` (compiled code, linear in the edges), labelled by their smallest ref.
"""

from __future__ import annotations

import itertools
from collections import Counter

import numpy as np
import pyarrow as pa
import xxhash
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from filters.document import Document
from filters.key_tables import ROUTE, ColumnBuffer, group_starts, table_refs
from filters.minhash import MinHasher
from filters.survivors import rank_value, represented

KEY_SCHEMA = pa.schema([pa.field(ROUTE, pa.uint64()), pa.field("row", pa.uint32())])
EDGE_SCHEMA = pa.schema([pa.field(ROUTE, pa.uint64()), pa.field("anchor", pa.uint64())])  # ref pairs


def node_schema(signature_bytes: int | None) -> pa.Schema:
    fields = [pa.field("id", pa.string()), pa.field("rank", pa.float64()), pa.field("represented", pa.int32())]
    if signature_bytes:
        fields.append(pa.field("signature", pa.binary(signature_bytes)))
    return pa.schema(fields)


def band_hashes(hasher: MinHasher, sig: np.ndarray) -> list[int]:
    """One 64-bit key per band: xxh3 of the band's signature values, seeded by the band number."""
    return [xxhash.xxh3_64_intdigest(key, seed=band) for band, key in enumerate(hasher.band_keys(sig))]


class NearDuplicateKeys:
    """Collects the band key rows and the row-aligned node rows of one task's documents."""

    def __init__(self, hasher: MinHasher, keep: str, verify: bool) -> None:
        self._hasher = hasher
        self._keep = keep
        self._verify = verify
        self.keys = ColumnBuffer(KEY_SCHEMA)
        self.nodes = ColumnBuffer(node_schema(4 * hasher.num_perm if verify else None))
        self.metrics: Counter = Counter()  # reported with the task's counts, like the appliers' metrics

    def add(self, doc: Document, row: int) -> None:
        sig = self._hasher.signature(doc.text)
        signature = (None if sig is None else sig.tobytes(),) if self._verify else ()
        self.nodes.append(doc.id, rank_value(doc, self._keep), represented(doc), *signature)
        if sig is None:
            self.metrics["minhash_dedup.no_shingles"] += 1
            return
        bands = band_hashes(self._hasher, sig)
        self.keys.extend(bands, [row] * len(bands))


def _pairs_of_small_groups(refs: np.ndarray, starts: np.ndarray, sizes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All (later, earlier) pairs inside each group, vectorized per group size."""
    later, earlier = [], []
    for size in np.unique(sizes):
        combos = np.array(list(itertools.combinations(range(size), 2)), dtype=np.int64)
        members = (
            refs[starts[sizes == size][:, None] + combos[:, 1]],
            refs[starts[sizes == size][:, None] + combos[:, 0]],
        )
        later.append(members[0].ravel())
        earlier.append(members[1].ravel())
    if not later:
        return np.empty(0, dtype=np.uint64), np.empty(0, dtype=np.uint64)
    return np.concatenate(later), np.concatenate(earlier)


def band_edges(keys: pa.Table, pairwise_size: int = 0) -> pa.Table:
    """Candidate edges (ref, anchor ref) of the buckets of two or more members, from band key rows with a
    `task` column: star edges to each bucket's smallest ref, or with `pairwise_size` every pair of the
    buckets of at most that many members (star edges for larger ones). Distinct edges, sorted."""
    refs = table_refs(keys)
    order = np.lexsort((refs, keys.column(ROUTE).to_numpy()))
    refs, routes = refs[order], keys.column(ROUTE).to_numpy()[order]
    starts = group_starts(routes)
    sizes = np.diff(np.append(starts, len(refs)))
    star = sizes > pairwise_size if pairwise_size else sizes >= 2
    small = (sizes >= 2) & ~star
    anchors = np.repeat(refs[starts], sizes)
    in_star = np.repeat(star, sizes) & (refs != anchors)
    later, earlier = _pairs_of_small_groups(refs, starts[small], sizes[small])
    edges = np.unique(
        np.stack([np.concatenate([refs[in_star], later]), np.concatenate([anchors[in_star], earlier])], axis=1), axis=0
    )
    return pa.table({ROUTE: edges[:, 0], "anchor": edges[:, 1]}, schema=EDGE_SCHEMA)


def jaccard_estimates(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Row-wise share of equal signature values (datasketch's LeanMinHash.jaccard for each pair)."""
    return np.mean(first == second, axis=1) if len(first) else np.empty(0)


def component_labels(edges: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(node refs, label refs) for every node of an edge; a component's label is its smallest ref."""
    ends = np.concatenate([edges.column(ROUTE).to_numpy(), edges.column("anchor").to_numpy()])
    nodes, index = np.unique(ends, return_inverse=True)
    half = len(edges)
    graph = coo_matrix((np.ones(half, dtype=np.int8), (index[:half], index[half:])), shape=(len(nodes), len(nodes)))
    count, component = connected_components(graph, directed=False)
    smallest = np.full(count, np.iinfo(np.uint64).max, dtype=np.uint64)
    np.minimum.at(smallest, component, nodes)
    return nodes, smallest[component]
