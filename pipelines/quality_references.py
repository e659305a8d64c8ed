"""`llamaprep quality references`: the external URLs that Wikipedia articles cite, one per line.

LLaMA's quality classifier (section 2.1) separates "pages used as references in Wikipedia" from random
crawl pages. This command gives the first half: it streams MediaWiki dumps (the `mediawiki` reader's page
iterator, main-namespace articles only, redirects skipped) and writes each cited URL once, in the order
first seen (`filters.wikitext.reference_urls`: citation templates' `url=` and external links inside
`<ref>`). Fetching those pages, or joining them with a crawl by URL, makes the positives of `quality train`
(docs/sources/wikipedia.md).
"""

from __future__ import annotations

import argparse
import io
from collections import Counter
from collections.abc import Iterable, Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from mwparserfromhell.parser import ParserError

from filters.wikitext import reference_urls
from pipelines.arrow_files import create, delete, ensure_dir, replace, split_path, temporary_name
from pipelines.disk_set import DiskSet
from pipelines.formats import READ_ERRORS, Skip, decompressed
from pipelines.read_wikipedia import Page, Site, iter_dump, not_an_article
from pipelines.readers import check_inputs, parse_input


def iter_reference_urls(paths: list[str], counts: Counter) -> Iterator[str]:
    """Every cited URL of the dumps' articles, once each, in first-seen order; `counts` receives files,
    articles, articles citing something, URLs found (with repeats) and skips by reason. The URLs seen are
    kept in an on-disk sqlite table in a temporary directory (`TMPDIR`), not in memory: English Wikipedia
    cites tens of millions of them."""
    with DiskSet("llamaprep-references-") as seen:
        for path in paths:
            counts["files"] += 1
            for page in _pages(path, counts):
                counts["articles"] += 1
                try:
                    urls = reference_urls(page.text)
                except ParserError:  # mwparserfromhell's internal error, known on a few real pages
                    counts["skipped.unparseable_wikitext"] += 1
                    continue
                counts["articles_citing"] += bool(urls)
                counts["urls_found"] += len(urls)
                yield from (url for url in urls if seen.add(url))


def _pages(path: str, counts: Counter) -> Iterator[Page]:
    """The articles of one dump; what is not an article, and a broken file's end, counted as skips."""
    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as raw:
            for item in iter_dump(decompressed(raw, path), path):
                if isinstance(item, Site):
                    continue
                skip = item if isinstance(item, Skip) else not_an_article(item)
                if skip is None:
                    yield item
                else:
                    counts[f"skipped.{skip.reason}"] += 1
    except READ_ERRORS:  # XML errors are skips of iter_dump: this is the compressed stream breaking
        counts["skipped.corrupt_compression"] += 1


def write_lines(output: str, lines: Iterable[str]) -> int:
    """Write text lines to `output` (local or remote) through a temporary name renamed at the end, so an
    interrupted run leaves neither a half-written output nor a hidden temporary file; returns the count."""
    ensure_dir(split_path(output)[0] or ".")
    tmp = temporary_name(output)
    count = 0
    try:
        with create(tmp) as raw, io.TextIOWrapper(raw, encoding="utf-8", newline="\n") as out:
            for line in lines:
                out.write(line + "\n")
                count += 1
    except BaseException:
        delete([tmp])
        raise
    replace(tmp, output)
    return count


def run_references(args: argparse.Namespace) -> int:
    specs = [parse_input(spec) for spec in args.dumps]
    paths = sorted({path for files in check_inputs(specs, "mediawiki").values() for path, _ in files})
    counts: Counter = Counter()
    counts["urls_unique"] = write_lines(args.output, iter_reference_urls(paths, counts))
    print(
        f"wrote {counts['urls_unique']} unique reference URLs to {args.output} "
        f"({counts['urls_found']} counting repeats across articles) from {counts['articles']} articles in "
        f"{counts['files']} file(s); {counts['articles_citing']} articles cite a URL"
    )
    for key, value in sorted(counts.items()):
        if key.startswith("skipped."):
            print(f"  {key}: {value}")
    return 0
