"""`llamaprep prepare` end to end on the bundled real samples: accounting, shard content, determinism."""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pytest

from filters.base import run_stages
from filters.document import DOCUMENT_SCHEMA, REJECTED_SCHEMA
from filters.prepared import iter_documents, read_manifest, read_table, shard_paths
from pipelines.config import DEFAULT_STAGES, load_prepare_config
from pipelines.readers import iter_documents_from
from pipelines.stages import build_stages, is_global_stage
from tests.conftest import CC_JSONL, WARC_0, WARC_1, WEB, WET


def table(directory, kind="documents") -> pa.Table:
    return pa.concat_tables([read_table(p) for p in shard_paths(str(directory), kind)])


def test_every_document_is_accounted_for(prepared_sample):
    manifest = read_manifest(str(prepared_sample))
    counts = manifest["counts"]
    assert counts["read"] == 697 + 22 + 15 + 1  # every record of the four sample files
    assert counts["balanced"] and counts["read"] == counts["kept"] + counts["dropped_total"]
    assert 0 < counts["kept"] < counts["read"]
    kept, rejected = table(prepared_sample), table(prepared_sample, "rejected")
    assert kept.num_rows == counts["kept"] == manifest["documents"]["documents"]
    assert Counter(rejected.column("drop_reason").to_pylist()) == Counter(counts["dropped"])
    assert counts["files"] == 4
    assert manifest["schema_version"] == 1 and manifest["config"]["stages"] == list(DEFAULT_STAGES)


def test_shards_hold_what_the_filters_keep_outside_beam(tmp_path, cli):
    """The Beam job must keep exactly the documents, texts and annotations the engine-free stages keep."""
    names = [name for name in DEFAULT_STAGES if not is_global_stage(name)]
    out = tmp_path / "per-document"
    assert cli("prepare", WEB, "--output", out, "--stages", ",".join(names), "--keep-rejected") == 0
    config = load_prepare_config(None, [f"stages={','.join(names)}"])
    stages = build_stages(config.stages, config.stage_options)
    for stage in stages:
        stage.setup()
    expected_kept, expected_rejected = run_stages(stages, list(iter_documents_from([str(WEB)])))
    kept = table(out)
    assert kept.schema.equals(DOCUMENT_SCHEMA, check_metadata=True)
    assert table(out, "rejected").schema.equals(REJECTED_SCHEMA)
    rows = {r["id"]: (r["text"], r["language"]) for r in kept.select(["id", "text", "language"]).to_pylist()}
    assert rows == {d.id: (d.text, d.language) for d in expected_kept}
    rejected = table(out, "rejected")
    assert Counter(rejected.column("drop_reason").to_pylist()) == Counter(r.reason for r in expected_rejected)


def test_shard_size_target_and_names(prepared_sample):
    manifest = read_manifest(str(prepared_sample))
    shards = manifest["documents"]["shards"]
    assert len(shards) >= 2  # --target-shard-mb 1 on ~1.7 MB of kept text
    count = int(shards[0]["path"].split("-of-")[1].split(".")[0])
    assert all(s["path"].startswith("documents/part-") for s in shards)
    assert len(shards) <= count
    assert sum(s["documents"] for s in shards) == manifest["counts"]["kept"]
    assert not list(prepared_sample.glob("**/.*tmp*")), "no temporary files are left behind"


@pytest.mark.slow
def test_same_input_in_another_order_gives_identical_shards(prepared_sample, tmp_path, cli):
    out = tmp_path / "reversed"
    inputs = [WET, WARC_1, WARC_0, CC_JSONL]
    assert cli("prepare", *inputs, "--output", out, "--target-shard-mb", "1") == 0
    ours = sorted(p.name for p in (out / "documents").iterdir())
    theirs = sorted(p.name for p in (prepared_sample / "documents").iterdir())
    assert ours == theirs
    for name in ours:
        assert (out / "documents" / name).read_bytes() == (prepared_sample / "documents" / name).read_bytes()


