"""CCNet line dedup, the engine-free half: line key rows, which occurrence of a line survives, and how a
document is rebuilt without its removed lines.

A line is identified by the 64-bit xxh3 hash of its CCNet normalization (cc_net hashes with sha1 truncated
to 8 bytes; xxh3 is as collision-resistant at 64 bits and much faster). Of all occurrences of a line in
the corpus, the first in input order survives: the smallest (task, row, line number), where tasks are the
input files sorted by path and rows keep each file's record order. That is cc_net's rule (the first
occurrence in processing order) made explicit, so any runner and any order of the inputs on the command
line give the same result. Blank lines and lines that normalize to nothing (pure punctuation) are never
removed. A key row is 16 bytes (hash, row, line number), whatever the line's length.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import pyarrow as pa
import xxhash

from filters.ccnet_normalize import normalize_line_for_dedup
from filters.document import Document
from filters.key_tables import ROUTE, TASK, ColumnBuffer, group_starts, make_ref

KEY_SCHEMA = pa.schema([pa.field(ROUTE, pa.uint64()), pa.field("row", pa.uint32()), pa.field("line", pa.uint32())])
REMOVAL_SCHEMA = pa.schema([pa.field(ROUTE, pa.uint64()), pa.field("line", pa.uint32())])


def line_hashes(text: str) -> Iterator[tuple[int, int]]:
    """(line number, hash) for every line with a non-empty normalization."""
    for number, line in enumerate(text.split("\n")):
        normalized = normalize_line_for_dedup(line)
        if normalized:
            yield number, xxhash.xxh3_64_intdigest(normalized.encode("utf-8", errors="surrogatepass"))


class LineKeys:
    """Collects the line key rows of one task's documents."""

    def __init__(self) -> None:
        self.keys = ColumnBuffer(KEY_SCHEMA)
        self.nodes = None
        self.metrics: dict[str, int] = {}  # nothing to report beyond the keys

    def add(self, doc: Document, row: int) -> None:
        numbers, hashes = [], []
        for number, line_hash in line_hashes(doc.text):
            numbers.append(number)
            hashes.append(line_hash)
        self.keys.extend(hashes, [row] * len(numbers), numbers)


def line_removals(keys: pa.Table) -> pa.Table:
    """Every occurrence of a line but the first in (task, row, line) order, as (ref, line) rows sorted by
    ref, from key rows carrying a `task` column (all occurrences of a hash must be present)."""
    hashes, tasks = keys.column(ROUTE).to_numpy(), keys.column(TASK).to_numpy()
    rows, lines = keys.column("row").to_numpy(), keys.column("line").to_numpy()
    order = np.lexsort((lines, rows, tasks, hashes))
    repeated = np.ones(len(order), dtype=bool)
    repeated[group_starts(hashes[order])] = False
    removed = order[repeated]
    refs = make_ref(tasks[removed], rows[removed])
    by_ref = np.lexsort((lines[removed], refs))
    return pa.table({ROUTE: refs[by_ref], "line": lines[removed][by_ref]}, schema=REMOVAL_SCHEMA)


def remove_lines(text: str, numbers: Iterable[int]) -> tuple[str, int, int]:
    """The text without the given line numbers; returns (new text, lines removed, UTF-8 bytes removed)."""
    drop = set(numbers)
    kept: list[str] = []
    removed_bytes = 0
    for number, line in enumerate(text.split("\n")):
        if number in drop:
            removed_bytes += len(line.encode("utf-8", errors="surrogatepass")) + 1
        else:
            kept.append(line)
    return "\n".join(kept), len(drop), removed_bytes
