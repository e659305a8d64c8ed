"""`llamaprep quality positives`: the pages of a crawl that Wikipedia articles cite, as the positives of
`quality train` (LLaMA section 2.1: "pages used as references in Wikipedia" against random pages).

It joins the URL list of `quality references` with crawl data one already has (WARC, WET, JSONL, Parquet:
anything `prepare` reads; documents carry their `url`) on the canonical URL (`filters.urls`). The cited URLs
are held in an on-disk sqlite table (English Wikipedia cites tens of millions), the crawl is streamed, and
each cited page is written once (its first copy in input order) as a JSON line {"id", "url", "text"}.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from filters.document import Document
from filters.urls import canonical_url
from pipelines.quality_references import write_lines
from pipelines.readers import iter_documents_from


class CitedUrls:
    """The canonical cited URLs, on disk, each taken at most once."""

    def __init__(self, directory: str) -> None:
        self._db = sqlite3.connect(os.path.join(directory, "cited.sqlite"), isolation_level=None)
        self._db.executescript(
            "PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF;"
            "CREATE TABLE cited (url TEXT PRIMARY KEY, taken INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;"
        )
        self.count = 0

    def load(self, urls: Iterable[str]) -> None:
        self._db.execute("BEGIN")
        for url in urls:
            if url.strip():
                self.count += self._db.execute(
                    "INSERT OR IGNORE INTO cited (url) VALUES (?)", (canonical_url(url),)
                ).rowcount
        self._db.execute("COMMIT")

    def take(self, url: str) -> bool | None:
        """True the first time a cited URL is asked for, False after, None when it is not cited: one lookup
        for the uncited majority of a crawl."""
        row = self._db.execute("SELECT taken FROM cited WHERE url = ?", (url,)).fetchone()
        if row is None:
            return None
        if row[0]:
            return False
        self._db.execute("UPDATE cited SET taken = 1 WHERE url = ?", (url,))
        return True

    def close(self) -> None:
        self._db.close()


def _read_lines(path: str) -> Iterator[str]:
    with FileSystems.open(path, compression_type=CompressionTypes.AUTO) as raw:
        yield from io.TextIOWrapper(raw, encoding="utf-8", errors="replace")


def cited_pages(url_files: list[str], crawl: list[str], fmt: str | None, counts: dict[str, int]) -> Iterator[Document]:
    """The crawl documents whose canonical URL is cited, each URL once; `counts` receives cited URLs,
    crawl documents read, documents without a url, matches and repeated copies of a matched page."""
    with tempfile.TemporaryDirectory(prefix="llamaprep-positives-") as directory:
        cited = CitedUrls(directory)
        try:
            for path in url_files:
                cited.load(_read_lines(path))
            counts["cited_urls"] = cited.count
            for doc in iter_documents_from(crawl, fmt):
                counts["read"] += 1
                if not doc.url:
                    counts["without_url"] += 1
                    continue
                taken = cited.take(canonical_url(doc.url))
                if taken:
                    counts["matched"] += 1
                    yield doc
                elif taken is False:
                    counts["repeated_page"] += 1
        finally:
            cited.close()


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
