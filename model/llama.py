"""The LLaMA transformer: pre-normalization with RMSNorm, SwiGLU feed-forward, rotary position embeddings,
no biases, optional grouped-query attention.

Module and parameter names are Meta's (facebookresearch/llama `model.py`): `tok_embeddings`,
`layers.N.attention.wq/wk/wv/wo`, `layers.N.feed_forward.w1/w2/w3`, `attention_norm`, `ffn_norm`, `norm`,
`output`, so a state dict moves between their code and ours unchanged. The rotary table is a non-persistent
buffer: it follows `.to(device)` but stays out of the state dict, as in Meta's checkpoints. Rotation is
applied to interleaved pairs read as complex numbers (Meta's convention). Attention goes through
`scaled_dot_product_attention` (flash kernels on GPU), which reads grouped key/value heads in place.

Activation checkpointing and per-block compilation are applied from outside, as torchtitan does, by
`apply_activation_checkpointing` and `compile_blocks`; neither renames a parameter, so checkpoints and FSDP2
see the same names with or without them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from contextlib import AbstractContextManager

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint, create_selective_checkpoint_contexts

from filters.options import ConfigError
from model.config import ModelArgs
from model.loss import chunked_cross_entropy

KVCache = list[tuple[torch.Tensor, torch.Tensor]]
CheckpointContexts = Callable[[], tuple[AbstractContextManager, AbstractContextManager]]


class RMSNorm(nn.Module):
    """Root-mean-square norm (Zhang & Sennrich 2019), computed in float32 and cast back."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x_float = x.float()
        normed = x_float * torch.rsqrt(x_float.pow(2).mean(-1, keepdim=True) + self.eps)
        return normed.type_as(x) * self.weight

    def reset_parameters(self) -> None:
        nn.init.ones_(self.weight)


