"""Per-document memory of the training loader: the numpy state against the list-based one it replaced.

Writes a synthetic token dataset of 1M documents (4 shards; sources drawn with LLaMA's mixture weights;
ids like Common Crawl's, 2-32 tokens each so the files stay small: lengths do not change the per-document
state), then measures, in this process, the memory each representation holds once every source's epoch
order is built (what a rank holds while training), and the peak while building it:

- ours: `TokenLoader` as it is (uint32 document numbers, lengths and shuffle; offsets and tokens stay in the
  mapped shard files, shared by all ranks of a node);
- baseline: the loader before issue 11 (commit 3112d9e): `TokenShard.open` turned ids, sources and
  languages into Python lists and copied the token column onto the heap (`combine_chunks`); the loader kept
  int32 shard, int64 start and int64 length per document and an int64 permutation and int64 ends per epoch.

Each side runs in its own process. Per document: what tracemalloc sees (Python objects and numpy arrays)
held after building and at its peak; Arrow's heap (the baseline's token copy) is shown apart, in MB, since
it grows with tokens, not documents. The issue's goal: at most 16 bytes per document per rank.

    python benchmarks/loader_memory.py [--documents 1000000]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from measure import measure  # benchmarks/measure.py (the script's folder)

from filters.llama_sources import LLAMA_MIXTURE
from model.data import TokenLoader
from tokenizer.token_shards import token_schema, token_shard_paths

SHARDS = 4


def write_dataset(directory: Path, documents: int) -> None:
    rng = np.random.default_rng(0)
    names = list(LLAMA_MIXTURE)
    weights = np.array(list(LLAMA_MIXTURE.values()))
    entries = []
    for shard, rows in enumerate(np.array_split(np.arange(documents), SHARDS)):
        lengths = rng.integers(2, 33, size=len(rows))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        tokens = pa.LargeListArray.from_arrays(pa.array(offsets), pa.array(np.zeros(offsets[-1], np.uint16)))
        sources = np.array(names)[rng.choice(len(names), size=len(rows), p=weights / weights.sum())]
        columns = [
            pa.array([f"CC-MAIN-2023-06/{i:012d}" for i in rows]),
            pa.array(sources.tolist()),
            pa.array(["en"] * len(rows)),
            tokens,
        ]
        table = pa.Table.from_arrays(columns, schema=token_schema(np.dtype(np.uint16)))
        path = directory / "train" / f"tokens-{shard:05d}-of-{SHARDS:05d}.arrow"
        path.parent.mkdir(parents=True, exist_ok=True)
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=len(rows))
        entries.append({"path": str(path.relative_to(directory)), "documents": len(rows)})
    manifest = {"kind": "tokens", "vocab_size": 32000, "bos_id": 1, "eos_id": 2, "splits": {"train": entries}}
    (directory / "manifest.json").write_text(json.dumps(manifest))


def ours(directory: Path) -> list:
    loader = TokenLoader(directory, "train", seq_len=2048)
    for source in loader.sources:
        source.order(0, loader.seed)
    return [loader]


def baseline(directory: Path) -> list:
    """The per-document state the loader kept before issue 11, built the way it built it."""
    shards, per_source = [], {}
    for index, path in enumerate(token_shard_paths(directory, "train")):
        table = pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()
        column = table.column("tokens").combine_chunks()
        offsets = column.offsets.to_numpy(zero_copy_only=True)
        shard = {
            "ids": table.column("id").to_pylist(),
            "sources": table.column("source").to_pylist(),
            "languages": table.column("language").to_pylist(),
            "tokens": column.values.to_numpy(zero_copy_only=True),
        }
        lengths = np.diff(offsets).astype(np.int64)
        names = np.asarray(shard["sources"], dtype=object)
        for name in sorted(set(shard["sources"])):
            rows = np.flatnonzero((names == name) & (lengths > 0))
            entry = (np.full(len(rows), index, dtype=np.int32), offsets[rows], lengths[rows])
            per_source.setdefault(name, []).append(entry)
        shards.append(shard)
    streams = []
    for index, (_, entries) in enumerate(sorted(per_source.items())):
        length = np.concatenate([e[2] for e in entries])
        permutation = np.random.default_rng([0, index, 0]).permutation(len(length))
        shard_of_doc = np.concatenate([e[0] for e in entries])
        start_of_doc = np.concatenate([e[1] for e in entries]).astype(np.int64)
        streams.append((shard_of_doc, start_of_doc, length, permutation, np.cumsum(length[permutation])))
    return [shards, streams]


def held_bytes(side: str, directory: Path) -> dict:
    """Build one side's state in this (fresh) process: bytes it holds, its peak while building, the seconds."""
    pool = pa.default_memory_pool()
    pc.dictionary_encode(pa.array(["warm"]))  # load pyarrow.compute and numpy.random (lazy imports) before
    np.random.default_rng(0)  # measuring, so that neither side is charged for them
    tracemalloc.start()
    start = time.perf_counter()
    state = SIDES[side](directory)
    seconds = time.perf_counter() - start
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert state
    return {"held": held, "peak": peak, "arrow": pool.bytes_allocated(), "seconds": seconds}


SIDES = {"ours (numpy)": ours, "baseline (lists)": baseline}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=1_000_000)
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # one side, in a child process
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        print(json.dumps(held_bytes(args.side, Path(args.data))))
        return
    with tempfile.TemporaryDirectory() as tmp:
        write_dataset(Path(tmp), args.documents)
        size = sum(p.stat().st_size for p in Path(tmp).rglob("*.arrow"))
        script = [sys.executable, str(Path(__file__).resolve())]
        runs = {side: measure([*script, "--side", side, "--data", tmp]) for side in SIDES}
    n = args.documents
    print(f"{n:,} documents in {SHARDS} token shards ({size / 1e6:.0f} MB), 7 sources, each side in its own process")
    header = (
        f"{'loader state':18} {'held B/doc':>11} {'peak B/doc':>11} {'Arrow heap MB':>14} {'build s':>8} {'RSS MB':>7}"
    )
    print(header)
    print("-" * len(header))
    for side, run in runs.items():
        r = run["summary"]
        print(
            f"{side:18} {r['held'] / n:11.1f} {r['peak'] / n:11.1f} {r['arrow'] / 1e6:14.1f} {r['seconds']:8.2f} "
            f"{run['peak_rss_mb']:7.0f}"
        )
    ours_run, base_run = (runs[side]["summary"] for side in SIDES)
    print(
        f"baseline / ours: {base_run['held'] / ours_run['held']:.1f}x held, {base_run['peak'] / ours_run['peak']:.1f}x "
        f"peak (goal: at most 16 B/doc held); Arrow heap = the baseline's copy of the token column"
    )


if __name__ == "__main__":
    main()