def test_limit_is_deterministic(tmp_path, cli):
    for name in ("a", "b"):
        assert cli("prepare", CC_JSONL, "--output", tmp_path / name, "--limit", "25", "--stages", "normalize") == 0
    counts = read_manifest(str(tmp_path / "a"))["counts"]
    assert counts["read"] == 25 == counts["kept"] + counts["dropped_total"]
    assert table(tmp_path / "a").equals(table(tmp_path / "b"))
    first_ids = {d.id for d in iter_documents_from([str(CC_JSONL)], limit=25)}
    assert set(table(tmp_path / "a").column("id").to_pylist()) <= first_ids


def test_output_is_not_overwritten_by_accident(prepared_sample, cli, capsys):
    assert cli("prepare", CC_JSONL, "--output", prepared_sample, "--limit", "3") == 2
    assert "--overwrite" in capsys.readouterr().err


def test_config_file_and_overrides(tmp_path, cli):
    config = tmp_path / "prepare.toml"
    config.write_text('stages = ["normalize", "gopher_quality"]\n[gopher_quality]\nmin_doc_words = 400\n')
    out = tmp_path / "out"
    assert (
        cli("prepare", CC_JSONL, "--output", out, "--config", config, "--set", "gopher_quality.min_doc_words=300") == 0
    )
    manifest = read_manifest(str(out))
    assert manifest["config"]["stages"] == ["normalize", "gopher_quality"]
    assert manifest["config"]["gopher_quality"]["min_doc_words"] == 300
    short = read_manifest(str(out))["counts"]["dropped"].get("gopher_quality.word_count", 0)
    assert short > 300  # most CC pages of this sample have fewer than 300 words


def test_print_config_shows_every_default(cli, capsys):
    assert cli("prepare", "--print-config") == 0
    printed = capsys.readouterr().out
    for stage in DEFAULT_STAGES:
        assert f"\n{stage}:" in printed
    assert "max_document_bytes" in printed


@pytest.mark.parametrize("suffix", [".yaml", ".toml"])
def test_config_file_errors_are_clear(tmp_path, cli, capsys, suffix):
    bad = tmp_path / f"bad{suffix}"
    bad.write_text("stages = [unclosed" if suffix == ".toml" else "stages: [unclosed")
    assert cli("prepare", CC_JSONL, "--output", tmp_path / "o", "--config", bad) == 2
    assert "cannot parse" in capsys.readouterr().err


def test_split_by_language_writes_one_shard_set_per_language(tmp_path, cli):
    out = tmp_path / "split"
    args = ["--stages", "normalize,langid", "--split-by-language", "--min-language-score", "0.6"]
    assert cli("prepare", CC_JSONL, "--output", out, *args) == 0
    manifest = read_manifest(str(out))
    assert manifest["config"]["langid"]["min_score"] == 0.6
    by_folder = Counter()
    for path in shard_paths(str(out)):
        languages = set(read_table(path).column("language").to_pylist())
        folder = path.split("/documents/")[1].split("/")[0]
        assert languages == {folder}
        by_folder[folder] += read_table(path).num_rows
    assert by_folder["en"] > 200 and len(by_folder) > 10
    assert sum(by_folder.values()) == manifest["counts"]["kept"]
    scores = table(out).column("language_score").to_pylist()
    assert min(scores) >= 0.6


def test_documents_round_trip_through_shards(prepared_sample):
    """Reading a prepared directory back gives Documents whose rows equal the stored rows."""
    docs = list(iter_documents(str(prepared_sample)))
    stored = table(prepared_sample).to_pylist()
    assert sorted(d.id for d in docs) == sorted(r["id"] for r in stored)
    by_id = {r["id"]: r for r in stored}
    for doc in docs:
        assert doc.to_row() == by_id[doc.id]
    assert any(doc.metadata for doc in docs) and all(doc.date is None or doc.date.tzinfo for doc in docs)
