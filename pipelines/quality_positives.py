"""`llamaprep quality positives`: the pages of a crawl that Wikipedia articles cite, as the positives of
`quality train` (LLaMA section 2.1: "pages used as references in Wikipedia" against random pages).

It joins the URL list of `quality references` with crawl data one already has (WARC, WET, JSONL, Parquet:
anything `prepare` reads; documents carry their `url`) on the canonical URL (`filters.urls`). The cited URLs
are held in an on-disk set (`pipelines.disk_set`) (English Wikipedia cites tens of millions), the crawl is streamed, and
each cited page is written once (its first copy in input order) as a JSON line {"id", "url", "text"}.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from filters.document import Document
from filters.urls import canonical_url
from pipelines.disk_set import DiskSet
from pipelines.quality_references import write_lines
from pipelines.readers import iter_documents_from


def _read_lines(path: str) -> Iterator[str]:
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as raw:
        yield from io.TextIOWrapper(raw, encoding="utf-8", errors="replace")


def cited_pages(url_files: list[str], crawl: list[str], fmt: str | None, counts: dict[str, int]) -> Iterator[Document]:
    """The crawl documents whose canonical URL is cited, each URL once; `counts` receives cited URLs,
    crawl documents read, documents without a url, matches and repeated copies of a matched page."""
    with DiskSet("llamaprep-cited-") as cited, DiskSet("llamaprep-taken-") as taken:
        for path in url_files:
            counts["cited_urls"] += sum(cited.add(canonical_url(url)) for url in _read_lines(path) if url.strip())
        for doc in iter_documents_from(crawl, fmt):
            counts["read"] += 1
            if not doc.url:
                counts["without_url"] += 1
                continue
            key = canonical_url(doc.url)
            if key not in cited:  # one lookup for the uncited majority of a crawl
                continue
            if taken.add(key):
                counts["matched"] += 1
                yield doc
            else:
                counts["repeated_page"] += 1


def run_positives(args: argparse.Namespace) -> int:
    for path in args.urls:
        if not FileSystems.exists(path):
            raise FileNotFoundError(f"URL list {path} does not exist (write it with `llamaprep quality references`)")
    counts = {"cited_urls": 0, "read": 0, "without_url": 0, "matched": 0, "repeated_page": 0}
    pages = cited_pages(args.urls, args.crawl, args.format, counts)
    write_lines(
        args.output,
        (json.dumps({"id": doc.id, "url": doc.url, "text": doc.text}, ensure_ascii=False) for doc in pages),
    )
    print(
        f"wrote {counts['matched']:,} cited pages to {args.output}: {counts['matched']:,} of the "
        f"{counts['cited_urls']:,} cited URLs found among {counts['read']:,} crawl documents "
        f"({counts['repeated_page']:,} repeated copies of a found page and {counts['without_url']:,} documents "
        "without a url left out)"
    )
    return 0
