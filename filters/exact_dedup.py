"""Exact document dedup, the engine-free half: each document's key, and the decisions for one partition
of the key space.

The key is a 128-bit xxh3 hash of the text after a chosen normalization, so re-crawls that differ only in
whitespace, case, digits or punctuation (with "ccnet") fall into one group. A document enters dedup as one
key row (its hash, its row in the task's file, and what the keep rule ranks it by), never as its text;
rows sharing a hash form a group, and `filters.survivors` picks the group's survivor.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import xxhash

from filters.ccnet_normalize import normalize_for_dedup
from filters.document import Document
from filters.key_tables import ROUTE, ColumnBuffer, group_starts, table_refs
from filters.options import ConfigError
from filters.survivors import choose_survivors, rank_value, represented

NORMALIZATIONS: dict[str, Callable[[str], str]] = {
    "none": lambda text: text,
    "whitespace": lambda text: " ".join(text.split()),
    "ccnet": normalize_for_dedup,
}

KEY_SCHEMA = pa.schema(
    [
        pa.field(ROUTE, pa.uint64()),  # high half of the hash: partitions the key space
        pa.field("key_lo", pa.uint64()),
        pa.field("row", pa.uint32()),
        pa.field("rank", pa.float64()),
        pa.field("id", pa.string()),
        pa.field("represented", pa.int32()),
    ]
)


def text_key(text: str, normalization: str = "ccnet") -> bytes:
    """The exact-dedup group key of a text: 16 bytes of xxh3_128 over its normalized UTF-8 form."""
    try:
        normalize = NORMALIZATIONS[normalization]
    except KeyError:
        raise ConfigError(f"unknown normalization {normalization!r}; known: {', '.join(NORMALIZATIONS)}") from None
    return xxhash.xxh3_128_digest(normalize(text).encode("utf-8", errors="surrogatepass"))


class ExactKeys:
    """Collects the key rows of one task's documents."""

    def __init__(self, normalization: str, keep: str) -> None:
        self._normalization = normalization
        self._keep = keep
        self.keys = ColumnBuffer(KEY_SCHEMA)
        self.nodes = None
        self.metrics: dict[str, int] = {}  # nothing to report beyond the keys

    def add(self, doc: Document, row: int) -> None:
        key = text_key(doc.text, self._normalization)
        hi, lo = int.from_bytes(key[:8], "big"), int.from_bytes(key[8:], "big")
        self.keys.append(hi, lo, row, rank_value(doc, self._keep), doc.id, represented(doc))


def exact_decisions(keys: pa.Table) -> pa.Table:
    """Decisions for every member of a group of two or more equal keys, from key rows carrying a `task`
    column (all rows of a key must be present: partitions split the key space, not groups)."""
    hi, lo = keys.column(ROUTE).to_numpy(), keys.column("key_lo").to_numpy()
    order = np.lexsort((lo, hi))
    starts = group_starts(hi[order], lo[order])
    sizes = np.diff(np.append(starts, len(order)))
    in_group = np.repeat(sizes >= 2, sizes)
    members = keys.take(pa.array(order[in_group]))
    return choose_survivors(
        [members.column(ROUTE).to_numpy(), members.column("key_lo").to_numpy()],
        members.column("rank").to_numpy(),
        members.column("id"),
        table_refs(members),
        members.column("represented").to_numpy(),
    )
