"""Reading a prepared directory (the output of `llamaprep prepare`), Beam-free, next to the document schema
it holds, the way `tokenizer/token_shards.py` serves `model/`.

    OUT/manifest.json                           written last: the shard list, counts, config
    OUT/documents/part-00000-of-00003.arrow     kept documents (DOCUMENT_SCHEMA), zstd Arrow IPC files
    OUT/documents/en/part-00000-of-00002.arrow  with --split-by-language: one shard set per language
    OUT/rejected/part-00000-of-00001.arrow      with --keep-rejected: dropped documents + `drop_reason`

Readers take the shard list from the manifest (a directory without one is an unfinished run) and read one
record batch at a time: local files through a memory map, remote ones (gs://, s3://) through pyarrow's
own filesystems, lazily, so neither the whole output nor a whole remote file is ever held in memory.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import pyarrow as pa

from filters.document import Document

MANIFEST_NAME = "manifest.json"
DOCUMENTS_DIR = "documents"
REJECTED_DIR = "rejected"
SHARD_SUFFIX = ".arrow"
BATCH_ROWS = 1024  # rows per record batch in every shard `prepare` writes


def is_local(path: str) -> bool:
    return "://" not in path


def join(*parts: str) -> str:
    """Join path parts for local paths and URLs (gs://, s3://) alike."""
    return posixpath.join(*parts)


def shard_name(index: int, count: int) -> str:
    return f"part-{index:05d}-of-{count:05d}{SHARD_SUFFIX}"


def _open_input(path: str) -> Any:
    if is_local(path):
        return pa.memory_map(path, "r")
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(path)
    return filesystem.open_input_file(inner)


def open_arrow(path: str) -> pa.ipc.RecordBatchFileReader:
    """A reader over an Arrow IPC file: memory-mapped when local, seekable and lazy when remote."""
    return pa.ipc.open_file(_open_input(path))


def iter_batches(path: str, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The record batches of a file, one at a time."""
    reader = open_arrow(path)
    for index in range(reader.num_record_batches):
        batch = reader.get_batch(index)
        yield batch.select(list(columns)) if columns is not None else batch


def read_table(path: str, columns: Sequence[str] | None = None) -> pa.Table:
    """A whole file (zero-copy when local and uncompressed; for small files and tests)."""
    table = open_arrow(path).read_all()
    return table.select(list(columns)) if columns is not None else table


def read_json(path: str) -> Any:
    with _open_input(path) as f:
        return json.loads(f.read().decode("utf-8"))


def exists(path: str) -> bool:
    if is_local(path):
        return os.path.exists(path)
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(path)
    return filesystem.get_file_info(inner).type != fs.FileType.NotFound


def read_manifest(directory: str) -> dict[str, Any]:
    path = join(directory, MANIFEST_NAME)
    if not exists(path):
        raise FileNotFoundError(
            f"{directory} has no {MANIFEST_NAME}: not a prepared directory, or the run did not finish"
        )
    return read_json(path)


def file_size(path: str) -> int | None:
    """The size of a file, or None when there is none."""
    if is_local(path):
        return os.path.getsize(path) if os.path.isfile(path) else None
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(path)
    info = filesystem.get_file_info(inner)
    return info.size if info.type == fs.FileType.File else None


def shard_paths(directory: str, kind: str = DOCUMENTS_DIR) -> list[str]:
    """The shards of one kind (`documents` or `rejected`, per-language sub-folders included) that the
    manifest lists, sorted by path; each must be there with the size the manifest records."""
    entry = read_manifest(directory).get(kind) or {}
    return sorted(
        listed_file(directory, shard, "prepare the data again or restore the file") for shard in entry.get("shards", [])
    )


def listed_file(directory: str, entry: dict[str, Any], remedy: str) -> str:
    """The path of a file a manifest lists (prepared or token shards); it must be there with the size the
    manifest records, or the reader stops with one line naming it and `remedy`."""
    path = join(directory, entry["path"])
    size = file_size(path)
    if size is None or ("bytes" in entry and size != entry["bytes"]):
        found = "missing" if size is None else f"{size:,} bytes"
        expected = entry.get("bytes", 0)
        raise FileNotFoundError(f"{path} is damaged ({found}; the manifest says {expected:,} bytes): {remedy}")
    return path


def iter_texts(paths: Iterable[str], columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
    """Record batches of shards, one at a time, for consumers (tokenizer training, stats) that want columns."""
    for path in paths:
        yield from iter_batches(path, columns)


def iter_documents(directory: str, kind: str = DOCUMENTS_DIR) -> Iterator[Document]:
    """Every document of a prepared directory, record batch by record batch."""
    for batch in iter_texts(shard_paths(directory, kind)):
        for row in batch.to_pylist():
            yield Document.from_row(row)
