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

    def process(self, element: tuple[tuple[str, int, int], Iterable[dict[str, Any]]]) -> Iterable[dict[str, Any]]:
        (partition, index, count), rows = element
        ordered = sorted(rows, key=_sort_key)
        folder = f"{self._kind}/{partition}" if partition else self._kind
        relative = f"{folder}/{shard_name(index, count)}"
        size = write_shard(ordered, join(self._directory, relative), self._schema, self._compression)
        info = {
            "path": relative,
            "documents": len(ordered),
            "bytes": size,
            "text_bytes": sum(len(r["text"].encode("utf-8", errors="surrogatepass")) for r in ordered),
        }
        if partition:
            info["partition"] = partition
        yield info


class WriteShards(beam.PTransform):
    """Write a PCollection (Documents or Rejections) under `directory/kind/` (or `directory/kind/<partition>/`
    when `partition` names each element's shard set, as CCNet splits output by language); outputs one
    info dict per shard (path, documents, bytes, text_bytes) for the manifest."""

    def __init__(
        self,
        directory: str,
        kind: str,
        schema: pa.Schema,
        to_row: Callable[[Any], dict[str, Any]],
        target_shard_bytes: int = DEFAULT_TARGET_SHARD_BYTES,
        compression: str | None = "zstd",
        partition: Callable[[Any], str] | None = None,
    ):
        super().__init__()
        self._directory = directory
        self._kind = kind
        self._schema = schema
        self._to_row = to_row
        self._target = target_shard_bytes
        self._compression = compression
        self._partition = partition

    def expand(self, items: beam.PCollection) -> beam.PCollection:
        to_row, partition = self._to_row, self._partition
        rows = items | "ToRows" >> beam.Map(lambda item: (partition(item) if partition else "", to_row(item)))
        totals = (
            rows
            | "RowBytes" >> beam.MapTuple(lambda key, row: (key, row_bytes(row)))
            | "TotalBytes" >> (beam.CombinePerKey(sum))
        )
        target = self._target

        def assign(
            keyed: tuple[str, dict[str, Any]], total_bytes: dict[str, int]
        ) -> tuple[tuple[str, int, int], dict[str, Any]]:
            key, row = keyed
            count = max(1, math.ceil(total_bytes[key] / target))
            return (key, shard_of(row["id"], count), count), row

        return (
            rows
            | "AssignShard" >> beam.Map(assign, total_bytes=beam.pvalue.AsDict(totals))
            | "GroupShards" >> beam.GroupByKey()
            | "WriteShard" >> beam.ParDo(_WriteOneShard(self._directory, self._kind, self._schema, self._compression))
        )


def write_rejected(directory: str, target_shard_bytes: int) -> WriteShards:
    return WriteShards(directory, "rejected", REJECTED_SCHEMA, rejection_row, target_shard_bytes)
