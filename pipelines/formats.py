"""Record parsers for every input format, over an already-opened binary stream.

Each parser yields `Document`s and `Skip`s: a Skip is something that is not a document (a non-HTML WARC
record) or could not be read (a corrupt gzip tail, a truncated record, a line of invalid JSON). Skips are
counted and reported by the caller, so nothing is lost silently. Parsers know nothing about Beam; the
Beam source (`pipelines.readers`) and the local iterator both use them.
"""

from __future__ import annotations

import ast
import bz2
import gzip
import io
import json
import posixpath
import re
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, Any

import zstandard

from filters.document import Document
from filters.options import ConfigError, option
from filters.registry import load_entry

FORMATS = ("wet", "warc", "jsonl", "parquet", "text", "mediawiki", "stackexchange", "arxiv", "code", "book")


@dataclass(frozen=True)
class ReaderConfig:
    """How to read inputs. Field paths may be dotted (`metadata.url`); the first present one wins."""

    format: str | None = option(None, f"input format: {', '.join(FORMATS)} (default: from file names)")
    text_field: str = option("text", "JSONL/Parquet field holding the text")
    id_fields: tuple[str, ...] = ("id",)
    url_fields: tuple[str, ...] = ("url", "metadata.warc_url", "metadata.url")
    date_fields: tuple[str, ...] = ("date", "created", "metadata.warc_date", "timestamp")
    source_field: str = "source"
    source: str | None = option(None, "source label for every document (default: from records or file names)")
    max_document_bytes: int = 8_000_000  # larger documents are dropped as `reader.too_large`
    html_main_content: bool = True  # WARC: resiliparse main-content extraction (boilerplate removal)
    limit: int | None = option(None, "read only the first N documents, in input order (sampling a dump)")
    sites: tuple[str, ...] = ()  # stackexchange: read only these sites; "llama" = the paper's 28 (empty: all)
    wiki_languages: tuple[str, ...] = ()  # mediawiki: read only dumps in these languages (empty: all)

    def validate(self) -> None:
        if self.format is not None and self.format not in FORMATS:
            raise ConfigError(f"reader.format: unknown format {self.format!r}; known: {', '.join(FORMATS)}")
        if self.max_document_bytes <= 0:
            raise ConfigError("reader.max_document_bytes must be positive")
        if self.limit is not None and self.limit <= 0:
            raise ConfigError("reader.limit must be positive")


@dataclass(slots=True)
class Skip:
    """A record that did not become a document, with a reason (counted as `skipped.<reason>`)."""

    reason: str
    detail: str = ""


@dataclass(slots=True)
class Repaired:
    """Something fixed while reading a kept document (invalid UTF-8 replaced), counted as `repaired.<reason>`."""

    reason: str
    detail: str = ""


@dataclass(slots=True)
class Oversized:
    """A document over `max_document_bytes`: it was read, so it is accounted as a drop, not a skip."""

    doc: Document
    size: int


Record = Document | Skip | Repaired | Oversized

COMPRESSED_SUFFIXES = (".gz", ".zst", ".zstd", ".bz2")  # what `decompressed` undoes
POSTS_NAME = re.compile(r"posts(\.[\w-]+)?\.xml$", re.IGNORECASE)  # Posts.xml, Posts.head.xml, so-Posts.xml


def strip_compression(name: str) -> str:
    """`name` without its compression suffix (any case): the name of what `parse_stream` hands a parser."""
    lower = name.lower()
    for suffix in COMPRESSED_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def detect_format(path: str) -> str:
    """The format implied by a file name (compression suffix ignored)."""
    name = strip_compression(posixpath.basename(path).lower())
    if name.endswith((".wet", ".warc.wet")):
        return "wet"
    if name.endswith((".warc", ".arc")):
        return "warc"
    if name.endswith((".jsonl", ".json", ".ndjson")):
        return "jsonl"
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith((".txt", ".text", ".md")):
        return "text"
    if name.endswith(".xml") and "wiki" in name:
        return "mediawiki"
    if name.endswith(".7z") or POSTS_NAME.search(name):
        return "stackexchange"
    if name.endswith(".tex"):
        return "arxiv"
    if name.endswith(".epub"):
        return "book"
    raise ConfigError(f"cannot tell the format of {path!r} from its name; pass --format ({', '.join(FORMATS)})")


