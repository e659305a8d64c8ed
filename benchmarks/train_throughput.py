"""Training throughput: tokens/s and model FLOPs utilization of one training step (forward, backward,
AdamW update) of our LLaMA, and on CPU the same step of Hugging Face's `LlamaForCausalLM` with the same
shape, batch, loss and optimizer as the baseline (ratio = ours / HF; > 1 means we are faster).

FLOPs per token = 6N (N = parameters outside the embedding table) + 12 * layers * dim * seq_len (attention),
PaLM's convention; MFU = achieved FLOP/s / the device's dense bf16 peak (989 TFLOP/s for H100/H200).

    python benchmarks/train_throughput.py --config small --seq-len 256 --batch-size 4            # CPU, vs HF
    python benchmarks/train_throughput.py --config 1B --seq-len 2048 --batch-size 8 --compile \
        --no-hf --steps 5 --rounds 3 --warmup 3                                                   # GPU, MFU
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.config import load_model_args
from model.llama import build_model, flops_per_token
from model.metrics import peak_flops


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default="small", help="named config or params.json")
    parser.add_argument("--vocab-size", type=int, default=None, help="override the config's vocabulary")
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=1, help="timed steps per round")
    parser.add_argument(
        "--rounds", type=int, default=8, help="rounds, each timing every contender in alternating order; median taken"
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first (compilation happens here)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--compile", action="store_true", help="torch.compile each transformer block")
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--no-hf", action="store_true", help="skip the Hugging Face baseline")
    parser.add_argument("--peak-tflops", type=float, default=None, help="peak for MFU (default: known GPUs)")
    parser.add_argument("--threads", type=int, default=None, help="CPU intra-op threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the results here")
    return parser.parse_args()


class Step:
    """One optimizer step of a model mapping tokens to logits."""

    def __init__(self, model: torch.nn.Module, logits_of, device: torch.device, dtype: torch.dtype) -> None:
        self.model = model
        self.logits_of = logits_of
        self.device = device
        self.dtype = dtype
        self.optimizer = torch.optim.AdamW(
            model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=device.type == "cuda"
        )

    def __call__(self, batch: torch.Tensor) -> None:
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype != torch.float32):
            logits = self.logits_of(batch[:, :-1])
        loss = F.cross_entropy(logits.float().flatten(0, 1), batch[:, 1:].flatten())
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
    return Step(hf_model, lambda tokens: hf_model(tokens, use_cache=False).logits, device, dtype)


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
    model = build_model(args, device=device, seed=0)
    model.activation_checkpointing = options.activation_checkpointing
    if options.compile:
        for layer in model.layers:
            layer.compile()
    ours = Step(model, model, device, dtype)
    generator = torch.Generator().manual_seed(0)
    batch = torch.randint(0, args.vocab_size, (options.batch_size, options.seq_len + 1), generator=generator)
    batch = batch.to(device)

    contenders = {"ours": ours}
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
        "compile": options.compile,
        "activation_checkpointing": options.activation_checkpointing,
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
    if device.type == "cuda":
        result["peak_memory_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    print(json.dumps(result, indent=2))
    if options.json:
        Path(options.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
