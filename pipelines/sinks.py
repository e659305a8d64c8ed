"""The Beam sink that writes documents as Arrow shards of about a target size, with deterministic names
and content: the shard count comes from the total bytes, each document goes to the shard its id hashes
to, and rows inside a shard are sorted, so the same input gives the same files on every runner."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import apache_beam as beam
import pyarrow as pa
import xxhash

from filters.document import REJECTED_SCHEMA, Document, Rejection
from pipelines.shards import join, shard_name, write_shard

DEFAULT_TARGET_SHARD_BYTES = 256 * 1024 * 1024


def document_row(doc: Document) -> dict[str, Any]:
    return doc.to_row()


def rejection_row(rejection: Rejection) -> dict[str, Any]:
    row = rejection.doc.to_row()
    row["drop_reason"] = rejection.reason
    return row


def row_bytes(row: dict[str, Any]) -> int:
    """Approximate stored size of a row: its text plus a small fixed overhead for the other columns."""
    return len(row["text"].encode("utf-8", errors="surrogatepass")) + 256


def shard_of(doc_id: str, count: int) -> int:
    return xxhash.xxh64_intdigest(doc_id.encode("utf-8", errors="surrogatepass")) % count


def _sort_key(row: dict[str, Any]) -> tuple[str, str]:
    return row["id"], row["text"]


class _WriteOneShard(beam.DoFn):
    def __init__(self, directory: str, kind: str, schema: pa.Schema, compression: str | None):
        self._directory = directory
        self._kind = kind
        self._schema = schema
        self._compression = compression

    def process(self, element: tuple[tuple[int, int], Iterable[dict[str, Any]]]) -> Iterable[dict[str, Any]]:
        (index, count), rows = element
        ordered = sorted(rows, key=_sort_key)
        relative = f"{self._kind}/{shard_name(index, count)}"
        size = write_shard(ordered, join(self._directory, relative), self._schema, self._compression)
        yield {
            "path": relative,
            "documents": len(ordered),
            "bytes": size,
            "text_bytes": sum(len(r["text"].encode("utf-8", errors="surrogatepass")) for r in ordered),
        }


class WriteShards(beam.PTransform):
    """Write a PCollection (Documents or Rejections) under `directory/kind/`; outputs one info dict per
    shard (path, documents, bytes, text_bytes) for the manifest."""

    def __init__(
        self,
        directory: str,
        kind: str,
        schema: pa.Schema,
        to_row: Callable[[Any], dict[str, Any]],
        target_shard_bytes: int = DEFAULT_TARGET_SHARD_BYTES,
        compression: str | None = "zstd",
    ):
        super().__init__()
        self._directory = directory
        self._kind = kind
        self._schema = schema
        self._to_row = to_row
        self._target = target_shard_bytes
        self._compression = compression

    def expand(self, items: beam.PCollection) -> beam.PCollection:
        rows = items | "ToRows" >> beam.Map(self._to_row)
        total = rows | "RowBytes" >> beam.Map(row_bytes) | "TotalBytes" >> beam.CombineGlobally(sum)
        target = self._target

        def assign(row: dict[str, Any], total_bytes: int) -> tuple[tuple[int, int], dict[str, Any]]:
            count = max(1, math.ceil(total_bytes / target))
            return (shard_of(row["id"], count), count), row

        return (
            rows
            | "AssignShard" >> beam.Map(assign, total_bytes=beam.pvalue.AsSingleton(total))
            | "GroupShards" >> beam.GroupByKey()
            | "WriteShard" >> beam.ParDo(_WriteOneShard(self._directory, self._kind, self._schema, self._compression))
        )


def write_rejected(directory: str, target_shard_bytes: int) -> WriteShards:
    return WriteShards(directory, "rejected", REJECTED_SCHEMA, rejection_row, target_shard_bytes)
