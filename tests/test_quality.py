"""Quality classifier: training on the bundled real samples, the printed report, scoring, keep rules."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import fasttext
import pytest

from filters.classifier_metrics import binary_report, roc_auc
from filters.document import Document, Rejection
from filters.options import ConfigError, build_config
from filters.quality import QualityClassifier, QualityConfig, pareto_keep, quality_text
from filters.quality_training import TrainingParams, train_quality_model

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples" / "quality"
FAST = TrainingParams(epoch=10, dim=32, bucket=20_000)


def read_texts(folder: Path) -> list[str]:
    texts = []
    for path in sorted(folder.glob("*.jsonl.gz")):
        with gzip.open(path, "rt", encoding="utf-8") as f:
            texts += [json.loads(line)["text"] for line in f]
    return texts


@pytest.fixture(scope="module")
def corpus() -> tuple[list[str], list[str]]:
    return read_texts(SAMPLES / "positive"), read_texts(SAMPLES / "negative")


@pytest.fixture(scope="module")
def model_path(corpus, tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("quality") / "quality.bin")
    train_quality_model(*corpus, path, FAST)
    return path


def test_quality_text_is_one_lowercased_token_line():
    assert quality_text("Hello, World!\nIt's 2024.") == "hello , world ! it ' s 2024 ."
    assert quality_text("  \n ") == ""


def test_training_is_deterministic_and_separates_held_out_pages(corpus, tmp_path):
    first = train_quality_model(*corpus, str(tmp_path / "a.bin"), FAST)
    second = train_quality_model(*corpus, str(tmp_path / "b.bin"), FAST)
    assert (tmp_path / "a.bin").read_bytes() == (tmp_path / "b.bin").read_bytes()
    assert first == second
    report = first.valid_report
    assert report.n_positive == report.n_negative > 0  # balanced held-out split
    assert report.roc_auc > 0.9
    other_seed = train_quality_model(*corpus, str(tmp_path / "c.bin"), TrainingParams(**{**vars(FAST), "seed": 1}))
    assert other_seed.train_size == first.train_size


def test_training_needs_both_classes(tmp_path):
    with pytest.raises(ValueError, match="at least 2 non-empty documents per class"):
        train_quality_model(["good text here", "more"], ["", "   "], str(tmp_path / "m.bin"), FAST)


def test_pipeline_scoring_equals_fasttext_directly(model_path, corpus):
    texts = corpus[0][:20] + corpus[1][:20]
    docs = [Document(id=str(i), text=t, source="s") for i, t in enumerate(texts)]
    stage = QualityClassifier(QualityConfig(model_path=model_path, min_score=0.5))
    stage.setup()
    results = stage.process_batch(docs)
    direct = fasttext.load_model(model_path)
    labels, probabilities = direct.predict([quality_text(t) for t in texts], k=-1)
    for result, labs, probs in zip(results, labels, probabilities, strict=True):
        doc = result.doc if isinstance(result, Rejection) else result
        expected = dict(zip(labs, probs, strict=True))["__label__hq"]
        assert doc.quality_score == pytest.approx(min(expected, 1.0), abs=1e-6)
        assert isinstance(result, Rejection) == (doc.quality_score < 0.5)
    assert sum(isinstance(r, Document) for r in results[:20]) > 15
    assert sum(isinstance(r, Rejection) and r.reason == "quality.low_score" for r in results[20:]) > 15


def test_pareto_mode_is_seeded_by_document_id(model_path):
    assert all(pareto_keep(str(i), 1.0, 9.0) for i in range(200))
    # P(pareto(9) > 1) = 2 ** -9: about 4 in 2000 zero-scored documents survive.
    survivors = sum(pareto_keep(str(i), 0.0, 9.0) for i in range(2000))
    assert 0 < survivors < 20
    decisions = [pareto_keep(str(i), 0.8, 9.0) for i in range(500)]
    assert decisions == [pareto_keep(str(i), 0.8, 9.0) for i in range(500)]
    assert 0 < sum(decisions) < 500
    stage = QualityClassifier(QualityConfig(model_path=model_path, mode="pareto"))
    stage.setup()
    doc = Document(id="x", text="Home | About | Contact | Login", source="s")
    result = stage.run([doc])[0]
    scored = result if isinstance(result, Document) else result.doc
    assert isinstance(result, Document) == pareto_keep("x", scored.quality_score, 9.0)
    assert doc.quality_score is None  # stages return changed copies; the input stays as it was


def test_config_errors(model_path):
    with pytest.raises(ConfigError, match="model_path is required"):
        build_config(QualityConfig, {}, "quality")
    with pytest.raises(ConfigError, match="mode"):
        build_config(QualityConfig, {"model_path": model_path, "mode": "sample"}, "quality")
    stage = QualityClassifier(build_config(QualityConfig, {"model_path": model_path, "positive_label": "wiki"}, "q"))
    with pytest.raises(ConfigError, match="not a label"):
        stage.setup()


def test_roc_auc_and_report():
    assert roc_auc([1, 1, 0, 0], [0.9, 0.8, 0.3, 0.1]) == 1.0
    assert roc_auc([1, 0], [0.5, 0.5]) == 0.5
    assert roc_auc([1, 1, 0, 0], [0.9, 0.2, 0.3, 0.1]) == 0.75
    report = binary_report([1, 1, 0, 0], [0.9, 0.2, 0.6, 0.1], threshold=0.5)
    assert (report.precision, report.recall, report.accuracy) == (0.5, 0.5, 0.5)