class ZstdFrames(io.RawIOBase):
    """zstd frames one after another, raising EOFError when the input ends inside a frame: zstandard's
    `stream_reader` ends quietly there, which lost the rest of a truncated file without a word."""

    CHUNK = 1 << 20

    def __init__(self, raw: IO[bytes]) -> None:
        self._raw = raw
        self._context = zstandard.ZstdDecompressor()
        self._frame: Any = None
        self._pending = b""
        self._buffer = bytearray()
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer and not self._done:
            self._fill()
        count = min(len(target), len(self._buffer))
        target[:count] = self._buffer[:count]
        del self._buffer[:count]
        return count

    def _fill(self) -> None:
        data, self._pending = self._pending or self._raw.read(self.CHUNK), b""
        if not data:
            if self._frame is not None and not self._frame.eof:
                raise EOFError("the zstd stream ends inside a frame (a truncated file)")
            self._done = True
            return
        if self._frame is None or self._frame.eof:
            self._frame = self._context.decompressobj()
        self._buffer += self._frame.decompress(data)
        if self._frame.eof:
            self._pending = self._frame.unused_data


def decompressed(raw: IO[bytes], path: str) -> IO[bytes]:
    """A decompressing reader chosen by suffix. gzip is read member by member and zstd frame by frame
    (Common Crawl files are concatenated members), and both raise on a truncated or corrupt stream
    instead of stopping quietly."""
    name = path.lower()
    if name.endswith(".gz"):
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if name.endswith(".bz2"):
        return bz2.BZ2File(raw, mode="rb")  # multistream dumps (Wikipedia's) are read through
    if name.endswith((".zst", ".zstd")):
        return io.BufferedReader(ZstdFrames(raw))
    return raw


class Prefixed(io.RawIOBase):
    """A stream with bytes already read (to sniff what it holds) put back in front."""

    def __init__(self, prefix: bytes, rest: IO[bytes]) -> None:
        self._prefix, self._rest = prefix, rest

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        data = self._prefix[: len(target)] if self._prefix else self._rest.read(len(target))
        self._prefix = self._prefix[len(data) :]
        target[: len(data)] = data
        return len(data)


def read_capped(stream: IO[bytes], limit: int) -> tuple[bytes, int]:
    """Up to `limit + 1` bytes, and the stream's whole length: past the limit the rest is read through, not
    kept, to measure an oversized document."""
    data = stream.read(limit + 1)
    if len(data) <= limit:
        return data, len(data)
    return data, len(data) + sum(len(chunk) for chunk in iter(lambda: stream.read(1 << 20), b""))


def trailing_data(archive: tarfile.TarFile) -> int:
    """The bytes other than NUL left once a streamed tar's members ran out. tarfile's stream mode ends an
    archive silently at a damaged header past the first one, so the members after it would vanish uncounted;
    reading to the end also makes a gzip stream check its CRC (corrupt data then raises)."""
    rest = archive.fileobj
    return sum(len(chunk) - chunk.count(0) for chunk in iter(lambda: rest.read(1 << 20), b""))


READ_ERRORS = (EOFError, OSError, zlib.error, ValueError, zstandard.ZstdError)
_SURROGATES = re.compile("[\ud800-\udfff]")


def decode_utf8(data: bytes) -> tuple[str, bool]:
    """Decode UTF-8; invalid bytes become U+FFFD and the second value says a repair happened."""
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("utf-8", errors="replace"), True