def rope_frequencies(head_dim: int, max_seq_len: int, theta: float) -> torch.Tensor:
    """(cos, sin) of position * theta^(-2k/head_dim), float32 of shape (max_seq_len, head_dim // 2, 2): the real
    view of Meta's complex `freqs_cis` (RoFormer's rotary embedding)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), inv_freq)
    return torch.stack((torch.cos(angles), torch.sin(angles)), dim=-1)


def apply_rope(x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """Rotate the interleaved pairs (x[2k], x[2k+1]) of x (batch, seq, heads, head_dim) by the table's angles.
    Eager mode multiplies complex numbers (one kernel, several times faster than the real form on CPU);
    under torch.compile the real form is used, since Inductor generates no code for complex operators and
    fuses the real one into a single kernel."""
    pairs = x.float().unflatten(-1, (-1, 2))
    if torch.compiler.is_compiling():
        cos, sin = freqs_cis[None, :, None, :, 0], freqs_cis[None, :, None, :, 1]
        even, odd = pairs[..., 0], pairs[..., 1]
        rotated = torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1)
    else:
        angles = torch.view_as_complex(freqs_cis.float())[None, :, None]
        rotated = torch.view_as_real(torch.view_as_complex(pairs) * angles)
    return rotated.flatten(-2).type_as(x)


class Attention(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.n_heads = args.n_heads
        self.n_kv_heads = args.kv_heads
        self.head_dim = args.head_dim
        self.wq = nn.Linear(args.dim, args.n_heads * self.head_dim, bias=False)
        self.wk = nn.Linear(args.dim, self.n_kv_heads * self.head_dim, bias=False)
        self.wv = nn.Linear(args.dim, self.n_kv_heads * self.head_dim, bias=False)
        self.wo = nn.Linear(args.n_heads * self.head_dim, args.dim, bias=False)

    def forward(
        self,
        x: torch.Tensor,
        freqs_cis: torch.Tensor,
        start_pos: int = 0,
        cache: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        batch, seq_len, _ = x.shape
        q = self.wq(x).view(batch, seq_len, self.n_heads, self.head_dim)
        k = self.wk(x).view(batch, seq_len, self.n_kv_heads, self.head_dim)
        v = self.wv(x).view(batch, seq_len, self.n_kv_heads, self.head_dim)
        q, k = apply_rope(q, freqs_cis), apply_rope(k, freqs_cis)

        if cache is not None:
            cache_k, cache_v = cache
            cache_k[:batch, start_pos : start_pos + seq_len] = k
            cache_v[:batch, start_pos : start_pos + seq_len] = v
            k = cache_k[:batch, : start_pos + seq_len]
            v = cache_v[:batch, : start_pos + seq_len]

        # (batch, heads, seq, head_dim); grouped-query heads share their key/value head, which SDPA reads in
        # place (enable_gqa) instead of a copy repeated per query head.
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        gqa = self.n_kv_heads != self.n_heads
        if start_pos == 0:
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=gqa)
        else:
            # Queries at positions start_pos.. see every cached key up to their own position.
            key_pos = torch.arange(k.shape[2], device=x.device)
            query_pos = torch.arange(start_pos, start_pos + seq_len, device=x.device)
            mask = key_pos[None, :] <= query_pos[:, None]
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, enable_gqa=gqa)
        return self.wo(out.transpose(1, 2).reshape(batch, seq_len, -1))


class FeedForward(nn.Module):
    """SwiGLU (Shazeer 2020): w2(silu(w1 x) * w3 x)."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.w1 = nn.Linear(dim, hidden_dim, bias=False)
        self.w2 = nn.Linear(hidden_dim, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden_dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class TransformerBlock(nn.Module):
    def __init__(self, layer_id: int, args: ModelArgs) -> None:
        super().__init__()
        self.layer_id = layer_id
        self.attention = Attention(args)
        self.feed_forward = FeedForward(args.dim, args.ffn_hidden_dim)
        self.attention_norm = RMSNorm(args.dim, eps=args.norm_eps)
        self.ffn_norm = RMSNorm(args.dim, eps=args.norm_eps)
        # Set by `apply_activation_checkpointing`: None keeps every activation for backward; otherwise the
        # block runs under torch.utils.checkpoint with these options (a `context_fn` keeps some ops' outputs).
        self.recompute: dict[str, CheckpointContexts] | None = None

    def forward(
        self,
        x: torch.Tensor,
        freqs_cis: torch.Tensor,
        start_pos: int = 0,
        cache: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        if self.recompute is not None and self.training and torch.is_grad_enabled():
            # The model draws no random numbers, so the RNG state need not be saved for the recomputation.
            return checkpoint(
                self._forward,
                x,
                freqs_cis,
                start_pos,
                cache,
                use_reentrant=False,
                preserve_rng_state=False,
                **self.recompute,
            )
        return self._forward(x, freqs_cis, start_pos, cache)

    def _forward(
        self,
        x: torch.Tensor,
        freqs_cis: torch.Tensor,
        start_pos: int,
        cache: tuple[torch.Tensor, torch.Tensor] | None,
    ) -> torch.Tensor:
        h = x + self.attention(self.attention_norm(x), freqs_cis, start_pos, cache)
        return h + self.feed_forward(self.ffn_norm(h))


class Transformer(nn.Module):
    def __init__(self, args: ModelArgs) -> None:
        super().__init__()
        self.args = args
        self.tok_embeddings = nn.Embedding(args.vocab_size, args.dim)
        self.layers = nn.ModuleList(TransformerBlock(i, args) for i in range(args.n_layers))
        self.norm = RMSNorm(args.dim, eps=args.norm_eps)
        self.output = nn.Linear(args.dim, args.vocab_size, bias=False)
        freqs_cis = rope_frequencies(args.head_dim, args.max_seq_len, args.rope_theta)
        self.register_buffer("freqs_cis", freqs_cis, persistent=False)

    def forward(
        self,
        tokens: torch.Tensor,
        start_pos: int = 0,
        cache: KVCache | None = None,
        targets: torch.Tensor | None = None,
        loss_chunk_tokens: int = 0,
    ) -> torch.Tensor:
        """Logits (batch, seq, vocab) for `tokens` placed at positions start_pos.. (the cache holds earlier ones).

        With `targets` (batch, seq), the mean cross-entropy of those logits against them instead, computed
        `loss_chunk_tokens` tokens at a time when that is positive (`model.loss.chunked_cross_entropy`). The
        loss is taken inside forward so that under FSDP2 the norm and output weights are gathered by the
        root's hooks like every other parameter."""
        seq_len = tokens.shape[1]
        if start_pos + seq_len > self.args.max_seq_len:
            raise ValueError(f"positions up to {start_pos + seq_len} exceed max_seq_len {self.args.max_seq_len}")
        freqs_cis = self.freqs_cis[start_pos : start_pos + seq_len]
        h = self.tok_embeddings(tokens)
        for i, layer in enumerate(self.layers):
            h = layer(h, freqs_cis, start_pos, cache[i] if cache is not None else None)
        if targets is None:
            return self.head(h)
        return chunked_cross_entropy(h, targets, self.head, loss_chunk_tokens)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """Logits of the last block's hidden states: the final norm, then the output projection."""
        return self.output(self.norm(h))

    def new_kv_cache(self, batch_size: int, max_len: int, dtype: torch.dtype | None = None) -> KVCache:
        """Per-layer key/value buffers (batch, max_len, n_kv_heads, head_dim) for incremental decoding."""
        weight = self.output.weight
        shape = (batch_size, max_len, self.args.kv_heads, self.args.head_dim)
        return [
            (
                torch.zeros(shape, dtype=dtype or weight.dtype, device=weight.device),
                torch.zeros(shape, dtype=dtype or weight.dtype, device=weight.device),
            )
            for _ in self.layers
        ]

    @torch.no_grad()
    def init_weights(self, std: float = 0.02) -> None:
        """Fresh-training init: N(0, 0.02) for embeddings and projections, the residual outputs (wo, w2)
        scaled by 1/sqrt(2 * n_layers) (GPT-2's scheme), norms at one; also recomputes the rotary tables,
        so a model built on the meta device and moved with `to_empty` is complete."""
        residual_std = std / math.sqrt(2 * self.args.n_layers)
        for name, param in self.named_parameters():
            if name.endswith("norm.weight"):
                nn.init.ones_(param)
            elif name.endswith(("attention.wo.weight", "feed_forward.w2.weight")):
                nn.init.normal_(param, mean=0.0, std=residual_std)
            else:
                nn.init.normal_(param, mean=0.0, std=std)
        self.reset_rope()

    @torch.no_grad()
    def reset_rope(self) -> None:
        """(Re)build the float32 rotary table on the parameters' device: after `to_empty`, or after loading
        weights into a meta-device model (see `model.generate.load_checkpoint_model`)."""
        freqs_cis = rope_frequencies(self.args.head_dim, self.args.max_seq_len, self.args.rope_theta)
        self.freqs_cis = freqs_cis.to(self.output.weight.device)

    def num_params(self, exclude_embeddings: bool = False) -> int:
        total = sum(p.numel() for p in self.parameters())
        return total - self.tok_embeddings.weight.numel() if exclude_embeddings else total


def build_model(args: ModelArgs, device: str | torch.device = "cpu", seed: int | None = None) -> Transformer:
    """A freshly initialized model (deterministic when `seed` is given)."""
    if seed is not None:
        torch.manual_seed(seed)
    with torch.device(device):
        model = Transformer(args)
    model.init_weights()
    return model


# Ops whose outputs the "ops" policy keeps: the matrix multiplies and attention kernels (each device's), the
# costly part to recompute; norms, rotary and SwiGLU's element-wise ops are recomputed (torchtitan's op-level
# selective checkpointing, without its every-other-matmul refinement).
SAVED_OPS = [
    torch.ops.aten.mm.default,
    torch.ops.aten._scaled_dot_product_flash_attention.default,
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu.default,
    torch.ops.aten._scaled_dot_product_efficient_attention.default,
    torch.ops.aten._scaled_dot_product_cudnn_attention.default,
    torch.ops.aten._scaled_dot_product_attention_math.default,
]

CHECKPOINT_POLICIES = "none, full, every:K (every K-th block, from the first) or ops (keep matmul/attention outputs)"


def checkpointed_blocks(policy: str, n_layers: int) -> tuple[list[int], CheckpointContexts | None]:
    """The blocks an activation-checkpointing policy recomputes, and the checkpoint contexts it uses
    (None: all of a block's activations are recomputed; dynamo accepts no explicit `noop_context_fn`)."""
    name, _, every = policy.strip().lower().partition(":")
    if name in ("none", "full", "ops") and not every:
        blocks = [] if name == "none" else list(range(n_layers))
        contexts = functools.partial(create_selective_checkpoint_contexts, SAVED_OPS) if name == "ops" else None
        return blocks, contexts
    if name == "every" and every.isdigit() and int(every) > 0:
        return list(range(0, n_layers, int(every))), None
    raise ConfigError(f"activation checkpointing {policy!r}: expected {CHECKPOINT_POLICIES}")


def apply_activation_checkpointing(model: Transformer, policy: str) -> None:
    """Make the blocks a policy names recompute their activations in backward (see `checkpointed_blocks`):
    "full" costs about one more forward pass and keeps only each block's input; "every:K" does that for
    every K-th block; "ops" keeps the matmul and attention outputs and recomputes only element-wise work."""
    blocks, contexts = checkpointed_blocks(policy, len(model.layers))
    for index, layer in enumerate(model.layers):
        options = {"context_fn": contexts} if contexts else {}
        layer.recompute = options if index in blocks else None


def compile_blocks(model: Transformer, fullgraph: bool = True, **options) -> None:
    """torch.compile each transformer block in place (`Module.compile`: names and state dict unchanged). The
    block traces as one graph, shared by all blocks, with or without activation checkpointing inside and
    under FSDP2's hooks, so `fullgraph` turns any future graph break into an error, not a silent slowdown."""
    for layer in model.layers:
        layer.compile(fullgraph=fullgraph, **options)


def flops_per_token(args: ModelArgs, n_params_no_embedding: int, seq_len: int) -> float:
    """Training FLOPs per token: 6N for the matrix multiplies of forward and backward plus 12*L*d*T for
    attention scores and values (PaLM appendix B; the causal half is counted too, as PaLM and torchtitan do).
    N excludes the embedding table, a lookup rather than a matrix multiply."""
    return 6 * n_params_no_embedding + 12 * args.n_layers * args.dim * seq_len
