"""Memory and CPU of `llamaprep prepare` as the input grows: peak RSS must stay flat.

Runs `prepare` with the default stages (exact, CCNet line and MinHash dedup included) on the first 1, 2,
4, 8 and 13 webmix shards (one in-process worker, each run in its own process), then on all 13 shards with a
memory budget smaller than their dedup key state (so the dedup stages work in several passes), and on all 13
without line dedup (for the shuffle volume of the other stages). Prints, per run: input text, peak RSS, CPU
seconds, documents per CPU-second, and the dedup keys exchanged between tasks as a share of the input text;
then the RSS slope in MB per 100 MB of input and the ratio of the 13-shard peak to the 2-shard one (the
baseline measured in the same run). Goals: that ratio at most 1.25, the 13-shard peak under 1 GB, keys at
most 10% of the input without line dedup and 35% with it.

    python benchmarks/memory_scaling.py [--sizes 1,2,4,8,13] [--budget 24M]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from measure import measure, prepare_command, webmix_shards  # benchmarks/measure.py (the script's folder)

WITHOUT_LINE_DEDUP = "normalize,exact_dedup,langid,gopher_repetition,gopher_quality,c4,minhash_dedup"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,2,4,8,13", help="numbers of webmix shards to prepare")
    parser.add_argument("--budget", default="24M", help="--memory-budget of the budgeted run on all shards")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            runs.append((f"{size} shards", measure(prepare_command(webmix_shards(size), f"{tmp}/o"))))
        everything = webmix_shards(max(sizes))
        budgeted = prepare_command(everything, f"{tmp}/o", "--memory-budget", args.budget)
        runs.append((f"{max(sizes)} shards, budget {args.budget}", measure(budgeted)))
        plain = prepare_command(everything, f"{tmp}/o", "--stages", WITHOUT_LINE_DEDUP)
        runs.append((f"{max(sizes)} shards, no line dedup", measure(plain)))

    header = (
        f"{'run':28} {'text MB':>8} {'docs':>8} {'peak RSS MB':>12} {'CPU s':>7} {'docs/CPU-s':>11} "
        f"{'exact keys':>11} {'line keys':>10} {'minhash keys':>13}"
    )
    print(f"prepare, default stages, one in-process worker; {Path(webmix_shards()[0]).parent}")
    print(header)
    print("-" * len(header))
    for label, run in runs:
        if run["returncode"] != 0:
            raise SystemExit(f"{label}: prepare failed with exit code {run['returncode']}")
        s = run["summary"]
        text = s["input_text_bytes"]
        shares = {k.split("_")[0]: f"{100 * v / text:.1f}%" for k, v in s["shuffle_bytes"].items()}
        print(
            f"{label:28} {text / 1e6:8.1f} {s['read']:8,} {run['peak_rss_mb']:12,.0f} {run['cpu_s']:7.1f} "
            f"{s['read'] / run['cpu_s']:11,.0f} {shares.get('exact', '-'):>11} "
            f"{shares.get('line', '-'):>10} {shares.get('minhash', '-'):>13}"
        )
    plain_runs = runs[: len(sizes)]
    text_mb = np.array([r["summary"]["input_text_bytes"] / 1e6 for _, r in plain_runs])
    rss = np.array([r["peak_rss_mb"] for _, r in plain_runs])
    slope = np.polyfit(text_mb, rss, 1)[0] * 100 if len(plain_runs) > 1 else float("nan")
    by_size = dict(zip(sizes, rss, strict=True))
    print(f"\nRSS slope: {slope:.1f} MB per 100 MB of input text")
    if 2 in by_size:
        print(
            f"peak RSS {max(sizes)} shards / 2 shards (the baseline): {by_size[max(sizes)] / by_size[2]:.2f}x "
            f"(goal <= 1.25x); {max(sizes)}-shard peak {by_size[max(sizes)]:.0f} MB (goal < 1024 MB)"
        )
    full = runs[len(sizes) - 1][1]["summary"]
    keys = sum(full["shuffle_bytes"].values())
    print(f"dedup key state of {max(sizes)} shards: {keys / 1e6:.1f} MB; the budgeted run had {args.budget}")
    with_line = keys / full["input_text_bytes"]
    no_line = runs[-1][1]["summary"]
    without = sum(no_line["shuffle_bytes"].values()) / no_line["input_text_bytes"]
    print(
        f"keys exchanged: {100 * with_line:.1f}% of input text with line dedup (goal <= 35%), "
        f"{100 * without:.1f}% without (goal <= 10%)"
    )


if __name__ == "__main__":
    main()
