"""Training samples from memory-mapped token shards: packed, mixed by source, deterministic, resumable.

Each source (the shards' `source` column: cc, c4, github, ...) is a stream of its documents in a
per-epoch shuffled order (each doc BOS...EOS, concatenated, so sequences cross document boundaries the way
LLaMA packs them). Sample `i` of the global stream picks its source with weights `mixture` (a fixed draw
per block of samples from a generator seeded by (seed, block)), then takes `seq_len + 1` tokens at that
source's cursor and moves the cursor `seq_len` tokens on. A source that runs out starts its next epoch in
a new order, so a small source sampled above its share is seen several times, as in the paper's Table 1
(Wikipedia and Books ~2.4 epochs). Sample `i` goes to data-parallel rank `i % world_size`; every rank walks
the whole stream (moving a cursor is integer arithmetic) and copies only its own samples.

The whole position is (sample index, each source's epoch and cursor), so `state_dict()` resumes at the
exact next sample. LLaMA's mixture, the documented example (paper Table 1)::

    {"commoncrawl": 0.67, "c4": 0.15, "github": 0.045, "wikipedia": 0.045, "books": 0.045,
     "arxiv": 0.025, "stackexchange": 0.02}
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

import numpy as np

from filters.options import ConfigError
from tokenizer.token_shards import TokenShard, token_shard_paths

log = logging.getLogger(__name__)

LLAMA_MIXTURE = {
    "commoncrawl": 0.67,
    "c4": 0.15,
    "github": 0.045,
    "wikipedia": 0.045,
    "books": 0.045,
    "arxiv": 0.025,
    "stackexchange": 0.02,
}
_CHOICE_BLOCK = 4096


@dataclass
class SourceStream:
    """One source's documents across shards, read in a shuffled order per epoch."""

    name: str
    index: int
    shard_of_doc: np.ndarray
    start_of_doc: np.ndarray
    length_of_doc: np.ndarray
    epoch: int = 0
    cursor: int = 0
    _order_cache: dict[int, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict, repr=False)

    @property
    def tokens(self) -> int:
        return int(self.length_of_doc.sum())

    def order(self, epoch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """(document permutation, cumulative token ends in that order) for one epoch."""
        if epoch not in self._order_cache:
            permutation = np.random.default_rng([seed, self.index, epoch]).permutation(len(self.length_of_doc))
            ends = np.cumsum(self.length_of_doc[permutation])
            self._order_cache = {e: v for e, v in self._order_cache.items() if e >= epoch - 1}
            self._order_cache[epoch] = (permutation, ends)
        return self._order_cache[epoch]

    def advance(self, n_tokens: int) -> None:
        self.cursor += n_tokens
        total = self.tokens
        while self.cursor >= total:
            self.cursor -= total
            self.epoch += 1

    def read(self, n_tokens: int, shards: list[TokenShard], seed: int) -> np.ndarray:
        """`n_tokens` tokens from the cursor on (crossing into the next epoch if needed), without moving it."""
        out = np.empty(n_tokens, dtype=np.int64)
        epoch, position, filled = self.epoch, self.cursor, 0
        while filled < n_tokens:
            permutation, ends = self.order(epoch, seed)
            if position >= ends[-1]:
                epoch, position = epoch + 1, 0
                continue
            k = int(np.searchsorted(ends, position, side="right"))
            doc = permutation[k]
            within = position - (int(ends[k]) - int(self.length_of_doc[doc]))
            take = min(n_tokens - filled, int(self.length_of_doc[doc]) - within)
            start = int(self.start_of_doc[doc]) + within
            out[filled : filled + take] = shards[self.shard_of_doc[doc]].tokens[start : start + take]
            filled += take
            position += take
        return out

    def epochs_seen(self) -> float:
        return self.epoch + self.cursor / self.tokens


class TokenLoader:
    """Packed `(n, seq_len + 1)` int64 samples for one data-parallel rank (inputs `[:, :-1]`, targets `[:, 1:]`)."""

    def __init__(
        self,
        directory: str | os.PathLike,
        split: str,
        seq_len: int,
        mixture: dict[str, float] | None = None,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.split = split
        self.seq_len = seq_len
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        paths = token_shard_paths(directory, split)
        if not paths:
            raise FileNotFoundError(f"{directory} has no {split!r} token shards")
        self.shards = [TokenShard.open(path) for path in paths]
        self.sources = self._index_sources()
        self.weights = self._mixture_weights(mixture or {})
        self.sample_index = 0
        self._choices_block = -1
        self._choices = np.zeros(0, dtype=np.int64)

    def _index_sources(self) -> list[SourceStream]:
        per_source: dict[str, list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
        for shard_index, shard in enumerate(self.shards):
            lengths = np.diff(shard.offsets).astype(np.int64)
            names = np.asarray(shard.sources, dtype=object)
            for name in sorted(set(shard.sources)):
                rows = np.flatnonzero((names == name) & (lengths > 0))
                if len(rows):
                    entry = (np.full(len(rows), shard_index, dtype=np.int32), shard.offsets[rows], lengths[rows])
                    per_source.setdefault(name, []).append(entry)
        if not per_source:
            raise ConfigError(f"the {self.split!r} token shards hold no tokens")
        return [
            SourceStream(
                name=name,
                index=index,
                shard_of_doc=np.concatenate([e[0] for e in entries]),
                start_of_doc=np.concatenate([e[1] for e in entries]).astype(np.int64),
                length_of_doc=np.concatenate([e[2] for e in entries]),
            )
            for index, (name, entries) in enumerate(sorted(per_source.items()))
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

    def _source_of(self, sample: int) -> int:
        block = sample // _CHOICE_BLOCK
        if block != self._choices_block:
            rng = np.random.default_rng([self.seed, block])
            self._choices = rng.choice(len(self.sources), size=_CHOICE_BLOCK, p=self.weights)
            self._choices_block = block
        return int(self._choices[sample % _CHOICE_BLOCK])

    def next_samples(self, n: int) -> np.ndarray:
        """This rank's next `n` samples; the global stream moves `n * world_size` samples."""
        out = np.empty((n, self.seq_len + 1), dtype=np.int64)
        filled = 0
        while filled < n:
            source = self.sources[self._source_of(self.sample_index)]
            if self.sample_index % self.world_size == self.rank:
                out[filled] = source.read(self.seq_len + 1, self.shards, self.seed)
                filled += 1
            source.advance(self.seq_len)
            self.sample_index += 1
        return out

    def state_dict(self) -> dict:
        return {
            "sample_index": self.sample_index,
            "seed": self.seed,
            "world_size": self.world_size,
            "seq_len": self.seq_len,
            "sources": {s.name: {"epoch": s.epoch, "cursor": s.cursor} for s in self.sources},
        }

    def load_state_dict(self, state: dict) -> None:
        """Resume at the saved position. Seed, seq_len and data must stay; the world size may change, since
        every rank walks the same global stream and a saved position falls between global batches."""
        for key in ("seed", "seq_len"):
            if state[key] != getattr(self, key):
                raise ConfigError(f"cannot resume the loader: {key} was {state[key]}, now {getattr(self, key)}")
        missing = sorted(set(state["sources"]) ^ {s.name for s in self.sources})
        if missing:
            raise ConfigError(f"cannot resume the loader: the data's sources changed ({missing})")
        self.sample_index = state["sample_index"]
        for source in self.sources:
            source.epoch = state["sources"][source.name]["epoch"]
            source.cursor = state["sources"][source.name]["cursor"]

    def reset(self) -> None:
        self.sample_index = 0
        for source in self.sources:
            source.epoch = source.cursor = 0

    def planned_epochs(self, total_samples: int) -> dict[str, float]:
        """Expected epochs of each source after `total_samples` global samples: the "Epochs" column of the
        paper's Table 1, which follows from the mixture weights, the run length and each source's size."""
        return {
            s.name: round(float(w) * total_samples * self.seq_len / s.tokens, 4)
            for s, w in zip(self.sources, self.weights, strict=True)
        }

    def epochs_seen(self) -> dict[str, float]:
        return {s.name: round(s.epochs_seen(), 4) for s in self.sources}
