"""Arrow IPC files on any Beam FileSystem (local, gs://, s3://), written atomically and read in batches.

Every file `prepare` writes (intermediate documents, key tables, decisions, final shards) goes through
`AtomicArrowWriter`: rows stream into a temporary name in the target folder, and only a complete file is
renamed to its final name, so a killed run never leaves a file a reader would take as finished. Reading
uses `filters.prepared.open_arrow` (a memory map locally, a lazy seekable file remotely).

Routed files hold the key tables corpus-level stages exchange: each record batch is sorted by its uint64
`route` column, so the rows of a route range are a binary search away in every batch.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import shutil
import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from filters.key_tables import ROUTE
from filters.options import ConfigError
from filters.prepared import MANIFEST_NAME, is_local, join, open_arrow

HISTOGRAM_BITS = 8  # routed files record how many rows fall in each of 256 slices of the route space


def split_path(path: str) -> tuple[str, str]:
    return posixpath.split(path) if is_local(path) else tuple(path.rsplit("/", 1))  # type: ignore[return-value]


def check_writable(directory: str) -> None:
    """Fail with one line, before any work, when `directory` cannot be written: a file in its place, a
    read-only folder, a bucket without access. Creates the folder, then a probe file, then removes it."""
    probe = join(directory, f".llamaprep-probe-{uuid.uuid4().hex[:12]}")
    try:
        ensure_dir(directory)
        write_bytes(probe, b"")
        delete([probe])
    except Exception as error:  # every FileSystem raises its own kinds; all mean the same to the user here
        raise ConfigError(f"cannot write to {directory}: {error}") from None


def ensure_dir(directory: str) -> None:
    """Create a folder if missing; safe when several workers create it at once."""
    if is_local(directory):
        os.makedirs(directory, exist_ok=True)
        return
    try:
        if not FileSystems.exists(directory):
            FileSystems.mkdirs(directory)
    except OSError:  # another worker made it in between (object stores have no real folders anyway)
        if not FileSystems.exists(directory):
            raise


def exists(path: str) -> bool:
    return os.path.exists(path) if is_local(path) else FileSystems.exists(path)


def replace(tmp: str, path: str) -> None:
    """Move a finished temporary file to its final name (atomic on local disks)."""
    if is_local(path):
        os.replace(tmp, path)
        return
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def delete(paths: Sequence[str]) -> None:
    local = [p for p in paths if is_local(p)]
    for path in local:
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)
    remote = [p for p in paths if not is_local(p) and FileSystems.exists(p)]
    if remote:
        FileSystems.delete(remote)


def temporary_name(path: str) -> str:
    directory, name = split_path(path)
    return join(directory, f".{name}.tmp-{uuid.uuid4().hex[:12]}")


def write_bytes(path: str, data: bytes | pa.Buffer) -> None:
    """Write a small file atomically (temporary name, then rename)."""
    directory, _ = split_path(path)
    ensure_dir(directory)
    tmp = temporary_name(path)
    with create(tmp) as f:
        f.write(data if is_local(path) or isinstance(data, bytes) else data.to_pybytes())
    replace(tmp, path)


def read_bytes(path: str) -> bytes:
    if is_local(path):
        with open(path, "rb") as f:
            return f.read()
    with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as f:
        return f.read()


def create(path: str) -> Any:
    """A binary file to write, local or remote (Beam FileSystems)."""
    if is_local(path):
        return open(path, "wb")
    return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)


class _HashingSink:
    """A writable file that passes bytes on and keeps their sha256, so a file's checksum costs no second
    read."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw
        self._digest = hashlib.sha256()
        self._position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        view = memoryview(data)
        self._digest.update(view)
        self._position += view.nbytes
        self._raw.write(view)
        return view.nbytes

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        self._raw.flush()

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def hexdigest(self) -> str:
        return self._digest.hexdigest()


