"""The document model shared by every stage, and the Arrow schema of prepared shards.

One slotted dataclass travels through the pipeline (as in datatrove); annotation fields are filled by
later stages (language ID, quality, perplexity, dedup) and map one-to-one onto shard columns, so adding a
stage never changes the shard layout (dolma's "attributes next to the text" idea, as columns).
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pyarrow as pa

SCHEMA_VERSION = 1
UNKNOWN_LANGUAGE = "und"  # the language of documents without one, wherever a name is needed (ISO 639-2)

DOCUMENT_SCHEMA = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),
        pa.field("text", pa.string(), nullable=False),
        pa.field("url", pa.string()),
        pa.field("source", pa.string(), nullable=False),
        pa.field("date", pa.timestamp("s", tz="UTC")),
        pa.field("language", pa.string()),
        pa.field("language_score", pa.float32()),
        pa.field("quality_score", pa.float32()),
        pa.field("perplexity", pa.float32()),
        pa.field("perplexity_bucket", pa.string()),
        pa.field("dup_cluster", pa.string()),
        pa.field("dup_cluster_size", pa.int32()),
        pa.field("metadata", pa.string()),
    ],
    metadata={"llamaprep.kind": "documents", "llamaprep.schema_version": str(SCHEMA_VERSION)},
)

REJECTED_SCHEMA = DOCUMENT_SCHEMA.append(pa.field("drop_reason", pa.string(), nullable=False)).with_metadata(
    {"llamaprep.kind": "rejected", "llamaprep.schema_version": str(SCHEMA_VERSION)}
)


@dataclass(slots=True)
class Document:
    """A text document plus the annotations stages attach to it.

    `metadata` holds reader-specific extras (WARC record id, CCNet fields...) and is stored as JSON.
    """

    id: str
    text: str
    source: str
    url: str | None = None
    date: datetime | None = None
    language: str | None = None
    language_score: float | None = None
    quality_score: float | None = None
    perplexity: float | None = None
    perplexity_bucket: str | None = None
    dup_cluster: str | None = None
    dup_cluster_size: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_row(self) -> dict[str, Any]:
        """The document as a row of DOCUMENT_SCHEMA."""
        row = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        row["metadata"] = json.dumps(self.metadata, ensure_ascii=False, sort_keys=True) if self.metadata else None
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> Document:
        """Inverse of `to_row` (extra columns such as `drop_reason` are ignored)."""
        values = {f.name: row.get(f.name) for f in dataclasses.fields(cls)}
        values["metadata"] = json.loads(row["metadata"]) if row.get("metadata") else {}
        return cls(**values)


@dataclass(slots=True)
class Rejection:
    """A document a stage dropped, with the reason (`stage.rule`) that becomes a counter and a column."""

    doc: Document
    reason: str
