"""Choosing and running a Beam runner, with the options every Beam sub-command shares.

The local default is the in-process FnApiRunner named explicitly: plain DirectRunner first tries to
download the Prism binary, which fails offline. `--workers N` switches it to multi_processing with N
worker processes; `multi_threading` is refused because it lost records in tests on apache-beam 2.77.
Any other `--runner` (DataflowRunner, PortableRunner, FlinkRunner, SparkRunner) is handed to Beam with the
remaining standard Beam flags, which are checked here so a typo fails before a job is submitted.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

import apache_beam as beam
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, SetupOptions, StandardOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from filters.options import ConfigError
from pipelines.commands import LOCAL_RUNNER

METRICS_NAMESPACE = "llamaprep"


def _known_beam_flags() -> set[str]:
    return set(PipelineOptions([]).get_all_options(drop_default=False).keys())


def check_beam_args(beam_args: Sequence[str]) -> None:
    """Reject flags no Beam options class knows (Beam itself only logs and drops them)."""
    known = _known_beam_flags()
    previous_takes_value = False
    for arg in beam_args:
        if not arg.startswith("--"):
            if not previous_takes_value:
                raise ConfigError(f"unexpected argument {arg!r}")
            previous_takes_value = False
            continue
        name, has_value, value = arg[2:].partition("=")
        name = name.replace("-", "_")
        if name not in known:
            raise ConfigError(f"unknown option --{name}")
        if name == "direct_running_mode" and value == "multi_threading":
            raise ConfigError("--direct_running_mode=multi_threading is not supported: it loses records")
        previous_takes_value = not has_value


def pipeline_options(args: argparse.Namespace) -> tuple[PipelineOptions, beam.runners.PipelineRunner | str]:
    """PipelineOptions and the runner for parsed CLI args (their `runner`, `workers`, `extra_args`)."""
    beam_args = list(getattr(args, "extra_args", []))
    check_beam_args(beam_args)
    if args.workers < 1:
        raise ConfigError("--workers must be at least 1")
    options = PipelineOptions(beam_args)
    options.view_as(SetupOptions).save_main_session = False
    if args.runner == LOCAL_RUNNER:
        if args.workers > 1:
            direct = options.view_as(DirectOptions)
            direct.direct_running_mode = "multi_processing"
            direct.direct_num_workers = args.workers
        return options, FnApiRunner()
    if args.workers != 1:
        raise ConfigError("--workers applies to the local runner; size other runners with their own flags")
    options.view_as(StandardOptions).runner = args.runner
    return options, args.runner


def run_pipeline(
    build: Callable[[beam.Pipeline], None],
    options: PipelineOptions,
    runner: beam.runners.PipelineRunner | str,
    on_start: Callable[[beam.runners.runner.PipelineResult], None] | None = None,
) -> beam.runners.runner.PipelineResult:
    """Build and run a pipeline, returning its result (metrics live there, so no `with` block).
    `on_start` sees the result of a job that runs remotely before it is waited for (e.g. to print where
    to watch it)."""
    pipeline = beam.Pipeline(runner=runner, options=options)
    build(pipeline)
    result = pipeline.run()
    if on_start is not None:
        on_start(result)
    result.wait_until_finish()
    return result


def counters(result: beam.runners.runner.PipelineResult) -> dict[str, int]:
    """Committed (attempted where a runner has no committed values) counters of our namespace."""
    out: dict[str, int] = {}
    query = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))
    for counter in query["counters"]:
        value = counter.committed if counter.committed is not None else counter.attempted
        out[counter.key.metric.name] = out.get(counter.key.metric.name, 0) + int(value or 0)
    return out
