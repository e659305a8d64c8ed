"""The one place for LLaMA hyper-parameters: model shapes (`ModelArgs`, named like Meta's `params.json`)
and training settings (`TrainConfig`, defaulting to the paper's recipe).

Sources: Touvron et al. 2023, "LLaMA: Open and Efficient Foundation Language Models" (arXiv:2302.13971),
Table 2 (shapes, learning rates, 4M-token batches) and section 2.2-2.4 (AdamW beta1 0.9, beta2 0.95,
weight decay 0.1, cosine schedule down to 10% of the peak, 2000 warm-up steps, gradient clipping 1.0);
Meta's facebookresearch/llama `params.json` for field names and `norm_eps`.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from filters.options import ConfigError, option


@dataclass
class ModelArgs:
    """LLaMA shape. Field names match Meta's `params.json`, so their files load here and ours load there."""

    dim: int = 4096
    n_layers: int = 32
    n_heads: int = 32
    n_kv_heads: int | None = None
    vocab_size: int = 32000
    multiple_of: int = 256
    ffn_dim_multiplier: float | None = None
    norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    max_seq_len: int = 2048

    def __post_init__(self) -> None:
        if self.dim % self.n_heads:
            raise ConfigError(f"dim {self.dim} is not divisible by n_heads {self.n_heads}")
        if self.head_dim % 2:
            raise ConfigError(f"head dim {self.head_dim} must be even for rotary embeddings")
        if self.n_heads % self.kv_heads:
            raise ConfigError(f"n_heads {self.n_heads} is not a multiple of n_kv_heads {self.kv_heads}")
        if self.vocab_size <= 0:
            raise ConfigError("vocab_size must be set (Meta's LLaMA-1 params.json says -1: take it from the tokenizer)")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def ffn_hidden_dim(self) -> int:
        """SwiGLU width: 2/3 of 4*dim (so the three matrices cost what two 4*dim ones would), scaled by
        ffn_dim_multiplier, rounded up to a multiple of multiple_of (Meta's FeedForward)."""
        hidden = int(2 * (4 * self.dim) / 3)
        if self.ffn_dim_multiplier is not None:
            hidden = int(self.ffn_dim_multiplier * hidden)
        return self.multiple_of * ((hidden + self.multiple_of - 1) // self.multiple_of)

    def to_params(self) -> dict[str, Any]:
        """The `params.json` dict (optional fields left out when unset, as Meta writes them)."""
        params = dataclasses.asdict(self)
        return {key: value for key, value in params.items() if value is not None}

    def replace(self, **changes: Any) -> ModelArgs:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> ModelArgs:
        """Read a `params.json` dict; keys without a bearing on the weights (e.g. Meta's `max_batch_size`) are
        ignored, and LLaMA-1's `vocab_size: -1` must be overridden by the caller."""
        if params.get("use_scaled_rope"):
            raise ConfigError("params.json asks for LLaMA 3.1's scaled RoPE, which this model does not implement")
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{key: value for key, value in params.items() if key in names})


# The paper's Table 2 shapes; `vocab_size` is the paper's 32k SentencePiece vocabulary.
PAPER_CONFIGS: dict[str, ModelArgs] = {
    "7B": ModelArgs(dim=4096, n_layers=32, n_heads=32),
    "13B": ModelArgs(dim=5120, n_layers=40, n_heads=40),
    "33B": ModelArgs(dim=6656, n_layers=60, n_heads=52),
    "65B": ModelArgs(dim=8192, n_layers=80, n_heads=64),
}

# Table 2's peak learning rates (batch size is 4M tokens for all four).
PAPER_LEARNING_RATES = {"7B": 3.0e-4, "13B": 3.0e-4, "33B": 1.5e-4, "65B": 1.5e-4}

# Small shapes for experiments, tests and benchmarks (same architecture, fewer and narrower layers).
SMALL_CONFIGS: dict[str, ModelArgs] = {
    "tiny": ModelArgs(dim=64, n_layers=2, n_heads=4, vocab_size=256, multiple_of=32, max_seq_len=256),
    "tiny-gqa": ModelArgs(dim=64, n_layers=2, n_heads=4, n_kv_heads=2, vocab_size=256, multiple_of=32, max_seq_len=256),
    "small": ModelArgs(dim=256, n_layers=4, n_heads=8, multiple_of=64, max_seq_len=512),
    "125M": ModelArgs(dim=768, n_layers=12, n_heads=12, max_seq_len=2048),
    "1B": ModelArgs(dim=2048, n_layers=18, n_heads=16, max_seq_len=2048),
}

NAMED_CONFIGS: dict[str, ModelArgs] = {**PAPER_CONFIGS, **SMALL_CONFIGS}


