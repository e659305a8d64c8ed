"""Validation on a fixed held-out set, reported per source and as the training mixture's weighted total.

The set is, for each source of the val split, its first `sequences_per_source` sequences of `seq_len + 1`
tokens, cut from that source's documents in their stored order and packed as training packs them. It does
not depend on the number of processes, the micro-batch or the seed, so validation losses of different runs
compare. Process r evaluates entries r, r + world, ... of the whole set; each source's (summed token loss,
tokens) is all-reduced, so every rank gets the same per-source means. The total weights them with the
training mixture (the paper's Table 1 shares when `--mixture llama`), not by each source's share of the
val tokens, so a source's loss counts as much as its data counts in training.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.distributed import DistributedContext, all_reduce_sum
from tokenizer.token_shards import TokenShard, token_shard_paths

log = logging.getLogger(__name__)

SEQUENCES_PER_EVAL_BATCH = 8  # `eval_batches` counts sets of this many sequences per source


@dataclass
class ValidationSet:
    """Held-out sequences (n, seq_len + 1) of each source, and each source's weight in the total."""

    sources: list[str]
    samples: list[np.ndarray]
    weights: np.ndarray

    def __len__(self) -> int:
        return sum(len(s) for s in self.samples)


def held_out_samples(
    shards: list[TokenShard],
    source: str,
    count: int,
    seq_len: int,
    encoded: list[tuple[list[str], np.ndarray]] | None = None,
) -> np.ndarray:
    """The first `count` packed sequences of `source`'s documents (fewer when it holds fewer tokens);
    `encoded` is each shard's `source_codes()` when the caller has them already."""
    needed = count * seq_len + 1
    pieces, taken = [], 0
    for shard, (names, codes) in zip(shards, encoded or [shard.source_codes() for shard in shards], strict=True):
        rows = np.flatnonzero(codes == names.index(source)) if source in names else []
        for row in rows:
            pieces.append(np.asarray(shard.document(row)[: needed - taken], dtype=np.int64))
            taken += len(pieces[-1])
            if taken >= needed:
                break
        if taken >= needed:
            break
    stream = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.int64)
    n = min(count, max(0, (len(stream) - 1) // seq_len))
    return np.stack([stream[i * seq_len : i * seq_len + seq_len + 1] for i in range(n)]) if n else stream[:0]


def build_validation_set(
    data: str | os.PathLike, seq_len: int, sequences_per_source: int, mixture_weights: dict[str, float]
) -> ValidationSet | None:
    """The val split's fixed set; None without a val split. `mixture_weights` are the training weights
    (sources absent from them count 0 in the total; with no weight at all, the val tokens' shares)."""
    paths = token_shard_paths(data, "val")
    if not paths or sequences_per_source <= 0:
        return None
    shards = [TokenShard.open(path) for path in paths]
    encoded = [shard.source_codes() for shard in shards]
    names = sorted({name for shard_names, _ in encoded for name in shard_names})
    sources, samples = [], []
    for name in names:
        held_out = held_out_samples(shards, name, sequences_per_source, seq_len, encoded)
        if len(held_out) == 0:
            log.warning("validation: source %r holds fewer than %d val tokens and is left out", name, seq_len + 1)
            continue
        sources.append(name)
        samples.append(held_out)
    if not sources:
        return None
    weights = np.array([mixture_weights.get(name, 0.0) for name in sources], dtype=np.float64)
    if weights.sum() <= 0:
        weights = np.array([len(s) for s in samples], dtype=np.float64)
    return ValidationSet(sources, samples, weights / weights.sum())


@torch.no_grad()
def evaluate(
    model: nn.Module,
    validation: ValidationSet,
    micro_batch: int,
    context: DistributedContext,
    autocast: Callable[[], contextlib.AbstractContextManager],
) -> dict[str, float]:
    """Mean next-token loss per source (`val_loss/NAME`) and the mixture-weighted total (`val_loss`).
    Collective: every rank runs the same number of forward passes (sharded models gather in each), the last
    one padded with a zero-weight repeat when this rank's share is shorter."""
    entries = [(index, row) for index, rows in enumerate(validation.samples) for row in rows]
    mine = entries[context.rank :: context.world_size]
    passes = math.ceil(math.ceil(len(entries) / context.world_size) / micro_batch)
    sums = torch.zeros(len(validation.sources), dtype=torch.float64, device=context.device)
    counts = torch.zeros_like(sums)
    model.eval()
    for start in range(0, passes * micro_batch, micro_batch):
        chunk = mine[start : start + micro_batch] or entries[:1]
        source = torch.tensor([i for i, _ in chunk], device=context.device)
        used = torch.full((len(chunk),), float(start < len(mine)), dtype=torch.float64, device=context.device)
        batch = torch.from_numpy(np.stack([row for _, row in chunk])).to(context.device)
        with autocast():
            logits = model(batch[:, :-1])
        losses = F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten(), reduction="none")
        per_row = losses.view(len(chunk), -1).double().sum(dim=1)
        sums.index_add_(0, source, per_row * used)
        counts.index_add_(0, source, used * (batch.shape[1] - 1))
    model.train()
    means = (all_reduce_sum(sums) / all_reduce_sum(counts)).cpu().numpy()
    result = {"val_loss": float(np.dot(means, validation.weights))}
    result.update({f"val_loss/{name}": float(m) for name, m in zip(validation.sources, means, strict=True)})
    return result