class AtomicArrowWriter:
    """Stream record batches into an Arrow IPC file that appears under `path` only when complete.

    `rows` rebatches what it is given into batches of exactly `batch_rows` rows (the last may be shorter),
    so the file's bytes depend on its rows only, never on how they arrived. After `close`, `bytes` and
    `sha256` describe the file."""

    def __init__(
        self, path: str, schema: pa.Schema, compression: str | None = None, batch_rows: int | None = 1024
    ) -> None:
        self.path = path
        self.schema = schema
        self.rows = 0
        self.bytes = 0
        self.text_bytes = 0
        self._has_text = "text" in schema.names
        self._batch_rows = batch_rows
        self._pending: list[pa.Table] = []
        self._pending_rows = 0
        directory, _ = split_path(path)
        ensure_dir(directory)
        self._tmp = temporary_name(path)
        self._raw = create(self._tmp)
        self._hashing = _HashingSink(self._raw)
        self._sink = pa.PythonFile(self._hashing, mode="w")
        self.sha256 = ""
        self._writer = pa.ipc.new_file(self._sink, schema, options=pa.ipc.IpcWriteOptions(compression=compression))

    def write_rows(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            self.write_table(pa.Table.from_pylist(rows, schema=self.schema))

    def write_table(self, table: pa.Table) -> None:
        """Append rows (rebatched to `batch_rows`; written as they come when `batch_rows` is None)."""
        if table.num_rows == 0:
            return
        if self._has_text:
            self.text_bytes += int(pc.sum(pc.binary_length(table.column("text"))).as_py() or 0)
        if self._batch_rows is None:
            self._writer.write_table(table)
            self.rows += table.num_rows
            return
        self._pending.append(table)
        self._pending_rows += table.num_rows
        while self._pending_rows >= self._batch_rows:
            self._flush(self._batch_rows)

    def _flush(self, count: int) -> None:
        pending = pa.concat_tables(self._pending).combine_chunks() if len(self._pending) > 1 else self._pending[0]
        head, rest = pending.slice(0, count), pending.slice(count)
        for batch in head.combine_chunks().to_batches(max_chunksize=count):
            self._writer.write_batch(batch)
        self.rows += head.num_rows
        self._pending = [rest] if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def close(self) -> int:
        """Finish the file and give it its final name; returns its size in bytes."""
        if self._pending_rows:
            self._flush(self._pending_rows)
        self._writer.close()
        self._sink.close()
        self._raw.close()
        self.bytes = self._hashing.tell()  # every byte went through the hashing sink: no listing of the file
        self.sha256 = self._hashing.hexdigest()
        replace(self._tmp, self.path)
        return self.bytes

    def abort(self) -> None:
        try:
            self._writer.close()
            self._raw.close()
        finally:
            delete([self._tmp])

    def __enter__(self) -> AtomicArrowWriter:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_table(path: str, table: pa.Table, compression: str | None = None) -> int:
    with AtomicArrowWriter(path, table.schema, compression, batch_rows=None) as writer:
        writer.write_table(table)
    return writer.bytes


def route_histogram(routes: np.ndarray) -> np.ndarray:
    """Rows per slice of the route space (its top HISTOGRAM_BITS bits)."""
    top = (routes >> np.uint64(64 - HISTOGRAM_BITS)).astype(np.int64)
    return np.bincount(top, minlength=1 << HISTOGRAM_BITS)


class RoutedWriter:
    """A key file written as sorted runs: each `write_run` sorts its rows by `route` and appends them as one
    record batch, so a task never holds more than one run of keys in memory. Readers binary-search every
    batch (`read_route_range`)."""

    def __init__(self, path: str, schema: pa.Schema) -> None:
        self._writer = AtomicArrowWriter(path, schema, None, batch_rows=None)
        self._histogram = np.zeros(1 << HISTOGRAM_BITS, dtype=np.int64)
        self.data_bytes = 0

    def write_run(self, table: pa.Table) -> None:
        if table.num_rows == 0:
            return
        routes = table.column(ROUTE).to_numpy()
        order = np.argsort(routes, kind="stable")
        self._writer.write_table(table.take(pa.array(order)).combine_chunks())
        self._histogram += route_histogram(routes)
        self.data_bytes += table.nbytes

    def close(self) -> dict[str, Any]:
        """Finish the file; its description for the exchange."""
        size = self._writer.close()
        return {
            "path": self._writer.path,
            "rows": self._writer.rows,
            "bytes": size,
            "data_bytes": self.data_bytes,
            "histogram": self._histogram.tolist(),
        }

    def abort(self) -> None:
        self._writer.abort()


def write_routed(path: str, table: pa.Table) -> dict[str, Any]:
    """Write a key table as one sorted run and describe it for the exchange."""
    writer = RoutedWriter(path, table.schema)
    writer.write_run(table)
    return writer.close()


def read_route_range(path: str, low: int, high: int | None) -> pa.Table:
    """The rows of a routed file with low <= route < high (high None: no upper bound)."""
    reader = open_arrow(path)
    pieces = []
    for index in range(reader.num_record_batches):
        batch = reader.get_batch(index)
        routes = batch.column(ROUTE).to_numpy()
        start = int(np.searchsorted(routes, np.uint64(low), side="left"))
        stop = len(routes) if high is None else int(np.searchsorted(routes, np.uint64(high), side="left"))
        if stop > start:
            pieces.append(pa.Table.from_batches([batch.slice(start, stop - start)]))
    if not pieces:
        return reader.schema.empty_table()
    return pa.concat_tables(pieces)


def write_manifest(directory: str, manifest: dict[str, Any]) -> None:
    """A prepared or token directory's manifest.json, written atomically (and last: see filters.prepared)."""
    write_bytes(join(directory, MANIFEST_NAME), json.dumps(manifest, indent=2, sort_keys=True, default=str).encode())
