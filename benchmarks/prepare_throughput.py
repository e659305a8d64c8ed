"""Throughput of `llamaprep prepare` on the webmix benchmark corpus (../shared/bench).

Runs, each in its own process so peak RSS is measured per run:
  * baseline: the same stages engine-free in one plain Python loop (read -> run_stages -> count), no Beam;
  * beam-1: `llamaprep prepare` on the in-process runner;
  * beam-N: `llamaprep prepare --workers N` (multi_processing).
Prints docs/s, MB/s (input text), both per core used, peak RSS, and each run's ratio to the baseline.

    python benchmarks/prepare_throughput.py --shards 2 [--stages normalize,c4,gopher_repetition,gopher_quality]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DEFAULT_CORPUS = REPO.parent / "shared" / "bench" / "webmix"


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
    read = kept = text_bytes = 0
    batch = []
    for doc in iter_documents_from(inputs):
        read += 1
        text_bytes += len(doc.text.encode("utf-8"))
        batch.append(doc)
        if len(batch) == 256:
            kept += len(run_stages(built, batch)[0])
            batch = []
    kept += len(run_stages(built, batch)[0])
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"read": read, "kept": kept, "text_bytes": text_bytes, "peak_rss_mb": peak_kb / 1024}


def run(label: str, command: list[str], cores: int) -> dict:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"{label} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(label=label, seconds=seconds, cores=cores, cpu_seconds=cpu)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", default=str(DEFAULT_CORPUS))
    parser.add_argument("--shards", type=int, default=2, help="how many webmix shards to read (13 in all)")
    parser.add_argument("--stages", default="normalize,langid,gopher_repetition,gopher_quality,c4")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--_baseline", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("inputs", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._baseline:
        print(json.dumps(baseline(args.inputs, args.stages)))
        return
    inputs = sorted(str(p) for p in Path(args.corpus).glob("*.jsonl.gz"))[: args.shards]
    if not inputs:
        raise SystemExit(f"no *.jsonl.gz under {args.corpus}")
    python = sys.executable
    results = [
        run(
            "baseline (plain Python loop, no Beam)",
            [python, __file__, "--_baseline", "--stages", args.stages, *inputs],
            1,
        )
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for workers in sorted({1, args.workers}):
            out = os.path.join(tmp, f"w{workers}")
            command = [python, "-m", "pipelines.cli", "prepare", *inputs, "--output", out, "--stages", args.stages]
            if workers > 1:
                command += ["--workers", str(workers)]
            command += ["--print-summary-json"]
            results.append(run(f"beam in-process, {workers} worker(s)", command, workers))
    base = results[0]
    print(
        f"prepare throughput on {len(inputs)} webmix shard(s), {base['read']:,} documents, "
        f"{base['text_bytes'] / 1e6:,.1f} MB of text; machine has {os.cpu_count()} cores; stages {args.stages}"
    )
    header = (
        f"{'run':42} {'wall s':>7} {'CPU s':>7} {'docs/s/core':>12} {'MB/s/core':>10} {'docs/CPU-s':>11} "
        f"{'peak RSS MB':>12} {'vs baseline':>12}"
    )
    print(header)
    print("-" * len(header))
    base_rate = base["read"] / base["seconds"]
    for r in results:
        rate = r["read"] / r["seconds"] / r["cores"]
        mbps = base["text_bytes"] / 1e6 / r["seconds"] / r["cores"]  # same input text in every run
        per_cpu = r["read"] / r["cpu_seconds"]
        print(
            f"{r['label']:42} {r['seconds']:7.1f} {r['cpu_seconds']:7.1f} {rate:12,.0f} {mbps:10.2f} {per_cpu:11,.0f} "
            f"{r['peak_rss_mb']:12,.0f} {rate / base_rate:11.2f}x"
        )
        if r["kept"] != base["kept"]:
            print(f"  WARNING: kept {r['kept']} documents, baseline kept {base['kept']}")
    print("docs/s/core = documents / wall seconds / cores used; 'vs baseline' compares that figure.")


if __name__ == "__main__":
    main()
