"""`llamaprep prepare` (its flags: `pipelines.commands`): raw inputs -> per-document stages and dedup in
config order -> Arrow shards, for corpora far larger than memory, resumable after a kill, on every core.

The job is built from resumable units that stream files, never from collections of documents:

    tasks (input files, sorted by path)
      -> phase 0 per task: read, per-document stages, write documents + keys of the first dedup stage
      -> dedup stage: key partitions decided in parallel (`pipelines.exchange`), decisions routed back
      -> phase 1 per task: apply decisions, next per-document stages, write documents + next keys ...
      -> compose: final shards of about the target size, then (driver) manifest.json, then .work removed

Only key rows, decisions, file names and counts cross the runner (`pipelines.phases`, `pipelines.dedup`).
Each unit writes a completion marker after its files are in place, so running the same command again
after a kill continues where it stopped and ends with the same bytes. The accounting (read = kept +
dropped by reason) is summed from those markers and checked.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
from collections import Counter
from importlib import metadata
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import GoogleCloudOptions, PipelineOptions

from filters.document import SCHEMA_VERSION
from filters.options import ConfigError
from filters.prepared import DOCUMENTS_DIR, MANIFEST_NAME, REJECTED_DIR, read_manifest
from pipelines.arrow_files import check_writable, delete, exists, join, read_bytes, write_bytes, write_manifest
from pipelines.commands import LOCAL_RUNNER, prepare_flag_values
from pipelines.compose import ShardWriter, plan_shards
from pipelines.config import PrepareConfig, dump_config, load_prepare_config, recipe_names
from pipelines.dedup import StageContext
from pipelines.exchange import FileExchange, Info, RunUnits, ShuffleExchange, Spread
from pipelines.phases import PhaseRunner, RunContext, global_stage, plan_phases
from pipelines.progress import Progress, follow_dataflow
from pipelines.readers import check_inputs, parse_input, plan_tasks
from pipelines.runners import pipeline_options, run_pipeline
from pipelines.workdir import RunLock, WorkDir, fault_injection, fingerprint, utc_timestamp

SUMMARY_NAME = "summary.json"
SHARDS_NAME = "shards.json"


def tool_version() -> str:
    try:
        return metadata.version("llamaprep")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


# ---------------------------------------------------------------- the job graph


def _read_tasks(path: str) -> list[Info]:
    tasks = [json.loads(line) for line in read_bytes(path).decode("utf-8").splitlines() if line]
    return sorted(tasks, key=lambda task: -task.get("size", 0))  # largest first: workers get even shares


COUNT_GROUPS = ("counts", "dropped", "skipped", "repaired", "metrics")


def unit_counts(info: Info) -> dict[str, dict[str, int]]:
    """The counts of one unit's info, grouped (scalars under "counts", reasons under their group)."""
    grouped: dict[str, dict[str, int]] = {group: {} for group in COUNT_GROUPS}
    for key, value in info.get("counts", {}).items():
        if isinstance(value, dict):
            grouped[key] = dict(value)
        else:
            grouped["counts"][key] = value
    grouped["metrics"] = dict(info.get("metrics", {}))
    return grouped


def sum_counts(parts: Any) -> dict[str, dict[str, int]]:
    """Sum grouped counts (associative, so Beam may combine partial sums in any order)."""
    total: dict[str, Counter] = {group: Counter() for group in COUNT_GROUPS}
    for part in parts:
        for group in COUNT_GROUPS:
            total[group].update(part.get(group, {}))
    return {group: dict(values) for group, values in total.items()}


def _save_json(value: Any, path: str) -> None:
    write_bytes(path, json.dumps(value, sort_keys=True, default=dict).encode("utf-8"))


