"""Token shards: the on-disk format between `llamaprep tokenize` and the training loader.

Layout of a token dataset directory::

    DIR/manifest.json              kind "tokens", vocab, dtype, bos/eos ids, files per split, counts
    DIR/train/tokens-00000-of-00004.arrow
    DIR/val/tokens-00000-of-00001.arrow

Each `.arrow` file is an *uncompressed* Arrow IPC file (so `pa.memory_map` gives zero-copy numpy views)
with one row per document: `id`, `source`, `language` and `tokens` (a large_list of uint16 when the
vocabulary fits in 16 bits, else uint32). Every document's tokens start with BOS and end with EOS, so the
list offsets are the per-document boundaries (the idea of llm.c's documented shard layout, with Arrow
doing the header and offsets for us).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa

from filters.options import ConfigError
from filters.prepared import listed_file

TOKEN_SHARD_KIND = "tokens"
TOKEN_SCHEMA_VERSION = 1
SPLITS = ("train", "val")


def token_dtype(vocab_size: int) -> np.dtype:
    """uint16 when every id fits in 16 bits, else uint32."""
    return np.dtype(np.uint16) if vocab_size <= 1 << 16 else np.dtype(np.uint32)


def token_schema(dtype: np.dtype) -> pa.Schema:
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("source", pa.string(), nullable=False),
            pa.field("language", pa.string()),
            pa.field("tokens", pa.large_list(pa.from_numpy_dtype(dtype)), nullable=False),
        ],
        metadata={"llamaprep.kind": TOKEN_SHARD_KIND, "llamaprep.schema_version": str(TOKEN_SCHEMA_VERSION)},
    )


def token_table(
    ids: list[str], sources: list[str], languages: list[str | None], tokens: list[np.ndarray], dtype: np.dtype
) -> pa.Table:
    """Build one table of token rows (the caller chooses how many rows go in a shard)."""
    lengths = np.fromiter((len(t) for t in tokens), dtype=np.int64, count=len(tokens))
    offsets = np.zeros(len(tokens) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    flat = np.concatenate(tokens).astype(dtype, copy=False) if tokens else np.zeros(0, dtype=dtype)
    token_lists = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(flat))
    schema = token_schema(dtype)
    return pa.Table.from_arrays(
        [pa.array(ids, pa.string()), pa.array(sources, pa.string()), pa.array(languages, pa.string()), token_lists],
        schema=schema,
    )


@dataclass
class TokenShard:
    """A memory-mapped token shard: `tokens` is one flat zero-copy array, `offsets[i]:offsets[i+1]` the
    i-th document's span. The string columns stay in the mapped file: a trainer needs only the offsets and
    `source_codes()`, and `ids`, `sources`, `languages` become Python lists (~80 bytes a value) only when asked."""

    path: str
    table: pa.Table = field(repr=False)
    tokens: np.ndarray = field(repr=False)
    offsets: np.ndarray = field(repr=False)

    @classmethod
    def open(cls, path: str | os.PathLike) -> TokenShard:
        """Map the file; a single record batch (what `llamaprep tokenize` writes) is read without a copy."""
        table = pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
        chunks = table.column("tokens").chunks
        column = chunks[0] if len(chunks) == 1 else table.column("tokens").combine_chunks()
        return cls(
            path=str(path),
            table=table,
            tokens=column.values.to_numpy(zero_copy_only=True),  # offsets index the unsliced values
            offsets=column.offsets.to_numpy(zero_copy_only=True),
        )

    @cached_property
    def ids(self) -> list[str]:
        return self.table.column("id").to_pylist()

    @cached_property
    def sources(self) -> list[str]:
        return self.table.column("source").to_pylist()

    @cached_property
    def languages(self) -> list[str | None]:
        return self.table.column("language").to_pylist()

    def source_codes(self) -> tuple[list[str], np.ndarray]:
        """(source names, each document's index into them as int32): the column dictionary-encoded, so no
        per-document Python string is made."""
        encoded = self.table.column("source").dictionary_encode()
        names = encoded.chunks[0].dictionary.to_pylist() if encoded.num_chunks else []
        codes = [chunk.indices.to_numpy(zero_copy_only=False) for chunk in encoded.chunks]
        return names, np.concatenate(codes).astype(np.int32, copy=False) if codes else np.zeros(0, np.int32)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def document(self, i: int) -> np.ndarray:
        return self.tokens[self.offsets[i] : self.offsets[i + 1]]

    def documents(self) -> Iterator[np.ndarray]:
        for i in range(len(self)):
            yield self.document(i)


def read_token_manifest(directory: str | os.PathLike) -> dict:
    path = Path(directory) / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"{directory} is not a token dataset: no manifest.json (run `llamaprep tokenize`)")
    manifest = json.loads(path.read_text())
    if manifest.get("kind") != TOKEN_SHARD_KIND:
        raise ConfigError(f"{path} describes {manifest.get('kind')!r} shards, not token shards")
    return manifest


def token_shard_paths(directory: str | os.PathLike, split: str) -> list[Path]:
    """The shard files of one split, in manifest order; each must be there with the size it records."""
    manifest = read_token_manifest(directory)
    return [Path(listed_file(str(directory), entry, "tokenize again")) for entry in manifest["splits"].get(split, [])]


def iter_token_shards(paths: Iterable[str | os.PathLike]) -> Iterator[TokenShard]:
    for path in paths:
        yield TokenShard.open(path)
