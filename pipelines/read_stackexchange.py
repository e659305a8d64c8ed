"""StackExchange data dumps (`<site>.7z` holding Posts.xml, or an extracted Posts.xml): one document per
question, with its answers by score.

Answers point at their question by ParentId and may come millions of rows later, so a thread is only
complete at the end of the file. RedPajama-Data v1 kept every post of a site in a Python dict (and ran out of
memory on Stack Overflow); here one streaming pass (an XML pull parser fed in 1 MB slices, elements freed as
they are read) converts each body to text and writes the rows to an on-disk sqlite database in a temporary
directory, then one ordered query (an index on answers by parent, score) emits each question with its answers.
Memory stays flat whatever the size of the site (about 85 MB from 2 to 165 MB of Posts.xml); the database needs
about 0.7x the size of Posts.xml on disk (text instead of escaped HTML, plus the index), in the system's
temporary directory (`TMPDIR`). A `.7z` is decompressed straight into the parser (py7zr, no extracted copy),
in blocks of up to 128 MB (py7zr's own limit: about 350 MB of peak RSS from there on); a non-seekable stream
(a remote file) is first copied to a temporary file, which needs the archive's size on disk too.
"""

from __future__ import annotations

import contextlib
import itertools
import lzma
import os
import posixpath
import re
import shutil
import sqlite3
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

import py7zr
from py7zr.exceptions import ArchiveError
from py7zr.io import Py7zIO, WriterFactory

from filters.document import Document
from filters.stackexchange import LLAMA_SITES, format_thread, html_to_text, parse_tags
from pipelines.formats import (
    COMPRESSED_SUFFIXES,
    POSTS_NAME,
    READ_ERRORS,
    ReaderConfig,
    Record,
    Skip,
    parse_date,
    sized,
    strip_compression,
)

_SLICE = 1 << 20  # bytes fed to the XML parser at a time: bounds the rows held before they reach sqlite
_BATCH = 2000  # rows per sqlite insert
QUESTION, ANSWER = "1", "2"  # PostTypeId; the others are tag wikis, moderator nominations, wiki placeholders


@dataclass(frozen=True)
class SiteSelection:
    """Which sites to read: every site (empty), named sites, or "llama" for the paper's 28 (`LLAMA_SITES`).
    A file of another site is one counted `site_not_selected` skip, not opened."""

    sites: tuple[str, ...] = ()

    def selects(self, site: str) -> bool:
        wanted = set(itertools.chain.from_iterable(LLAMA_SITES if s == "llama" else (s,) for s in self.sites))
        return not wanted or site in wanted


def site_of(path: str) -> str:
    """The site a dump file belongs to: `math.stackexchange.com.7z`, `stackoverflow.com-Posts.7z`,
    `coffee.stackexchange.com-Posts.xml`, or the folder of a bare `Posts.xml`."""
    name = strip_compression(posixpath.basename(path))
    if name.lower().endswith(".7z"):
        name = name[:-3]
    elif POSTS_NAME.search(name):
        name = POSTS_NAME.sub("", name)
    name = re.sub(r"[-_.]?posts$", "", name, flags=re.IGNORECASE).rstrip("-_.")
    return name or posixpath.basename(posixpath.dirname(path)) or "stackexchange"


def parse_stackexchange(stream: IO[bytes], path: str, config: ReaderConfig, name: str) -> Iterator[Record]:
    """The threads of one dump file, by question id, then a counted skip for what is not one.

    - A question without answers is kept (RedPajama v1 kept those too: `filter.py` keeps every post with a
      title); answers come highest score first, then oldest (see `PostStore.threads`).
    - Ids are `<site>/<question id>` (stable whatever the folder layout; `name` is not needed), the url is
      the question's page, the date its CreationDate.
    - Skips: `not_question_or_answer` (tag wikis and other post types), `orphan_answer` (its question is not in
      the file), `duplicate_post`, `malformed_row`, `not_posts_file` (Comments.xml... of a site folder),
      `site_not_selected`, and for the file itself `corrupt_archive`, `no_posts_xml`, `malformed_xml`,
      `corrupt_file` / `corrupt_compression`. After an XML or archive error, the threads read before it are
      still emitted, with the answers read before it: a cut dump gives what it holds, counted.
    """
    site = site_of(path)
    if not SiteSelection(config.sites).selects(site):
        yield Skip("site_not_selected", f"{path}: {site}")
        return
    is_archive = strip_compression(path).lower().endswith(".7z")
    if not is_archive and not POSTS_NAME.search(strip_compression(posixpath.basename(path))):
        yield Skip("not_posts_file", path)  # Comments.xml, Tags.xml, LICENSE... of an extracted site folder
        return
    with tempfile.TemporaryDirectory(prefix="llamaprep-stackexchange-") as directory:
        store = PostStore(os.path.join(directory, "posts.sqlite"))
        try:
            failure = _load_archive(stream, path, store, directory) if is_archive else _load_xml(stream, path, store)
            store.finish()
            yield from store.skips()
            yield from _documents(store, site, config)
            if failure is not None:
                yield failure
        finally:
            store.close()


