"""Which member of a duplicate group survives, shared by exact and near-duplicate dedup.

Dedup decisions are made on small key tables, never on documents, so a document enters them as a
reference (`ref = task << 32 | row`: its input task and its row in that task's file) plus the few values
the keep rule needs. The rule is a total order (rank, id, ref), so the survivor never depends on the order
rows arrive in:

- smallest_id: the lexicographically smallest id;
- highest_quality: the largest `quality_score` (documents without one rank last);
- longest: the longest text.

Ties fall back to the smallest id, then to the earliest reference (two documents may share an id).
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from filters.document import Document
from filters.key_tables import ROUTE, group_starts
from filters.options import ConfigError

KEEP_RULES = ("smallest_id", "highest_quality", "longest")

DECISION_SCHEMA = pa.schema(
    [
        pa.field(ROUTE, pa.uint64()),  # the member's ref: decisions travel back to their task by it
        pa.field("cluster", pa.string()),  # id of the group's survivor
        pa.field("size", pa.int32()),  # input documents the group stands for
        pa.field("keep", pa.bool_()),
    ]
)


def check_keep_rule(keep: str) -> None:
    if keep not in KEEP_RULES:
        raise ConfigError(f"unknown keep rule {keep!r}; known: {', '.join(KEEP_RULES)}")


def rank_value(doc: Document, keep: str) -> float:
    """The numeric part of a document's rank under `keep` (smaller survives; the id breaks ties)."""
    if keep == "smallest_id":
        return 0.0
    if keep == "highest_quality":
        score = doc.quality_score
        return math.inf if score is None or math.isnan(score) else -float(score)
    if keep == "longest":
        return -float(len(doc.text))
    check_keep_rule(keep)
    raise AssertionError("unreachable")


def represented(doc: Document) -> int:
    """How many input documents `doc` already stands for (an earlier dedup stage may have merged some)."""
    return doc.dup_cluster_size or 1


def choose_survivors(
    groups: list[np.ndarray], rank: np.ndarray, ids: pa.Array, refs: np.ndarray, represented: np.ndarray
) -> pa.Table:
    """One decision per member of every group (rows sharing all `groups` keys): the survivor keeps, the
    others are dropped; all carry the survivor's id as `cluster` and the group's summed `represented` as
    `size`. Returns DECISION_SCHEMA rows sorted by ref."""
    names = [f"g{i}" for i in range(len(groups))]
    table = pa.table(
        {**dict(zip(names, groups, strict=True)), "rank": rank, "id": ids, "ref": refs, "represented": represented}
    )
    order = pc.sort_indices(table, sort_keys=[(name, "ascending") for name in [*names, "rank", "id", "ref"]])
    table = table.take(order)
    starts = group_starts(*(table.column(name).to_numpy() for name in names))
    keep = np.zeros(table.num_rows, dtype=bool)
    keep[starts] = True
    member_group = np.cumsum(keep) - 1
    counts = table.column("represented").to_numpy().astype(np.int64)
    sizes = np.add.reduceat(counts, starts) if len(starts) else counts
    decisions = pa.table(
        {
            ROUTE: table.column("ref"),
            "cluster": table.column("id").take(pa.array(starts[member_group])),
            "size": pa.array(sizes[member_group].astype(np.int32)),
            "keep": pa.array(keep),
        },
        schema=DECISION_SCHEMA,
    )
    return decisions.take(pc.sort_indices(decisions, sort_keys=[(ROUTE, "ascending")]))
