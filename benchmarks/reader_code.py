"""Throughput of the code reader plus the `code_quality` stage against a plain loop doing the same filtering.

Ours: `parse_stream` with `reader.format = "code"` over a BigQuery-shaped JSONL export (rows to documents
with licence, extension and language), then `CodeFilter` (licence and extension allow-lists, licence-header
removal in the file's comment syntax, RedPajama v1's four heuristics). Baseline, on the same bytes in the
same process: the straightforward script a RedPajama-style pipeline runs per line: `json.loads`, the same
licence and extension checks, RedPajama's header cleaning (drop leading `//`/`#`/`--`/blank lines, then a
first `/* */` block that says "copyright") and its statistics with per-character generator sums, tokens
counted with the same pre-tokenizer pattern. Both are single-threaded, so MB/s per core is input MB over
CPU seconds.

    python benchmarks/reader_code.py [--seconds 2] [FILE]

Default input: ../shared/corpora/sources/github/github_repos_contents.jsonl (189 files), else the shipped
subset.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from measure import cpu_rate

from filters.code import PERMISSIVE_LICENSES, REDPAJAMA_EXTENSIONS, CodeFilter, count_tokens
from filters.document import Document
from pipelines.formats import ReaderConfig, parse_stream

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "corpora" / "sources" / "github" / "github_repos_contents.jsonl"
SHIPPED = REPO / "data" / "samples" / "sources" / "github" / "github_repos_contents.jsonl"
LICENSES = {name.lower() for name in PERMISSIVE_LICENSES}
BLOCK_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


def ours(path: str, data: bytes) -> int:
    config, stage, kept = ReaderConfig(format="code"), CodeFilter(), 0
    for record in parse_stream(io.BufferedReader(io.BytesIO(data)), path, config):
        if isinstance(record, Document) and isinstance(stage.process(record), Document):
            kept += 1
    return kept


def plain_clean(text: str) -> str:
    lines = text.split("\n")
    skip = 0
    while skip < len(lines) and (not lines[skip] or lines[skip].lstrip().startswith(("//", "#", "--"))):
        skip += 1
    text = "\n".join(lines[skip:])
    block = BLOCK_COMMENT.search(text)
    if block and "copyright" in block.group().lower():
        text = text[: block.start()] + text[block.end() :]
    return text


def plain_keep(row: dict) -> bool:
    text = row.get("content")
    if row.get("binary") or not text or (row.get("license") or "").lower() not in LICENSES:
        return False
    if not row["path"].endswith(REDPAJAMA_EXTENSIONS):
        return False
    text = plain_clean(text)
    lengths = [len(line) for line in text.splitlines()]
    if not lengths or max(lengths) > 1000 or len(text) / len(lengths) > 100:
        return False
    if sum(1 for c in text if c.isalnum()) / len(text) < 0.25:
        return False
    tokens = count_tokens(text)
    return sum(1 for c in text if c.isalpha()) / tokens >= 1.5


def plain_loop(path: str, data: bytes) -> int:
    kept = 0
    for line in data.decode("utf-8").splitlines():
        try:
            kept += plain_keep(json.loads(line))
        except ValueError:
            continue
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path)
    parser.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per side")
    args = parser.parse_args()
    path = args.file or (SHARED if SHARED.exists() else SHIPPED)
    data = path.read_bytes()
    print(f"{path.name}: {len(data.splitlines())} rows, {len(data) / 1e6:.2f} MB")
    ours_rate, ours_kept = cpu_rate(lambda: ours(str(path), data), len(data), args.seconds)
    base_rate, base_kept = cpu_rate(lambda: plain_loop(str(path), data), len(data), args.seconds)
    print(f"reader + code_quality stage  {ours_rate:8.1f} MB/s per core   {ours_kept:>5} files kept")
    print(f"plain RedPajama-style loop   {base_rate:8.1f} MB/s per core   {base_kept:>5} files kept")
    print(f"ratio (ours / plain loop)    {ours_rate / base_rate:8.2f}")


if __name__ == "__main__":
    main()