def parse_date(value: Any) -> datetime | None:
    """ISO-8601 strings (with `Z`), epoch seconds or datetimes, as UTC; None if unparseable."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def lookup(record: dict[str, Any], dotted: str) -> Any:
    """`record["a"]["b"]` for "a.b"; nested values stored as JSON or Python-repr strings are parsed."""
    value: Any = record
    for part in dotted.split("."):
        if isinstance(value, str):
            value = _parse_mapping(value)
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _parse_mapping(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def first_present(record: dict[str, Any], paths: tuple[str, ...]) -> Any:
    for path in paths:
        value = lookup(record, path)
        if value not in (None, ""):
            return value
    return None


_FORMAT_SUFFIXES = re.compile(
    r"(\.(warc|wet|jsonl|json|ndjson|parquet|txt|text|md|gz|zst|zstd|bz2|arc|xml|7z|tar|tgz|tex|epub))+$", re.I
)


def file_stem(path: str) -> str:
    name = posixpath.basename(path)
    return _FORMAT_SUFFIXES.sub("", name)


def sized(doc: Document, config: ReaderConfig, size: int) -> Document | Oversized:
    """The document, or `Oversized` when its `size` in bytes is over `max_document_bytes`."""
    if size > config.max_document_bytes:
        return Oversized(doc, size)
    return doc


def parse_dict_record(record: dict[str, Any], config: ReaderConfig, default_id: str, default_source: str) -> Record:
    """A JSON/Parquet row as a Document, mapping fields through the config."""
    text = record.get(config.text_field)
    if not isinstance(text, str):
        return Skip("missing_text", f"{default_id}: no string field {config.text_field!r}")
    doc_id = first_present(record, config.id_fields)
    source = config.source or record.get(config.source_field) or default_source
    url = first_present(record, config.url_fields)
    date_value = first_present(record, config.date_fields)
    used = {config.text_field, config.source_field, *config.id_fields, *config.url_fields, *config.date_fields}
    metadata = {k: v for k, v in record.items() if k not in used}
    date = parse_date(date_value)
    if date is None and date_value is not None:
        metadata["unparsed_date"] = str(date_value)
    doc = Document(
        id=str(doc_id) if doc_id is not None else default_id,
        text=text,
        source=str(source),
        url=str(url) if url is not None else None,
        date=date,
        metadata=metadata,
    )
    return sized(doc, config, len(text.encode("utf-8", errors="surrogatepass")))


Row = tuple[int, dict[str, Any]]  # a JSON line's or Parquet row's number (from 1) and its fields


def json_lines(stream: IO[bytes], path: str) -> Iterator[Row | Skip | Repaired]:
    """The objects of a JSON-lines file with their line numbers; a line that is not an object is a Skip."""
    reader = io.BufferedReader(stream) if not isinstance(stream, io.BufferedIOBase) else stream
    for line_no, raw_line in enumerate(reader, start=1):
        if not raw_line.strip():
            continue
        line, repaired = decode_utf8(raw_line)
        if repaired:
            yield Repaired("invalid_utf8", f"{path}:{line_no}")
        try:
            record = json.loads(line)
        except ValueError as error:
            yield Skip("invalid_json", f"{path}:{line_no}: {error}")
            continue
        if not isinstance(record, dict):
            yield Skip("invalid_json", f"{path}:{line_no}: not an object")
            continue
        yield line_no, record


def parquet_rows(stream: IO[bytes], path: str) -> Iterator[Row | Skip]:
    """The rows of a Parquet file with their numbers, or one `corrupt_file` Skip when it does not open."""
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(io.BytesIO(stream.read()))
    except Exception as error:  # pyarrow raises ArrowInvalid and friends on corrupt files
        yield Skip("corrupt_file", f"{path}: {error}")
        return
    rows = (row for batch in parquet.iter_batches() for row in batch.to_pylist())
    yield from enumerate(rows, start=1)


def parse_jsonl(stream: IO[bytes], path: str, config: ReaderConfig, name: str) -> Iterator[Record]:
    stem = file_stem(path)
    for item in json_lines(stream, path):
        yield parse_dict_record(item[1], config, f"{name}:{item[0]}", stem) if isinstance(item, tuple) else item


def parse_parquet(stream: IO[bytes], path: str, config: ReaderConfig, name: str) -> Iterator[Record]:
    stem = file_stem(path)
    for item in parquet_rows(stream, path):
        yield parse_dict_record(item[1], config, f"{name}:{item[0]}", stem) if isinstance(item, tuple) else item


def whole_text(
    stream: IO[bytes], path: str, config: ReaderConfig, document: Callable[[str], Document], binary: str = ""
) -> Iterator[Record]:
    """A whole file as one document, `document(text)`, read up to `max_document_bytes` (past it `Oversized`,
    the rest read through to measure it). With `binary` (why a NUL byte means no text), a file holding a NUL
    byte is a `binary_file` Skip."""
    data, size = read_capped(stream, config.max_document_bytes)
    if binary and b"\0" in data:
        yield Skip("binary_file", f"{path}: {binary}")
        return
    text, repaired = decode_utf8(data)
    if repaired:
        yield Repaired("invalid_utf8", path)
    yield sized(document(text), config, size)


def parse_text(stream: IO[bytes], path: str, config: ReaderConfig, name: str) -> Iterator[Record]:
    """A plain-text file is one document (books, manuals)."""
    source = config.source or file_stem(path)

    def document(text: str) -> Document:
        return Document(id=name, text=text, source=source, metadata={"path": path})

    yield from whole_text(stream, path, config, document)


def _warc_records(stream: IO[bytes], record_types: Any, parse_http: bool) -> Iterator[Any]:
    from fastwarc.warc import ArchiveIterator

    yield from ArchiveIterator(stream, record_types=record_types, parse_http=parse_http)


def _warc_header(record: Any, name: str) -> str | None:
    value = record.headers.get(name)
    return value.strip().strip("<>") if value else None


def _record_id(record: Any) -> str:
    return (record.record_id or "").strip("<>")


def _read_body(record: Any, path: str) -> bytes | Skip:
    """A record's payload, or a Skip when the file ended before its declared length."""
    body = record.reader.read()
    if record.content_length is not None and len(body) < record.content_length:
        return Skip("truncated_record", f"{path}: {_record_id(record)}")
    return body


