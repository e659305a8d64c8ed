"""`llamaprep train`: LLaMA pre-training from prepared token shards, on one CPU/GPU or many with torchrun.

One optimizer step consumes `batch_tokens` tokens globally (the paper: 4M), made of micro-batches of
`micro_batch_size` sequences per process accumulated `batch_tokens / (micro_batch_size * seq_len * world)`
times. Several processes shard parameters, gradients and optimizer states with FSDP2 (`fully_shard`);
with the same global batch the loss matches a single-process run up to float summation order.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from filters.options import ConfigError
from model.checkpoint import latest_intact_checkpoint, load_training_checkpoint, save_training_checkpoint
from model.config import ModelArgs, TrainConfig, default_learning_rate, load_model_args
from model.data import TokenLoader
from model.distributed import DistributedContext, all_reduce_mean, setup, shard_model, teardown
from model.integrity import DamagedCheckpoint, verify_checkpoint
from model.llama import Transformer, build_model, flops_per_token
from model.meta_format import TOKENIZER_FILE, read_params
from model.metrics import MetricsLogger, peak_flops
from model.schedule import build_optimizer, learning_rate
from tokenizer.token_shards import read_token_manifest, token_shard_paths

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a run reports back (rank 0's view; losses are global means)."""

    losses: dict[int, float] = field(default_factory=dict)
    val_losses: dict[int, float] = field(default_factory=dict)
    checkpoint: Path | None = None
    model_args: ModelArgs | None = None


@dataclass
class RunPlan:
    model_args: ModelArgs
    seq_len: int
    grad_accum: int
    batch_tokens: int
    peak_lr: float
    compute_dtype: torch.dtype


