"""The command lines of the data commands (`prepare`, `stats`, `quality`, `tokenize`): their flags, and
where their code lives.

Building these parsers imports no engine: flags come from the config dataclasses' documented fields
(`filters.options`), and each command's module (Beam, fastText, SentencePiece) is imported only when that
command runs, so `llamaprep --help` and `llamaprep train` never load Beam.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from filters.langid import LangIdConfig
from filters.llama_sources import MAX_PAPER_EPOCHS
from filters.options import add_arguments, given_values
from filters.quality import QualityConfig
from filters.quality_training import TrainingParams
from filters.registry import load_entry
from pipelines.config import ShardConfig
from pipelines.formats import ReaderConfig

LOCAL_RUNNER = "local"
EXCHANGES = ("auto", "files", "shuffle")
DEFAULT_MEMORY_BUDGET = "64M"  # a pass holds ~16 MB of keys; more passes cost one slice read per key file each
DEFAULT_TASK_DOCUMENTS = 16384

# The config fields `prepare` offers as flags (anything else: --config or --set section.key=value).
PREPARE_FLAGS: dict[str, tuple[type, tuple[str, ...]]] = {
    "reader": (ReaderConfig, ("format", "text_field", "source", "limit")),
    "shards": (ShardConfig, ("split_by_language",)),
    "langid": (LangIdConfig, ("languages", "min_score")),
    "quality": (QualityConfig, ("model_path", "min_score")),
}


def later(target: str) -> Callable[[argparse.Namespace], int]:
    """A command function ("module:function") imported when the command runs, not when the parser is built."""

    def run(args: argparse.Namespace) -> int:
        return load_entry(target)(args)

    return run


def add_runner_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("runner (other standard Beam flags such as --project are passed through)")
    group.add_argument(
        "--runner",
        default=LOCAL_RUNNER,
        help="'local' (in-process FnApiRunner, the default), DataflowRunner, PortableRunner, FlinkRunner, SparkRunner",
    )
    group.add_argument(
        "--workers",
        type=int,
        default=1,
        help="local runner only: run the job's units in N worker processes (one core each)",
    )
    parser.set_defaults(beam_args=True)


def prepare_flag_values(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """{section: {field: value}} of the config flags given to `prepare`."""
    values = {section: given_values(args, cls, names) for section, (cls, names) in PREPARE_FLAGS.items()}
    if args.target_shard_mb is not None:
        values["shards"]["target_bytes"] = int(args.target_shard_mb * 1024 * 1024)
    return {section: fields for section, fields in values.items() if fields}


def _register_prepare(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="clean, filter and deduplicate raw corpora into Arrow shards",
        description="Raw inputs -> per-document stages and corpus-level dedup in config order -> Arrow shards; "
        "streams file by file in flat memory, resumes after a kill (run the same command again), uses "
        "--workers cores. See README.md.",
    )
    parser.add_argument(
        "inputs", nargs="*", metavar="INPUT", help="paths, globs, dirs or URLs; LABEL=PATTERN sets the source"
    )
    parser.add_argument("--output", "-o", help="output directory (local, gs://, s3://)")
    parser.add_argument(
        "--recipe",
        help="a shipped per-source recipe (llama-commoncrawl, llama-wikipedia, llama-github, ...; `--recipe list` "
        "names them); --config, flags and --set apply on top of it",
    )
    parser.add_argument("--config", "-c", help="TOML or YAML config file (see --print-config)")
    parser.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override one config value")
    parser.add_argument("--stages", help="comma-separated stage order (overrides the config's `stages`)")
    parser.add_argument("--target-shard-mb", type=float, help="approximate text size of one shard (default 256)")
    for cls, names in PREPARE_FLAGS.values():
        add_arguments(parser, cls, names)
    parser.add_argument("--keep-rejected", action="store_true", help="also write dropped documents to OUT/rejected/")
    parser.add_argument(
        "--overwrite", action="store_true", help="replace prepared data or an unfinished run already in --output"
    )
    parser.add_argument(
        "--memory-budget",
        default=DEFAULT_MEMORY_BUDGET,
        help="local runs: memory for the dedup key state held at once, shared by the workers (e.g. 512M, 2G); "
        "larger key sets are decided in more passes (default %(default)s)",
    )
    parser.add_argument(
        "--exchange",
        choices=EXCHANGES,
        default="auto",
        help="how dedup keys move between tasks: files (memory-budgeted passes; the local default) or shuffle "
        "(Beam GroupByKey; the default on distributed runners)",
    )
    parser.add_argument("--quiet", "-q", action="store_true", help="no progress line and no summary")
    parser.add_argument("--print-config", action="store_true", help="print the effective configuration and exit")
    parser.add_argument("--print-summary-json", action="store_true", help="end with one JSON line of counts")
    add_runner_arguments(parser)
    parser.set_defaults(func=later("pipelines.prepare:run_prepare"))


def _register_stats(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "stats", help="summarize a prepared or token directory (table, --json, --html report)"
    )
    parser.add_argument(
        "directories",
        nargs="+",
        metavar="DIRECTORY",
        help="a prepared or token directory (with manifest.json); several: tokens per source against LLaMA's mixture",
    )
    parser.add_argument("--html", metavar="FILE", help="also write a self-contained HTML report with plots")
    parser.add_argument("--json", action="store_true", help="print the statistics as JSON instead of a table")
    parser.add_argument(
        "--token-budget",
        help="training tokens (e.g. 1.4T, 200B): the epochs each source needs under LLaMA's mixture, short ones warned",
    )
    parser.add_argument(
        "--max-epochs",
        type=float,
        default=MAX_PAPER_EPOCHS,
        help="a source needing more passes than this is short (default: the paper's most, %(default)s)",
    )
    parser.set_defaults(func=later("pipelines.stats:run_stats"))


def _register_quality(subparsers: argparse._SubParsersAction) -> None:
    quality = subparsers.add_parser("quality", help="train and evaluate the fastText quality classifier")
    commands = quality.add_subparsers(dest="quality_command", required=True, metavar="SUBCOMMAND")
    train = commands.add_parser(
        "train",
        help="train a reference-vs-random-page classifier (LLaMA section 2.1)",
        description="Positives: reference-quality pages (e.g. pages cited by Wikipedia); negatives: random "
        "crawl pages. Classes are balanced by downsampling, a held-out split is reported.",
    )
    train.add_argument("--positive", nargs="+", required=True, help="inputs of positive documents")
    train.add_argument("--negative", nargs="+", required=True, help="inputs of negative documents")
    train.add_argument("--output", required=True, help="where to write the fastText model (.bin; local or URL)")
    train.add_argument("--format", default=None, help="input format when it cannot be told from the file names")
    add_arguments(train, TrainingParams)
    train.set_defaults(func=later("pipelines.quality_train:run_train"))

    evaluate = commands.add_parser("eval", help="report precision/recall/F1/ROC-AUC of a model on labelled data")
    evaluate.add_argument("--model", required=True, help="fastText quality model")
    evaluate.add_argument("--labeled", nargs="+", help="inputs whose documents carry a 0/1 label field")
    evaluate.add_argument("--label-field", default="label", help="metadata field holding the label")
    evaluate.add_argument("--positive", nargs="+", help="inputs of positive documents")
    evaluate.add_argument("--negative", nargs="+", help="inputs of negative documents")
    evaluate.add_argument("--format", default=None, help="input format when it cannot be told from the file names")
    evaluate.add_argument("--positive-label", default=QualityConfig.positive_label, help="the model's positive label")
    evaluate.add_argument("--threshold", type=float, default=TrainingParams.threshold, help="decision threshold")
    evaluate.set_defaults(func=later("pipelines.quality_train:run_eval"))

    references = commands.add_parser(
        "references",
        help="write the external URLs Wikipedia articles cite (the classifier's positives, LLaMA section 2.1)",
        description="Streams MediaWiki dumps and writes each URL cited by an article (citation templates' url=, "
        "links inside <ref>) once, in first-seen order; see docs/sources/wikipedia.md for turning them into "
        "positives for `quality train`.",
    )
    references.add_argument("dumps", nargs="+", metavar="WIKI_DUMP", help="pages-articles XML dumps (.xml, .bz2)")
    references.add_argument("--output", "-o", required=True, help="the URL list to write (local or URL)")
    references.set_defaults(func=later("pipelines.quality_references:run_references"))

    positives = commands.add_parser(
        "positives",
        help="the crawl pages Wikipedia cites, joined by URL: positives for `quality train`",
        description="Joins the URL list of `quality references` with crawl data (anything `prepare` reads) on the "
        "canonical URL and writes each cited page once as JSON lines {id, url, text}.",
    )
    positives.add_argument("crawl", nargs="+", metavar="CRAWL", help="crawl inputs (WARC, WET, JSONL...) with urls")
    positives.add_argument("--urls", nargs="+", required=True, help="URL lists (one per line), e.g. refs.txt")
    positives.add_argument("--output", "-o", required=True, help="the JSON lines to write (local or URL)")
    positives.add_argument("--format", default=None, help="crawl input format when it cannot be told from the names")
    positives.set_defaults(func=later("pipelines.quality_positives:run_positives"))


def _register_tokenize(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tokenize",
        help="turn prepared text shards into token shards for training",
        description="Encode every document of a prepared directory as BOS + ids + EOS into memory-mappable "
        "Arrow token shards, split into train/val by document-id hash, with a manifest of counts.",
    )
    parser.add_argument(
        "shards",
        nargs="+",
        metavar="PREPARED",
        help="prepared directories (outputs of `llamaprep prepare`; one per source for a mixture)",
    )
    parser.add_argument("--tokenizer", required=True, help="a SentencePiece model file (ours or Meta's LLaMA one)")
    parser.add_argument("--output", required=True, help="directory for the token shards and manifest.json")
    parser.add_argument(
        "--val-fraction", type=float, default=0.0, help="share of documents (by id hash) for validation"
    )
    parser.add_argument(
        "--encode-threads",
        type=int,
        default=0,
        help="SentencePiece threads per worker (default 1: one core per worker)",
    )
    parser.add_argument(
        "--task-documents",
        type=int,
        default=DEFAULT_TASK_DOCUMENTS,
        help="about N documents per parallel task and so per output shard (whole input record batches)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace token shards already in --output")
    add_runner_arguments(parser)
    parser.set_defaults(func=later("pipelines.tokenize:run"))


def register(subparsers: argparse._SubParsersAction) -> None:
    _register_prepare(subparsers)
    _register_stats(subparsers)
    _register_quality(subparsers)
    _register_tokenize(subparsers)
