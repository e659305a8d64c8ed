"""The paper's optimizer and learning-rate schedule (LLaMA section 2.4): AdamW (beta1 0.9, beta2 0.95,
weight decay 0.1, none on norm weights), linear warm-up then cosine decay to 10% of the peak rate."""

from __future__ import annotations

import math

import torch
from torch import nn

from model.config import TrainConfig


def learning_rate(step: int, peak: float, warmup: int, total: int, min_ratio: float = 0.1) -> float:
    """Rate for the update made at 0-based `step`: rises linearly to `peak` at step warmup-1, then follows
    a half cosine that reaches `min_ratio * peak` at the last step (total-1) and stays there after."""
    if step < warmup:
        return peak * (step + 1) / warmup
    decay_steps = max(1, total - 1 - (warmup - 1))
    progress = min(1.0, (step - (warmup - 1)) / decay_steps)
    minimum = min_ratio * peak
    return minimum + 0.5 * (peak - minimum) * (1.0 + math.cos(math.pi * progress))


def parameter_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Decay every weight matrix (embeddings included) but not the 1-D RMSNorm gains."""
    decay, no_decay = [], []
    for _name, param in model.named_parameters():
        if param.requires_grad:
            (no_decay if param.dim() < 2 else decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, config: TrainConfig, peak_lr: float) -> torch.optim.AdamW:
    on_cuda = next(model.parameters()).device.type == "cuda"
    return torch.optim.AdamW(
        parameter_groups(model, config.weight_decay),
        lr=peak_lr,
        betas=(config.beta1, config.beta2),
        eps=config.eps,
        fused=on_cuda or None,
    )