def plan_run(config: TrainConfig, context: DistributedContext, resume_from: Path | None) -> RunPlan:
    """Resolve shapes, batch arithmetic, rate and precision, failing early on inconsistent settings."""
    manifest = read_token_manifest(config.data)
    model_args = load_model_args(config.config)
    if manifest.get("vocab_size"):
        model_args = model_args.replace(vocab_size=int(manifest["vocab_size"]))
    seq_len = config.seq_len or model_args.max_seq_len
    if seq_len > model_args.max_seq_len:
        model_args = model_args.replace(max_seq_len=seq_len)
    if resume_from is not None:
        saved = read_params(resume_from)
        if saved != model_args:
            raise ConfigError(f"{resume_from} holds a different model ({saved}) than requested ({model_args})")
    tokens_per_micro = config.micro_batch_size * seq_len * context.world_size
    batch_tokens = config.batch_tokens or tokens_per_micro
    if batch_tokens % tokens_per_micro:
        raise ConfigError(
            f"batch_tokens {batch_tokens} is not a multiple of micro_batch_size * seq_len * world_size "
            f"= {config.micro_batch_size} * {seq_len} * {context.world_size} = {tokens_per_micro}"
        )
    if config.dtype == "auto":
        compute_dtype = torch.bfloat16 if context.device.type == "cuda" else torch.float32
    else:
        compute_dtype = getattr(torch, config.dtype)
    peak_lr = config.lr if config.lr is not None else default_learning_rate(config.config)
    return RunPlan(model_args, seq_len, batch_tokens // tokens_per_micro, batch_tokens, peak_lr, compute_dtype)


def prepare_model(plan: RunPlan, config: TrainConfig, context: DistributedContext) -> Transformer:
    """Build, then activation checkpointing, per-block compile and FSDP2.

    Sharded GPU runs build on the meta device, shard, and only then allocate and initialize each rank's
    shard, so no GPU ever holds the whole float32 model. Single-process runs and CPU process groups build
    the whole model from the seed first, which makes a sharded CPU run start from exactly the weights of
    a single-process one (the equivalence test relies on it)."""
    on_gpu = context.device.type == "cuda"
    shard_on_gpu = context.distributed and on_gpu
    if shard_on_gpu:
        torch.manual_seed(config.seed)
        with torch.device("meta"):
            model = Transformer(plan.model_args)
    else:
        model = build_model(plan.model_args, device=context.device, seed=config.seed)
    model.activation_checkpointing = config.activation_checkpointing
    if config.compile:
        for layer in model.layers:
            layer.compile()
    if context.distributed:
        shard_model(model, param_dtype=torch.bfloat16 if on_gpu and plan.compute_dtype == torch.bfloat16 else None)
    if shard_on_gpu:
        model.to_empty(device=context.device)
        model.init_weights()
    return model


def autocast(context: DistributedContext, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """bf16 autocast for unsharded GPU runs (sharded ones compute in bf16 through FSDP's policy)."""
    if dtype == torch.float32 or (context.distributed and context.device.type == "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=context.device.type, dtype=dtype)


def next_token_loss(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    logits = model(batch[:, :-1])
    return F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten())


@torch.no_grad()
def validation_loss(
    model: nn.Module, loader: TokenLoader, batches: int, micro_batch: int, context: DistributedContext, dtype
) -> float:
    """Mean next-token loss over the same first `batches` micro-batches of the val split each time."""
    model.eval()
    loader.reset()
    total = torch.zeros((), device=context.device)
    for _ in range(batches):
        batch = torch.from_numpy(loader.next_samples(micro_batch)).to(context.device)
        with autocast(context, dtype):
            total += next_token_loss(model, batch)
    model.train()
    return float(all_reduce_mean(total / batches))


def optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: TokenLoader,
    plan: RunPlan,
    config: TrainConfig,
    context: DistributedContext,
    clip: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One update from `grad_accum` micro-batches; returns this rank's mean loss and the global grad norm."""
    loss_sum = torch.zeros((), device=context.device)
    for micro in range(plan.grad_accum):
        batch = torch.from_numpy(loader.next_samples(config.micro_batch_size)).to(context.device, non_blocking=True)
        if context.distributed:  # reduce-scatter gradients only after the last micro-batch
            model.set_requires_gradient_sync(micro == plan.grad_accum - 1)
        with autocast(context, plan.compute_dtype):
            loss = next_token_loss(model, batch)
        (loss / plan.grad_accum).backward()
        loss_sum += loss.detach()
    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), clip)
    if hasattr(grad_norm, "full_tensor"):  # a DTensor under FSDP2
        grad_norm = grad_norm.full_tensor()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss_sum / plan.grad_accum, grad_norm


def tokenizer_model_path(config_data: str, explicit: str | None) -> Path | None:
    """The tokenizer to copy into checkpoints: --tokenizer, the manifest's `tokenizer` path (relative to
    DATA or absolute), or DATA/tokenizer.model; None when none exists."""
    if explicit:
        return Path(explicit)
    named = read_token_manifest(config_data).get("tokenizer")
    if isinstance(named, dict):  # `llamaprep tokenize` writes {"path": ..., "sha256": ...}
        named = named.get("path")
    candidates = [Path(config_data) / named, Path(named)] if isinstance(named, str) else []
    candidates.append(Path(config_data) / TOKENIZER_FILE)
    return next((path for path in candidates if path.is_file()), None)


def resolve_resume(config: TrainConfig, resume: str | None) -> Path | None:
    """The checkpoint to continue from, its files checked against their checksums: the one given, or with
    "latest" the newest intact one (newer damaged ones are passed over, and said so)."""
    if resume is None:
        return None
    if resume != "latest":
        verify_checkpoint(resume)
        return Path(resume)
    found, passed_over = latest_intact_checkpoint(config.output)
    for damage in passed_over:
        print(f"--resume: passing over a damaged checkpoint: {damage}", file=sys.stderr)
    if found is None and passed_over:
        raise DamagedCheckpoint(f"--resume: no intact checkpoint under {config.output} ({passed_over[-1]})")
    if found is None:
        log.warning("--resume: no checkpoint under %s yet, starting fresh", config.output)
    elif passed_over:
        print(f"--resume: resuming from {found}, the newest intact checkpoint", file=sys.stderr)
    return found


def train(config: TrainConfig, resume: str | None = None, tokenizer: str | None = None) -> TrainResult:
    """Run (or continue) training; every rank of a torchrun job calls this."""
    if config.threads:
        torch.set_num_threads(config.threads)
    context = setup(config.device)
    try:
        return _train(config, context, resolve_resume(config, resume), tokenizer)
    finally:
        teardown()


def _train(
    config: TrainConfig, context: DistributedContext, resume_from: Path | None, tokenizer: str | None
) -> TrainResult:
    plan = plan_run(config, context, resume_from)
    args = plan.model_args
    loader = TokenLoader(
        config.data, "train", plan.seq_len, config.mixture, config.seed, context.rank, context.world_size
    )
    val_loader = None
    if token_shard_paths(config.data, "val") and config.eval_batches > 0:
        val_loader = TokenLoader(config.data, "val", plan.seq_len, None, config.seed, context.rank, context.world_size)
    model = prepare_model(plan, config, context)
    optimizer = build_optimizer(model, config, plan.peak_lr)
    start_step = 0
    if resume_from is not None:
        state = load_training_checkpoint(resume_from, model, optimizer, context)
        loader.load_state_dict(state["loader"])
        start_step = state["step"]
    tokenizer_path = tokenizer_model_path(config.data, tokenizer)
    result = TrainResult(model_args=args)
    n_params = sum(p.numel() for p in model.parameters())
    flops_token = flops_per_token(args, n_params - args.vocab_size * args.dim, plan.seq_len)
    peak = peak_flops(context.device)
    logger = MetricsLogger(config.output, context.is_main, config.steps, start_step)
    if context.is_main:
        Path(config.output).mkdir(parents=True, exist_ok=True)
        (Path(config.output) / "train_config.json").write_text(json.dumps(config.to_dict(), indent=2) + "\n")
        logger.write(
            f"model {config.config}: {n_params / 1e6:.2f}M parameters, seq_len {plan.seq_len}, "
            f"{plan.batch_tokens} tokens/step ({plan.grad_accum} accumulation x {context.world_size} processes), "
            f"peak lr {plan.peak_lr:g}, warmup {config.effective_warmup()}, {plan.compute_dtype}, {context.device}"
            + (f", resuming at step {start_step} from {resume_from}" if resume_from else "")
        )
        total_samples = config.steps * plan.batch_tokens // plan.seq_len
        weights = {s.name: round(float(w), 4) for s, w in zip(loader.sources, loader.weights, strict=True)}
        logger.write(f"mixture {weights}; planned epochs per source {loader.planned_epochs(total_samples)}")

    warmup = config.effective_warmup()
    clip = config.grad_clip if config.grad_clip > 0 else math.inf
    timer = time.perf_counter()
    steps_since_log = 0
    model.train()
    for step in range(start_step, config.steps):
        lr = learning_rate(step, plan.peak_lr, warmup, config.steps, config.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss, grad_norm = optimizer_step(model, optimizer, loader, plan, config, context, clip)
        steps_since_log += 1
        done = step + 1
        last = done == config.steps

        if done % config.log_every == 0 or last:
            step_loss = float(all_reduce_mean(loss))
            if context.device.type == "cuda":
                torch.cuda.synchronize(context.device)
            elapsed = time.perf_counter() - timer
            tokens_per_s = steps_since_log * plan.batch_tokens / elapsed
            record = {
                "loss": step_loss,
                "lr": lr,
                "grad_norm": float(grad_norm),
                "tokens_per_s": tokens_per_s,
                "tokens": done * plan.batch_tokens,
            }
            if peak:
                record["mfu"] = flops_token * tokens_per_s / (peak * context.world_size)
            result.losses[done] = step_loss
            logger.log(done, record)
            logger.advance(steps_since_log, {"loss": step_loss, "lr": lr})
            timer, steps_since_log = time.perf_counter(), 0

        if val_loader is not None and (done % config.eval_every == 0 or last):
            val = validation_loss(
                model, val_loader, config.eval_batches, config.micro_batch_size, context, plan.compute_dtype
            )
            result.val_losses[done] = val
            logger.log(done, {"val_loss": val, "val_perplexity": math.exp(min(val, 50.0))})
            timer = time.perf_counter()

        if done % config.save_every == 0 or last:
            train_state = {
                "loader": loader.state_dict(),
                "train_config": config.to_dict(),
                "epochs_seen": loader.epochs_seen(),
            }
            result.checkpoint = save_training_checkpoint(
                config.output,
                done,
                model,
                optimizer,
                args,
                train_state,
                context,
                keep=config.keep_checkpoints,
                tokenizer_model=tokenizer_path,
            )
            logger.write(f"step {done}: checkpoint {result.checkpoint}; epochs seen {loader.epochs_seen()}")
            timer = time.perf_counter()
    logger.close()
    return result
