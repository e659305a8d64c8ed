"""Training throughput: tokens/s and model FLOPs utilization of one training step (forward, backward,
AdamW update) of our LLaMA, and on CPU the same step of Hugging Face's `LlamaForCausalLM` with the same
shape, batch, loss and optimizer as the baseline (ratio = ours / HF; > 1 means we are faster).

`--kv-heads N` gives the grouped-query configuration (both models); `--loss-chunk-tokens N` adds our step
with the chunked cross-entropy as a third contender, and the memory our step allocates beyond the model
and optimizer states (activations, logits, gradients) with and without it.

FLOPs per token = 6N (N = parameters outside the embedding table) + 12 * layers * dim * seq_len (attention),
PaLM's convention; MFU = achieved FLOP/s / the device's dense bf16 peak (989 TFLOP/s for H100/H200 SXM).

    python benchmarks/train_throughput.py --config small --seq-len 256 --batch-size 4            # CPU, vs HF
    python benchmarks/train_throughput.py --config small --seq-len 256 --batch-size 4 --kv-heads 2 \
        --loss-chunk-tokens 256                                                                   # GQA, chunks
    python benchmarks/train_throughput.py --config 1B --seq-len 2048 --batch-size 8 --compile \
        --no-hf --steps 5 --rounds 3 --warmup 3                                                   # GPU, MFU
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.profiler import ProfilerActivity, profile

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.config import load_model_args
from model.llama import apply_activation_checkpointing, build_model, compile_blocks, flops_per_token
from model.loss import next_token_loss
from model.metrics import peak_flops


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="small", help="named config or params.json")
    parser.add_argument("--vocab-size", type=int, default=None, help="override the config's vocabulary")
    parser.add_argument("--kv-heads", type=int, default=None, help="grouped-query attention: key/value heads")
    parser.add_argument(
        "--loss-chunk-tokens", type=int, default=0, help="also time our step with the loss in chunks of N tokens"
    )
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=1, help="timed steps per round")
    parser.add_argument(
        "--rounds", type=int, default=8, help="rounds, each timing every contender in alternating order; median taken"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (compilation happens here)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile each transformer block")
    parser.add_argument("--activation-checkpointing", default="none", help="none, full, every:K or ops")
    parser.add_argument("--no-hf", action="store_true", help="skip the Hugging Face baseline")
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak for MFU (default: known GPUs)")
    parser.add_argument("--threads", type=int, default=None, help="CPU intra-op threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the results here")
    return parser.parse_args()


class Step:
    """One optimizer step of a model, its loss computed by `loss_of(batch)`."""

    def __init__(
        self,
        model: torch.nn.Module,
        loss_of: Callable[[torch.Tensor], torch.Tensor],
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.model = model
        self.loss_of = loss_of
        self.device = device
        self.dtype = dtype
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=device.type == "cuda"
        )

    def __call__(self, batch: torch.Tensor) -> None:
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            loss = self.loss_of(batch)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)


def timed(step: Step, batch: torch.Tensor, steps: int) -> float:
    """Seconds per step."""
    if batch.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        step(batch)
    if batch.device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def hugging_face_step(args, state: dict, device: torch.device, dtype: torch.dtype) -> Step:
    from transformers import LlamaConfig, LlamaForCausalLM

    from model.hf_format import hf_config, meta_to_hf_state_dict

    config = LlamaConfig(**{k: v for k, v in hf_config(args).items() if k not in ("architectures", "model_type")})
    with torch.device(device):
        hf_model = LlamaForCausalLM._from_config(config, attn_implementation="sdpa")
    hf_model.load_state_dict(meta_to_hf_state_dict(state, args), strict=False)
    hf_model.train()

    def loss_of(batch: torch.Tensor) -> torch.Tensor:
        logits = hf_model(batch[:, :-1], use_cache=False).logits
        return F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten())

    return Step(hf_model, loss_of, device, dtype)


def our_steps(options: argparse.Namespace, args, device: torch.device, dtype: torch.dtype) -> dict[str, Step]:
    """Our step, and with --loss-chunk-tokens the same model's step with the chunked loss."""
    model = build_model(args, device=device, seed=0)
    apply_activation_checkpointing(model, options.activation_checkpointing)
    if options.compile:
        compile_blocks(model)
    steps = {"ours": Step(model, lambda batch: next_token_loss(model, batch), device, dtype)}
    if options.loss_chunk_tokens:
        chunk = options.loss_chunk_tokens
        steps["ours_chunked"] = Step(model, lambda batch: next_token_loss(model, batch, chunk), device, dtype)
    return steps