def _load_xml(stream: IO[bytes], path: str, store: PostStore) -> Skip | None:
    """Feed an extracted Posts.xml to the store; a read or XML error ends the file (what came before stays)."""
    compressed = path.lower().endswith(COMPRESSED_SUFFIXES)
    try:
        for chunk in iter(lambda: stream.read(_SLICE), b""):
            store.feed(chunk)
        store.end()
    except MalformedXml as error:
        return Skip("malformed_xml", f"{path}: {error}")
    except READ_ERRORS as error:
        return Skip("corrupt_compression" if compressed else "corrupt_file", f"{path}: {type(error).__name__}: {error}")
    return None


def _load_archive(stream: IO[bytes], path: str, store: PostStore, directory: str) -> Skip | None:
    """Decompress the archive's Posts.xml into the store; other members are not decompressed."""
    try:
        with contextlib.ExitStack() as stack:
            if not _seekable(stream):  # py7zr reads the archive's header at its end first
                stream = stack.enter_context(_copy(stream, os.path.join(directory, "archive.7z")))
            archive = stack.enter_context(py7zr.SevenZipFile(stream, mode="r"))
            members = [m for m in archive.getnames() if posixpath.basename(m).lower() == "posts.xml"]
            if not members:
                return Skip("no_posts_xml", f"{path}: no Posts.xml among its {len(archive.getnames())} files")
            archive.extract(targets=members[:1], factory=_StoreWriterFactory(store))
        store.end()
    except MalformedXml as error:
        return Skip("malformed_xml", f"{path}: {error}")
    except (ArchiveError, lzma.LZMAError, *READ_ERRORS) as error:  # py7zr: Bad7zFile, CrcError, EOFError...
        return Skip("corrupt_archive", f"{path}: {type(error).__name__}: {error}")
    return None


def _seekable(stream: IO[bytes]) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError):
        return False


def _copy(stream: IO[bytes], target: str) -> IO[bytes]:
    with open(target, "wb") as out:
        shutil.copyfileobj(stream, out, 1 << 20)
    return open(target, "rb")


class MalformedXml(ValueError):
    """Posts.xml is not well-formed XML (a cut file, a corrupt row); the message has the line and column."""


