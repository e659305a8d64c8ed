"""Prepared-data shards: Arrow IPC files plus a manifest, written atomically through Beam FileSystems.

Layout of a prepared directory (local path, gs:// or s3://)::

    OUT/manifest.json                         schema version, inputs, config, counts, bytes, tool version
    OUT/documents/part-00000-of-00003.arrow   kept documents (DOCUMENT_SCHEMA), zstd-compressed IPC file
    OUT/rejected/part-00000-of-00001.arrow    with --keep-rejected: dropped documents + `drop_reason`
    OUT/documents/en/part-00000-of-00002.arrow  with shards.split_by_language: one shard set per language

A shard is first written under a temporary name in the same folder and renamed when complete, so a
reader never sees a partial shard; the manifest is written last, so a directory without one is an
unfinished (or failed) run.
"""

from __future__ import annotations

import json
import posixpath
import uuid
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from filters.document import DOCUMENT_SCHEMA, Document

MANIFEST_NAME = "manifest.json"
DOCUMENTS_DIR = "documents"
REJECTED_DIR = "rejected"
SHARD_SUFFIX = ".arrow"
BATCH_ROWS = 1024


def shard_name(index: int, count: int) -> str:
    return f"part-{index:05d}-of-{count:05d}{SHARD_SUFFIX}"


def join(*parts: str) -> str:
    """Join path parts for local paths and URLs (gs://, s3://) alike."""
    return FileSystems.join(*parts) if "://" in parts[0] else posixpath.join(*parts)


def write_shard(rows: Iterable[dict[str, Any]], path: str, schema: pa.Schema, compression: str | None = "zstd") -> int:
    """Write rows to an Arrow IPC file at `path` atomically; returns the number of bytes written."""
    directory, name = posixpath.split(path) if "://" not in path else path.rsplit("/", 1)
    tmp = join(directory, f".{name}.tmp-{uuid.uuid4().hex}")
    if not FileSystems.exists(directory):
        FileSystems.mkdirs(directory)
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with FileSystems.create(tmp) as raw:
        sink = pa.PythonFile(raw, mode="w")
        with pa.ipc.new_file(sink, schema, options=options) as writer:
            batch: list[dict[str, Any]] = []
            for row in rows:
                batch.append(row)
                if len(batch) >= BATCH_ROWS:
                    writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
                    batch = []
            if batch:
                writer.write_batch(pa.RecordBatch.from_pylist(batch, schema=schema))
    size = FileSystems.match([tmp])[0].metadata_list[0].size_in_bytes
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])
    return size


def read_shard(path: str) -> pa.Table:
    """Read one shard (memory-mapped when local)."""
    if "://" not in path:
        return pa.ipc.open_file(pa.memory_map(path, "r")).read_all()
    with FileSystems.open(path) as f:
        return pa.ipc.open_file(pa.BufferReader(f.read())).read_all()


def read_manifest(directory: str) -> dict[str, Any]:
    path = join(directory, MANIFEST_NAME)
    if not FileSystems.exists(path):
        raise FileNotFoundError(
            f"{directory} has no {MANIFEST_NAME}: not a prepared directory, or the run did not finish"
        )
    with FileSystems.open(path) as f:
        return json.loads(f.read().decode("utf-8"))


def write_manifest(directory: str, manifest: dict[str, Any]) -> None:
    path = join(directory, MANIFEST_NAME)
    tmp = join(directory, f".{MANIFEST_NAME}.tmp-{uuid.uuid4().hex}")
    with FileSystems.create(tmp) as f:
        f.write(json.dumps(manifest, indent=2, sort_keys=True, default=str).encode("utf-8"))
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


def shard_paths(directory: str, kind: str = DOCUMENTS_DIR) -> list[str]:
    """The finished shards of one kind (`documents` or `rejected`, including per-language sub-folders
    when the output was split), sorted by path."""
    pattern = join(directory, kind, f"**part-*{SHARD_SUFFIX}")
    matches = FileSystems.match([pattern])[0].metadata_list
    return sorted(m.path for m in matches if not posixpath.basename(m.path).startswith("."))


def iter_documents(directory: str, kind: str = DOCUMENTS_DIR, columns: list[str] | None = None) -> Iterator[Document]:
    """Every document of a prepared directory, shard by shard."""
    for path in shard_paths(directory, kind):
        table = read_shard(path)
        if columns is not None:
            table = table.select(columns)
        for batch in table.to_batches():
            for row in batch.to_pylist():
                yield Document.from_row(row)


def iter_texts(paths: Iterable[str], batch_rows: int = BATCH_ROWS) -> Iterator[pa.RecordBatch]:
    """Record batches of shards, for consumers (tokenizer training, stats) that want columns, not objects."""
    for path in paths:
        yield from read_shard(path).to_batches(max_chunksize=batch_rows)


__all__ = [
    "DOCUMENTS_DIR",
    "DOCUMENT_SCHEMA",
    "MANIFEST_NAME",
    "REJECTED_DIR",
    "iter_documents",
    "iter_texts",
    "read_manifest",
    "read_shard",
    "shard_name",
    "shard_paths",
    "write_manifest",
    "write_shard",
]