def _warc_document(record: Any, text: str, source: str, metadata: dict[str, Any]) -> Document:
    return Document(
        id=_record_id(record),
        text=text,
        source=source,
        url=_warc_header(record, "WARC-Target-URI"),
        date=parse_date(_warc_header(record, "WARC-Date")),
        metadata=metadata,
    )


def parse_wet(stream: IO[bytes], path: str, config: ReaderConfig, name: str) -> Iterator[Record]:
    """Common Crawl WET: `conversion` records whose payload is the extracted UTF-8 text."""
    from fastwarc.warc import WarcRecordType

    source = config.source or "commoncrawl"
    for record in _warc_records(stream, WarcRecordType.conversion, parse_http=False):
        body = _read_body(record, path)
        if isinstance(body, Skip):
            yield body
            continue
        text, repaired = decode_utf8(body)
        if repaired:
            yield Repaired("invalid_utf8", _record_id(record))
        metadata = {"warc_refers_to": _warc_header(record, "WARC-Refers-To"), "warc_file": posixpath.basename(path)}
        yield sized(_warc_document(record, text, source, metadata), config, len(body))


_HTML_TYPES = ("text/html", "application/xhtml+xml")


def parse_warc(stream: IO[bytes], path: str, config: ReaderConfig, name: str) -> Iterator[Record]:
    """WARC `response` records with HTML, converted to main text with resiliparse."""
    from fastwarc.warc import WarcRecordType
    from resiliparse.extract.html2text import extract_plain_text
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    source = config.source or "warc"
    for record in _warc_records(stream, WarcRecordType.response, parse_http=True):
        body = _read_body(record, path)
        if isinstance(body, Skip):
            yield body
            continue
        http = record.http_headers
        content_type = (http.get("Content-Type") or "").lower() if http is not None else ""
        status = http.status_code if http is not None else None
        if status != 200 or not content_type.startswith(_HTML_TYPES):
            yield Skip("not_html_200", f"{_record_id(record)}: {status} {content_type}")
            continue
        try:
            body = decode_http_body(body, http)
        except (ValueError, zlib.error) as error:
            yield Skip("undecodable_http_body", f"{_record_id(record)}: {error}")
            continue
        html = bytes_to_str(body, detect_encoding(body))
        text = extract_plain_text(html, main_content=config.html_main_content, alt_texts=False, list_bullets=False)
        metadata = {"warc_file": posixpath.basename(path), "html_bytes": len(body)}
        yield sized(_warc_document(record, text, source, metadata), config, len(text.encode("utf-8")))


