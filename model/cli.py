"""`llamaprep train`, `llamaprep generate` and `llamaprep convert {to-hf,to-meta,from-hf,merge}`.

Also a console entry of its own for torchrun, which starts every rank without the data commands' parser
(`torchrun --nproc-per-node 8 -m model.cli train ...`); `llamaprep train` starts without Beam as well.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections.abc import Sequence
from pathlib import Path

from filters.options import (
    ConfigError,
    OneLineParser,
    add_arguments,
    build_config,
    documented_fields,
    given_values,
    run_command,
)
from model.config import NAMED_CONFIGS, ModelArgs, TrainConfig

TRAIN_COMMAND_FLAGS = ("data", "config", "output", "mixture")  # flags of their own (required, parsed)
TRAINING_FLAGS = tuple(f.name for f in documented_fields(TrainConfig) if f.name not in TRAIN_COMMAND_FLAGS)


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_train(subparsers)
    _register_generate(subparsers)
    _register_convert(subparsers)


def _register_train(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train LLaMA on token shards (torchrun for several GPUs/nodes)",
        description="Pre-train LLaMA on a token dataset (output of `llamaprep tokenize`). Run under `torchrun "
        "--nproc-per-node N` for several GPUs: parameters, gradients and optimizer states are sharded (FSDP2).",
    )
    parser.add_argument("--data", required=True, help="token dataset directory (manifest.json + train/ val/)")
    parser.add_argument(
        "--config", default="tiny", help=f"model: a named config ({', '.join(NAMED_CONFIGS)}) or a params.json file"
    )
    parser.add_argument("--output", default="out/train", help="checkpoints, metrics.jsonl and tensorboard/ go here")
    parser.add_argument(
        "--mixture",
        default=None,
        help="source weights: 'cc=0.67,c4=0.15,...', 'llama' (the paper's table) or a JSON/TOML file; "
        "default: in proportion to each source's tokens",
    )
    parser.add_argument(
        "--train-config", default=None, help="TOML/JSON file of training settings (flags given here win)"
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        default=None,
        metavar="CHECKPOINT",
        help="continue from CHECKPOINT, or without a value from the latest one under --output",
    )
    parser.add_argument("--tokenizer", default=None, help="tokenizer.model to copy into checkpoints")
    add_arguments(parser, TrainConfig, TRAINING_FLAGS)
    parser.set_defaults(func=run_train)


def parse_mixture(value: str | None) -> dict[str, float]:
    """--mixture: "llama", a TOML/JSON file, or NAME=WEIGHT,...; a malformed one is a ConfigError (one line)."""
    from filters.llama_sources import LLAMA_MIXTURE

    if not value:
        return {}
    if value == "llama":
        return dict(LLAMA_MIXTURE)
    path = Path(value)
    try:
        if path.is_file():
            loaded = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
            return {str(k): float(v) for k, v in loaded.get("mixture", loaded).items()}
        mixture = {}
        for item in value.split(","):
            name, sep, weight = item.partition("=")
            if not sep:
                raise ConfigError(f"--mixture item {item!r} is not NAME=WEIGHT")
            mixture[name.strip()] = float(weight)
    except ConfigError:
        raise
    except (ValueError, TypeError, AttributeError) as error:  # bad number, TOML or JSON; not a table
        raise ConfigError(f"--mixture {value}: {error}") from None
    return mixture


def train_config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The --train-config file's settings, then the command's flags; typed and checked by build_config."""
    settings: dict = {}
    if args.train_config:
        path = Path(args.train_config)
        settings = tomllib.loads(path.read_text()) if path.suffix == ".toml" else json.loads(path.read_text())
    settings.update(data=args.data, output=args.output, config=args.config)
    if args.mixture is not None or "mixture" not in settings:
        settings["mixture"] = parse_mixture(args.mixture)
    settings.update(given_values(args, TrainConfig, TRAINING_FLAGS))
    return build_config(TrainConfig, settings, args.train_config or "train")


def run_train(args: argparse.Namespace) -> int:
    from model.train import train

    result = train(train_config_from_args(args), resume=args.resume, tokenizer=args.tokenizer)
    if result.checkpoint:
        print(f"final checkpoint: {result.checkpoint}")
    return 0