def build_prepare(
    pipeline: beam.Pipeline,
    output: str,
    config: PrepareConfig,
    keep_rejected: bool,
    exchange: Any,
    runners: list[PhaseRunner] | None = None,
) -> None:
    """Add the prepare job to `pipeline` (separate from running it, so tests and dry runs can inspect it).
    Its tasks are read from the work directory's tasks.jsonl, written by the driver before the run.
    `runners`: one per phase when the driver has built (and so checked) them already."""
    workdir = WorkDir(output)
    context = RunContext(output, config, keep_rejected)
    plan = plan_phases(config.stages)
    runners = runners or [PhaseRunner(phase, context) for phase in plan]
    tasks = (
        pipeline
        | "Tasks" >> beam.Create([workdir.tasks_path])
        | "ReadTasks" >> beam.FlatMap(_read_tasks)
        | "SpreadTasks" >> Spread(lambda task: task["index"])
    )
    reports: list[beam.PCollection] = []
    phase_infos: list[beam.PCollection] = []
    decisions = None
    for phase, runner in zip(plan, runners, strict=True):
        infos = exchange.to_tasks(phase.step, tasks, decisions, runner)
        phase_infos.append(infos)
        if phase.keys_for is not None:
            keys = infos | f"{phase.step}/Keys" >> beam.FlatMap(lambda info: [info["keys"]] if info.get("keys") else [])
            step = f"g{phase.index + 1}-{phase.keys_for}"
            decisions, stage_reports = global_stage(config, phase.keys_for).decide(
                exchange, keys, StageContext(output, step, phase.step)
            )
            reports.extend(stage_reports)
    all_phases = tuple(phase_infos) | "AllPhases" >> beam.Flatten()
    compression = None if config.shards.compression == "none" else config.shards.compression
    shards = (
        all_phases
        | "Compose/Collect" >> beam.combiners.ToList()
        | "Compose/Plan" >> beam.FlatMap(plan_shards, config.shards.target_bytes)
        | "Compose/Spread" >> Spread(lambda unit: unit["unit"])
        | "Compose/Write" >> beam.ParDo(RunUnits(ShardWriter(output, compression), lambda unit: (unit, lambda: None)))
    )
    _ = (
        shards
        | "Shards/Collect" >> beam.combiners.ToList()
        | "Shards/Save" >> beam.Map(_save_json, join(workdir.root, SHARDS_NAME))
    )
    _ = (
        (all_phases, *reports)
        | "Summary/All" >> beam.Flatten()
        | "Summary/Counts" >> beam.Map(unit_counts)
        | "Summary/Sum" >> beam.CombineGlobally(sum_counts)
        | "Summary/Save" >> beam.Map(_save_json, join(workdir.root, SUMMARY_NAME))
    )


# ---------------------------------------------------------------- the manifest


def accounting(summary: Info) -> dict[str, Any]:
    """records seen = documents read + records skipped; read = kept + dropped; drops, skips and repairs
    grouped by reason. A file that ends early (a truncated or corrupt stream) counts one skip."""
    counts = summary["counts"]
    dropped = dict(sorted(summary["dropped"].items()))
    skipped = dict(sorted(summary["skipped"].items()))
    read, kept = counts.get("read", 0), counts.get("kept", 0)
    return {
        "files": counts.get("files", 0),
        "seen": read + sum(skipped.values()),
        "read": read,
        "kept": kept,
        "dropped": dropped,
        "dropped_total": sum(dropped.values()),
        "skipped": skipped,
        "skipped_total": sum(skipped.values()),
        "repaired": dict(sorted(summary["repaired"].items())),
        "balanced": read == kept + sum(dropped.values()),
    }


def _shard_set(infos: list[Info]) -> dict[str, Any]:
    infos = sorted(infos, key=lambda i: i["path"])
    return {
        "shards": [{k: v for k, v in i.items() if k != "kind"} for i in infos],
        "documents": sum(i["documents"] for i in infos),
        "bytes": sum(i["bytes"] for i in infos),
        "text_bytes": sum(i["text_bytes"] for i in infos),
    }