def dechunk(body: bytes) -> bytes:
    """Undo HTTP/1.1 chunked transfer encoding (crawlers such as wget store responses as sent)."""
    out = bytearray()
    pos = 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            raise ValueError("chunked body ends inside a chunk header")
        size = int(body[pos:end].split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            return bytes(out)
        start = end + 2
        if start + size > len(body):
            raise ValueError("chunked body is shorter than its chunk sizes")
        out += body[start : start + size]
        pos = start + size + 2


def decode_http_body(body: bytes, http: Any) -> bytes:
    """The entity body as the server meant it: transfer encoding and gzip/deflate content encoding undone."""
    if "chunked" in (http.get("Transfer-Encoding") or "").lower():
        body = dechunk(body)
    encoding = (http.get("Content-Encoding") or "").lower().strip()
    if encoding in ("gzip", "x-gzip", "deflate"):
        body = zlib.decompress(body, 47)
    elif encoding not in ("", "identity"):
        raise ValueError(f"unsupported Content-Encoding {encoding!r}")
    return body


Parser = Callable[[IO[bytes], str, ReaderConfig, str], Iterator[Record]]


def _lazy(spec: str) -> Parser:
    """A parser imported on first use ("module:function"), so reading web data never imports the
    source-specific readers' dependencies (mwparserfromhell, py7zr, ...)."""

    def parse(stream: IO[bytes], path: str, config: ReaderConfig, name: str) -> Iterator[Record]:
        return load_entry(spec)(stream, path, config, name)

    return parse


PARSERS: dict[str, Parser] = {
    "wet": parse_wet,
    "warc": parse_warc,
    "jsonl": parse_jsonl,
    "parquet": parse_parquet,
    "text": parse_text,
    "mediawiki": _lazy("pipelines.read_wikipedia:parse_mediawiki"),
    "stackexchange": _lazy("pipelines.read_stackexchange:parse_stackexchange"),
    "arxiv": _lazy("pipelines.read_arxiv:parse_arxiv"),
    "code": _lazy("pipelines.read_code:parse_code"),
    "book": _lazy("pipelines.read_books:parse_book"),
}


def parse_stream(raw: IO[bytes], path: str, config: ReaderConfig, name: str | None = None) -> Iterator[Record]:
    """Every record of one file; a read error ends the file with a counted `Skip` (records before it
    are kept). `name` prefixes default ids (`name:line`; default: the file's stem). Documents come out
    with valid text only: lone surrogates (which JSON escapes can carry) become U+FFFD, counted."""
    fmt = config.format or detect_format(path)
    compressed = path.lower().endswith(COMPRESSED_SUFFIXES)
    if compressed and hasattr(raw, "peek") and not raw.peek(1):
        yield Skip("corrupt_compression", f"{path}: an empty file (a compressed file holds at least a header)")
        return
    stream = decompressed(raw, path)
    try:
        for record in PARSERS[fmt](stream, path, config, name or file_stem(path)):
            doc = record.doc if isinstance(record, Oversized) else record
            if isinstance(doc, Document) and _repair_surrogates(doc):
                yield Repaired("lone_surrogate", f"{path}: {doc.id}")
            yield record
    except READ_ERRORS as error:
        yield Skip("corrupt_compression" if compressed else "corrupt_file", f"{path}: {type(error).__name__}: {error}")


def _valid(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _repair_surrogates(doc: Document) -> bool:
    """Replace lone surrogates in a document's strings (in place: the reader owns the new document);
    True when there were any."""
    repaired = False
    for field in ("id", "text", "url", "source"):
        value = getattr(doc, field)
        if value is not None and not value.isascii() and not _valid(value):
            setattr(doc, field, _SURROGATES.sub("\ufffd", value))
            repaired = True
    if doc.metadata:
        dumped = json.dumps(doc.metadata, ensure_ascii=False)
        if not _valid(dumped):
            doc.metadata = json.loads(_SURROGATES.sub("\ufffd", dumped))
            repaired = True
    return repaired
