"""Statistics of a token dataset for `llamaprep stats`: tokens per split, source and language, and the
distribution of document lengths in tokens, computed from the memory-mapped shards themselves (the
manifest's counts are checked against them, not trusted)."""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

import numpy as np

from filters.document import UNKNOWN_LANGUAGE
from tokenizer.token_shards import (
    SPLITS,
    iter_token_shards,
    read_token_manifest,
    token_shard_paths,
)

PERCENTILES = (50, 90, 99)


def _length_summary(lengths: np.ndarray) -> dict[str, Any]:
    if not len(lengths):
        return {"documents": 0}
    summary: dict[str, Any] = {
        "documents": len(lengths),
        "mean": round(float(lengths.mean()), 1),
        "min": int(lengths.min()),
        "max": int(lengths.max()),
    }
    for p, value in zip(PERCENTILES, np.percentile(lengths, PERCENTILES), strict=True):
        summary[f"p{p}"] = round(float(value))
    buckets = np.floor(np.log2(np.maximum(lengths, 1))).astype(np.int64)
    counts = np.bincount(buckets)
    low = int(buckets.min())
    summary["histogram_log2"] = {f"{2**b}-{2 ** (b + 1) - 1}": int(counts[b]) for b in range(low, len(counts))}
    return summary


def token_stats(directory: str | os.PathLike) -> dict[str, Any]:
    """Counts and length distributions of a token dataset (a `llamaprep tokenize` output directory)."""
    manifest = read_token_manifest(directory)
    splits: dict[str, dict[str, int]] = {}
    by: dict[str, dict[str, dict[str, int]]] = {"source": {}, "language": {}}
    all_lengths = []
    for split in SPLITS:
        documents = tokens = 0
        for shard in iter_token_shards(token_shard_paths(directory, split)):
            lengths = np.diff(shard.offsets)
            all_lengths.append(lengths)
            documents += len(lengths)
            tokens += int(lengths.sum())
            for kind, names in (("source", shard.sources), ("language", shard.languages)):
                per_name: dict[str, list[int]] = defaultdict(list)
                for i, name in enumerate(names):
                    per_name[name or UNKNOWN_LANGUAGE].append(i)
                for name, rows in per_name.items():
                    counts = by[kind].setdefault(name, {"documents": 0, "tokens": 0})
                    counts["documents"] += len(rows)
                    counts["tokens"] += int(lengths[rows].sum())
        splits[split] = {"documents": documents, "tokens": tokens}
    mismatched = [s for s in SPLITS if manifest.get("tokens", {}).get(s, splits[s]["tokens"]) != splits[s]["tokens"]]
    lengths = np.concatenate(all_lengths) if all_lengths else np.zeros(0, dtype=np.int64)
    return {
        "kind": manifest["kind"],
        "directory": str(directory),
        "vocab_size": manifest.get("vocab_size"),
        "dtype": manifest.get("dtype"),
        "splits": splits,
        "tokens": sum(s["tokens"] for s in splits.values()),
        "by_source": dict(sorted(by["source"].items(), key=lambda kv: -kv[1]["tokens"])),
        "by_language": dict(sorted(by["language"].items(), key=lambda kv: -kv[1]["tokens"])),
        "document_tokens": _length_summary(lengths),
        "manifest_mismatch": mismatched,
    }


def _table(title: str, rows: dict[str, dict[str, int]], total: int) -> list[str]:
    width = max([len(title), *(len(name) for name in rows)])
    lines = [f"{title:<{width}}  {'documents':>10}  {'tokens':>14}  {'share':>6}  {'tokens/doc':>10}"]
    for name, counts in rows.items():
        share = counts["tokens"] / total if total else 0.0
        per_doc = counts["tokens"] / counts["documents"] if counts["documents"] else 0.0
        lines.append(
            f"{name:<{width}}  {counts['documents']:>10,}  {counts['tokens']:>14,}  {share:>6.1%}  {per_doc:>10,.0f}"
        )
    return lines


def render(stats: dict[str, Any]) -> str:
    """The statistics as plain text for the terminal."""
    total = stats["tokens"]
    vocabulary = f"vocabulary {stats['vocab_size']:,} ({stats['dtype']})"
    lines = [f"token dataset {stats['directory']}: {total:,} tokens, {vocabulary}"]
    lines += ["", *_table("split", stats["splits"], total)]
    lines += ["", *_table("source", stats["by_source"], total)]
    lines += ["", *_table("language", stats["by_language"], total)]
    doc = stats["document_tokens"]
    if doc["documents"]:
        lines += [
            "",
            "document length in tokens (BOS and EOS included): "
            f"mean {doc['mean']:,}, min {doc['min']:,}, median {doc['p50']:,}, p90 {doc['p90']:,}, "
            f"p99 {doc['p99']:,}, max {doc['max']:,}",
        ]
        peak = max(doc["histogram_log2"].values())
        for bucket, count in doc["histogram_log2"].items():
            bar = "#" * max(1 if count else 0, round(40 * count / peak))
            lines.append(f"  {bucket:>15}  {count:>8,}  {bar}")
    if stats["manifest_mismatch"]:
        lines += ["", f"WARNING: manifest token counts disagree with the shards for {stats['manifest_mismatch']}"]
    return "\n".join(lines) + "\n"
