"""Books: plain-text files (Project Gutenberg's `.txt`) and EPUB, one book per file.

A `.txt` book is read whole, like the `text` format, with the Project Gutenberg header's title, author and
language in its metadata (the header itself is removed later, by the `gutenberg` stage, so that a recipe
can keep it). An EPUB is a zip of XHTML files; its OPF package file (found through
`META-INF/container.xml`) lists them in the `spine`, the reading order, which is not the order of the zip
entries. Each spine document becomes text with resiliparse (already used for WARC pages), keeping headings
and paragraphs as lines; the OPF's Dublin Core `title`, `creator` and `language` are the metadata. Only
the standard library's `zipfile` and `ElementTree` are needed: no EPUB library.

A damaged EPUB (not a zip, no OPF, an OPF that does not parse, a spine naming a missing file, no text)
is a counted `Skip("corrupt_epub")`, never a traceback; a file with a NUL byte is no text book: `binary_file`.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
import zlib
from collections.abc import Iterator
from typing import IO
from urllib.parse import unquote
from xml.etree import ElementTree

from filters.books import header_fields
from filters.document import Document
from pipelines.formats import (
    Oversized,
    ReaderConfig,
    Record,
    Repaired,
    Skip,
    decode_utf8,
    sized,
    strip_compression,
    whole_text,
)

SOURCE = "books"
_CONTAINER = "META-INF/container.xml"
_XHTML_TYPES = ("application/xhtml+xml", "text/html")
_NOT_TEXT = "a NUL byte (an image, an archive, a PDF: not a text book)"
_MARKUP_FACTOR = 8  # XHTML bytes per text byte beyond which a book is too large before it is even parsed
# What zipfile and ElementTree raise on a broken archive: bad or truncated zip, corrupt deflate data, an
# encrypted entry (RuntimeError) or an unsupported compression method, a missing entry (KeyError), bad XML.
_DAMAGED = (
    zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, RuntimeError, NotImplementedError,
    KeyError, EOFError, OSError, ValueError, ElementTree.ParseError,
)  # fmt: skip


class DamagedEpub(ValueError):
    """An EPUB whose structure is missing or broken (the message says what)."""


def parse_book(stream: IO[bytes], path: str, config: ReaderConfig, name: str) -> Iterator[Record]:
    """One book: EPUB when the file name says `.epub` (compression suffixes ignored), plain text else."""
    if strip_compression(path).lower().endswith(".epub"):
        yield from parse_epub(stream, path, config, name)
    else:
        yield from parse_text_book(stream, path, config, name)


def parse_text_book(stream: IO[bytes], path: str, config: ReaderConfig, name: str) -> Iterator[Record]:
    """A plain-text book, read as the `text` format reads a file; PG header fields (title, author, language)
    go to the metadata."""

    def document(text: str) -> Document:
        metadata = {"path": path, **header_fields(text)}
        return Document(id=name, text=text, source=config.source or SOURCE, metadata=metadata)

    yield from whole_text(stream, path, config, document, binary=_NOT_TEXT)


def parse_epub(stream: IO[bytes], path: str, config: ReaderConfig, name: str) -> Iterator[Record]:
    """An EPUB's spine documents, in reading order, as one document."""
    seekable = stream if stream.seekable() else io.BytesIO(stream.read())
    try:
        with zipfile.ZipFile(seekable) as archive:
            fields, items = _package(archive)
            budget = config.max_document_bytes * _MARKUP_FACTOR
            declared = sum(archive.getinfo(item).file_size for item in items)
            metadata = {"path": path, "format": "epub", **fields}
            if declared > budget:
                yield Oversized(Document(id=name, text="", source=config.source or SOURCE, metadata=metadata), declared)
                return
            chapters = []
            for item in items:
                text, repaired = decode_utf8(archive.read(item))
                if repaired:
                    yield Repaired("invalid_utf8", f"{path}: {item}")
                chapters.append(_xhtml_text(text))
    except _DAMAGED as error:  # DamagedEpub is a ValueError
        yield Skip("corrupt_epub", f"{path}: {type(error).__name__}: {error}")
        return
    text = "\n\n".join(chapter for chapter in chapters if chapter.strip())
    if not text:
        yield Skip("corrupt_epub", f"{path}: no text in the spine")
        return
    doc = Document(id=name, text=text, source=config.source or SOURCE, metadata=metadata)
    yield sized(doc, config, len(text.encode("utf-8")))


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


def _package(archive: zipfile.ZipFile) -> tuple[dict[str, str], list[str]]:
    """Dublin Core title/creator/language and the zip paths of the spine's XHTML documents, in order."""
    container = ElementTree.fromstring(archive.read(_CONTAINER))
    rootfile = next((e.get("full-path") for e in container.iter() if _local(e.tag) == "rootfile"), None)
    if not rootfile:
        raise DamagedEpub(f"{_CONTAINER} names no rootfile (the OPF package)")
    opf = ElementTree.fromstring(archive.read(rootfile))
    base = posixpath.dirname(rootfile)
    fields: dict[str, str] = {}
    manifest: dict[str, tuple[str, str]] = {}
    spine: list[str] = []
    for element in opf.iter():
        tag = _local(element.tag)
        if tag in ("title", "creator", "language") and (element.text or "").strip():
            fields.setdefault("author" if tag == "creator" else tag, " ".join(element.text.split()))
        elif tag == "item" and element.get("id") and element.get("href"):
            href = posixpath.normpath(posixpath.join(base, unquote(element.get("href").partition("#")[0])))
            manifest[element.get("id")] = (href, element.get("media-type", ""))
        elif tag == "itemref" and element.get("idref"):
            spine.append(element.get("idref"))
    if not spine:
        raise DamagedEpub(f"{rootfile} has no spine")
    missing = [idref for idref in spine if idref not in manifest]
    if missing:
        raise DamagedEpub(f"{rootfile}: spine items {missing[:3]} are not in the manifest")
    return fields, [manifest[idref][0] for idref in spine if manifest[idref][1] in _XHTML_TYPES]


def _xhtml_text(html: str) -> str:
    """The text of one XHTML document: block elements as lines, paragraphs apart, no head or scripts."""
    from resiliparse.extract.html2text import extract_plain_text

    return extract_plain_text(html, main_content=False, alt_texts=False, list_bullets=False, preserve_formatting=True)
