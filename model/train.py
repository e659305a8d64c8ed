"""`llamaprep train`: LLaMA pre-training from prepared token shards, on one CPU/GPU or many with torchrun.

One optimizer step consumes `batch_tokens` tokens globally (the paper: 4M), made of micro-batches of
`micro_batch_size` sequences per process accumulated `batch_tokens / (micro_batch_size * seq_len * world)`
times. Several processes shard parameters, gradients and optimizer states with FSDP2 (`fully_shard`),
gradients staying sharded across micro-batches (each one reduce-scattered, as torchtitan does); with the
same global batch the loss matches a single-process run up to float summation order. float16 compute is
paired with loss scaling (a GradScaler, sharded-aware with several processes).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from filters.options import ConfigError
from model.checkpoint import (
    CheckpointWriter,
    latest_intact_checkpoint,
    load_training_checkpoint,
    set_aside_newer,
    verify_together,
)
from model.config import ModelArgs, TrainConfig, default_learning_rate, load_model_args
from model.data import TokenLoader
from model.distributed import DistributedContext, all_reduce_mean, setup, shard_model, teardown
from model.integrity import DamagedCheckpoint
from model.llama import Transformer, apply_activation_checkpointing, build_model, compile_blocks, flops_per_token
from model.loss import next_token_loss
from model.meta_format import TOKENIZER_FILE, read_params
from model.metrics import MetricsLogger, peak_flops
from model.schedule import build_optimizer, learning_rate
from model.validation import SEQUENCES_PER_EVAL_BATCH, build_validation_set, evaluate
from tokenizer.token_shards import read_token_manifest

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """What a run reports back (rank 0's view; losses are global means)."""

    losses: dict[int, float] = field(default_factory=dict)
    val_losses: dict[int, float] = field(default_factory=dict)
    checkpoint: Path | None = None
    model_args: ModelArgs | None = None


DTYPES = ("auto", "float32", "bfloat16", "float16")
CHECKPOINT_FORMATS = ("auto", "full", "sharded")


@dataclass
class RunPlan:
    model_args: ModelArgs
    seq_len: int
    grad_accum: int
    batch_tokens: int
    peak_lr: float
    compute_dtype: torch.dtype
    sharded_checkpoints: bool

    @property
    def loss_scaling(self) -> bool:
        """float16's 5 exponent bits underflow small gradients unless the loss is scaled up first."""
        return self.compute_dtype == torch.float16


def plan_run(config: TrainConfig, context: DistributedContext, resume_from: Path | None) -> RunPlan:
    """Resolve shapes, batch arithmetic, rate and precision, failing early on inconsistent settings."""
    for name in ("steps", "micro_batch_size", "log_every", "eval_every", "save_every"):
        if getattr(config, name) < 1:
            raise ConfigError(f"{name} must be at least 1, not {getattr(config, name)}")
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
    if config.dtype not in DTYPES:
        raise ConfigError(f"dtype {config.dtype!r} is not one of {', '.join(DTYPES)}")
    if config.dtype == "auto":
        compute_dtype = torch.bfloat16 if context.device.type == "cuda" else torch.float32
    else:
        compute_dtype = getattr(torch, config.dtype)
    if config.checkpoint_format not in CHECKPOINT_FORMATS:
        raise ConfigError(
            f"checkpoint_format {config.checkpoint_format!r} is not one of {', '.join(CHECKPOINT_FORMATS)}"
        )
    sharded = config.checkpoint_format == "sharded" or (config.checkpoint_format == "auto" and context.distributed)
    if config.async_save and not sharded:
        raise ConfigError("async_save needs sharded checkpoints (checkpoint_format sharded, or auto with torchrun)")
    peak_lr = config.lr if config.lr is not None else default_learning_rate(config.config)
    return RunPlan(model_args, seq_len, batch_tokens // tokens_per_micro, batch_tokens, peak_lr, compute_dtype, sharded)


def prepare_model(plan: RunPlan, config: TrainConfig, context: DistributedContext) -> Transformer:
    """Build, then activation checkpointing (a policy: `model.llama.apply_activation_checkpointing`), per-block
    compile and FSDP2, in torchtitan's order.

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
    apply_activation_checkpointing(model, config.activation_checkpointing)
    if config.compile:
        compile_blocks(model)
    if context.distributed:
        shard_model(model, param_dtype=plan.compute_dtype if on_gpu and plan.compute_dtype != torch.float32 else None)
    if shard_on_gpu:
        model.to_empty(device=context.device)
        model.init_weights()
    return model


def autocast(context: DistributedContext, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """bf16/fp16 autocast, except for sharded GPU runs, which compute in that dtype through FSDP's policy."""
    if dtype == torch.float32 or (context.distributed and context.device.type == "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device_type=context.device.type, dtype=dtype)


def build_grad_scaler(plan: RunPlan, context: DistributedContext) -> torch.amp.GradScaler:
    """Loss scaling for float16 (a pass-through otherwise). Sharded, each rank sees only its gradient shards,
    so FSDP's ShardedGradScaler all-reduces the overflow check: every rank skips the same steps."""
    if context.distributed:
        from torch.distributed.fsdp.sharded_grad_scaler import ShardedGradScaler

        return ShardedGradScaler(device=context.device.type, enabled=plan.loss_scaling)
    return torch.amp.GradScaler(context.device.type, enabled=plan.loss_scaling)


def optimizer_step(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loader: TokenLoader,
    plan: RunPlan,
    config: TrainConfig,
    context: DistributedContext,
    clip: float,
    scaler: torch.amp.GradScaler,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One update from `grad_accum` micro-batches; returns this rank's mean loss and the global grad norm.
    Sharded, each micro-batch's gradients are reduce-scattered and accumulate as shards; with
    `accumulate_unsharded` whole gradients accumulate and are reduced once, after the last micro-batch."""
    loss_sum = torch.zeros((), device=context.device)
    for micro in range(plan.grad_accum):
        batch = torch.from_numpy(loader.next_samples(config.micro_batch_size)).to(context.device, non_blocking=True)
        if context.distributed and config.accumulate_unsharded:
            model.set_requires_gradient_sync(micro == plan.grad_accum - 1)
        with autocast(context, plan.compute_dtype):
            loss = next_token_loss(model, batch, config.loss_chunk_tokens)
        scaler.scale(loss / plan.grad_accum).backward()
        loss_sum += loss.detach()
    scaler.unscale_(optimizer)
    grad_norm = nn.utils.clip_grad_norm_(model.parameters(), clip)
    if hasattr(grad_norm, "full_tensor"):  # a DTensor under FSDP2
        grad_norm = grad_norm.full_tensor()
    scaler.step(optimizer)  # skipped, and the scale lowered, when a gradient overflowed
    scaler.update()
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


def resolve_resume(config: TrainConfig, resume: str | None, context: DistributedContext) -> Path | None:
    """The checkpoint to continue from, its files checked against their checksums (the ranks share the
    hashing): the one given, or with "latest" the newest intact one (newer damaged ones are passed over,
    and said so)."""
    if resume is None:
        return None
    if resume != "latest":
        verify_together(resume, context)
        moved = set_aside_newer(config.output, Path(resume), context)
        if moved:
            print(
                f"--resume: {len(moved)} newer checkpoint(s) of the abandoned run moved to {moved[0].parent}",
                file=sys.stderr,
            )
        return Path(resume)
    found, passed_over = latest_intact_checkpoint(config.output, context)
    say = context.is_main
    for damage in passed_over if say else ():
        print(f"--resume: passing over a damaged checkpoint: {damage}", file=sys.stderr)
    if found is None and passed_over:
        raise DamagedCheckpoint(f"--resume: no intact checkpoint under {config.output} ({passed_over[-1]})")
    if found is None and say:
        log.warning("--resume: no checkpoint under %s yet, starting fresh", config.output)
    elif passed_over and say:
        print(f"--resume: resuming from {found}, the newest intact checkpoint", file=sys.stderr)
    return found


def use_deterministic_kernels() -> None:
    """Kernels that give the same bits on every run: cuBLAS with a fixed workspace (read when cuBLAS starts,
    hence before any GPU work), SDPA's flash backward without atomics, sort-based embedding gradients, no
    cuDNN autotuning. CPU kernels are deterministic already."""
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False


def train(config: TrainConfig, resume: str | None = None, tokenizer: str | None = None) -> TrainResult:
    """Run (or continue) training; every rank of a torchrun job calls this."""
    if config.threads:
        torch.set_num_threads(config.threads)
    was_deterministic = torch.are_deterministic_algorithms_enabled()
    if config.deterministic:
        use_deterministic_kernels()
    context = setup(config.device, config.dist_timeout_minutes)
    try:
        return _train(config, context, resolve_resume(config, resume, context), tokenizer)
    except BaseException as error:
        # The traceback's frames hold the model: released so that teardown frees it before leaving the group.
        traceback.clear_frames(error.__traceback__)
        raise
    finally:
        teardown()
        torch.use_deterministic_algorithms(was_deterministic)


def _train(
    config: TrainConfig, context: DistributedContext, resume_from: Path | None, tokenizer: str | None
) -> TrainResult:
    """The loader's thread and the checkpoint writer's (and its process group) end here, on errors too,
    before `train` leaves the process group."""
    plan = plan_run(config, context, resume_from)
    loader = TokenLoader(
        config.data,
        "train",
        plan.seq_len,
        config.mixture,
        config.seed,
        context.rank,
        context.world_size,
        prefetch=config.prefetch,
    )
    writer = CheckpointWriter(
        config.output, context, plan.sharded_checkpoints, config.async_save, config.keep_checkpoints
    )
    with loader, writer:
        return _run(config, context, plan, loader, writer, resume_from, tokenizer)


def _run(
    config: TrainConfig,
    context: DistributedContext,
    plan: RunPlan,
    loader: TokenLoader,
    checkpoints: CheckpointWriter,
    resume_from: Path | None,
    tokenizer: str | None,
) -> TrainResult:
    args = plan.model_args
    mixture_weights = {s.name: float(w) for s, w in zip(loader.sources, loader.weights, strict=True)}
    validation = build_validation_set(
        config.data, plan.seq_len, config.eval_batches * SEQUENCES_PER_EVAL_BATCH, mixture_weights
    )
    model = prepare_model(plan, config, context)
    optimizer = build_optimizer(model, config, plan.peak_lr)
    scaler = build_grad_scaler(plan, context)
    start_step = 0
    if resume_from is not None:
        state = load_training_checkpoint(resume_from, model, optimizer, context)
        loader.load_state_dict(state["loader"])
        if state.get("grad_scaler") and plan.loss_scaling:  # empty when saved by a run without scaling
            scaler.load_state_dict(state["grad_scaler"])
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
        weights = {name: round(w, 4) for name, w in mixture_weights.items()}
        logger.write(f"mixture {weights}; planned epochs per source {loader.planned_epochs(total_samples)}")
        if validation is not None:
            logger.write(f"validation: {len(validation)} held-out sequences of {', '.join(validation.sources)}")

    warmup = config.effective_warmup()
    clip = config.grad_clip if config.grad_clip > 0 else math.inf
    timer = time.perf_counter()
    steps_since_log = 0
    model.train()
    for step in range(start_step, config.steps):
        lr = learning_rate(step, plan.peak_lr, warmup, config.steps, config.min_lr_ratio)
        for group in optimizer.param_groups:
            group["lr"] = lr
        loss, grad_norm = optimizer_step(model, optimizer, loader, plan, config, context, clip, scaler)
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
            if plan.loss_scaling:
                record["loss_scale"] = float(scaler.get_scale())
            result.losses[done] = step_loss
            logger.log(done, record)
            logger.advance(steps_since_log, {"loss": step_loss, "lr": lr})
            checkpoints.finish_if_written()
            timer, steps_since_log = time.perf_counter(), 0

        if validation is not None and (done % config.eval_every == 0 or last):
            val = evaluate(
                model, validation, config.micro_batch_size, context, lambda: autocast(context, plan.compute_dtype)
            )
            result.val_losses[done] = val["val_loss"]
            logger.log(done, {**val, "val_perplexity": math.exp(min(val["val_loss"], 50.0))})
            timer = time.perf_counter()

        if done % config.save_every == 0 or last:
            train_state = {
                "loader": loader.state_dict(),
                "train_config": config.to_dict(),
                "epochs_seen": loader.epochs_seen(),
                "grad_scaler": scaler.state_dict(),
            }
            result.checkpoint = checkpoints.save(done, model, optimizer, args, train_state, tokenizer_path)
            logger.write(f"step {done}: checkpoint {result.checkpoint}; epochs seen {loader.epochs_seen()}")
            timer = time.perf_counter()
    checkpoints.finish()
    logger.close()
    return result
