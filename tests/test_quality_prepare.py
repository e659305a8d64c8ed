"""End to end through the CLI: `quality train` prints its report, `quality eval` scores the DCLM human
labels, and `prepare` with langid + quality writes shards whose annotations equal fastText called
directly on the same texts (stored as float32), with every drop accounted for by reason."""

from __future__ import annotations

from pathlib import Path

import fasttext
import numpy as np
import pyarrow as pa
import pytest

from filters.fasttext_model import packaged_lid_model_path
from filters.prepared import read_manifest, read_table, shard_paths
from filters.quality import quality_text

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "data" / "samples" / "quality"
CC_JSONL = REPO / "data" / "samples" / "web" / "CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz"
DCLM = REPO / "tests" / "data" / "quality" / "dclm_majority_dev.jsonl.gz"
SMALL = ["--epoch", "10", "--dim", "32", "--bucket", "20000"]


def shard_rows(directory: Path) -> list[dict]:
    return pa.concat_tables(read_table(p) for p in shard_paths(str(directory))).to_pylist()


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, str]:
    from pipelines.cli import main

    model = tmp_path_factory.mktemp("quality") / "quality.bin"
    argv = ["quality", "train", "--positive", str(SAMPLES / "positive"), "--negative", str(SAMPLES / "negative")]
    assert main([*argv, "--output", str(model), *SMALL]) == 0
    return model


def test_train_prints_the_report(cli, tmp_path, capsys):
    argv = ["quality", "train", "--positive", SAMPLES / "positive", "--negative", SAMPLES / "negative"]
    assert cli(*argv, "--output", tmp_path / "q.bin", *SMALL) == 0
    printed = capsys.readouterr().out
    for metric in ("held-out", "precision", "recall", "F1", "ROC-AUC", "balanced training set"):
        assert metric in printed
    assert cli(*argv[:2], "--positive", tmp_path / "missing", "--negative", SAMPLES / "negative", "--output", "x") == 2


def test_eval_on_dclm_human_labels(cli, trained, capsys):
    assert cli("quality", "eval", "--model", trained, "--labeled", DCLM, "--label-field", "label") == 0
    printed = capsys.readouterr().out
    assert "120 positive, 98 negative" in printed
    auc = float(printed.split("ROC-AUC")[1].split()[0])
    assert auc > 0.55  # better than chance on human labels (0.636 with the default training settings)


def test_prepare_annotations_equal_direct_fasttext(cli, trained, tmp_path):
    out = tmp_path / "prepared"
    sets = ["--set", "langid.languages=en", "--set", f"quality.model_path={trained}"]
    assert cli("prepare", CC_JSONL, "--output", out, "--stages", "langid,quality", *sets, "--keep-rejected") == 0
    kept = shard_rows(out)
    rejected = pa.concat_tables(read_table(p) for p in shard_paths(str(out), "rejected")).to_pylist()
    assert kept and rejected

    lid = fasttext.load_model(packaged_lid_model_path())
    quality = fasttext.load_model(str(trained))
    texts = [row["text"] for row in kept]
    languages, language_scores = lid.predict([t.replace("\n", " ") for t in texts], k=1)
    labels, probabilities = quality.predict([quality_text(t) for t in texts], k=-1)
    for row, language, language_score, labs, probs in zip(
        kept, languages, language_scores, labels, probabilities, strict=True
    ):
        assert row["language"] == language[0].removeprefix("__label__") == "en"
        assert row["language_score"] == np.float32(min(language_score[0], 1.0))
        score = dict(zip(labs, probs, strict=True))["__label__hq"]
        assert row["quality_score"] == np.float32(min(score, 1.0)) and score >= 0.5

    reasons = {row["drop_reason"] for row in rejected}
    assert reasons <= {"langid.language", "langid.low_score", "langid.empty", "quality.low_score"}
    low_quality = [row for row in rejected if row["drop_reason"] == "quality.low_score"]
    assert low_quality and all(row["language"] == "en" and row["quality_score"] < 0.5 for row in low_quality)
    counts = read_manifest(str(out))["counts"]
    assert counts["kept"] == len(kept) and counts["dropped_total"] == len(rejected)


@pytest.mark.slow
def test_portable_runner_workers_load_the_packaged_and_given_models(cli, trained, tmp_path, portable_runner_args):
    """Workers of the portable runner (the path of Dataflow Runner v2, Flink, Spark) find the packaged
    lid.176 and the user's quality model, and annotate exactly as the in-process runner."""
    common = ["--stages", "langid,quality", "--set", f"quality.model_path={trained}", "--limit", "150"]
    assert cli("prepare", CC_JSONL, "--output", tmp_path / "local", *common) == 0
    assert cli("prepare", CC_JSONL, "--output", tmp_path / "portable", *common, *portable_runner_args) == 0
    key = ("id", "language", "language_score", "quality_score")
    local = sorted(tuple(row[k] for k in key) for row in shard_rows(tmp_path / "local"))
    portable = sorted(tuple(row[k] for k in key) for row in shard_rows(tmp_path / "portable"))
    assert local and portable == local
