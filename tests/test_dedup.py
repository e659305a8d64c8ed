"""Exact, CCNet line and MinHash near-duplicate dedup on real documents: the engine-free decisions over key
tables, and the same stages inside `prepare` (several input files, both exchanges, small memory budgets,
two workers), where documents stay in their files and only keys move."""

from __future__ import annotations

import gzip
import itertools
import json
import random
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from filters.ccnet_normalize import normalize_line_for_dedup
from filters.document import Document
from filters.exact_dedup import ExactKeys, exact_decisions
from filters.key_tables import TASK, make_ref, ref_row, ref_task
from filters.line_dedup import LineKeys, line_removals, remove_lines
from filters.near_duplicates import NearDuplicateKeys, band_edges, component_labels, jaccard_estimates
from filters.prepared import read_manifest, read_table, shard_paths
from filters.survivors import choose_survivors
from pipelines.dedup import MinHashDedupConfig

ROOT = Path(__file__).resolve().parents[1]
CC_SAMPLE = ROOT / "data/samples/web/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz"
PARAGRAPHS = ROOT / "tests/data/dedup/provided_documents_000.json.gz"
README_VERSIONS = ROOT / "tests/data/dedup/readme_versions_subset.jsonl.gz"


def load(path: Path, id_field: str = "id") -> list[Document]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [Document(id=str(row[id_field]), text=row["text"], source=str(row.get("source"))) for row in rows]


