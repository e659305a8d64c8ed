"""`llamaprep tokenizer train`: train LLaMA's SentencePiece BPE tokenizer on prepared shards."""

from __future__ import annotations

import argparse

from filters.prepared import shard_paths
from tokenizer.model_proto import model_specs
from tokenizer.sentences import parse_weights
from tokenizer.settings import DEPRECATED, LLAMA_SETTINGS, llama_settings
from tokenizer.train import MODEL_NAME, RECORD_NAME, VOCAB_NAME, train_tokenizer

LLAMA = llama_settings()


def run_train(args: argparse.Namespace) -> int:
    paths = [path for directory in args.shards for path in shard_paths(directory)]
    if not paths:
        raise FileNotFoundError(f"{', '.join(args.shards)} holds no documents (the manifest lists no shards)")
    train_tokenizer(
        paths,
        args.output,
        vocab_size=args.vocab_size,
        input_sentence_size=args.input_sentence_size,
        seed=args.seed,
        weights=parse_weights(args.weight),
        num_threads=args.threads,
        character_coverage=args.character_coverage,
        verbose=args.verbose,
    )
    return 0


def setting_differences(path: str) -> list[tuple[str, object, object]]:
    """(name, LLaMA's value, this model's value) for every LLaMA setting the model does not share."""
    specs = model_specs(path)
    values = {**specs["trainer_spec"], **specs["normalizer_spec"]}
    values["normalization_rule_name"] = values.get("name")
    values["model_type"] = str(values.get("model_type", "")).lower()
    differences = []
    for setting in LLAMA_SETTINGS:
        if setting.name in DEPRECATED:
            continue
        value = values.get(setting.name)
        if type(setting.value) is int and isinstance(value, str):  # protobuf's JSON writes int64 as a string
            value = int(value)
        if isinstance(setting.value, float) and value is not None:
            same = abs(float(value) - setting.value) < 1e-6
        else:
            same = value == setting.value
        if not same:
            differences.append((setting.name, setting.value, value))
    return differences


def run_info(args: argparse.Namespace) -> int:
    differences = setting_differences(args.model)
    if not differences:
        print(f"{args.model}: every LLaMA trainer setting matches")
    for name, llama, ours in differences:
        print(f"{name}: {ours!r} (LLaMA: {llama!r})")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("tokenizer", help="train a SentencePiece BPE tokenizer with LLaMA's settings")
    commands = parser.add_subparsers(dest="tokenizer_command", required=True, metavar="COMMAND")
    train = commands.add_parser(
        "train",
        help="train tokenizer.model on prepared shards",
        description=f"Train a SentencePiece BPE model with LLaMA's trainer settings (see docs/tokenizer.md) and "
        f"write {MODEL_NAME}, {VOCAB_NAME} and {RECORD_NAME} (settings and input sample) to --output.",
    )
    train.add_argument("shards", nargs="+", help="prepared directories (outputs of `llamaprep prepare`)")
    train.add_argument("--output", required=True, help="directory for the model, vocab and record")
    train.add_argument("--vocab-size", type=int, default=LLAMA["vocab_size"], help="default: LLaMA's 32000")
    train.add_argument(
        "--input-sentence-size",
        type=int,
        default=LLAMA["input_sentence_size"],
        help="lines to sample for training (seeded reservoir; bounds memory); default: LLaMA's 200M",
    )
    train.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    train.add_argument(
        "--weight",
        action="append",
        default=[],
        metavar="KIND:NAME=W",
        help="expected copies of each line of a source or language, e.g. source:web=0.5 language:ja=2 "
        "(repeatable; default 1)",
    )
    train.add_argument("--threads", type=int, default=None, help="trainer threads (default: every core)")
    train.add_argument(
        "--character-coverage",
        type=float,
        default=None,
        help="departs from LLaMA's 0.99995: lower it when a small vocabulary must cover a multilingual sample",
    )
    train.set_defaults(func=run_train)
    info = commands.add_parser(
        "info",
        help="compare a SentencePiece model's trainer settings with LLaMA's",
        description="Print every LLaMA trainer/normalizer setting this model does not share (Meta's LLaMA "
        "tokenizer.model prints none; ours prints the vocabulary size, sample size and threads).",
    )
    info.add_argument("model", help="a tokenizer.model file")
    info.set_defaults(func=run_info)