def build_manifest(
    inputs: list[str],
    output: str,
    config: PrepareConfig,
    keep_rejected: bool,
    runner: str,
    exchange: str,
    resumed: bool,
) -> dict[str, Any]:
    workdir = WorkDir(output)
    summary = json.loads(read_bytes(join(workdir.root, SUMMARY_NAME)))
    shard_infos = (
        json.loads(read_bytes(join(workdir.root, SHARDS_NAME))) if exists(join(workdir.root, SHARDS_NAME)) else []
    )
    counts = accounting(summary)
    documents = [i for i in shard_infos if i["kind"] == DOCUMENTS_DIR]
    if counts["kept"] != sum(i["documents"] for i in documents):
        raise RuntimeError(
            f"shards hold {sum(i['documents'] for i in documents)} documents but {counts['kept']} were kept"
        )
    metrics = dict(sorted(summary["metrics"].items()))
    input_text = summary["counts"].get("input_text_bytes", 0)
    exchanged = {k.split(".", 1)[1]: v for k, v in metrics.items() if k.startswith("exchange_bytes.")}
    return {
        "kind": "documents",
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "llamaprep", "version": tool_version(), "beam": beam.__version__},
        "created": utc_timestamp(),
        "runner": runner,
        "exchange": exchange,
        "resumed": resumed,
        "inputs": inputs,
        "config": config.to_dict(),
        "counts": counts,
        "metrics": {k: v for k, v in metrics.items() if v},
        "shuffle": {
            "input_text_bytes": input_text,
            "input_bytes": summary["counts"].get("input_bytes", 0),
            "stages": {
                name: {"bytes": value, "ratio": round(value / input_text, 4) if input_text else None}
                for name, value in sorted(exchanged.items())
            },
        },
        DOCUMENTS_DIR: _shard_set(documents),
        REJECTED_DIR: _shard_set([i for i in shard_infos if i["kind"] == REJECTED_DIR]) if keep_rejected else None,
    }


# ---------------------------------------------------------------- the output directory


def _clear_output(output: str) -> None:
    delete([join(output, DOCUMENTS_DIR), join(output, REJECTED_DIR), join(output, MANIFEST_NAME)])
    WorkDir(output).remove()


def open_output(output: str, run: dict[str, Any], overwrite: bool) -> bool:
    """Make `output` ready for this run; returns True when it continues an unfinished run of the same
    inputs and config. Refuses, with what to do, to mix runs or to replace data without --overwrite."""
    workdir = WorkDir(output)
    if exists(join(output, MANIFEST_NAME)):
        kind = read_manifest(output).get("kind")
        if kind != "documents":
            raise ConfigError(f"{output} holds a {kind!r} directory, not prepared documents; choose another --output")
        if not overwrite:
            raise ConfigError(f"output {output} already holds prepared data; pass --overwrite to replace it")
        _clear_output(output)
        return False
    previous = workdir.read_run()
    if previous is not None:
        if previous["fingerprint"] == run["fingerprint"] and not overwrite:
            return True
        if not overwrite:
            raise ConfigError(
                f"{output} holds an unfinished run of other inputs or settings (started {previous.get('created')}); "
                "run that command again to continue it, or pass --overwrite to start over"
            )
        _clear_output(output)
        return False
    if exists(join(output, DOCUMENTS_DIR)) or exists(join(output, REJECTED_DIR)):
        if not overwrite:
            raise ConfigError(f"{output} holds shards without a manifest; pass --overwrite to replace them")
        _clear_output(output)
    return False


def choose_exchange(name: str, runner: str, budget_bytes: int, workers: int) -> Any:
    if name == "auto":
        name = "files" if runner == LOCAL_RUNNER else "shuffle"
    return FileExchange(budget_bytes, workers) if name == "files" else ShuffleExchange()


def parse_bytes(text: str) -> int:
    """'512M', '2G', '1.5GB', '1000000' -> bytes."""
    value = text.strip().upper().removesuffix("B")
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}.get(value[-1:], 1)
    try:
        number = float(value[:-1] if scale > 1 else value)
    except ValueError:
        raise ConfigError(f"--memory-budget {text!r}: expected a size such as 512M or 4G") from None
    if number <= 0:
        raise ConfigError("--memory-budget must be positive")
    return int(number * scale)


# ---------------------------------------------------------------- the command