def readme_docs() -> list[Document]:
    with gzip.open(README_VERSIONS, "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    return [Document(id=f"{row['repo']}@{row['commit'][:12]}", text=row["text"], source=row["cluster"]) for row in rows]


def key_table(parts: list[list[Document]], builder_factory) -> pa.Table:
    """The key rows of documents split into tasks, as an exchange hands them to a decision."""
    tables = []
    for task, docs in enumerate(parts):
        builder = builder_factory()
        for row, doc in enumerate(docs):
            builder.add(doc, row)
        table = builder.keys.take()
        tables.append(table.append_column(TASK, pa.array(np.full(table.num_rows, task, dtype=np.uint32))))
    return pa.concat_tables(tables)


def split(docs: list[Document], parts: int) -> list[list[Document]]:
    size = -(-len(docs) // parts)
    return [docs[i : i + size] for i in range(0, len(docs), size)]


def doc_of(parts: list[list[Document]], ref: int) -> Document:
    return parts[int(ref_task(np.uint64(ref)))][int(ref_row(np.uint64(ref)))]


# ---------------------------------------------------------------- engine-free decisions


def test_exact_decisions_keep_the_smallest_id_of_each_identical_text_of_common_crawl():
    docs = load(CC_SAMPLE)
    parts = split(docs, 3)
    decisions = exact_decisions(key_table(parts, lambda: ExactKeys("none", "smallest_id"))).to_pylist()

    groups = defaultdict(list)
    for doc in docs:
        groups[doc.text].append(doc.id)
    duplicated = {text: ids for text, ids in groups.items() if len(ids) > 1}
    assert len(decisions) == sum(len(ids) for ids in duplicated.values())
    dropped = [d for d in decisions if not d["keep"]]
    assert len(dropped) == len(docs) - len(groups) == 35
    for decision in decisions:
        doc = doc_of(parts, decision["route"])
        ids = groups[doc.text]
        assert decision["cluster"] == min(ids) and decision["size"] == len(ids)
        assert decision["keep"] == (doc.id == min(ids))
    assert sorted({d["size"] for d in decisions})[-2:] == [7, 27]  # 7 "Processing Feedback" pages, 27 empty


def test_exact_normalization_and_keep_rules():
    docs = [
        Document(id="b", text="Hello World\n\n2019 edition!", source="s", quality_score=0.9),
        Document(id="a", text="hello   world\n2020 Edition", source="s", quality_score=0.1),
        Document(id="c", text="Hello World 2019 edition, longer", source="s"),
    ]

    def kept(keep: str) -> dict[str, tuple[str, int]]:
        rows = exact_decisions(key_table([docs], lambda: ExactKeys("ccnet", keep))).to_pylist()
        return {doc_of([docs], r["route"]).id: (r["cluster"], r["size"], r["keep"]) for r in rows}

    assert kept("smallest_id") == {"a": ("a", 2, True), "b": ("a", 2, False)}  # "c" has no duplicate
    assert kept("highest_quality") == {"a": ("b", 2, False), "b": ("b", 2, True)}
    assert kept("longest") == {"a": ("a", 2, True), "b": ("a", 2, False)}  # equal lengths: the smallest id


def test_survivor_ties_fall_back_to_the_earliest_reference():
    refs = make_ref(np.array([2, 0, 1]), np.array([0, 5, 3]))
    decisions = choose_survivors(
        [np.zeros(3, dtype=np.uint64)], np.zeros(3), pa.array(["same", "same", "same"]), refs, np.ones(3, np.int32)
    ).to_pylist()
    assert [(r["route"], r["keep"], r["size"]) for r in decisions] == [
        (int(refs[1]), True, 3), (int(refs[2]), False, 3), (int(refs[0]), False, 3)
    ]  # fmt: skip


def ccnet_line_dedup_reference(parts: list[list[Document]]) -> dict[tuple[int, int], list[int]]:
    """Plain-Python statement of the rule: walk the tasks, documents and lines in input order and drop every
    line whose normalized form was seen before."""
    seen: set[str] = set()
    removed: dict[tuple[int, int], list[int]] = {}
    for task, docs in enumerate(parts):
        for row, doc in enumerate(docs):
            for number, line in enumerate(doc.text.split("\n")):
                key = normalize_line_for_dedup(line)
                if key and key in seen:
                    removed.setdefault((task, row), []).append(number)
                seen.add(key)
    return removed


def test_line_removals_follow_ccnet_on_repeated_paragraphs_and_web_pages():
    parts = split(load(PARAGRAPHS) + load(CC_SAMPLE)[:200], 4)
    removals = line_removals(key_table(parts, LineKeys))
    got: dict[tuple[int, int], list[int]] = defaultdict(list)
    for ref, line in zip(removals.column("route").to_numpy(), removals.column("line").to_pylist(), strict=True):
        got[(int(ref_task(ref)), int(ref_row(ref)))].append(line)
    expected = ccnet_line_dedup_reference(parts)
    assert dict(got) == expected
    assert sum(map(len, expected.values())) > 1000  # boilerplate repeats across the CC pages
    text, lines, removed_bytes = remove_lines("keep\ndrop\nkeep too\ndrop", [1, 3])
    assert (text, lines, removed_bytes) == ("keep\nkeep too", 2, 10)


def pair_scores(docs: list[Document], predicted: dict[str, str]) -> tuple[float, float]:
    """Pairwise precision and recall of a clustering against each document's true cluster (`source`)."""
    truth = {d.id: d.source for d in docs}
    predicted_pairs = true_pairs = both = 0
    for a, b in itertools.combinations(sorted(truth), 2):
        same_predicted, same_true = predicted[a] == predicted[b], truth[a] == truth[b]
        predicted_pairs += same_predicted
        true_pairs += same_true
        both += same_predicted and same_true
    return both / max(predicted_pairs, 1), both / max(true_pairs, 1)


def near_duplicate_clusters(parts: list[list[Document]], config: MinHashDedupConfig) -> dict[str, str]:
    builders = []

    def factory() -> NearDuplicateKeys:
        builders.append(NearDuplicateKeys(config.hasher(), config.keep, config.verify))
        return builders[-1]

    edges = band_edges(key_table(parts, factory), config.pairwise_bucket_size if config.verify else 0)
    if config.verify:
        empty = bytes(4 * config.num_perm)  # documents without shingles have no signature and no edge
        signatures = [
            np.frombuffer(b"".join(s or empty for s in b.nodes.take().column("signature").to_pylist()), np.uint32)
            for b in builders
        ]

        def sigs(refs: np.ndarray) -> np.ndarray:
            return np.stack([signatures[ref_task(r)].reshape(-1, config.num_perm)[ref_row(r)] for r in refs])

        similar = jaccard_estimates(sigs(edges.column("route").to_numpy()), sigs(edges.column("anchor").to_numpy()))
        edges = edges.filter(pa.array(similar >= config.threshold))
    nodes, labels = component_labels(edges)
    clusters = {doc.id: doc.id for docs in parts for doc in docs}
    clusters.update({doc_of(parts, n).id: doc_of(parts, lab).id for n, lab in zip(nodes, labels, strict=True)})
    return clusters


@pytest.mark.parametrize("verify", [False, True])
def test_minhash_finds_readme_version_clusters(verify):
    docs = readme_docs()
    config = MinHashDedupConfig(threshold=0.7, verify=verify)
    predicted = near_duplicate_clusters(split(docs, 3), config)
    precision, recall = pair_scores(docs, predicted)
    print(f"README versions, verify={verify}: pair precision {precision:.3f}, recall {recall:.3f}")
    # Versions of different READMEs share almost no 5-grams, so any cross-README merge is a bug: precision
    # must be (near) perfect. Recall is bounded by the histories themselves: a version whose Jaccard to
    # every other version is below 0.7 (a rewrite) starts a new cluster, so even a perfect threshold-0.7
    # clustering splits each README into several chains. Measured: 0.464 (0.463 with verify); all
    # singletons would give 0, and the floor 0.4 catches an LSH, banding or connected-components step that
    # loses a sizeable share of the links.
    assert precision >= 0.98
    assert recall >= 0.4


def test_band_edges_are_stars_or_all_pairs_of_small_buckets():
    keys = pa.table(
        {
            "route": pa.array([7, 7, 7, 9, 9, 3], pa.uint64()),
            "row": pa.array([4, 1, 2, 0, 1, 5], pa.uint32()),
            "task": pa.array([0, 0, 1, 0, 0, 0], pa.uint32()),
        }
    )
    ref = lambda task, row: int(make_ref(task, row))  # noqa: E731
    star = {tuple(map(int, e)) for e in zip(*band_edges(keys).columns, strict=True)}
    assert star == {(ref(0, 4), ref(0, 1)), (ref(1, 2), ref(0, 1)), (ref(0, 1), ref(0, 0))}
    pairs = {tuple(map(int, e)) for e in zip(*band_edges(keys, pairwise_size=3).columns, strict=True)}
    assert pairs == star | {(ref(1, 2), ref(0, 4))}


# ---------------------------------------------------------------- inside prepare


def write_inputs(directory: Path, parts: list[list[Document]]) -> Path:
    directory.mkdir(parents=True)
    for index, docs in enumerate(parts):
        with gzip.open(directory / f"part-{index:02d}.jsonl.gz", "wt", encoding="utf-8") as f:
            for doc in docs:
                f.write(json.dumps({"id": doc.id, "text": doc.text, "source": doc.source}) + "\n")
    return directory


def prepared(out: Path, kind: str = "documents") -> list[dict]:
    paths = shard_paths(str(out), kind)
    return pa.concat_tables(read_table(p) for p in paths).to_pylist() if paths else []


def test_prepare_applies_exact_decisions_to_the_files(tmp_path, cli):
    docs = load(CC_SAMPLE)
    inputs = write_inputs(tmp_path / "in", split(docs, 3))
    out = tmp_path / "out"
    args = ["--stages", "exact_dedup", "--set", "exact_dedup.normalization=none", "--keep-rejected"]
    assert cli("prepare", inputs, "--output", out, *args) == 0
    groups = defaultdict(list)
    for doc in docs:
        groups[doc.text].append(doc.id)
    kept = prepared(out)
    assert sorted(r["id"] for r in kept) == sorted(min(ids) for ids in groups.values())
    assert {r["id"]: r["dup_cluster_size"] for r in kept} == {min(ids): len(ids) for ids in groups.values()}
    assert all(r["dup_cluster"] == r["id"] for r in kept)
    rejected = prepared(out, "rejected")
    assert len(rejected) == 35 and all(r["dup_cluster"] == min(groups[r["text"]]) for r in rejected)
    assert read_manifest(str(out))["counts"]["dropped"] == {"exact_dedup.duplicate": 35}


def test_documents_sharing_an_id_are_deduplicated_without_a_crash(tmp_path, cli):
    text = "The same page was crawled twice under one record id, and both copies must be accounted for."
    parts = [[Document(id="same", text=text, source="s")], [Document(id="same", text=text + " Once more.", source="s")]]
    out = tmp_path / "out"
    stages = "exact_dedup,line_dedup,minhash_dedup"
    assert cli("prepare", write_inputs(tmp_path / "in", parts), "--output", out, "--stages", stages) == 0
    counts = read_manifest(str(out))["counts"]
    assert counts["balanced"] and counts["read"] == 2


def test_line_dedup_in_prepare_drops_documents_left_too_short(tmp_path, cli):
    parts = [
        [Document(id="1", text="Shared navigation\nA long original paragraph about one thing.", source="s")],
        [Document(id="2", text="SHARED NAVIGATION!\nx", source="s")],
        [Document(id="3", text="Unrelated page with enough of its own text to stay.", source="s")],
    ]
    out = tmp_path / "out"
    args = ["--stages", "line_dedup", "--set", "line_dedup.min_chars=10", "--keep-rejected"]
    assert cli("prepare", write_inputs(tmp_path / "in", parts), "--output", out, *args) == 0
    assert sorted(r["id"] for r in prepared(out)) == ["1", "3"]
    assert [(r["id"], r["drop_reason"]) for r in prepared(out, "rejected")] == [("2", "line_dedup.too_short")]
    metrics = read_manifest(str(out))["metrics"]
    assert metrics["line_dedup.lines_removed"] == 1 and metrics["line_dedup.documents_changed"] == 1


def dedup_outcome(out: Path) -> tuple:
    kept = sorted((r["id"], r["text"], r["dup_cluster"], r["dup_cluster_size"]) for r in prepared(out))
    rejected = Counter(r["drop_reason"] for r in prepared(out, "rejected"))
    return kept, rejected, read_manifest(str(out))["counts"]


@pytest.mark.slow
def test_same_survivors_whatever_the_exchange_budget_workers_and_input_order(tmp_path, cli):
    docs = load(CC_SAMPLE) + load(PARAGRAPHS) + readme_docs()[::3]
    args = ["--stages", "exact_dedup,minhash_dedup,line_dedup", "--set", "line_dedup.min_chars=100"]
    args += ["--set", "minhash_dedup.max_rounds=6", "--keep-rejected", "--target-shard-mb", "0.5"]
    inputs = write_inputs(tmp_path / "in", split(docs, 4))
    assert cli("prepare", inputs, "--output", tmp_path / "base", *args) == 0
    baseline = dedup_outcome(tmp_path / "base")
    reasons = baseline[1]
    print(f"{len(docs)} documents: {len(baseline[0])} kept, dropped {dict(reasons)}")
    assert (
        reasons["exact_dedup.duplicate"] and reasons["line_dedup.too_short"] and reasons["minhash_dedup.near_duplicate"]
    )
    shuffled = docs[:]
    random.Random(1).shuffle(shuffled)
    runs = {
        "shuffle-exchange": [inputs, "--exchange", "shuffle"],
        "tiny-budget": [inputs, "--memory-budget", "64K"],
        "two-workers": [inputs, "--workers", "2"],
        "reversed-inputs": sorted(inputs.iterdir(), reverse=True),
    }
    for name, run_args in runs.items():
        assert cli("prepare", *run_args, "--output", tmp_path / name, *args) == 0
        assert dedup_outcome(tmp_path / name) == baseline, name
        for path in shard_paths(str(tmp_path / "base")) + shard_paths(str(tmp_path / "base"), "rejected"):
            relative = Path(path).relative_to(tmp_path / "base")
            assert (tmp_path / name / relative).read_bytes() == Path(path).read_bytes(), (name, relative)
    # a different order of the documents themselves changes which copy comes first, never the counts
    assert cli("prepare", write_inputs(tmp_path / "in2", split(shuffled, 4)), "--output", tmp_path / "s", *args) == 0
    assert dedup_outcome(tmp_path / "s")[2]["dropped"]["exact_dedup.duplicate"] == reasons["exact_dedup.duplicate"]


def test_jaccard_estimates_are_datasketchs_leanminhash_jaccard():
    from datasketch import LeanMinHash

    config = MinHashDedupConfig()
    signatures = np.stack([config.hasher().signature(doc.text) for doc in readme_docs()[:8]])
    estimates = jaccard_estimates(signatures[:-1], signatures[1:])
    for first, second, estimate in zip(signatures[:-1], signatures[1:], estimates, strict=True):
        lean = [LeanMinHash(seed=config.seed, hashvalues=s, scheme="affine32") for s in (first, second)]
        assert estimate == lean[0].jaccard(lean[1])
    assert 0 < estimates.min() < estimates.max() <= 1  # versions of one README: similar, not identical
