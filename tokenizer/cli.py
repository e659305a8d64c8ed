"""`llamaprep tokenizer train`: train LLaMA's SentencePiece BPE tokenizer on prepared shards."""

from __future__ import annotations

import argparse

from pipelines.shards import shard_paths
from tokenizer.sentences import parse_weights
from tokenizer.settings import llama_settings
from tokenizer.train import MODEL_NAME, RECORD_NAME, VOCAB_NAME, train_tokenizer

LLAMA = llama_settings()


def run_train(args: argparse.Namespace) -> int:
    paths = [path for directory in args.shards for path in shard_paths(directory)]
    if not paths:
        raise FileNotFoundError(
            f"no documents/part-*.arrow shards in {', '.join(args.shards)} (run `llamaprep prepare` first)"
        )
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