def step_memory_mib(step: Step, batch: torch.Tensor) -> float:
    """The most memory one step allocates beyond what it starts with (parameters, optimizer states): its
    activations, logits and gradients. On GPU from torch's allocator statistics; on CPU from the profiler's
    record of every allocation and free, in order (the resident size is too noisy to compare: glibc keeps
    freed memory)."""
    if batch.device.type == "cuda":
        torch.cuda.synchronize()
        start = torch.cuda.memory_allocated(batch.device)
        torch.cuda.reset_peak_memory_stats(batch.device)
        step(batch)
        torch.cuda.synchronize()
        return (torch.cuda.max_memory_allocated(batch.device) - start) / 2**20
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
        step(batch)
    events = profiler.profiler.kineto_results.events()
    records = sorted((event.start_ns(), event.nbytes()) for event in events if event.name() == "[memory]")
    return max(0, *itertools.accumulate(size for _, size in records)) / 2**20


def main() -> None:
    options = parse_args()
    if options.threads:
        torch.set_num_threads(options.threads)
    if options.device == "auto":
        options.device = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(options.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    args = load_model_args(options.config)
    args = args.replace(max_seq_len=max(args.max_seq_len, options.seq_len))
    if options.vocab_size:
        args = args.replace(vocab_size=options.vocab_size)
    if options.kv_heads:
        args = args.replace(n_kv_heads=options.kv_heads)
    contenders = our_steps(options, args, device, dtype)
    model = contenders["ours"].model
    generator = torch.Generator().manual_seed(0)
    batch = torch.randint(0, args.vocab_size, (options.batch_size, options.seq_len + 1), generator=generator)
    batch = batch.to(device)

    if not options.no_hf:
        if device.type == "cuda":
            print("(the Hugging Face baseline runs on CPU only; use --no-hf on GPU)", file=sys.stderr)
        else:
            contenders["hf"] = hugging_face_step(args, model.state_dict(), device, dtype)
    for step in contenders.values():
        for _ in range(options.warmup):
            step(batch)
    seconds = {name: [] for name in contenders}
    for round_index in range(options.rounds):
        order = list(contenders.items())
        for name, step in order if round_index % 2 == 0 else reversed(order):
            seconds[name].append(timed(step, batch, options.steps))

    tokens = options.batch_size * options.seq_len
    n_params = model.num_params()
    flops_token = flops_per_token(args, model.num_params(exclude_embeddings=True), options.seq_len)
    peak = peak_flops(device, options.peak_tflops)
    result = {
        "config": options.config,
        "parameters": n_params,
        "seq_len": options.seq_len,
        "batch_size": options.batch_size,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dtype": str(dtype).removeprefix("torch."),
        "kv_heads": args.kv_heads,
        "n_heads": args.n_heads,
        "vocab_size": args.vocab_size,
        "compile": options.compile,
        "activation_checkpointing": options.activation_checkpointing,
        "loss_chunk_tokens": options.loss_chunk_tokens,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    for name, values in seconds.items():
        per_step = statistics.median(values)
        result[f"{name}_step_s"] = per_step
        result[f"{name}_tokens_per_s"] = tokens / per_step
        result[f"{name}_tflops"] = flops_token * tokens / per_step / 1e12
        if peak:
            result[f"{name}_mfu"] = flops_token * tokens / per_step / peak
    if "hf" in seconds:
        result["speed_ratio_ours_over_hf"] = result["ours_tokens_per_s"] / result["hf_tokens_per_s"]
    if "ours_chunked" in seconds:
        result["speed_ratio_chunked_over_whole"] = result["ours_chunked_tokens_per_s"] / result["ours_tokens_per_s"]
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    if "ours_chunked" in seconds:
        for name in ("ours", "ours_chunked"):
            result[f"{name}_step_memory_mib"] = step_memory_mib(contenders[name], batch)
    print(json.dumps(result, indent=2))
    if options.json:
        Path(options.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
