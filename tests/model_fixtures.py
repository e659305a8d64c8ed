"""Small real token datasets for the model tests: byte-level tokens (id = byte + 3, BOS 1, EOS 2) of real
text (the first 60 KB of Tiny Shakespeare and the Debian Policy manual, tests/data/model), written as token
shards + manifest."""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from model.config import TrainConfig
from tokenizer.token_shards import token_dtype, token_table

# The test models are tiny: intra-op threads only add synchronization, which on a busy 2-core machine made
# a forward pass 70x slower than on one thread.
torch.set_num_threads(1)

TEXTS = Path(__file__).resolve().parent / "data" / "model"  # first 60 KB of each text
BOS, EOS, BYTE_OFFSET = 1, 2, 3
VOCAB = 256 + BYTE_OFFSET


def real_text(name: str, n_bytes: int) -> str:
    with gzip.open(TEXTS / name, "rt", encoding="utf-8") as handle:
        return handle.read(n_bytes)


def encode_bytes(text: str) -> np.ndarray:
    body = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64) + BYTE_OFFSET
    return np.concatenate([[BOS], body, [EOS]])


def documents(text: str) -> list[str]:
    """Paragraphs as documents (blank-line separated), empty ones dropped."""
    return [p.strip() for p in text.split("\n\n") if p.strip()]


def write_byte_dataset(directory: Path, n_bytes: int = 40_000, train_shards: int = 2) -> Path:
    """Two sources ("books": Shakespeare, "manuals": Debian Policy); the last 10% of each source's
    documents form the val split."""
    sources = {
        "books": documents(real_text("tinyshakespeare.txt.gz", n_bytes)),
        "manuals": documents(real_text("debian-policy_4.6.2.0_policy.txt.gz", n_bytes)),
    }
    rows = {"train": [], "val": []}
    for source, docs in sources.items():
        cut = int(len(docs) * 0.9)
        rows["train"] += [(f"{source}-{i}", source, doc) for i, doc in enumerate(docs[:cut])]
        rows["val"] += [(f"{source}-{i}", source, doc) for i, doc in enumerate(docs[cut:], start=cut)]
    dtype = token_dtype(VOCAB)
    splits = {}
    for split, split_rows in rows.items():
        n_shards = train_shards if split == "train" else 1
        entries = []
        for shard in range(n_shards):
            part = split_rows[shard::n_shards]
            tokens = [encode_bytes(text) for _, _, text in part]
            table = token_table([r[0] for r in part], [r[1] for r in part], ["en"] * len(part), tokens, dtype)
            relative = f"{split}/tokens-{shard:05d}-of-{n_shards:05d}.arrow"
            write_token_table(table, directory / relative)
            entries.append({"path": relative, "documents": len(part), "tokens": int(sum(len(t) for t in tokens))})
        splits[split] = entries
    manifest = {"kind": "tokens", "vocab_size": VOCAB, "bos_id": BOS, "eos_id": EOS, "splits": splits}
    (directory / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return directory


def write_token_table(table: pa.Table, path: str | os.PathLike) -> None:
    """Write an uncompressed IPC file atomically (temp name, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    os.replace(tmp, path)


def tiny_config(dataset: Path, output: Path, **changes: object) -> TrainConfig:
    """A few steps of the tiny model on a token dataset (no validation or checkpoint unless asked)."""
    settings = {
        "data": str(dataset),
        "output": str(output),
        "config": "tiny",
        "seq_len": 64,
        "micro_batch_size": 8,
        "steps": 8,
        "lr": 3e-3,
        "warmup_steps": 2,
        "eval_every": 1000,
        "eval_batches": 2,
        "save_every": 1000,
        "log_every": 1,
        "seed": 5,
    }
    return TrainConfig(**{**settings, **changes})