def load_model_args(name_or_file: str | os.PathLike) -> ModelArgs:
    """A named config (`7B`, `tiny`, ...) or a `params.json`-style JSON file."""
    if str(name_or_file) in NAMED_CONFIGS:
        return NAMED_CONFIGS[str(name_or_file)]
    path = Path(name_or_file)
    if not path.is_file():
        raise FileNotFoundError(f"{name_or_file} is neither a named config ({', '.join(NAMED_CONFIGS)}) nor a file")
    return ModelArgs.from_params(json.loads(path.read_text()))


def default_learning_rate(config_name: str) -> float:
    """The paper's peak rate for its sizes; 3e-4 (its 7B/13B value) otherwise."""
    return PAPER_LEARNING_RATES.get(config_name, 3.0e-4)


@dataclass
class TrainConfig:
    """Training settings; defaults are the paper's recipe (section 2.4) except sizes a run must choose."""

    data: str = option("", "token dataset directory (manifest.json + train/ val/)")
    output: str = option("out/train", "checkpoints, metrics.jsonl and tensorboard/ go here")
    config: str = option("tiny", "model: a named config or a params.json file")
    seq_len: int | None = option(None, "tokens per sequence (default: the config's max_seq_len; the paper's 2048)")
    micro_batch_size: int = option(8, "sequences per forward pass per process")
    batch_tokens: int | None = option(
        None,
        "global tokens per optimizer step, reached by gradient accumulation (paper: 4194304); "
        "default: one micro-batch per process",
    )
    steps: int = option(1000, "total optimizer steps (the cosine schedule ends here)")
    lr: float | None = option(
        None, "peak learning rate (default: the paper's for the named size, 3e-4 or 1.5e-4; 3e-4 otherwise)"
    )
    min_lr_ratio: float = option(0.1, "final rate as a fraction of the peak (paper: 0.1)")
    warmup_steps: int = option(2000, "linear warm-up steps (paper: 2000; capped at 10% of --steps)")
    weight_decay: float = option(0.1, "AdamW weight decay on matrices, none on norm gains (paper: 0.1)")
    beta1: float = option(0.9, "AdamW beta1 (paper: 0.9)")
    beta2: float = option(0.95, "AdamW beta2 (paper: 0.95)")
    eps: float = option(1e-8, "AdamW epsilon")
    grad_clip: float = option(1.0, "clip the global gradient norm to this (paper: 1.0; 0 disables)")
    mixture: dict[str, float] = option(help="source -> weight; empty: sample by token count", factory=dict)
    seed: int = option(0, "seed of initialization, document order and source sampling")
    prefetch: int = option(2, "micro-batches the loader prepares ahead in a background thread (0: read in the loop)")
    save_every: int = option(1000, "checkpoint every N steps (and at the end)")
    keep_checkpoints: int = option(3, "checkpoints to keep (oldest deleted first; 0 keeps all)")
    eval_every: int = option(500, "validation loss every N steps (and at the end)")
    eval_batches: int = option(
        20,
        "validation size: eval_batches x 8 held-out sequences of each source, the same set whatever the "
        "process count or micro-batch (0: no validation)",
    )
    log_every: int = option(10, "log every N steps")
    compile: bool = option(False, "torch.compile each transformer block (fullgraph)")
    activation_checkpointing: str = option(
        "none",
        "recompute activations in backward: none; full (every block: least memory, ~1/3 more compute); "
        "every:K (every K-th block); ops (keep matmul and attention outputs, recompute element-wise ops)",
    )
    loss_chunk_tokens: int = option(
        0, "compute the output projection and loss this many tokens at a time (0: all at once; e.g. 4096)"
    )
    device: str = option("auto", "auto (cuda:LOCAL_RANK when available, else cpu), cpu, cuda")
    dtype: str = option(
        "auto", "auto (bfloat16 on GPU, float32 on CPU), float32, bfloat16, float16 (with loss scaling)"
    )
    accumulate_unsharded: bool = option(
        False,
        "several processes: keep whole gradients over the micro-batches and reduce them once per step "
        "(less communication, a full float32 gradient per process: small models only)",
    )
    checkpoint_format: str = option(
        "auto",
        "full (one Meta-layout consolidated.00.pth gathered on rank 0), sharded (torch.distributed.checkpoint: "
        "each process writes its own shards), auto: sharded with several processes",
    )
    async_save: bool = option(False, "write sharded checkpoints in a background thread while training goes on")
    dist_timeout_minutes: int = option(10, "process-group timeout for a collective (torch's default: 10)")
    threads: int | None = option(
        None, "CPU threads per process (default: torch's; 1 is fastest for tiny models on a busy machine)"
    )
    deterministic: bool = option(
        False,
        "deterministic GPU kernels (torch.use_deterministic_algorithms; a little slower): a resumed GPU run then "
        "repeats the uninterrupted one bit for bit, as CPU runs always do",
    )

    def effective_warmup(self) -> int:
        return max(1, min(self.warmup_steps, self.steps // 10))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
