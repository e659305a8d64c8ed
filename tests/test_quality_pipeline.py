"""langid and quality inside the Beam pipeline (fused ApplyStages DoFn, in-process FnApiRunner): the
annotations and decisions must equal running the same stages directly, and drops are counted by reason."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

from filters.base import run_stages
from filters.document import Document
from filters.langid import LanguageIdentifier
from filters.quality import QualityClassifier
from filters.quality_training import TrainingParams, train_quality_model
from pipelines.runners import counters, run_pipeline
from pipelines.stages import apply_document_stages, build_stages

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


def summary(doc: Document) -> tuple:
    return (doc.id, doc.language, doc.language_score, doc.quality_score)


def test_pipeline_equals_direct_stages(quality_model):
    names = ["langid", "quality"]
    options = {"langid": {"languages": ["en"], "min_score": 0.5}, "quality": {"model_path": quality_model}}
    stages = build_stages(names, options)
    for stage in stages:
        stage.setup()
    kept, rejected = run_stages(stages, documents())
    assert kept and rejected
    expected_kept = [summary(d) for d in kept]
    expected_rejected = [(*summary(r.doc), r.reason) for r in rejected]
    assert {r.reason for r in rejected} == {"langid.language", "langid.low_score", "quality.low_score"}

    def build(pipeline: beam.Pipeline) -> None:
        docs = pipeline | beam.Create(documents())
        kept_pc, rejected_pc = apply_document_stages(docs, names, options, label="Stages")
        assert_that(kept_pc | "K" >> beam.Map(summary), equal_to(expected_kept), label="kept")
        rejected_summary = rejected_pc | "R" >> beam.Map(lambda r: (*summary(r.doc), r.reason))
        assert_that(rejected_summary, equal_to(expected_rejected), label="rejected")

    result = run_pipeline(build, beam.options.pipeline_options.PipelineOptions([]), FnApiRunner())
    dropped = counters(result)
    for reason in ("langid.language", "langid.low_score", "quality.low_score"):
        assert dropped[f"dropped.{reason}"] == sum(r.reason == reason for r in rejected)


def test_stages_are_registered():
    stages = build_stages(["langid"], {})
    assert isinstance(stages[0], LanguageIdentifier)
    assert QualityClassifier.name == "quality"
