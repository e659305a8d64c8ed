"""Near-duplicate removal on the webmix bench corpus: `llamaprep prepare --stages minhash_dedup` vs datatrove's
MinHash pipeline, same input, same shingles (word 5-grams with the same word definition), permutations and
bands.

    python benchmarks/dedup.py --limit-shards 2

Each side runs in its own subprocess (datatrove from a separate virtual environment, `--datatrove-python`,
so it cannot disturb ours; install it with `python3 -m venv /work/venv-datatrove &&
/work/venv-datatrove/bin/pip install datatrove regex tokenizers orjson 'xxhash<4'`: datatrove 0.10 passes
str to xxhash, which xxhash 4 rejects), reading the same shards and writing, for every
document, its predicted cluster and whether it was removed. This parent process then scores both against
the ground truth (`webmix-truth.jsonl.gz`):

* removal precision: a removed document is correct when its cluster's survivor derives from the same
  original (same truth `cluster`); per similarity band, by the word-5-gram Jaccard of the removed document
  to its survivor (the truth file's definition);
* recall: a near_dup (exact_dup) is found when it lands in the same predicted cluster as its original;
  per band of its truth `jaccard5`;
* throughput: documents per CPU-second of the side's process tree (docs/s per core), wall time, peak RSS.

Both sides use one process (the in-process Beam runner; datatrove's local executor with one task). One seed
decides little in the 0.7-0.9 bands (see `report_seeds`): compare the sides over several, `--seeds 1,2,3,4,5`.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import re
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from measure import measure  # noqa: E402  benchmarks/measure.py (the script's folder)

BANDS = [(0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.0), (1.0, 1.01)]
DEFAULT_DATATROVE_PYTHON = "/work/venv-datatrove/bin/python"


# ---------------------------------------------------------------- the two sides (run in subprocesses)


def _iter_jsonl(paths: list[str]):
    for path in paths:
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                yield json.loads(line)


def run_ours(shards: list[str], out: str, params: dict) -> None:
    """`llamaprep prepare --stages minhash_dedup` on the shards (the whole command, in this process), then
    every document's cluster and whether it was removed, from the kept and rejected shards."""
    from filters.prepared import iter_texts, shard_paths
    from pipelines.cli import main

    prepared = tempfile.mkdtemp(prefix="llamaprep-")
    options = {
        "ngram": params["ngram"],
        "num_perm": params["bands"] * params["rows"],
        "seed": params["seed"],
        "bands": params["bands"],
        "rows": params["rows"],
        "threshold": params["threshold"],
        "max_rounds": params["max_rounds"],
    }
    settings = [item for k, v in options.items() for item in ("--set", f"minhash_dedup.{k}={v}")]
    code = main(
        ["prepare", *shards, "--output", prepared, "--stages", "minhash_dedup", "--keep-rejected", "--quiet", *settings]
    )
    if code != 0:
        raise SystemExit(f"prepare failed with exit code {code}")
    with open(out, "w") as target:
        for kind, removed in (("documents", 0), ("rejected", 1)):
            for batch in iter_texts(shard_paths(prepared, kind), columns=["id", "dup_cluster"]):
                for doc_id, cluster in zip(
                    batch.column("id").to_pylist(), batch.column("dup_cluster").to_pylist(), strict=True
                ):
                    target.write(json.dumps({"id": doc_id, "cluster": cluster, "removed": removed}) + "\n")


