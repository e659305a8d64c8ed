"""StackExchange reader: throughput and peak memory of ours against the same cleaning in a plain in-memory loop.

Input: the bundled real dumps (coffee's Posts.head.xml and conlang meta's Posts.xml from its .7z) repeated N
times with renumbered ids (Id, ParentId, AcceptedAnswerId shifted per copy), so the threads stay real and the
site grows. Each side runs in its own process (benchmarks/measure.py: CPU seconds of the process, peak RSS):

- ours: `parse_stream` on the Posts.xml (pull parser -> sqlite on disk -> ordered query), and once on the
  largest input packed as a .7z;
- baseline: what RedPajama-Data v1 does, with our HTML-to-text and thread format: every row into a dict in
  memory, answers grouped by ParentId in a dict, sorted by score, questions then formatted.

Prints input MB, documents, MB/s per core (input bytes per CPU second) and peak RSS per side and size, and the
throughput ratio ours/baseline. Ours should stay flat in memory as the input grows; the baseline grows.

    python benchmarks/reader_stackexchange.py [--copies 4,16,64]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from collections import defaultdict
from pathlib import Path

from measure import REPO, measure  # benchmarks/measure.py (the script's folder)

SAMPLES = REPO / "data" / "samples" / "sources" / "stackexchange"
_ID_ATTRIBUTES = re.compile(rb'\b(Id|ParentId|AcceptedAnswerId)="(\d+)"')


def site_rows() -> list[bytes]:
    """The `<row .../>` lines of both bundled dumps, conlang's ids moved past coffee's."""
    import py7zr

    with tempfile.TemporaryDirectory() as tmp:
        with py7zr.SevenZipFile(SAMPLES / "conlang.meta.stackexchange.com.7z") as archive:
            archive.extract(path=tmp, targets=["Posts.xml"])
        conlang = (Path(tmp) / "Posts.xml").read_bytes()
    coffee = (SAMPLES / "coffee.stackexchange.com" / "Posts.head.xml").read_bytes()
    rows = [line.strip() for line in coffee.splitlines() if line.strip().startswith(b"<row ")]
    rows += [shift(line.strip(), 100_000) for line in conlang.splitlines() if line.strip().startswith(b"<row ")]
    return rows


def shift(row: bytes, offset: int) -> bytes:
    return _ID_ATTRIBUTES.sub(lambda m: m.group(1) + b'="' + str(int(m.group(2)) + offset).encode() + b'"', row)


def write_posts(path: Path, rows: list[bytes], copies: int) -> int:
    with open(path, "wb") as out:
        out.write(b'\xef\xbb\xbf<?xml version="1.0" encoding="utf-8"?>\n<posts>\n')
        for copy in range(copies):
            out.writelines(b"  " + shift(row, copy * 1_000_000) + b"\n" for row in rows)
        out.write(b"</posts>\n")
    return path.stat().st_size


def run_ours(path: str) -> int:
    from filters.document import Document
    from pipelines.formats import ReaderConfig, parse_stream

    with open(path, "rb") as raw:
        return sum(isinstance(r, Document) for r in parse_stream(raw, path, ReaderConfig(format="stackexchange")))


def run_baseline(path: str) -> int:
    from filters.stackexchange import format_thread, html_to_text

    rows = [dict(row.attrib) for row in ET.parse(path).getroot()]
    answers: dict[str, list[tuple[int, int, str]]] = defaultdict(list)  # (-score, id, text): sorts by score
    for row in rows:
        if row.get("PostTypeId") == "2":
            answers[row["ParentId"]].append((-int(row["Score"]), int(row["Id"]), html_to_text(row["Body"])))
    texts = [
        format_thread(row["Title"], html_to_text(row["Body"]), [text for *_, text in sorted(answers[row["Id"]])])
        for row in rows
        if row.get("PostTypeId") == "1"
    ]
    return len(texts)


def side(kind: str, path: str) -> None:
    import pipelines.read_stackexchange  # noqa: F401  same imports on both sides: RSS differences are the work

    start = time.process_time()
    documents = run_ours(path) if kind == "ours" else run_baseline(path)
    print(json.dumps({"documents": documents, "cpu_s": time.process_time() - start}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", default="4,16,64", help="input sizes, in copies of the two bundled dumps")
    parser.add_argument("--side", choices=["ours", "baseline"], help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        side(args.side, args.input)
        return
    import py7zr

    rows = site_rows()
    script = [sys.executable, str(Path(__file__).resolve())]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for copies in [int(c) for c in args.copies.split(",")]:
            posts = Path(tmp) / f"x{copies}.stackexchange.com" / "Posts.xml"
            posts.parent.mkdir()
            size = write_posts(posts, rows, copies)
            for kind in ("ours", "baseline"):
                results.append((copies, kind, size, measure([*script, "--side", kind, "--input", str(posts)])))
        archive = Path(tmp) / f"x{copies}.stackexchange.com.7z"
        with py7zr.SevenZipFile(archive, "w") as packed:
            packed.write(posts, "Posts.xml")
        results.append((copies, "ours (.7z)", size, measure([*script, "--side", "ours", "--input", str(archive)])))

    print(f"StackExchange reader, one process per run; input: the bundled dumps x N, ids renumbered ({SAMPLES})")
    header = f"{'copies':>6} {'side':12} {'input MB':>9} {'docs':>8} {'MB/s/core':>10} {'peak RSS MB':>12}"
    print(header)
    print("-" * len(header))
    speed = {}
    for copies, kind, size, run in results:
        if run["returncode"] != 0:
            raise SystemExit(f"{kind} x{copies}: exit code {run['returncode']}")
        summary = run["summary"]
        speed[copies, kind] = size / 1e6 / summary["cpu_s"]
        print(
            f"{copies:6} {kind:12} {size / 1e6:9.1f} {summary['documents']:8,} {speed[copies, kind]:10.2f} "
            f"{run['peak_rss_mb']:12.0f}"
        )
    for copies in sorted({c for c, _, _, _ in results}):
        print(f"x{copies}: ours/baseline throughput {speed[copies, 'ours'] / speed[copies, 'baseline']:.2f}")


if __name__ == "__main__":
    main()
