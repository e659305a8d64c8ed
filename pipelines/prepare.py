"""`llamaprep prepare`: read -> per-document stages and global stages in config order -> Arrow shards.

The job graph is: ReadDocuments, then for each run of consecutive per-document stages one fused
`ApplyStages` DoFn, and each global (dedup) stage as its own PTransform; kept documents go to
`OUT/documents/`, and with `--keep-rejected` every rejection (with its reason) to `OUT/rejected/`. The
driver then writes `manifest.json` from the shard infos and the job's Beam metrics, and checks the
accounting: read = kept + dropped (by reason).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import uuid
from datetime import UTC, datetime
from importlib import metadata
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from filters.base import ConfigError
from filters.document import DOCUMENT_SCHEMA, SCHEMA_VERSION, Document
from filters.langid import language_partition_key
from pipelines.config import PrepareConfig, dump_config, load_prepare_config
from pipelines.formats import FORMATS
from pipelines.readers import ReadDocuments, check_inputs, parse_input
from pipelines.runners import (
    LOCAL_RUNNER,
    METRICS_NAMESPACE,
    add_runner_arguments,
    counters,
    pipeline_options,
    run_pipeline,
)
from pipelines.shards import DOCUMENTS_DIR, REJECTED_DIR, join, shard_paths, write_manifest
from pipelines.sinks import WriteShards, document_row, write_rejected
from pipelines.stages import apply_document_stages, global_stage_class, is_global_stage

INFO_PREFIX = ".shard-info-"


def _count_kept(doc: Document) -> Document:
    Metrics.counter(METRICS_NAMESPACE, "kept").inc()
    return doc


def _write_infos(infos: list[dict[str, Any]], path: str) -> None:
    with FileSystems.create(path) as f:
        f.write(json.dumps(sorted(infos, key=lambda i: i["path"])).encode("utf-8"))


def build_prepare(
    pipeline: beam.Pipeline,
    inputs: list[str],
    output: str,
    config: PrepareConfig,
    keep_rejected: bool,
    run_id: str,
    spread_files: bool = True,
) -> None:
    """Add the prepare job to `pipeline` (separate from running it, so tests and dry runs can inspect it)."""
    read = pipeline | "Read" >> ReadDocuments(inputs, config.reader, spread_files)
    kept = read["kept"]
    rejected = [read["rejected"]]
    segment: list[str] = []

    def flush(kept: beam.PCollection) -> beam.PCollection:
        if not segment:
            return kept
        label = "Stages[" + ",".join(segment) + "]"
        kept, dropped = apply_document_stages(kept, list(segment), config.stage_options, label)
        rejected.append(dropped)
        segment.clear()
        return kept

    for name in config.stages:
        if is_global_stage(name):
            kept = flush(kept)
            out = kept | name >> global_stage_class(name).from_options(config.stage_options.get(name))
            kept = out["kept"]
            rejected.append(out["rejected"])
        else:
            segment.append(name)
    kept = flush(kept)

    compression = None if config.shards.compression == "none" else config.shards.compression
    partition = language_partition_key if config.shards.split_by_language else None
    infos = (
        kept
        | "CountKept" >> beam.Map(_count_kept)
        | "WriteDocuments"
        >> WriteShards(
            output, DOCUMENTS_DIR, DOCUMENT_SCHEMA, document_row, config.shards.target_bytes, compression, partition
        )
    )
    (
        infos
        | "DocumentInfos" >> beam.combiners.ToList()
        | "SaveDocumentInfos" >> beam.Map(_write_infos, join(output, f"{INFO_PREFIX}{run_id}-{DOCUMENTS_DIR}.json"))
    )
    if keep_rejected:
        all_rejected = tuple(rejected) | "AllRejected" >> beam.Flatten()
        rejected_infos = all_rejected | "WriteRejected" >> write_rejected(output, config.shards.target_bytes)
        (
            rejected_infos
            | "RejectedInfos" >> beam.combiners.ToList()
            | "SaveRejectedInfos" >> beam.Map(_write_infos, join(output, f"{INFO_PREFIX}{run_id}-{REJECTED_DIR}.json"))
        )


def _read_infos(output: str, run_id: str, kind: str) -> list[dict[str, Any]] | None:
    path = join(output, f"{INFO_PREFIX}{run_id}-{kind}.json")
    if not FileSystems.exists(path):
        return None
    with FileSystems.open(path) as f:
        infos = json.loads(f.read().decode("utf-8"))
    FileSystems.delete([path])
    return infos


def _shard_set(infos: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "shards": infos,
        "documents": sum(i["documents"] for i in infos),
        "bytes": sum(i["bytes"] for i in infos),
        "text_bytes": sum(i["text_bytes"] for i in infos),
    }


def accounting(metrics: dict[str, int]) -> dict[str, Any]:
    """read = kept + dropped, with drops, skips and repairs grouped by reason."""

    def group(prefix: str) -> dict[str, int]:
        return {k[len(prefix) :]: v for k, v in sorted(metrics.items()) if k.startswith(prefix) and v}

    dropped = group("dropped.")
    read, kept = metrics.get("read", 0), metrics.get("kept", 0)
    return {
        "files": metrics.get("files", 0),
        "read": read,
        "kept": kept,
        "dropped": dropped,
        "dropped_total": sum(dropped.values()),
        "skipped": group("skipped."),
        "repaired": group("repaired."),
        "balanced": read == kept + sum(dropped.values()),
    }


def tool_version() -> str:
    try:
        return metadata.version("llamaprep")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def build_manifest(
    inputs: list[str], output: str, config: PrepareConfig, metrics: dict[str, int], run_id: str, runner: str
) -> dict[str, Any]:
    documents = _read_infos(output, run_id, DOCUMENTS_DIR) or []
    rejected = _read_infos(output, run_id, REJECTED_DIR)
    counts = accounting(metrics)
    if counts["kept"] != sum(i["documents"] for i in documents):
        raise RuntimeError(
            f"shards hold {sum(i['documents'] for i in documents)} documents but {counts['kept']} were kept"
        )
    return {
        "kind": "documents",
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "llamaprep", "version": tool_version(), "beam": beam.__version__},
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "runner": runner,
        "inputs": inputs,
        "config": config.to_dict(),
        "counts": counts,
        "metrics": {k: v for k, v in sorted(metrics.items()) if v},
        DOCUMENTS_DIR: _shard_set(documents),
        REJECTED_DIR: _shard_set(rejected) if rejected is not None else None,
    }


def _prepare_output(output: str, overwrite: bool) -> None:
    existing = shard_paths(output, DOCUMENTS_DIR) + shard_paths(output, REJECTED_DIR)
    has_manifest = FileSystems.exists(join(output, "manifest.json"))
    if (existing or has_manifest) and not overwrite:
        raise ConfigError(f"output {output} already holds prepared data; pass --overwrite to replace it")
    if existing:
        FileSystems.delete(existing)
    if has_manifest:
        FileSystems.delete([join(output, "manifest.json")])


def _is_dry_run(options: PipelineOptions) -> bool:
    return bool(options.get_all_options().get("dry_run"))


def run_prepare(args: argparse.Namespace) -> int:
    config = load_prepare_config(args.config, _overrides(args))
    if args.print_config:
        sys.stdout.write(dump_config(config))
        return 0
    if not args.inputs or not args.output:
        raise ConfigError("prepare needs INPUTS and --output (or --print-config)")
    options, runner = pipeline_options(args)
    dry_run = _is_dry_run(options)
    specs = [parse_input(spec) for spec in args.inputs]
    check_inputs([s for s in specs if not (dry_run and "://" in s.pattern)], config.reader.format)
    output = args.output.rstrip("/")
    if not dry_run:
        _prepare_output(output, args.overwrite)
    run_id = uuid.uuid4().hex[:12]
    spread_files = args.runner != LOCAL_RUNNER

    def build(pipeline: beam.Pipeline) -> None:
        build_prepare(pipeline, list(args.inputs), output, config, args.keep_rejected, run_id, spread_files)

    result = run_pipeline(build, options, runner)
    if dry_run:
        project = options.view_as(GoogleCloudOptions).project
        print(f"dry run: job graph built and validated for {args.runner} (project {project}); nothing was run")
        return 0
    manifest = build_manifest(list(args.inputs), output, config, counters(result), run_id, args.runner)
    write_manifest(output, manifest)
    print_summary(output, manifest)
    if args.print_summary_json:
        print(json.dumps(summary_record(manifest)))
    return 0 if manifest["counts"]["balanced"] else 1


def print_summary(output: str, manifest: dict[str, Any]) -> None:
    counts = manifest["counts"]
    docs = manifest[DOCUMENTS_DIR]
    print(f"prepared {output}: {counts['kept']} of {counts['read']} documents kept in {len(docs['shards'])} shard(s)")
    for reason, n in sorted(counts["dropped"].items(), key=lambda kv: -kv[1]):
        print(f"  dropped {reason}: {n}")
    for reason, n in counts["skipped"].items():
        print(f"  skipped {reason}: {n} (records that were not documents)")
    if not counts["balanced"]:
        print("  ACCOUNTING MISMATCH: read != kept + dropped", file=sys.stderr)


SUGAR_FLAGS = {
    "languages": "langid.languages",
    "min_language_score": "langid.min_score",
    "quality_model": "quality.model_path",
    "min_quality": "quality.min_score",
}


def summary_record(manifest: dict[str, Any]) -> dict[str, Any]:
    """One line for scripts and benchmarks: counts, kept text bytes and this process's peak memory."""
    peak_kb = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    counts = manifest["counts"]
    return {
        "read": counts["read"],
        "kept": counts["kept"],
        "dropped": counts["dropped_total"],
        "kept_text_bytes": manifest[DOCUMENTS_DIR]["text_bytes"],
        "peak_rss_mb": peak_kb / 1024,
    }