class PostStore:
    """The question and answer rows of one Posts.xml in an on-disk sqlite database: bounded memory for any
    site. `feed` takes XML bytes in any slices; `skips` and `threads` read the result once `finish` ran."""

    def __init__(self, database: str) -> None:
        self._db = sqlite3.connect(database, isolation_level=None)
        self._db.executescript(
            """
            PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; PRAGMA temp_store = FILE;
            CREATE TABLE questions (id INTEGER PRIMARY KEY, score INTEGER, created TEXT, title TEXT,
                                    tags TEXT, accepted INTEGER, text TEXT);
            CREATE TABLE answers (id INTEGER PRIMARY KEY, parent INTEGER, score INTEGER, text TEXT);
            CREATE TABLE skipped (reason TEXT, detail TEXT);
            BEGIN;
            """
        )
        self._parser = ET.XMLPullParser(events=("start", "end"))
        self._root: ET.Element | None = None
        self._rows: dict[str, list[tuple[Any, ...]]] = {"questions": [], "answers": [], "skipped": []}
        self._fed = {"questions": 0, "answers": 0}

    def feed(self, data: bytes) -> None:
        for start in range(0, len(data), _SLICE):
            try:
                self._parser.feed(data[start : start + _SLICE])
                self._drain()
            except ET.ParseError as error:
                raise MalformedXml(str(error)) from None

    def end(self) -> None:
        """The input is complete: an unclosed document (a cut file) is malformed."""
        try:
            self._parser.close()
            self._drain()
        except ET.ParseError as error:
            raise MalformedXml(str(error)) from None

    def _drain(self) -> None:
        for event, element in self._parser.read_events():
            if event == "start":
                self._root = self._root if self._root is not None else element
            elif element.tag == "row":
                self._add(element.attrib)
                self._root.clear()  # type: ignore[union-attr]  # rows are children of the root: free them
        for table, rows in self._rows.items():
            if len(rows) >= _BATCH:
                self._flush(table)

    def _add(self, row: dict[str, str]) -> None:
        kind = row.get("PostTypeId")
        try:
            post_id = int(row["Id"])
            if kind == QUESTION:
                values = (
                    post_id, int(row.get("Score") or 0), row.get("CreationDate"), row.get("Title", ""),
                    row.get("Tags", ""), _int_or_none(row.get("AcceptedAnswerId")), html_to_text(row.get("Body", "")),
                )  # fmt: skip
                self._rows["questions"].append(values)
            elif kind == ANSWER:
                values = (post_id, int(row["ParentId"]), int(row.get("Score") or 0), html_to_text(row.get("Body", "")))
                self._rows["answers"].append(values)
            else:
                self._rows["skipped"].append(("not_question_or_answer", f"post {post_id}: PostTypeId {kind}"))
        except (KeyError, ValueError) as error:
            self._rows["skipped"].append(("malformed_row", f"post {row.get('Id')}: {type(error).__name__} {error}"))

    def _flush(self, table: str) -> None:
        rows = self._rows[table]
        if table == "skipped":
            self._db.executemany("INSERT INTO skipped VALUES (?, ?)", rows)
        else:
            marks = ", ".join("?" * len(rows[0]))
            self._db.executemany(f"INSERT OR IGNORE INTO {table} VALUES ({marks})", rows)
            self._fed[table] += len(rows)
        rows.clear()

    def finish(self) -> None:
        """Write what is buffered, then index answers by (question, score) for the ordered query."""
        for table in self._rows:
            if self._rows[table]:
                self._flush(table)
        self._db.execute("COMMIT")
        self._db.execute("CREATE INDEX answers_by_parent ON answers (parent, score DESC, id)")

    def skips(self) -> Iterator[Skip]:
        """Rows that are not Q&A, malformed or repeated, and answers whose question is not in the file."""
        for reason, detail in self._db.execute("SELECT reason, detail FROM skipped ORDER BY rowid"):
            yield Skip(reason, detail)
        for table in self._fed:
            (stored,) = self._db.execute(f"SELECT count(*) FROM {table}").fetchone()
            for _ in range(self._fed[table] - stored):
                yield Skip("duplicate_post", f"a {table[:-1]} id seen twice (the first one is kept)")
        orphans = "SELECT id, parent FROM answers WHERE parent NOT IN (SELECT id FROM questions) ORDER BY id"
        for answer_id, parent in self._db.execute(orphans):
            yield Skip("orphan_answer", f"answer {answer_id}: question {parent} is not in the file")

    def threads(self) -> Iterator[tuple[tuple[Any, ...], list[tuple[int, int, str]]]]:
        """Each question row, by id, with its answers (id, score, text): highest score first, as the paper
        says, then oldest (lowest id: ids grow with time) first. Scores are compared as numbers (RedPajama
        compared strings: "9" above "10")."""
        rows = self._db.execute(
            """
            SELECT q.id, q.score, q.created, q.title, q.tags, q.accepted, q.text, a.id, a.score, a.text
            FROM questions q LEFT JOIN answers a ON a.parent = q.id
            ORDER BY q.id, a.score DESC, a.id
            """
        )
        for _, group in itertools.groupby(rows, key=lambda row: row[0]):
            first = next(group)
            answers = [(row[7], row[8], row[9]) for row in itertools.chain((first,), group) if row[7] is not None]
            yield first[:7], answers

    def close(self) -> None:
        self._db.close()


class _StoreWriter(Py7zIO):
    """What py7zr writes Posts.xml into: the store's parser, not a file."""

    def __init__(self, store: PostStore) -> None:
        self._store = store
        self._size = 0

    def write(self, data: bytes | bytearray) -> int:
        self._store.feed(bytes(data))
        self._size += len(data)
        return len(data)

    def read(self, size: int | None = None) -> bytes:
        return b""

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._size

    def flush(self) -> None:
        pass

    def size(self) -> int:
        return self._size

    def close(self) -> None:
        pass


class _StoreWriterFactory(WriterFactory):
    def __init__(self, store: PostStore) -> None:
        self._store = store

    def create(self, filename: str) -> _StoreWriter:
        return _StoreWriter(self._store)


def _documents(store: PostStore, site: str, config: ReaderConfig) -> Iterator[Record]:
    source = config.source or "stackexchange"
    for (question_id, score, created, title, tags, accepted, body), answers in store.threads():
        text = format_thread(title, body, (answer_text for _, _, answer_text in answers))
        doc = Document(
            id=f"{site}/{question_id}",
            text=text,
            source=source,
            url=f"https://{site}/questions/{question_id}",
            date=parse_date(created),
            metadata={
                "site": site,
                "question_id": question_id,
                "score": score,
                "answer_count": len(answers),
                "answer_ids": [answer_id for answer_id, _, _ in answers],
                "accepted_answer_id": accepted,
                "tags": parse_tags(tags),
            },
        )
        yield sized(doc, config, len(text.encode("utf-8", errors="surrogatepass")))


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value else None
