"""The `llamaprep` console script: one sub-command per module, each module registering its own parser.

A module in COMMAND_MODULES exposes `register(subparsers)`, which adds one or more sub-commands and sets
`func` (called with the parsed args) and, for Beam jobs, `beam_args=True` so unknown `--flags` are passed
to Beam's PipelineOptions (and checked there) instead of being rejected here.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from filters.base import ConfigError

COMMAND_MODULES = (
    "pipelines.prepare",
    "pipelines.stats",
    "pipelines.quality_train",
    "tokenizer.cli",
    "pipelines.tokenize",
    "model.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="llamaprep",
        description="Turn raw text corpora into LLaMA-ready training data, and train LLaMA on it.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO level (Beam included)")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "beam_args", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra_args = list(extra)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.verbose:  # Beam's worker chatter; skips and drops are counted and summarized instead
        logging.getLogger("apache_beam").setLevel(logging.ERROR)
    try:
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError) as error:
        print(f"llamaprep {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
