"""Prepared directories for the tokenizer tests, cut from real multilingual text (data/README-tokenizer.md)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from filters.document import DOCUMENT_SCHEMA, Document
from filters.prepared import shard_name
from pipelines.arrow_files import AtomicArrowWriter, write_manifest

CORPUS = Path(__file__).parent / "data" / "tokenizer" / "multilingual.jsonl.gz"
LINES_PER_DOCUMENT = 12


def works() -> list[dict]:
    with gzip.open(CORPUS, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def documents() -> list[Document]:
    """Each work cut into documents of LINES_PER_DOCUMENT lines (blank lines kept inside a document)."""
    docs = []
    for work in works():
        lines = work["text"].split("\n")
        for k, start in enumerate(range(0, len(lines), LINES_PER_DOCUMENT)):
            text = "\n".join(lines[start : start + LINES_PER_DOCUMENT])
            if text.strip():
                docs.append(
                    Document(id=f"{work['id']}-{k:03d}", text=text, source=work["source"], language=work["language"])
                )
    return docs


def write_prepared(directory: Path, docs: list[Document], shards: int = 2) -> Path:
    """A prepared directory as `llamaprep prepare` lays it out: documents/part-*.arrow and manifest.json."""
    entries = []
    for i in range(shards):
        relative = f"documents/{shard_name(i, shards)}"
        with AtomicArrowWriter(str(directory / relative), DOCUMENT_SCHEMA, "zstd") as writer:
            writer.write_rows([d.to_row() for d in docs[i::shards]])
        entries.append({"path": relative, "documents": len(docs[i::shards]), "bytes": writer.bytes})
    write_manifest(str(directory), {"kind": "documents", "documents": {"shards": entries, "documents": len(docs)}})
    return directory
