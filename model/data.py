"""Training samples from memory-mapped token shards: packed, mixed by source, deterministic, resumable.

Each source (the shards' `source` column: cc, c4, github, ...) is a stream of its documents in a
per-epoch shuffled order (each doc BOS...EOS, concatenated, so sequences cross document boundaries the way
LLaMA packs them). Sample `i` of the global stream picks its source with weights `mixture` (a fixed draw
per block of samples from a generator seeded by (seed, block)), then takes `seq_len + 1` tokens at that
source's cursor and moves the cursor `seq_len` tokens on. A source that runs out starts its next epoch in
a new order, so a small source sampled above its share is seen several times, as in the paper's Table 1
(Wikipedia and Books ~2.4 epochs).

Data parallelism: a call for `n` samples moves the global stream `n * world_size` samples on every rank,
and rank `r` copies the samples `i` with `i % world_size == r` (moving a cursor is integer arithmetic, so
walking the others' samples costs nothing). All ranks therefore stand at the same position after each
call, and the position saved by any rank resumes every rank, on any number of ranks.

The whole position is (sample index, tokens taken from each source), so `state_dict()` resumes at the
exact next sample. Per document a rank keeps 12 bytes (a uint32 document number, a uint32 length and one
epoch's uint32 shuffle); offsets and tokens stay in the mapped shard files, shared by the ranks of a node.
LLaMA's mixture, the documented example (paper Table 1)::

    {"commoncrawl": 0.67, "c4": 0.15, "github": 0.045, "wikipedia": 0.045, "books": 0.045,
     "arxiv": 0.025, "stackexchange": 0.02}
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from filters.options import ConfigError
from tokenizer.token_shards import TokenShard, token_shard_paths

log = logging.getLogger(__name__)

_CHOICE_BLOCK = 4096
# An epoch's order keeps the token end of every _END_BLOCK-th document only (1/8 byte per document); a
# lookup sums at most _END_BLOCK lengths. _END_CHUNK bounds the temporary memory of building it.
_END_BLOCK = 64
_END_CHUNK = _END_BLOCK * 4096

# (global document number, first token wanted, token count) -> those tokens
TokenReader = Callable[[int, int, int], np.ndarray]


def _index_dtype(n: int) -> np.dtype:
    return np.dtype(np.uint32) if n < 2**32 else np.dtype(np.uint64)


@dataclass
class SourceStream:
    """One source's documents across shards (global document numbers and lengths, in shard order), read in a
    shuffled order per epoch. Only one epoch's order is held: reads move forward, so the previous one is done."""

    name: str
    index: int
    docs: np.ndarray
    lengths: np.ndarray
    tokens: int = field(init=False)
    _order: tuple[int, np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.tokens = int(self.lengths.sum(dtype=np.int64))

    def order(self, epoch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(document permutation, token end of each block of `_END_BLOCK` documents in that order) for one epoch."""
        if self._order is None or self._order[0] != epoch:
            self._order = None  # free the old order before building the new one
            permutation = np.arange(len(self.lengths), dtype=_index_dtype(len(self.lengths)))
            np.random.default_rng([seed, self.index, epoch]).shuffle(permutation)
            block_sums = []
            for start in range(0, len(permutation), _END_CHUNK):
                chunk = self.lengths[permutation[start : start + _END_CHUNK]]
                block_sums.append(np.add.reduceat(chunk, np.arange(0, len(chunk), _END_BLOCK), dtype=np.int64))
            self._order = (epoch, permutation, np.cumsum(np.concatenate(block_sums)))
        return self._order[1], self._order[2]

    def document_at(self, position: int, seed: int) -> tuple[int, int, int]:
        """(global document number, offset within it, its length) of the token at `position` of this source's
        stream (counted from the start of epoch 0)."""
        epoch, position = divmod(position, self.tokens)
        permutation, block_ends = self.order(epoch, seed)
        block = int(np.searchsorted(block_ends, position, side="right"))
        members = permutation[block * _END_BLOCK : (block + 1) * _END_BLOCK]
        ends = (int(block_ends[block - 1]) if block else 0) + np.cumsum(self.lengths[members], dtype=np.int64)
        k = int(np.searchsorted(ends, position, side="right"))
        length = int(self.lengths[members[k]])
        return int(self.docs[members[k]]), position - (int(ends[k]) - length), length

    def read(self, position: int, n_tokens: int, seed: int, reader: TokenReader) -> np.ndarray:
        """`n_tokens` tokens from `position` on, crossing documents and epochs as needed."""
        out = np.empty(n_tokens, dtype=np.int64)
        filled = 0
        while filled < n_tokens:
            doc, within, length = self.document_at(position + filled, seed)
            take = min(n_tokens - filled, length - within)
            out[filled : filled + take] = reader(doc, within, take)
            filled += take
        return out


class Position(NamedTuple):
    """Where the global stream stands: the next sample's index and the tokens taken from each source."""

    sample_index: int
    consumed: tuple[int, ...]


# (start position, n) -> (this rank's n samples, the position after them)
Take = Callable[[Position, int], tuple[np.ndarray, Position]]


class _Prefetcher:
    """Makes batches of `n` samples ahead in a daemon thread, from a given position, into a bounded queue of
    (batch, position after it); an error in the thread is handed to the consumer in its place."""

    def __init__(self, take: Take, start: Position, n: int, depth: int) -> None:
        self.n = n
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(take, start), name="token-prefetch", daemon=True)
        self._thread.start()

    def _fill(self, take: Take, position: Position) -> None:
        try:
            while not self._stop.is_set():
                batch, position = take(position, self.n)
                self._queue.put((batch, position))
        except Exception as error:  # raised again by get() in the consumer's thread
            self._queue.put(error)

    def get(self) -> tuple[np.ndarray, Position]:
        item = self._queue.get()
        if isinstance(item, Exception):
            raise item
        return item

    def close(self) -> None:
        """Stop the thread: emptying the queue lets a blocked put return, and the loop then sees the flag."""
        self._stop.set()
        with contextlib.suppress(queue.Empty):
            while True:
                self._queue.get_nowait()
        self._thread.join()


class TokenLoader:
    """Packed `(n, seq_len + 1)` int64 samples for one data-parallel rank (inputs `[:, :-1]`, targets `[:, 1:]`).

    With `prefetch > 0` a background thread prepares that many calls' batches ahead (same samples, same
    order); `state_dict()` and `epochs_seen()` always describe the batches handed out. `close()` stops it."""

    def __init__(
        self,
        directory: str | os.PathLike,
        split: str,
        seq_len: int,
        mixture: dict[str, float] | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        prefetch: int = 0,
    ) -> None:
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside a world of {world_size} processes")
        if prefetch < 0:
            raise ConfigError(f"prefetch must be 0 (none) or a number of batches, not {prefetch}")
        self.split = split
        self.seq_len = seq_len
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.prefetch = prefetch
        paths = token_shard_paths(directory, split)
        if not paths:
            raise FileNotFoundError(f"{directory} has no {split!r} token shards")
        self.shards = [TokenShard.open(path) for path in paths]
        self._first_doc = np.cumsum([0] + [len(shard) for shard in self.shards[:-1]], dtype=np.int64)
        self.sources = self._index_sources()
        self.weights = self._mixture_weights(mixture or {})
        self.position = Position(0, (0,) * len(self.sources))
        self._choices_block = -1
        self._choices = np.zeros(0, dtype=np.int64)
        self._prefetcher: _Prefetcher | None = None

    def _index_sources(self) -> list[SourceStream]:
        """Group the non-empty documents by source, keeping per document only its global number and length.
        Two passes over the dictionary-encoded source columns (count, then fill), so nothing per document is
        held twice."""
        counts: dict[str, int] = {}
        for shard in self.shards:
            names, codes = shard.source_codes()
            lengths = np.diff(shard.offsets)
            if len(lengths) and lengths.max() >= 2**32:
                raise ConfigError(f"{shard.path} has a document of {lengths.max()} tokens (at most 2**32 - 1)")
            for name, count in zip(names, np.bincount(codes[lengths > 0], minlength=len(names)), strict=True):
                counts[name] = counts.get(name, 0) + int(count)
        kept = sorted(name for name, count in counts.items() if count)
        if not kept:
            raise ConfigError(f"the {self.split!r} token shards hold no tokens")
        doc_dtype = _index_dtype(int(self._first_doc[-1]) + len(self.shards[-1]))
        docs = {name: np.empty(counts[name], dtype=doc_dtype) for name in kept}
        lengths = {name: np.empty(counts[name], dtype=np.uint32) for name in kept}
        filled = dict.fromkeys(kept, 0)
        for shard, first in zip(self.shards, self._first_doc, strict=True):
            names, codes = shard.source_codes()
            shard_lengths = np.diff(shard.offsets)
            for code, name in enumerate(names):
                rows = np.flatnonzero((codes == code) & (shard_lengths > 0))
                if not len(rows):  # also a source whose documents are all empty: it was not kept
                    continue
                end = filled[name] + len(rows)
                docs[name][filled[name] : end] = first + rows
                lengths[name][filled[name] : end] = shard_lengths[rows]
                filled[name] = end
        return [
            SourceStream(name=name, index=index, docs=docs[name], lengths=lengths[name])
            for index, name in enumerate(kept)
        ]

    def _mixture_weights(self, mixture: dict[str, float]) -> np.ndarray:
        names = [s.name for s in self.sources]
        if not mixture:
            tokens = np.array([s.tokens for s in self.sources], dtype=np.float64)
            return tokens / tokens.sum()
        unknown = sorted(set(mixture) - set(names))
        if unknown:
            raise ConfigError(f"mixture names sources {unknown} absent from the {self.split!r} shards ({names})")
        if any(w < 0 for w in mixture.values()) or sum(mixture.values()) <= 0:
            raise ConfigError(f"mixture weights must be non-negative with a positive sum: {mixture}")
        unweighted = [n for n in names if n not in mixture]
        if unweighted:
            log.warning("sources %s have no mixture weight and will not be sampled", unweighted)
        weights = np.array([mixture.get(n, 0.0) for n in names], dtype=np.float64)
        return weights / weights.sum()

    def _document_tokens(self, doc: int, within: int, count: int) -> np.ndarray:
        shard = int(np.searchsorted(self._first_doc, doc, side="right")) - 1
        start = int(self.shards[shard].offsets[doc - int(self._first_doc[shard])]) + within
        return self.shards[shard].tokens[start : start + count]

    def _sources_of(self, first: int, count: int) -> np.ndarray:
        """The source index of the global samples `first .. first + count - 1`."""
        blocks = []
        for block in range(first // _CHOICE_BLOCK, (first + count - 1) // _CHOICE_BLOCK + 1):
            if block != self._choices_block:
                rng = np.random.default_rng([self.seed, block])
                self._choices = rng.choice(len(self.sources), size=_CHOICE_BLOCK, p=self.weights)
                self._choices_block = block
            blocks.append(self._choices)
        start = first % _CHOICE_BLOCK
        return np.concatenate(blocks)[start : start + count]

    def _take(self, position: Position, n: int) -> tuple[np.ndarray, Position]:
        """This rank's `n` samples of the next `n * world_size` global samples, and the position after them."""
        out = np.empty((n, self.seq_len + 1), dtype=np.int64)
        count = n * self.world_size
        if not count:
            return out, position
        choices = self._sources_of(position.sample_index, count)
        consumed = np.array(position.consumed, dtype=np.int64)
        walked = 0
        mine = range((self.rank - position.sample_index) % self.world_size, count, self.world_size)
        for row, j in enumerate(mine):
            consumed += self.seq_len * np.bincount(choices[walked:j], minlength=len(self.sources))
            source = self.sources[choices[j]]
            out[row] = source.read(int(consumed[source.index]), self.seq_len + 1, self.seed, self._document_tokens)
            walked = j
        consumed += self.seq_len * np.bincount(choices[walked:], minlength=len(self.sources))
        return out, Position(position.sample_index + count, tuple(int(c) for c in consumed))

    def next_samples(self, n: int) -> np.ndarray:
        """This rank's next `n` samples; the global stream moves `n * world_size` samples on every rank."""
        if not self.prefetch:
            out, self.position = self._take(self.position, n)
            return out
        if self._prefetcher is None or self._prefetcher.n != n:
            self.close()
            self._prefetcher = _Prefetcher(self._take, self.position, n, self.prefetch)
        try:
            out, self.position = self._prefetcher.get()
        except Exception:
            self.close()
            raise
        return out

    def close(self) -> None:
        """Stop the prefetch thread (batches made ahead are dropped; the position stays at those handed out)."""
        if self._prefetcher is not None:
            self._prefetcher.close()
            self._prefetcher = None

    def __enter__(self) -> TokenLoader:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def state_dict(self) -> dict:
        sources = {}
        for source, consumed in zip(self.sources, self.position.consumed, strict=True):
            epoch, cursor = divmod(consumed, source.tokens)
            sources[source.name] = {"epoch": epoch, "cursor": cursor, "tokens": source.tokens}
        return {
            "sample_index": self.position.sample_index,
            "seed": self.seed,
            "world_size": self.world_size,
            "seq_len": self.seq_len,
            "sources": sources,
        }

    def load_state_dict(self, state: dict) -> None:
        """Resume at the saved position. Seed, seq_len and data must stay; the world size may change, since
        every rank stands at the same global position after each call."""
        for key in ("seed", "seq_len"):
            if state[key] != getattr(self, key):
                raise ConfigError(f"cannot resume the loader: {key} was {state[key]}, now {getattr(self, key)}")
        missing = sorted(set(state["sources"]) ^ {s.name for s in self.sources})
        if missing:
            raise ConfigError(f"cannot resume the loader: the data's sources changed ({missing})")
        changed = [s.name for s in self.sources if state["sources"][s.name].get("tokens", s.tokens) != s.tokens]
        if changed:
            raise ConfigError(f"cannot resume the loader: the token counts of sources {changed} changed")
        self.close()
        entries = [state["sources"][s.name] for s in self.sources]
        consumed = tuple(e["epoch"] * s.tokens + e["cursor"] for s, e in zip(self.sources, entries, strict=True))
        self.position = Position(state["sample_index"], consumed)

    def reset(self) -> None:
        self.close()
        self.position = Position(0, (0,) * len(self.sources))

    def planned_epochs(self, total_samples: int) -> dict[str, float]:
        """Expected epochs of each source after `total_samples` global samples: the "Epochs" column of the
        paper's Table 1, which follows from the mixture weights, the run length and each source's size."""
        return {
            s.name: round(float(w) * total_samples * self.seq_len / s.tokens, 4)
            for s, w in zip(self.sources, self.weights, strict=True)
        }

    def epochs_seen(self) -> dict[str, float]:
        return {s.name: round(c / s.tokens, 4) for s, c in zip(self.sources, self.position.consumed, strict=True)}
