"""CCNet line dedup, the engine-free half: line hashes, which occurrence of a line survives, and how a
document is rebuilt without its removed lines.

A line is identified by the 64-bit xxh3 hash of its CCNet normalization (cc_net hashes with sha1 truncated
to 8 bytes; xxh3 is as collision-resistant at 64 bits and much faster). Of all occurrences of a line in
the corpus, the one at the smallest (document id, line number) is kept; cc_net keeps the first one in its
processing order, which here is made explicit so any runner gives the same result. Blank lines and lines
that normalize to nothing (pure punctuation) are never removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import xxhash

from filters.ccnet_normalize import normalize_line

Occurrence = tuple[str, int]  # (document id, line number)


def line_hashes(text: str) -> Iterator[tuple[int, int]]:
    """(line number, hash) for every line with a non-empty normalization."""
    for number, line in enumerate(text.split("\n")):
        normalized = normalize_line(line)
        if normalized:
            yield number, xxhash.xxh3_64_intdigest(normalized.encode("utf-8"))


def duplicate_occurrences(occurrences: Iterable[Occurrence]) -> Iterator[Occurrence]:
    """All occurrences of one line except the first in (document id, line number) order.

    Takes two passes over `occurrences` (a re-iterable, e.g. a Beam GroupByKey value) so that a line
    repeated on millions of pages is never held in memory as a list."""
    first = min(occurrences)
    for occurrence in occurrences:
        if occurrence != first:
            yield occurrence


def remove_lines(text: str, numbers: Iterable[int]) -> tuple[str, int, int]:
    """The text without the given line numbers; returns (new text, lines removed, UTF-8 bytes removed)."""
    drop = set(numbers)
    kept: list[str] = []
    removed_bytes = 0
    for number, line in enumerate(text.split("\n")):
        if number in drop:
            removed_bytes += len(line.encode("utf-8")) + 1
        else:
            kept.append(line)
    return "\n".join(kept), len(drop), removed_bytes
