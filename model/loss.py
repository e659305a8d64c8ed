"""Next-token cross-entropy, optionally a chunk of tokens at a time.

The logits of a batch are its largest activation: batch x seq x vocab, upcast to float32 for the softmax
(at 8 x 2048 tokens and LLaMA's 32k vocabulary, 2 GiB, and as much again for their gradient). Taken in
chunks, each chunk's output projection and cross-entropy run under activation checkpointing: forward keeps
only the running sum of the losses, backward recomputes one chunk's logits at a time, so no more than one
chunk's float32 logits exist at once, for one more forward pass of the output projection (about 2% of a
1B model's step). torchtune chunks only the float32 upcast and the cross-entropy; Liger's fused linear
cross-entropy chunks the projection too and computes the gradients during forward instead of recomputing.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


def next_token_loss(model: nn.Module, batch: torch.Tensor, chunk_tokens: int = 0) -> torch.Tensor:
    """Mean cross-entropy of the model's prediction at each position of `batch` (batch, seq + 1) against the
    next token; `chunk_tokens` > 0 bounds the float32 logits held at once (see `chunked_cross_entropy`)."""
    return model(batch[:, :-1], targets=batch[:, 1:], loss_chunk_tokens=chunk_tokens)


def chunked_cross_entropy(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    head: Callable[[torch.Tensor], torch.Tensor],
    chunk_tokens: int = 0,
) -> torch.Tensor:
    """Mean cross-entropy of `head(hidden)` (logits) against `targets`, `hidden` (..., dim) and `targets` (...)
    taken `chunk_tokens` tokens at a time (0: all at once). The loss is a float32 mean over every token,
    whatever the chunking; only the summation order differs."""
    hidden = hidden.flatten(0, -2)
    targets = targets.flatten()
    if chunk_tokens <= 0 or chunk_tokens >= len(targets):
        return F.cross_entropy(head(hidden).float(), targets)
    total = torch.zeros((), dtype=torch.float32, device=hidden.device)
    for hidden_chunk, target_chunk in zip(hidden.split(chunk_tokens), targets.split(chunk_tokens), strict=True):
        if torch.is_grad_enabled():
            total = total + checkpoint(
                _summed_loss, head, hidden_chunk, target_chunk, use_reentrant=False, preserve_rng_state=False
            )
        else:
            total = total + _summed_loss(head, hidden_chunk, target_chunk)
    return total / len(targets)


def _summed_loss(
    head: Callable[[torch.Tensor], torch.Tensor], hidden: torch.Tensor, targets: torch.Tensor
) -> torch.Tensor:
    return F.cross_entropy(head(hidden).float(), targets, reduction="sum")