def _overrides(args: argparse.Namespace) -> list[str]:
    overrides = []
    if args.stages:
        overrides.append(f"stages={args.stages}")
    for name in ("format", "text_field", "limit", "source"):
        value = getattr(args, name)
        if value is not None:
            overrides.append(f"reader.{name}={value}")
    if args.target_shard_mb is not None:
        overrides.append(f"shards.target_bytes={int(args.target_shard_mb * 1024 * 1024)}")
    if args.split_by_language:
        overrides.append("shards.split_by_language=true")
    for flag, key in SUGAR_FLAGS.items():
        value = getattr(args, flag)
        if value is not None:
            overrides.append(f"{key}={value}")
    return overrides + list(args.set or [])


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare",
        help="clean, filter and deduplicate raw corpora into Arrow shards",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "inputs", nargs="*", metavar="INPUT", help="paths, globs, dirs or URLs; LABEL=PATTERN sets the source"
    )
    parser.add_argument("--output", "-o", help="output directory (local, gs://, s3://)")
    parser.add_argument("--config", "-c", help="TOML or YAML config file (see --print-config)")
    parser.add_argument("--set", action="append", metavar="SECTION.KEY=VALUE", help="override one config value")
    parser.add_argument("--stages", help="comma-separated stage order (overrides the config's `stages`)")
    parser.add_argument("--format", choices=FORMATS, help="input format (default: from file names)")
    parser.add_argument("--text-field", help="JSONL/Parquet field holding the text (default: text)")
    parser.add_argument("--source", help="source label for every document (default: from records or file names)")
    parser.add_argument("--limit", type=int, help="read only the first N documents (sampling a dump)")
    parser.add_argument("--target-shard-mb", type=float, help="approximate text size of one shard (default 256)")
    parser.add_argument("--languages", help="langid: keep only these languages (comma-separated, e.g. en,de)")
    parser.add_argument("--min-language-score", type=float, help="langid: minimum top-language score (0.5)")
    parser.add_argument("--quality-model", help="quality: fastText model from `llamaprep quality train`")
    parser.add_argument("--min-quality", type=float, help="quality: minimum probability of the positive label")
    parser.add_argument("--split-by-language", action="store_true", help="one shard set per language")
    parser.add_argument("--keep-rejected", action="store_true", help="also write dropped documents to OUT/rejected/")
    parser.add_argument("--overwrite", action="store_true", help="replace prepared data already in --output")
    parser.add_argument("--print-config", action="store_true", help="print the effective configuration and exit")
    parser.add_argument("--print-summary-json", action="store_true", help="end with one JSON line of counts")
    add_runner_arguments(parser)
    parser.set_defaults(func=run_prepare)