def run_prepare(args: argparse.Namespace) -> int:
    if args.recipe == "list":
        print("\n".join(recipe_names()))
        return 0
    config = load_prepare_config(
        args.config, list(args.set or []), prepare_flag_values(args), args.stages, recipe=args.recipe
    )
    if args.print_config:
        sys.stdout.write(dump_config(config))
        return 0
    if not args.inputs or not args.output:
        raise ConfigError("prepare needs INPUTS and --output (or --print-config)")
    options, runner = pipeline_options(args)
    budget = parse_bytes(args.memory_budget)
    exchange = choose_exchange(args.exchange, args.runner, budget, args.workers)
    output = args.output.rstrip("/")
    plan = plan_phases(config.stages)
    # bad stage options or model files fail here, before any file is touched; the job reuses these runners
    runners = [PhaseRunner(phase, RunContext(output, config, args.keep_rejected)) for phase in plan]
    if _is_dry_run(options):
        run_pipeline(lambda p: build_prepare(p, output, config, args.keep_rejected, exchange, runners), options, runner)
        project = options.view_as(GoogleCloudOptions).project
        print(f"dry run: job graph built and validated for {args.runner} (project {project}); nothing was run")
        return 0
    specs = [parse_input(spec) for spec in args.inputs]
    listed = check_inputs(specs, config.reader.format)
    check_writable(output)
    if not config.stages and not args.quiet:
        print("note: no stages configured: documents are read and written unchanged", file=sys.stderr)
    tasks = plan_tasks(specs, config.reader, listed)
    run = {
        "fingerprint": fingerprint(
            {
                "tasks": tasks,
                "config": config.to_dict(),
                "keep_rejected": args.keep_rejected,
                "schema": SCHEMA_VERSION,
                "tool": tool_version(),
            }
        ),
        "created": utc_timestamp(),
        "inputs": list(args.inputs),
        "tasks": len(tasks),
    }
    lock = RunLock(output)
    lock.acquire()
    try:
        if lock.took_over and not args.quiet:
            print(f"taking over the lock of a run that is gone: {lock.took_over}", file=sys.stderr)
        resumed = open_output(output, run, args.overwrite)
        workdir = WorkDir(output)
        if resumed:
            print(
                f"resuming the unfinished run in {output} ({resume_point(workdir, plan, len(tasks))})", file=sys.stderr
            )
        else:
            workdir.start(run, tasks)
        fault_injection.reset()
        show = not args.quiet and sys.stderr.isatty() and args.runner == LOCAL_RUNNER
        with Progress(workdir, [phase.step for phase in plan], len(tasks), show):
            run_pipeline(
                lambda p: build_prepare(p, output, config, args.keep_rejected, exchange, runners),
                options,
                runner,
                on_start=lambda result: follow_dataflow(result, options, args.quiet),
            )
        manifest = build_manifest(
            list(args.inputs), output, config, args.keep_rejected, args.runner, exchange.name, resumed
        )
        write_manifest(output, manifest)
        workdir.remove()
    finally:
        lock.release()
    if not args.quiet:
        print_summary(output, manifest)
    if args.print_summary_json:
        print(json.dumps(summary_record(manifest)))
    return 0 if manifest["counts"]["balanced"] else 1


def resume_point(workdir: WorkDir, plan: list[Any], tasks: int) -> str:
    """Where an unfinished run stands: the last phase any file reached, and how many files finished it."""
    for phase in reversed(plan):
        done = sum(1 for _ in workdir.markers(phase.step))
        if done:
            return f"phase {phase.index + 1} of {len(plan)}: {done} of {tasks} files done"
    return f"no file finished phase 1 of {len(plan)} yet"


def _is_dry_run(options: PipelineOptions) -> bool:
    return bool(options.get_all_options().get("dry_run"))


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


def summary_record(manifest: dict[str, Any]) -> dict[str, Any]:
    """One line for scripts and benchmarks: counts, kept text bytes, shuffle volume and peak memory."""
    peak_kb = max(
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    counts = manifest["counts"]
    return {
        "read": counts["read"],
        "kept": counts["kept"],
        "dropped": counts["dropped_total"],
        "kept_text_bytes": manifest[DOCUMENTS_DIR]["text_bytes"],
        "input_text_bytes": manifest["shuffle"]["input_text_bytes"],
        "shuffle_bytes": {name: s["bytes"] for name, s in manifest["shuffle"]["stages"].items()},
        "peak_rss_mb": peak_kb / 1024,
    }