def run_datatrove(shards: list[str], out: str, params: dict) -> None:
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup.minhash import (
        MinhashConfig,
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.readers import JsonlReader
    from datatrove.pipeline.writers import JsonlWriter
    from datatrove.utils.word_tokenizers import WordTokenizer

    from filters.words import WORD_RE

    class SameWords(WordTokenizer):
        """llamaprep's word definition, so both sides shingle the same words."""

        def word_tokenize(self, text: str) -> list[str]:
            return WORD_RE.findall(text.lower())

        def sent_tokenize(self, text: str) -> list[str]:
            return [text]

        def span_tokenize(self, text: str) -> list[tuple[int, int]]:
            return [(0, len(text))]

    work = tempfile.mkdtemp(prefix="datatrove-")
    data = os.path.join(work, "data")
    os.makedirs(data)
    for shard in shards:
        os.symlink(shard, os.path.join(data, os.path.basename(shard)))
    config = MinhashConfig(
        n_grams=params["ngram"], num_buckets=params["bands"], hashes_per_bucket=params["rows"], seed=params["seed"]
    )

    def reader():
        return JsonlReader(data, glob_pattern="*.jsonl.gz", doc_progress=False)

    def row(removed: int):
        def adapter(self, doc) -> dict:
            cluster = doc.metadata.get("minhash_cluster_id", -1)
            return {"id": doc.id, "cluster": f"dt-{cluster}" if cluster != -1 else doc.id, "removed": removed}

        return adapter

    def run(steps, tasks: int = 1):
        LocalPipelineExecutor(
            pipeline=steps, tasks=tasks, workers=1, logging_dir=os.path.join(work, "logs"), skip_completed=False
        ).run()

    run([reader(), MinhashDedupSignature(os.path.join(work, "sigs"), config=config, language=SameWords())])
    # one task per band (datatrove's requirement), run one after the other by the single worker
    run(
        [MinhashDedupBuckets(os.path.join(work, "sigs"), os.path.join(work, "buckets"), config=config)],
        config.num_buckets,
    )
    run(
        [
            MinhashDedupCluster(
                os.path.join(work, "buckets"), os.path.join(work, "remove"), config=config, save_cluster_id=True
            )
        ]
    )
    run(
        [
            reader(),
            MinhashDedupFilter(
                os.path.join(work, "remove"),
                load_cluster_ids=True,
                exclusion_writer=JsonlWriter(
                    os.path.join(work, "out"), "removed.jsonl", adapter=row(1), compression=None
                ),
            ),
            JsonlWriter(os.path.join(work, "out"), "kept.jsonl", adapter=row(0), compression=None),
        ]
    )
    with open(out, "w") as target:
        for name in ("kept.jsonl", "removed.jsonl"):
            with open(os.path.join(work, "out", name)) as f:
                target.write(f.read())


# ---------------------------------------------------------------- measurement and scoring (parent)


def run_side(command: list[str]) -> dict:
    """Run a side (`measure.measure`: CPU seconds of the process tree, wall seconds, peak RSS)."""
    usage = measure(command)
    if usage.pop("returncode") != 0:
        raise SystemExit(f"{command[0]} side failed")
    return usage


CJK = "\u3005-\u3007\u3040-\u30ff\u31f0-\u31ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
MARKS = (
    "\u0300-\u036f\u0483-\u0489\u0591-\u05c7\u0610-\u061a\u064b-\u065f\u0670\u06d6-\u06ed"
    "\u0900-\u0dff\u0e00-\u0eff\u0f00-\u0fff\u1000-\u109f\u1780-\u17ff\u200c\u200d"
)
TRUTH_TOKEN_RE = re.compile(f"[{CJK}]|(?:[^\\W{CJK}]|[{MARKS}])+")


def jaccard5(a: str, b: str) -> float:
    """The bench README's Jaccard definition (word 5-gram sets), so bands mean the same as in the truth."""

    def shingles(text: str) -> set:
        t = TRUTH_TOKEN_RE.findall(text.lower())
        return set(zip(t, t[1:], t[2:], t[3:], t[4:], strict=False)) if len(t) >= 5 else ({tuple(t)} if t else set())

    x, y = shingles(a), shingles(b)
    return len(x & y) / len(x | y) if (x or y) else 1.0


def band_of(value: float) -> str | None:
    for low, high in BANDS:
        if low <= value < high:
            return f"{low:.1f}-{min(high, 1.0):.1f}" if high <= 1.0 else "1.0 (exact)"
    return None


def score(predictions: str, truth: dict, texts: dict) -> dict:
    """Precision (by band of J to the survivor), recall (by band of the truth J) and F1."""
    cluster, removed = {}, set()
    with open(predictions) as f:
        for line in f:
            row = json.loads(line)
            cluster[row["id"]] = row["cluster"]
            if row["removed"]:
                removed.add(row["id"])
    missing = set(truth) - set(cluster)
    if missing:
        raise SystemExit(f"{len(missing)} documents missing from {predictions}")
    survivor = {}
    for doc_id, label in cluster.items():
        if doc_id not in removed:
            survivor[label] = doc_id
    precision = defaultdict(lambda: [0, 0])  # band -> [correct, removed]
    for doc_id in removed:
        keeper = survivor[cluster[doc_id]]
        correct = truth[doc_id]["cluster"] == truth[keeper]["cluster"]
        band = band_of(jaccard5(texts[doc_id], texts[keeper])) or "<0.5"
        for key in (band, "all"):
            precision[key][0] += correct
            precision[key][1] += 1
    recall = defaultdict(lambda: [0, 0])  # band -> [found, total]
    for doc_id, row in truth.items():
        if row["kind"] not in ("near_dup", "exact_dup") or row["cluster"] not in truth:
            continue
        band = band_of(row["jaccard5"])
        found = cluster[doc_id] == cluster[row["cluster"]]
        for key in (band, "all"):
            recall[key][0] += found
            recall[key][1] += 1
    return {"precision": dict(precision), "recall": dict(recall), "removed": len(removed)}


def f1(p: float, r: float) -> float:
    return 2 * p * r / (p + r) if p + r else 0.0


def report(results: dict, docs: int) -> None:
    names = list(results)
    print(f"\n{'band':<12}" + "".join(f"{n + ' P':>14}{n + ' R':>14}{n + ' F1':>14}" for n in names))
    for band in [band_of(low) for low, _ in BANDS] + ["<0.5", "all"]:
        cells = ""
        for name in names:
            p_cor, p_tot = results[name]["precision"].get(band, [0, 0])
            r_cor, r_tot = results[name]["recall"].get(band, [0, 0])
            p = p_cor / p_tot if p_tot else float("nan")
            r = r_cor / r_tot if r_tot else float("nan")
            cells += f"{p:>14.3f}{r:>14.3f}{f1(p, r) if p_tot and r_tot else float('nan'):>14.3f}"
        print(f"{band:<12}" + cells)
    print()
    for name in names:
        m = results[name]
        print(
            f"{name:>10}: removed {m['removed']}, {docs / m['cpu_s']:.0f} docs/s per core "
            f"({m['cpu_s']:.1f} CPU s, {m['wall_s']:.1f} s wall), peak RSS {m['peak_rss_mb']:.0f} MB"
        )
    if "llamaprep" in results and "datatrove" in results:
        ratio, f1s = comparison(results, docs)
        print(f"throughput ratio llamaprep/datatrove: {ratio:.2f}x per core; F1 {f1s[0]:.3f} vs {f1s[1]:.3f}")


def _mean_sd(values: list[float]) -> str:
    mean = sum(values) / len(values)
    sd = (sum((v - mean) ** 2 for v in values) / max(1, len(values) - 1)) ** 0.5
    return f"{mean:.3f}±{sd:.3f}"


def report_seeds(per_seed: dict[str, list[dict]]) -> None:
    """Recall per band and F1 as mean ± sd over the seeds. One seed decides little in the 0.7-0.9 bands:
    a pair's LSH collision is a coin flip with p = 1-(1-J^r)^b (~0.2 at J=0.75 for 9x13), and one natural
    cluster (190 rust-doc template pages of one original) holds 22% of the 0.7-0.8 pairs of shards 0-3 and
    flips all together, so band recall moves by +-0.05-0.07 from seed to seed."""
    bands = [band_of(low) for low, _ in BANDS] + ["all"]
    print(f"\nover {len(next(iter(per_seed.values())))} seeds, recall mean±sd per band")
    print(f"{'band':<12}" + "".join(f"{name:>16}" for name in per_seed))
    for band in bands:
        cells = ""
        for results in per_seed.values():
            values = [r["recall"][band][0] / r["recall"][band][1] for r in results if r["recall"].get(band)]
            cells += f"{_mean_sd(values) if values else 'nan':>16}"
        print(f"{band:<12}" + cells)
    print(f"{'F1':<12}" + "".join(f"{_mean_sd([overall_f1(r) for r in rs]):>16}" for rs in per_seed.values()))


def overall_f1(result: dict) -> float:
    p_cor, p_tot = result["precision"]["all"]
    r_cor, r_tot = result["recall"]["all"]
    return f1(p_cor / p_tot, r_cor / r_tot)


def comparison(results: dict, docs: int) -> tuple[float, tuple[float, float]]:
    """(llamaprep/datatrove docs-per-CPU-second ratio, (llamaprep F1, datatrove F1))."""
    ours, theirs = results["llamaprep"], results["datatrove"]
    return theirs["cpu_s"] / ours["cpu_s"], (overall_f1(ours), overall_f1(theirs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bench", default=str(ROOT.parent / "shared/bench"), help="the webmix bench folder")
    parser.add_argument("--limit-shards", type=int, default=13, help="use the first N of the 13 shards")
    parser.add_argument("--ngram", type=int, default=5)
    parser.add_argument("--bands", type=int, default=9, help="default 9x13: datasketch's optimum for J=0.8, 128 perms")
    parser.add_argument("--rows", type=int, default=13)
    parser.add_argument(
        "--threshold", type=float, default=0.8, help="llamaprep's verify threshold (unused unless verify)"
    )
    parser.add_argument("--seeds", default="1", help="comma-separated permutation seeds; one run per seed")
    parser.add_argument("--max-rounds", type=int, default=20, help="llamaprep connected-components rounds")
    parser.add_argument("--datatrove-python", default=DEFAULT_DATATROVE_PYTHON, help="python of datatrove's venv")
    parser.add_argument("--skip-datatrove", action="store_true")
    parser.add_argument("--side", choices=["llamaprep", "datatrove"], help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    parser.add_argument("--shards", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    params = {k: getattr(args, k) for k in ("ngram", "bands", "rows", "threshold", "max_rounds")}
    params["seed"] = int(args.seeds.split(",")[0])
    if args.side:
        (run_ours if args.side == "llamaprep" else run_datatrove)(args.shards, args.out, params)
        return

    shards = sorted(str(p) for p in Path(args.bench, "webmix").glob("webmix-*.jsonl.gz"))[: args.limit_shards]
    sides = {"llamaprep": sys.executable}
    if not args.skip_datatrove:
        sides["datatrove"] = args.datatrove_python
    seeds = [int(seed) for seed in args.seeds.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        # Every side runs before this process loads the corpus for scoring: a child forked from a large parent
        # inherits the parent's resident size in its peak RSS on Linux, which would hide the side's own peak.
        usages: dict[tuple[int, str], dict] = {}
        for seed in seeds:
            params["seed"] = seed
            for name, python in sides.items():
                out = os.path.join(tmp, f"{name}-{seed}.jsonl")
                command = [python, str(Path(__file__).resolve()), "--side", name, "--out", out, "--shards", *shards]
                command += [f"--{k.replace('_', '-')}={v}" for k, v in params.items() if k != "seed"]
                command += [f"--seeds={seed}"]
                usages[(seed, name)] = run_side(command)
        texts = {row["id"]: row["text"] for row in _iter_jsonl(shards)}
        with gzip.open(Path(args.bench, "webmix-truth.jsonl.gz"), "rt") as f:
            truth = {row["id"]: row for row in map(json.loads, f) if row["id"] in texts}
        print(f"{len(texts)} documents from {len(shards)} shards, {sum(map(len, texts.values())) / 1e6:.1f} M chars")
        summary = []
        per_seed: dict[str, list[dict]] = defaultdict(list)
        for seed in seeds:
            print(f"\n== seed {seed}: {dict(params, seed=seed)}")
            results = {
                name: {**score(os.path.join(tmp, f"{name}-{seed}.jsonl"), truth, texts), **usages[(seed, name)]}
                for name in sides
            }
            report(results, len(texts))
            for name, result in results.items():
                per_seed[name].append(result)
            if len(results) == 2:
                summary.append(comparison(results, len(texts)))
    if len(summary) > 1:
        ratios = [ratio for ratio, _ in summary]
        ours, theirs = ([f1s[i] for _, f1s in summary] for i in (0, 1))
        print(
            f"\nmean over {len(summary)} seeds: F1 llamaprep {sum(ours) / len(ours):.3f}, datatrove "
            f"{sum(theirs) / len(theirs):.3f}; throughput ratio {sum(ratios) / len(ratios):.2f}x per core"
        )
    if len(args.seeds.split(",")) > 1:
        report_seeds(per_seed)


if __name__ == "__main__":
    main()
