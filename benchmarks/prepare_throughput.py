"""Throughput of `llamaprep prepare` on the webmix benchmark corpus (../shared/bench), against a plain loop
and across worker counts.

Runs, each in its own process (tree) so CPU and peak RSS are measured per run:
  * baseline: the same readers and per-document stages in one plain Python loop (read -> run_stages ->
    count), no Beam, no files written;
  * `llamaprep prepare --workers N` for each N of --workers (1 = the in-process runner).
Prints documents per wall second and per CPU-second, MB/s of input text, peak RSS; each run's per-core
rate against the baseline (the overhead of the pipeline: goal >= 0.9x) and its wall-clock speed-up over
one worker (goal >= 1.6x with 2 workers on 2 cores).

    python benchmarks/prepare_throughput.py --shards 4 --workers 1,2
    python benchmarks/prepare_throughput.py --shards 4 --workers 1,2 --stages default --no-baseline
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile

from measure import REPO, measure, prepare_command, webmix_shards  # benchmarks/measure.py

PER_DOCUMENT_STAGES = "normalize,langid,gopher_repetition,gopher_quality,c4"


def baseline(inputs: list[str], stages: str) -> dict:
    """Engine-free reference: the same readers and stages, one process, no Beam."""
    sys.path.insert(0, str(REPO))
    from filters.base import run_stages
    from pipelines.config import load_prepare_config
    from pipelines.readers import iter_documents_from
    from pipelines.stages import build_stages

    config = load_prepare_config(None, [f"stages={stages}"])
    built = build_stages(config.stages, config.stage_options)
    for stage in built:
        stage.setup()
    read = kept = 0
    batch = []
    for doc in iter_documents_from(inputs):
        read += 1
        batch.append(doc)
        if len(batch) == 256:
            kept += len(run_stages(built, batch)[0])
            batch = []
    kept += len(run_stages(built, batch)[0])
    return {"read": read, "kept": kept, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shards", type=int, default=4, help="how many webmix shards to read (13 in all)")
    parser.add_argument("--stages", default=PER_DOCUMENT_STAGES, help="stage list, or 'default'")
    parser.add_argument("--workers", default="1,2", help="worker counts to run, e.g. 1,2 or 1,4,8,16")
    parser.add_argument("--no-baseline", action="store_true", help="skip the plain loop (dedup stages have none)")
    parser.add_argument("--_baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("inputs", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._baseline:
        print(json.dumps(baseline(args.inputs, args.stages)))
        return
    inputs = webmix_shards(args.shards)
    stage_args = [] if args.stages == "default" else ["--stages", args.stages]
    runs = []
    if not args.no_baseline:
        command = [sys.executable, __file__, "--_baseline", "--stages", args.stages, *inputs]
        runs.append(("baseline (plain Python loop, no Beam)", 1, measure(command)))
    with tempfile.TemporaryDirectory() as tmp:
        for workers in [int(w) for w in args.workers.split(",")]:
            command = prepare_command(inputs, f"{tmp}/w{workers}", *stage_args, "--workers", str(workers))
            runs.append((f"prepare --workers {workers}", workers, measure(command)))
    text = runs[-1][2]["summary"]["input_text_bytes"]
    print(
        f"prepare on {len(inputs)} webmix shard(s), {text / 1e6:,.1f} MB of text, {os.cpu_count()} cores; "
        f"stages {args.stages}"
    )
    header = (
        f"{'run':38} {'wall s':>7} {'CPU s':>7} {'docs/s':>8} {'docs/s/core':>12} {'docs/CPU-s':>11} "
        f"{'MB/s':>6} {'peak RSS MB':>12} {'per core vs baseline':>21} {'speed-up vs 1 worker':>21}"
    )
    print(header)
    print("-" * len(header))
    base = runs[0][2] if not args.no_baseline else None
    one = next(r for label, w, r in runs if w == 1 and label.startswith("prepare"))
    for label, cores, run in runs:
        if run["returncode"] != 0:
            raise SystemExit(f"{label} failed")
        read = run["summary"]["read"]
        rate = read / run["wall_s"]
        versus = f"{rate / cores / (base['summary']['read'] / base['wall_s']):.2f}x" if base else "-"
        speedup = f"{rate / (one['summary']['read'] / one['wall_s']):.2f}x" if label.startswith("prepare") else "-"
        print(
            f"{label:38} {run['wall_s']:7.1f} {run['cpu_s']:7.1f} {rate:8,.0f} {rate / cores:12,.0f} "
            f"{read / run['cpu_s']:11,.0f} {text / 1e6 / run['wall_s']:6.2f} {run['peak_rss_mb']:12,.0f} "
            f"{versus:>21} {speedup:>21}"
        )
        if base and run["summary"]["kept"] != base["summary"]["kept"]:
            print(f"  WARNING: kept {run['summary']['kept']} documents, the baseline kept {base['summary']['kept']}")
    print("docs/s/core = documents / wall seconds / workers; peak RSS is the largest process of the run's tree.")


if __name__ == "__main__":
    main()
