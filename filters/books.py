"""Project Gutenberg boilerplate: the header before the book and the licence after it.

A Project Gutenberg (PG) text file wraps the book between two marker lines. Two generations exist, and a
corpus of PG files holds both:

- old (1990s-2010s): `*** START OF THIS PROJECT GUTENBERG EBOOK <TITLE> ***`, an `End of Project
  Gutenberg's <Title>` line, then `*** END OF THIS PROJECT GUTENBERG EBOOK <TITLE> ***`; the oldest files
  end their header with `*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*...`;
- new (since about 2020): `*** START OF THE PROJECT GUTENBERG EBOOK <TITLE> ***` and `*** END OF THE
  PROJECT GUTENBERG EBOOK <TITLE> ***`.

The footer (the PG License, about 18.5 K characters) is longer than many short stories, so leaving it in
would make every short book a near-duplicate of every other. The marker variants covered here are those of
the `gutenberg` package's marker lists (c-w/gutenberg, `_domain_model/text.py`) that are real markers
rather than credit lines, written as line-anchored patterns: star runs and spacing vary ("***START OF"),
so do case and the COPYRIGHTED variant; German and French footers ("Ende dieses Projekt Gutenberg",
"Fin de Project Gutenberg") are included. The book is what lies between the last start marker and the
first end marker after it. A text without any marker (a boilerplate-free copy) passes unchanged.

The header's `Title:`, `Author:` and `Language:` lines are parsed here too (`header_fields`), for readers.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import ClassVar

from filters.base import Stage
from filters.document import Document, Rejection
from filters.options import option

_FLAGS = re.IGNORECASE | re.MULTILINE
# The line that ends the header. A long title can wrap the closing `***` onto the next line.
_START = re.compile(
    r"^[ \t]*\*+[ \t]*(?:"
    r"START[ \t]+OF[ \t]+(?:THE[ \t]+|THIS[ \t]+)?(?:COPYRIGHTED[ \t]+)?PROJECT[ \t]+GUTENBERG"
    r"(?:[^\n]*\*\*\*[ \t\r]*$|[^\n*]*\n[^\n*]{1,200}\*\*\*[ \t\r]*$)?"
    r"|END\*?[ \t]*THE[ \t]+SMALL[ \t]+PRINT"
    r")[^\n]*",
    _FLAGS,
)
# The line that starts the footer.
_END = re.compile(
    r"^[ \t]*(?:\*+[ \t]*)?(?:"
    r"END[ \t]+OF[ \t]+(?:THE[ \t]+|THIS[ \t]+)?(?:COPYRIGHTED[ \t]+)?PROJECT[ \t]+GUTENBERG"
    r"|ENDE[ \t]+DIESE[SR]?[ \t]+PROJE[CK]T[ \t]+GUTENBERG"
    r"|FIN[ \t]+DE[ \t]+(?:THE[ \t]+)?PROJECT[ \t]+GUTENBERG"
    r")",
    _FLAGS,
)
# A volunteer-credit line right after the start marker ("Produced by David Starner and the Online
# Distributed Proofreading Team"): PG's, not the author's.
_CREDIT = re.compile(
    r"(?:produced|prepared|transcribed|digiti[sz]ed)[ \t]+(?:by|from)\b|e-?text[ \t]+(?:was[ \t]+)?prepared\b"
    r"|this[ \t]+e-?(?:text|book)[ \t]+was[ \t]+(?:prepared|produced)\b",
    re.IGNORECASE,
)
_ANCHORS = ("utenberg", "UTENBERG", "SMALL PRINT")  # every marker line holds one (long needles scan fast)
_WINDOW = 1 << 16
_MAX_CREDIT_LINES = 5  # a credit paragraph longer than this is the book (a file without blank lines)
_LEADING_BLANK_LINES = re.compile(r"\A(?:[ \t\r]*\n)+")
_FIELD = re.compile(r"^(Title|Author|Language)[ \t]*:[ \t]*(\S[^\r\n]*)((?:\r?\n[ \t]+\S[^\r\n]*)*)", re.MULTILINE)

NO_MARKERS = "no_markers"


@dataclass(frozen=True, slots=True)
class Boilerplate:
    """Where the book lies in a PG file: `text[start:end]`; `header` and `footer` say which markers
    were found (neither: the whole text is the book)."""

    start: int
    end: int
    header: bool
    footer: bool

    @property
    def status(self) -> str:
        """`stripped`, `header_only`, `footer_only` or `no_markers` (the document's `gutenberg` metadata)."""
        if self.header and self.footer:
            return "stripped"
        if self.header or self.footer:
            return "header_only" if self.header else "footer_only"
        return NO_MARKERS


def _marker_lines(text: str) -> Iterator[int]:
    """Offsets of the lines that may hold a marker, in order: those containing an anchor, found with
    `str.find` window by window, so that a caller stopping at the footer never scans the licence (a regex
    anchored at every line start is ten times slower on a whole book)."""
    previous = -1
    for begin in range(0, len(text), _WINDOW):
        hits = []
        for anchor in _ANCHORS:  # an anchor belongs to the window it starts in
            stop = begin + _WINDOW + len(anchor) - 1
            at = text.find(anchor, begin, stop)
            while at >= 0:
                hits.append(at)
                at = text.find(anchor, at + 1, stop)
        for at in sorted(hits):
            line = text.rfind("\n", 0, at) + 1
            if line != previous:
                yield line
                previous = line


def find_book(text: str) -> Boilerplate:
    """The span of the book between the PG header and footer: after the last start marker that comes
    before the first end marker following a start marker (the oldest files repeat a start line), up to
    that end marker; without a start marker, up to the first end marker."""
    start = end = orphan_end = None
    for line in _marker_lines(text):
        if match := _START.match(text, line):
            start = match
        elif match := _END.match(text, line):
            if start is not None:
                end = match
                break
            orphan_end = orphan_end or match
    end = end or (orphan_end if start is None else None)
    begin = start.end() if start else 0
    stop = end.start() if end else len(text)
    return Boilerplate(begin, max(begin, stop), start is not None, end is not None)


def _first_start(text: str) -> int | None:
    """Where the first start marker line begins (None without one)."""
    return next((line for line in _marker_lines(text) if _START.match(text, line)), None)


def _without_credit(body: str) -> str:
    """The body less a leading volunteer-credit paragraph (ended by a blank line within a few lines),
    or less only the credit line when no blank line follows soon (files whose blank lines were lost)."""
    lines = body.split("\n", _MAX_CREDIT_LINES + 1)
    if not _CREDIT.match(lines[0].strip()):
        return body
    blank = next((i for i, line in enumerate(lines[: _MAX_CREDIT_LINES + 1]) if not line.strip()), None)
    cut = blank if blank is not None else 1
    return body.split("\n", cut)[cut] if len(lines) > cut else ""


def strip_gutenberg(text: str, strip_credits: bool = True) -> tuple[str, Boilerplate]:
    """The book without PG header and footer (leading and trailing blank lines trimmed, its line endings
    as they were), and where the markers were; a text without markers is returned as it is."""
    span = find_book(text)
    if not (span.header or span.footer):
        return text, span
    body = _LEADING_BLANK_LINES.sub("", text[span.start : span.end].lstrip("\r\n"))
    if strip_credits and span.header:
        body = _LEADING_BLANK_LINES.sub("", _without_credit(body))
    return body.rstrip(), span


def header_fields(text: str) -> dict[str, str]:
    """`title`, `author` and `language` from a PG header (the text before the start marker), each when
    present; wrapped values (indented continuation lines) are joined. Empty without a start marker, so
    a book's own "Title:" lines are never taken for the header's."""
    header_end = _first_start(text)
    if header_end is None:
        return {}
    fields: dict[str, str] = {}
    for match in _FIELD.finditer(text, 0, header_end):
        value = " ".join([match.group(2), *match.group(3).split()]) if match.group(3) else match.group(2)
        fields.setdefault(match.group(1).lower(), " ".join(value.split()))
    return fields


@dataclass
class GutenbergConfig:
    """Options of the `gutenberg` stage."""

    strip_credits: bool = option(True, "also remove a 'Produced by ...' credit paragraph right after the header")


class GutenbergStrip(Stage):
    """Remove the PG header and licence footer. `metadata["gutenberg"]` records what was found
    (`stripped`, `header_only`, `footer_only`, `no_markers`); a marker with no book after it (a licence
    file, a truncated download) is rejected as `gutenberg.empty`."""

    name: ClassVar[str] = "gutenberg"
    Config: ClassVar[type] = GutenbergConfig

    def process(self, doc: Document) -> Document | Rejection:
        text, span = strip_gutenberg(doc.text or "", self.config.strip_credits)
        if span.status != NO_MARKERS and not text.strip():
            return Rejection(doc, f"{self.name}.empty")
        return replace(doc, text=text, metadata={**doc.metadata, "gutenberg": span.status})
