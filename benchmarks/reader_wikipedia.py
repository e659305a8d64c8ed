"""Throughput of the Wikipedia reader (XML pull parsing + `filters.wikitext` cleaning) against the obvious
alternative: a plain `iterparse` loop over the same pages calling mwparserfromhell's `strip_code()`.

Both sides read the same uncompressed XML bytes from memory (bz2 decompression, the same for both, is left
out), keep the same pages (main namespace, no redirects) and are single-threaded, so MB/s per core is input
MB over CPU seconds; each side repeats its passes over the sample dumps for `--seconds` of CPU time. When
wikiextractor is importable (`pip install wikiextractor`; not a dependency) its `clean_text` is a third line.

    python benchmarks/reader_wikipedia.py [--seconds 3] [DUMP.xml.bz2 ...]

Default input: the sample dumps of data/samples/sources/wikipedia (en, de, fo, vi; 0.6 MB of XML).
"""

from __future__ import annotations

import argparse
import bz2
import io
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import mwparserfromhell
from measure import cpu_rate

from filters.document import Document
from pipelines.formats import ReaderConfig, parse_stream

SAMPLES = Path(__file__).resolve().parent.parent / "data" / "samples" / "sources" / "wikipedia"
Files = list[tuple[str, bytes]]


def ours(files: Files) -> int:
    config, kept = ReaderConfig(format="mediawiki"), 0
    for path, data in files:
        for record in parse_stream(io.BufferedReader(io.BytesIO(data)), path, config):
            kept += len(record.text) if isinstance(record, Document) else 0
    return kept


def articles(data: bytes) -> Iterator[tuple[str, str]]:
    """(title, wikitext) of main-namespace, non-redirect pages: the plain iterparse loop."""
    try:
        for _, element in ET.iterparse(io.BytesIO(data)):
            if element.tag.endswith("}page"):
                ns = element.findtext("{*}ns")
                text = element.findtext("{*}revision/{*}text") or ""
                if ns == "0" and element.find("{*}redirect") is None:
                    yield element.findtext("{*}title") or "", text
                element.clear()
    except ET.ParseError:  # the viwiki head has no closing tag
        return


def strip_code(files: Files) -> int:
    pages = (text for _, data in files for _, text in articles(data))
    return sum(len(mwparserfromhell.parse(text).strip_code().strip()) for text in pages)


def wikiextractor_side() -> Callable[[Files], int] | None:
    try:
        from wikiextractor.extract import Extractor
    except ImportError:
        return None

    def extract(files: Files) -> int:
        kept = 0
        for _, data in files:
            for title, text in articles(data):
                kept += len("\n".join(Extractor(0, 0, "", title, []).clean_text(text)))
        return kept

    return extract


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dumps", nargs="*", type=Path, help=".xml.bz2 dumps (default: the samples)")
    parser.add_argument("--seconds", type=float, default=3.0, help="CPU seconds per side")
    args = parser.parse_args()
    paths = args.dumps or sorted(SAMPLES.glob("*.xml.bz2"))
    files = [(str(path).removesuffix(".bz2"), bz2.decompress(path.read_bytes())) for path in paths]
    size = sum(len(data) for _, data in files)
    print(f"{len(files)} dumps, {size / 1e6:.2f} MB of XML")
    ours_rate, ours_kept = cpu_rate(lambda: ours(files), size, args.seconds)
    base_rate, base_kept = cpu_rate(lambda: strip_code(files), size, args.seconds)
    print(f"reader + wiki_to_text        {ours_rate:7.2f} MB/s per core   {ours_kept:>9,} characters kept")
    print(f"iterparse + strip_code()     {base_rate:7.2f} MB/s per core   {base_kept:>9,} characters kept")
    print(f"ratio (ours / strip_code)    {ours_rate / base_rate:7.2f}")
    extract = wikiextractor_side()
    if extract is not None:
        wx_rate, wx_kept = cpu_rate(lambda: extract(files), size, args.seconds)
        print(f"iterparse + wikiextractor    {wx_rate:7.2f} MB/s per core   {wx_kept:>9,} characters kept")
        print(f"ratio (ours / wikiextractor) {ours_rate / wx_rate:7.2f}")


if __name__ == "__main__":
    main()
