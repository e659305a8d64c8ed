"""Throughput of the books reader plus the `gutenberg` stage against a plain loop doing the same marker search.

Ours: `parse_stream` with `reader.format = "book"` (decode, PG header fields) then `GutenbergStrip` (line-
anchored marker patterns for both generations and their variants, credit line). Baseline, on the same bytes
in the same process: decode, `str.find` of the four common literal markers (`*** START OF THE/THIS PROJECT
GUTENBERG`, `*** END OF THE/THIS PROJECT GUTENBERG`, `End of Project Gutenberg`) and a slice: what a
one-off script does. Both are single-threaded, so MB/s per core is input MB over CPU seconds.

    python benchmarks/reader_books.py [--seconds 2] [FILES...]

Default input: the full PG books of ../shared/corpora/sources/books, else the shipped excerpts.
"""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from measure import cpu_rate

from filters.books import GutenbergStrip
from filters.document import Document
from pipelines.formats import ReaderConfig, parse_stream

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "corpora" / "sources" / "books"
SHIPPED = REPO / "data" / "samples" / "sources" / "books"
STARTS = ("*** START OF THE PROJECT GUTENBERG", "*** START OF THIS PROJECT GUTENBERG")
ENDS = ("*** END OF THE PROJECT GUTENBERG", "*** END OF THIS PROJECT GUTENBERG", "End of Project Gutenberg")


def ours(files: list[tuple[str, bytes]]) -> int:
    config, stage, kept = ReaderConfig(format="book"), GutenbergStrip(), 0
    for path, data in files:
        for record in parse_stream(io.BufferedReader(io.BytesIO(data)), path, config):
            if isinstance(record, Document):
                result = stage.process(record)
                kept += len(result.text) if isinstance(result, Document) else 0
    return kept


def plain_loop(files: list[tuple[str, bytes]]) -> int:
    kept = 0
    for _, data in files:
        text = data.decode("utf-8", errors="replace")
        found = [i for i in (text.find(marker) for marker in STARTS) if i >= 0]
        start = text.find("\n", min(found)) + 1 if found else 0
        found = [i for i in (text.find(marker, start) for marker in ENDS) if i >= 0]
        kept += len(text[start : min(found) if found else len(text)].strip())
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="*", type=Path)
    parser.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per side")
    args = parser.parse_args()
    paths = args.files or sorted(SHARED.glob("*.txt")) or sorted(SHIPPED.glob("*_excerpt.txt"))
    files = [(str(path), path.read_bytes()) for path in paths if "LICENSE" not in path.name]
    size = sum(len(data) for _, data in files)
    print(f"{len(files)} books, {size / 1e6:.2f} MB")
    ours_rate, ours_kept = cpu_rate(lambda: ours(files), size, args.seconds)
    base_rate, base_kept = cpu_rate(lambda: plain_loop(files), size, args.seconds)
    print(f"reader + gutenberg stage   {ours_rate:8.1f} MB/s per core   {ours_kept:>9,} characters kept")
    print(f"plain str.find loop        {base_rate:8.1f} MB/s per core   {base_kept:>9,} characters kept")
    print(f"ratio (ours / plain loop)  {ours_rate / base_rate:8.2f}")


if __name__ == "__main__":
    main()
