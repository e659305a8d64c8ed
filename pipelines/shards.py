"""Prepared-data shards: Arrow IPC files plus a manifest, written atomically through Beam FileSystems.

Layout of a prepared directory (local path, gs:// or s3://)::

    OUT/manifest.json                         schema version, inputs, config, counts, bytes, tool version
    OUT/documents/part-00000-of-00003.arrow   kept documents (DOCUMENT_SCHEMA), zstd-compressed IPC file
    OUT/rejected/part-00000-of-00001.arrow    with --keep-rejected: dropped documents + `drop_reason`
    OUT/documents/en/part-00000-of-00002.arrow  with shards.split_by_language: one shard set per language

A shard is first written under a temporary name in the same folder and renamed when complete, so a
reader never sees a partial shard; the manifest is written last, so a directory without one is an
unfinished (or failed) run. Readers take the shard list from the manifest and read record batch by
record batch, so memory stays at one batch whatever the size of the output.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Iterator
from typing import Any

import pyarrow as pa
from apache_beam.io.filesystems import FileSystems

from filters.document import DOCUMENT_SCHEMA, Document
from pipelines.arrow_files import AtomicArrowWriter, exists, iter_batches, join, read_bytes, read_table, write_bytes

MANIFEST_NAME = "manifest.json"
DOCUMENTS_DIR = "documents"
REJECTED_DIR = "rejected"
SHARD_SUFFIX = ".arrow"
BATCH_ROWS = 1024


def shard_name(index: int, count: int) -> str:
    return f"part-{index:05d}-of-{count:05d}{SHARD_SUFFIX}"


def write_shard(rows: Iterable[dict[str, Any]], path: str, schema: pa.Schema, compression: str | None = "zstd") -> int:
    """Write rows to an Arrow IPC file at `path` atomically; returns the number of bytes written."""
    with AtomicArrowWriter(path, schema, compression, BATCH_ROWS) as writer:
        writer.write_rows(list(rows))
    return writer.bytes


def read_shard(path: str) -> pa.Table:
    """Read one whole shard (memory-mapped when local); streaming readers use `iter_batches`."""
    return read_table(path)


def read_manifest(directory: str) -> dict[str, Any]:
    path = join(directory, MANIFEST_NAME)
    if not exists(path):
        raise FileNotFoundError(
            f"{directory} has no {MANIFEST_NAME}: not a prepared directory, or the run did not finish"
        )
    return json.loads(read_bytes(path).decode("utf-8"))


def write_manifest(directory: str, manifest: dict[str, Any]) -> None:
    write_bytes(join(directory, MANIFEST_NAME), json.dumps(manifest, indent=2, sort_keys=True, default=str).encode())


def shard_paths(directory: str, kind: str = DOCUMENTS_DIR) -> list[str]:
    """The shards of one kind (`documents` or `rejected`, per-language sub-folders included), sorted by path:
    the manifest's list when there is one, else the finished shard files found in the folder."""
    if exists(join(directory, MANIFEST_NAME)):
        entry = read_manifest(directory).get(kind) or {}
        return sorted(join(directory, shard["path"]) for shard in entry.get("shards", []))
    pattern = join(directory, kind, f"**part-*{SHARD_SUFFIX}")
    matches = FileSystems.match([pattern])[0].metadata_list
    return sorted(m.path for m in matches if not posixpath.basename(m.path).startswith("."))


def iter_documents(directory: str, kind: str = DOCUMENTS_DIR, columns: list[str] | None = None) -> Iterator[Document]:
    """Every document of a prepared directory, record batch by record batch."""
    for batch in iter_texts(shard_paths(directory, kind), columns=columns):
        for row in batch.to_pylist():
            yield Document.from_row(row)


def iter_texts(paths: Iterable[str], columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches of shards, one at a time, for consumers (tokenizer training, stats) that want columns."""
    for path in paths:
        yield from iter_batches(path, columns)


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
