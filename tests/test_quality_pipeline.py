"""langid and quality inside `prepare` (the per-document stages of one phase, run by a Beam DoFn per input
file): the annotations and decisions must equal running the same stages directly, and drops are counted
by reason."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pytest

from filters.base import run_stages
from filters.document import Document
from filters.langid import LanguageIdentifier
from filters.prepared import read_manifest, read_table, shard_paths
from filters.quality import QualityClassifier
from filters.quality_training import TrainingParams, train_quality_model
from pipelines.stages import build_stages

ROOT = Path(__file__).resolve().parents[1]
LANGID_SAMPLES = ROOT / "tests" / "data" / "langid" / "samples.jsonl.gz"
QUALITY_SAMPLES = ROOT / "data" / "samples" / "quality"


def read_jsonl(path: Path) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def quality_model(tmp_path_factory) -> str:
    positives = [r["text"] for p in sorted((QUALITY_SAMPLES / "positive").glob("*.gz")) for r in read_jsonl(p)]
    negatives = [r["text"] for p in sorted((QUALITY_SAMPLES / "negative").glob("*.gz")) for r in read_jsonl(p)]
    path = str(tmp_path_factory.mktemp("quality") / "quality.bin")
    train_quality_model(positives, negatives, path, TrainingParams(epoch=10, dim=32, bucket=20_000))
    return path


def documents() -> list[Document]:
    multilingual = [
        Document(id=f"l{i}", text=r["text"], source=r["source"]) for i, r in enumerate(read_jsonl(LANGID_SAMPLES))
    ]
    english_web = [
        Document(id=f"w{i}", text=r["text"], source="cc")
        for i, r in enumerate(read_jsonl(QUALITY_SAMPLES / "negative" / "cc-2019-30-en-non-prose.jsonl.gz"))
    ]
    return multilingual + english_web


def _score(value: float | None) -> float | None:
    return None if value is None else round(value, 5)  # shards store float32


def summary(doc: Document) -> tuple:
    return (doc.id, doc.language, _score(doc.language_score), _score(doc.quality_score))


def test_pipeline_equals_direct_stages(quality_model, tmp_path, cli):
    names = ["langid", "quality"]
    options = {"langid": {"languages": ["en"], "min_score": 0.5}, "quality": {"model_path": quality_model}}
    stages = build_stages(names, options)
    for stage in stages:
        stage.setup()
    kept, rejected = run_stages(stages, documents())
    assert kept and rejected
    expected_kept = sorted(summary(d) for d in kept)
    expected_rejected = sorted((*summary(r.doc), r.reason) for r in rejected)
    assert {r.reason for r in rejected} == {"langid.language", "langid.low_score", "quality.low_score"}

    inputs = tmp_path / "docs.jsonl.gz"
    with gzip.open(inputs, "wt", encoding="utf-8") as f:
        for doc in documents():
            f.write(json.dumps({"id": doc.id, "text": doc.text, "source": doc.source}) + "\n")
    out = tmp_path / "out"
    args = ["--stages", ",".join(names), "--languages", "en", "--quality-model", quality_model, "--keep-rejected"]
    assert cli("prepare", inputs, "--output", out, *args) == 0

    def rows(kind: str) -> list[dict]:
        return pa.concat_tables(read_table(p) for p in shard_paths(str(out), kind)).to_pylist()

    def stored(row: dict) -> tuple:
        return (row["id"], row["language"], _score(row["language_score"]), _score(row["quality_score"]))

    assert sorted(stored(r) for r in rows("documents")) == expected_kept
    assert sorted((*stored(r), r["drop_reason"]) for r in rows("rejected")) == expected_rejected
    dropped = read_manifest(str(out))["counts"]["dropped"]
    for reason in ("langid.language", "langid.low_score", "quality.low_score"):
        assert dropped[reason] == sum(r.reason == reason for r in rejected)


def test_stages_are_registered():
    stages = build_stages(["langid"], {})
    assert isinstance(stages[0], LanguageIdentifier)
    assert QualityClassifier.name == "quality"
