"""Exact document dedup keys, and the rule that picks which member of a duplicate group survives.

The key is a 128-bit xxh3 hash of the text after a chosen normalization, so re-crawls that differ only in
whitespace, case, digits or punctuation (with "ccnet") fall into one group. The keep rule is shared by
exact and near-duplicate dedup and is a total order (ties broken by id), so the survivor never depends on
the order documents arrive in.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import xxhash

from filters.base import ConfigError
from filters.ccnet_normalize import normalize_text
from filters.document import Document

NORMALIZATIONS: dict[str, Callable[[str], str]] = {
    "none": lambda text: text,
    "whitespace": lambda text: " ".join(text.split()),
    "ccnet": normalize_text,
}

KEEP_RULES = ("smallest_id", "highest_quality", "longest")

RankKey = tuple


def text_key(text: str, normalization: str = "ccnet") -> bytes:
    """The exact-dedup group key of a text: 16 bytes of xxh3_128 over its normalized UTF-8 form."""
    try:
        normalize = NORMALIZATIONS[normalization]
    except KeyError:
        raise ConfigError(f"unknown normalization {normalization!r}; known: {', '.join(NORMALIZATIONS)}") from None
    return xxhash.xxh3_128_digest(normalize(text).encode("utf-8"))


def check_keep_rule(keep: str) -> None:
    if keep not in KEEP_RULES:
        raise ConfigError(f"unknown keep rule {keep!r}; known: {', '.join(KEEP_RULES)}")


def rank_key(doc: Document, keep: str) -> RankKey:
    """Sort key of a duplicate-group member: the smallest key is kept.

    smallest_id: the lexicographically smallest id. highest_quality: the largest `quality_score` (documents
    without one rank last). longest: the longest text. Ties always fall back to the smallest id.
    """
    if keep == "smallest_id":
        return (doc.id,)
    if keep == "highest_quality":
        score = doc.quality_score
        return (math.inf if score is None or math.isnan(score) else -score, doc.id)
    if keep == "longest":
        return (-len(doc.text), doc.id)
    check_keep_rule(keep)
    raise AssertionError("unreachable")


def represented(doc: Document) -> int:
    """How many input documents `doc` already stands for (an earlier dedup stage may have merged some)."""
    return doc.dup_cluster_size or 1