def _register_generate(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("generate", help="sample text from a checkpoint")
    parser.add_argument(
        "--checkpoint", required=True, help="model directory (params.json + consolidated.*.pth) or training output"
    )
    parser.add_argument("--prompt", action="append", required=True, help="prompt text (repeatable)")
    parser.add_argument("--tokenizer", default=None, help="tokenizer.model (default: the checkpoint's)")
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--temperature", type=float, default=0.6, help="0 for greedy (default 0.6, Meta's example)")
    parser.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling mass (default 0.9)")
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-cache", action="store_true", help="recompute the whole prefix each step (slow)")
    parser.set_defaults(func=run_generate)


def run_generate(args: argparse.Namespace) -> int:
    from model.generate import generate_text

    outputs = generate_text(
        args.checkpoint,
        args.prompt,
        tokenizer_path=args.tokenizer,
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_p=args.top_p,
        seed=args.seed,
        device=args.device,
        use_cache=not args.no_cache,
    )
    for prompt, output in zip(args.prompt, outputs, strict=True):
        print(f"{prompt}{output}")
        print("-" * 40)
    return 0


def _register_convert(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("convert", help="convert checkpoints between Meta's and Hugging Face's layouts")
    commands = parser.add_subparsers(dest="convert_command", required=True, metavar="COMMAND")
    to_hf = commands.add_parser(
        "to-hf", help="Meta layout (ours, original LLaMA or a sharded training checkpoint) -> HF LlamaForCausalLM"
    )
    to_hf.add_argument("checkpoint", help="model directory (params.json + consolidated.*.pth) or training output")
    to_hf.add_argument("output", help="HF model directory to write (config.json + model.safetensors)")
    to_hf.add_argument("--dtype", default=None, help="cast weights, e.g. bfloat16 (default: keep)")
    to_hf.set_defaults(func=run_to_hf)
    to_meta = commands.add_parser(
        "to-meta", help="sharded training checkpoint -> Meta layout (params.json + consolidated.00.pth), offline"
    )
    to_meta.add_argument("checkpoint", help="checkpoint directory (step-NNNNNNN) or training output (its latest)")
    to_meta.add_argument("output", help="model directory to write")
    to_meta.add_argument("--dtype", default=None, help="cast weights, e.g. bfloat16 (default: keep)")
    to_meta.set_defaults(func=run_to_meta)
    from_hf = commands.add_parser("from-hf", help="HF LlamaForCausalLM directory -> Meta layout")
    from_hf.add_argument("hf_directory")
    from_hf.add_argument("output", help="model directory to write (params.json + consolidated.00.pth)")
    from_hf.set_defaults(func=run_from_hf)
    merge = commands.add_parser("merge", help="merge Meta's model-parallel consolidated.NN.pth into one file")
    merge.add_argument("checkpoint", help="original LLaMA directory (params.json + consolidated.NN.pth)")
    merge.add_argument("output")
    merge.add_argument("--vocab-size", type=int, default=None, help="for params.json files with vocab_size -1")
    merge.set_defaults(func=run_merge)


def _load_for_conversion(args: argparse.Namespace) -> tuple[Path, ModelArgs, dict]:
    """The checkpoint `args.checkpoint` names (a training output means its latest), in any layout ours
    reads, cast to `--dtype` when given."""
    import torch

    from model.generate import resolve_checkpoint
    from model.meta_format import load_checkpoint

    directory = resolve_checkpoint(args.checkpoint)
    model_args, state = load_checkpoint(directory)
    if args.dtype:
        state = {k: v.to(getattr(torch, args.dtype)) for k, v in state.items()}
    return directory, model_args, state


def _save_meta(model_args: ModelArgs, state: dict, source: str | Path, output: str) -> int:
    """Write Meta's layout, with the source directory's tokenizer.model when it has one."""
    from model.meta_format import TOKENIZER_FILE, save_checkpoint

    tokenizer = Path(source) / TOKENIZER_FILE
    save_checkpoint(model_args, state, output, tokenizer_model=tokenizer if tokenizer.is_file() else None)
    print(f"wrote {output} ({len(state)} tensors)")
    return 0


def run_to_hf(args: argparse.Namespace) -> int:
    from model.hf_format import save_hf
    from model.meta_format import TOKENIZER_FILE

    directory, model_args, state = _load_for_conversion(args)
    save_hf(model_args, state, args.output)
    if (directory / TOKENIZER_FILE).is_file():
        (Path(args.output) / TOKENIZER_FILE).write_bytes((directory / TOKENIZER_FILE).read_bytes())
    print(f"wrote {args.output} ({len(state)} tensors)")
    return 0


def run_to_meta(args: argparse.Namespace) -> int:
    directory, model_args, state = _load_for_conversion(args)
    return _save_meta(model_args, state, directory, args.output)


def run_from_hf(args: argparse.Namespace) -> int:
    from model.hf_format import load_hf

    model_args, state = load_hf(args.hf_directory)
    return _save_meta(model_args, state, args.hf_directory, args.output)


def run_merge(args: argparse.Namespace) -> int:
    from model.meta_format import load_checkpoint

    model_args, state = load_checkpoint(args.checkpoint, vocab_size=args.vocab_size)
    return _save_meta(model_args, state, args.checkpoint, args.output)


def build_parser() -> argparse.ArgumentParser:
    """The model commands alone (what `python -m model.cli` and torchrun's ranks parse)."""
    parser = OneLineParser(prog="python -m model.cli", description="Train LLaMA, generate, convert.")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level")
    register(parser.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return run_command(build_parser().parse_args(argv))

if __name__ == "__main__":
    sys.exit(main())
