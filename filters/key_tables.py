"""The small tables that corpus-level stages exchange instead of documents.

A document enters a corpus-level decision as a reference (`ref = task << 32 | row`: the input task it
belongs to and its row in that task's file) plus a few key columns. Every exchanged table has a uint64
`route` column: the key hash for key rows (so a partition of the hash space holds whole groups), the ref
for decisions travelling back to their task. Builders collect columns in compact `array`s, so a task's
key state costs bytes per row, not Python objects.
"""

from __future__ import annotations

from array import array
from collections.abc import Sequence

import numpy as np
import pyarrow as pa

ROUTE = "route"
TASK = "task"


def make_ref(task: np.ndarray | int, row: np.ndarray | int) -> np.ndarray:
    """References (task << 32 | row) as uint64."""
    return (np.asarray(task, dtype=np.uint64) << np.uint64(32)) | np.asarray(row, dtype=np.uint64)


def ref_task(ref: np.ndarray) -> np.ndarray:
    return (np.asarray(ref, dtype=np.uint64) >> np.uint64(32)).astype(np.uint32)


def ref_row(ref: np.ndarray) -> np.ndarray:
    return (np.asarray(ref, dtype=np.uint64) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def table_refs(table: pa.Table) -> np.ndarray:
    """The refs of key rows that carry `task` (added when they are read back) and `row` columns."""
    return make_ref(table.column(TASK).to_numpy(), table.column("row").to_numpy())


def group_starts(*keys: np.ndarray) -> np.ndarray:
    """Start positions of the runs of equal keys in sorted arrays (0 included when not empty)."""
    n = len(keys[0])
    if n == 0:
        return np.empty(0, dtype=np.int64)
    changed = np.zeros(n, dtype=bool)
    changed[0] = True
    for key in keys:
        changed[1:] |= key[1:] != key[:-1]
    return np.flatnonzero(changed)


def runs(keys: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of equal values in a sorted array."""
    starts = group_starts(keys)
    return list(zip(starts.tolist(), [*starts[1:].tolist(), len(keys)], strict=True))


_TYPECODES = {pa.uint64(): "Q", pa.uint32(): "I", pa.int32(): "i", pa.float64(): "d"}


class ColumnBuffer:
    """Rows of one schema kept column by column in compact `array`s (strings and bytes in lists), handed over
    as an Arrow table by `take`, which starts afresh: a caller writes a task's keys as runs of bounded size."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self._row_bytes = sum(field.type.bit_width // 8 for field in schema if field.type in _TYPECODES)
        self._reset()

    def _reset(self) -> None:
        self._columns: list[array | list] = [
            array(_TYPECODES[field.type]) if field.type in _TYPECODES else [] for field in self.schema
        ]
        self.rows = 0
        self.nbytes = 0

    def append(self, *values: object) -> None:
        for column, value in zip(self._columns, values, strict=True):
            column.append(value)
            if isinstance(value, str | bytes):
                self.nbytes += len(value)
        self.rows += 1
        self.nbytes += self._row_bytes

    def extend(self, *columns: Sequence[object]) -> None:
        """Append several rows given column-wise (numeric columns only, or strings of equal count)."""
        for column, values in zip(self._columns, columns, strict=True):
            column.extend(values)
        added = len(columns[0])
        self.rows += added
        self.nbytes += added * self._row_bytes

    def take(self) -> pa.Table:
        arrays = []
        for column, field in zip(self._columns, self.schema, strict=True):
            if isinstance(column, array):
                column = np.frombuffer(column, dtype=np.dtype(column.typecode)) if len(column) else []
            arrays.append(pa.array(column, type=field.type))
        table = pa.table(arrays, schema=self.schema)
        self._reset()
        return table


def scatter(values: np.ndarray) -> np.ndarray:
    """A bijective mix of uint64 values (splitmix64's finalizer): routes refs, which cluster in the low end
    of the 64-bit space, uniformly over it without ever merging two of them."""
    with np.errstate(over="ignore"):
        z = np.asarray(values, dtype=np.uint64).copy()
        z ^= z >> np.uint64(30)
        z *= np.uint64(0xBF58476D1CE4E5B9)
        z ^= z >> np.uint64(27)
        z *= np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    return z
