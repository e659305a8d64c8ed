"""Fault injection: every input format, model file and checkpoint file the tools read, truncated, corrupted
and emptied. Each case ends in a counted skip (inputs) or a one-line error (models, checkpoints, outputs),
and the accounting still holds: records seen = documents read + records skipped, read = kept + dropped."""

from __future__ import annotations

import gzip
import io
import json
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from filters.fasttext_model import packaged_lid_model_path
from filters.prepared import read_manifest, read_table, shard_paths
from tests.conftest import CC_JSONL, REPO, WARC_0, WET

POLICY = REPO / "tests" / "data" / "model" / "debian-policy_4.6.2.0_policy.txt.gz"


def cc_lines() -> list[bytes]:
    return gzip.decompress(CC_JSONL.read_bytes()).splitlines(keepends=True)


def parquet_bytes() -> bytes:
    rows = [json.loads(line) for line in cc_lines()]
    sink = io.BytesIO()
    table = pa.table({"id": [r["id"] for r in rows], "text": [r["text"] for r in rows]})
    pq.write_table(table, sink, row_group_size=100)
    return sink.getvalue()


def zstd_frames(lines: list[bytes], per_frame: int = 100) -> bytes:
    """Several zstd frames back to back, as large .zst dumps are written."""
    compressor = zstandard.ZstdCompressor()
    return b"".join(compressor.compress(b"".join(lines[i : i + per_frame])) for i in range(0, len(lines), per_frame))


def intact(name: str) -> bytes:
    return {
        "cc.jsonl": b"".join(cc_lines()),
        "cc.jsonl.gz": CC_JSONL.read_bytes(),
        "cc.jsonl.zst": zstd_frames(cc_lines()),
        "pages.warc.gz": WARC_0.read_bytes(),
        "page.warc.wet.gz": WET.read_bytes(),
        "cc.parquet": parquet_bytes(),
        "policy.txt.gz": POLICY.read_bytes(),
    }[name]


def truncated(data: bytes) -> bytes:
    return data[: len(data) // 2]


def corrupted(data: bytes) -> bytes:
    broken = bytearray(data)
    middle = len(broken) // 2
    broken[middle : middle + 512] = bytes((b * 7 + 13) % 256 for b in broken[middle : middle + 512])
    return bytes(broken)


def prepare_one(cli, tmp_path, name: str, data: bytes) -> dict:
    path = tmp_path / "in" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    out = tmp_path / "out"
    assert cli("prepare", path, "--output", out, "--stages", "normalize", "--keep-rejected", "--quiet") == 0
    counts = read_manifest(str(out))["counts"]
    assert counts["balanced"] and counts["read"] == counts["kept"] + counts["dropped_total"]
    assert counts["seen"] == counts["read"] + counts["skipped_total"]
    return counts


FORMATS = [
    "cc.jsonl.gz",
    "cc.jsonl.zst",
    "pages.warc.gz",
    "page.warc.wet.gz",
    "cc.parquet",
    "policy.txt.gz",
    "cc.jsonl",
]


@pytest.mark.parametrize("name", FORMATS)
def test_truncated_inputs_keep_what_came_before_and_count_a_skip(cli, tmp_path, name):
    whole = prepare_one(cli, tmp_path / "whole", name, intact(name))
    assert whole["skipped_total"] == 0
    counts = prepare_one(cli, tmp_path / "cut", name, truncated(intact(name)))
    assert counts["skipped_total"] >= 1, f"a truncated {name} must be reported"
    assert counts["read"] < whole["read"] or whole["read"] == 1
    expected = {"cc.jsonl": "invalid_json", "cc.parquet": "corrupt_file"}.get(name, "corrupt_compression")
    if name.endswith((".warc.gz", ".wet.gz")):
        expected = {"corrupt_compression", "truncated_record"}
    assert set(counts["skipped"]) <= ({expected} if isinstance(expected, str) else expected), counts["skipped"]


@pytest.mark.parametrize("name", [n for n in FORMATS if n != "cc.jsonl"])
def test_corrupted_inputs_are_counted_skips(cli, tmp_path, name):
    counts = prepare_one(cli, tmp_path, name, corrupted(intact(name)))
    assert counts["skipped_total"] >= 1, counts


@pytest.mark.parametrize("name", FORMATS)
def test_empty_inputs(cli, tmp_path, name):
    counts = prepare_one(cli, tmp_path, name, b"")
    assert counts["read"] == 0
    if name != "cc.jsonl":  # an empty JSONL file is a valid file with no records; a compressed one is not
        assert counts["skipped"] in ({"corrupt_compression": 1}, {"corrupt_file": 1}), counts["skipped"]


def test_random_bytes_named_zst_are_one_skip_not_a_crash(cli, tmp_path):
    counts = prepare_one(cli, tmp_path, "junk.jsonl.zst", bytes(range(256)) * 64)
    assert counts["skipped"] == {"corrupt_compression": 1} and counts["read"] == 0


def test_a_half_zst_of_300_documents_loses_none_silently(cli, tmp_path):
    lines = cc_lines()[:300]
    data = zstd_frames(lines, per_frame=40)
    counts = prepare_one(cli, tmp_path, "part.jsonl.zst", truncated(data))
    assert counts["skipped"].get("corrupt_compression") == 1  # the cut named, not a quiet end of file
    assert 80 < counts["read"] < 300


def test_json_escaped_lone_surrogates_become_replacement_characters(cli, tmp_path):
    lines = [
        json.dumps({"id": f"s{i}", "text": f"broken \ud83d pair in document {i}"}).encode() + b"\n" for i in range(3)
    ]
    path = tmp_path / "surrogates.jsonl"
    path.write_bytes(b"".join(lines))
    for stages in ("langid", "gopher_quality"):  # stages without normalize: they must get valid text only
        out = tmp_path / stages
        assert cli("prepare", path, "--output", out, "--stages", stages, "--keep-rejected", "--quiet") == 0
        counts = read_manifest(str(out))["counts"]
        assert counts["repaired"] == {"lone_surrogate": 3} and counts["balanced"]


# ---------------------------------------------------------------- model files


def damaged_models(tmp_path, source) -> dict[str, str]:
    data = source.read_bytes()
    variants = {"truncated": truncated(data), "corrupted": corrupted(data), "empty": b"", "not a model": b"hello\n"}
    paths = {}
    for kind, content in variants.items():
        path = tmp_path / f"{kind.replace(' ', '_')}{source.suffix}"
        path.write_bytes(content)
        paths[kind] = str(path)
    return paths


def test_damaged_language_id_models_are_one_line_errors(cli, tmp_path, capsys):
    import hashlib
    from pathlib import Path

    intact_model = Path(packaged_lid_model_path()).read_bytes()
    checksum = hashlib.sha256(intact_model).hexdigest()
    for kind, model in damaged_models(tmp_path, Path(packaged_lid_model_path())).items():
        if kind in ("truncated", "corrupted"):
            # fastText loads a cut or scrambled .ftz without a word: only the checksum next to it tells
            Path(model + ".sha256").write_text(f"{checksum}  {Path(model).name}\n")
        setting = f"langid.model_path={model}"
        code = cli("prepare", CC_JSONL, "-o", tmp_path / kind, "--stages", "langid", "--set", setting)
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and model in err, (kind, err)


def test_a_quality_model_with_its_checksum_is_checked_against_it(cli, tmp_path, capsys):
    model = tmp_path / "quality.bin"
    samples = REPO / "data" / "samples" / "quality"
    args = ["quality", "train", "--positive", samples / "positive", "--negative", samples / "negative"]
    assert cli(*args, "--output", model, "--epoch", "2", "--dim", "8", "--bucket", "2000") == 0
    assert (tmp_path / "quality.bin.sha256").read_text().split()[1] == "quality.bin"
    data = model.read_bytes()
    for kind, content in {"truncated": truncated(data), "corrupted": corrupted(data), "empty": b""}.items():
        model.write_bytes(content)
        code = cli("prepare", CC_JSONL, "-o", tmp_path / kind, "--stages", "quality", "--quality-model", model)
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and str(model) in err, (kind, err)
        assert not (tmp_path / kind / "manifest.json").exists()


def test_damaged_tokenizer_models_are_one_line_errors(cli, tmp_path, capsys, prepared_sample):
    trained = tmp_path / "tok"
    assert cli("tokenizer", "train", prepared_sample, "--output", trained, "--vocab-size", "3000") == 0
    capsys.readouterr()
    for kind, model in damaged_models(tmp_path, trained / "tokenizer.model").items():
        for args in (["tokenize", prepared_sample, "--output", tmp_path / f"t-{kind}"], ["tokenizer", "info"]):
            command = [*args, "--tokenizer", model] if args[0] == "tokenize" else [*args, model]
            code = cli(*command)
            err = capsys.readouterr().err
            assert code == 2 and len(err.strip().splitlines()) == 1 and model in err, (command, err)


# ---------------------------------------------------------------- checkpoints


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    from model_fixtures import write_byte_dataset

    from tests.conftest import run_cli

    root = tmp_path_factory.mktemp("ckpt")
    data = write_byte_dataset(root / "data", n_bytes=8000)
    args = [
        "train",
        "--data",
        data,
        "--config",
        "tiny",
        "--seq-len",
        "32",
        "--micro-batch-size",
        "2",
        "--steps",
        "4",
        "--save-every",
        "2",
        "--eval-every",
        "100",
        "--eval-batches",
        "0",
        "--output",
        root / "run",
        "--threads",
        "1",
    ]
    assert run_cli(*args) == 0
    return root, args


@pytest.mark.parametrize("file", ["consolidated.00.pth", "train_state.pt", "params.json"])
@pytest.mark.parametrize("damage", ["truncated", "corrupted", "empty"])
def test_damaged_checkpoint_files_are_named_and_resume_falls_back(trained_run, tmp_path, cli, capsys, file, damage):
    root, args = trained_run
    run = tmp_path / "run"
    shutil.copytree(root / "run", run)
    latest = sorted((run / "checkpoints").iterdir())[-1]
    target = latest / file
    target.write_bytes(
        {"truncated": truncated, "corrupted": corrupted, "empty": lambda d: b""}[damage](target.read_bytes())
    )
    code = cli("convert", "to-hf", latest, tmp_path / "hf")
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and str(target) in err, err
    resumed = [a if a != root / "run" else run for a in args]
    resumed[resumed.index("--steps") + 1] = "6"
    assert cli(*resumed, "--resume", latest) == 2  # named explicitly, a damaged checkpoint is refused
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(target) in err, err
    assert cli(*resumed, "--resume") == 0
    err = capsys.readouterr().err
    assert "passing over a damaged checkpoint" in err and latest.name in err
    assert "step-0000002" in err  # the newest intact one


def test_bad_records_are_counted_and_only_the_first_few_are_logged(cli, tmp_path, caplog):
    lines = cc_lines()[:20] + [b"{broken json line\n"] * 795
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"".join(lines))
    out = tmp_path / "out"
    with caplog.at_level("WARNING"):
        assert cli("prepare", path, "--output", out, "--stages", "normalize", "--quiet") == 0
    warnings = [r for r in caplog.records if "invalid_json" in r.getMessage()]
    assert 1 <= len(warnings) <= 3  # the first few, with the file and line; the manifest counts them all
    assert read_manifest(str(out))["counts"]["skipped"] == {"invalid_json": 795}


def test_default_ids_are_unique_for_distinct_files_and_repeated_ids_are_renamed(cli, tmp_path):
    records = [json.loads(line) for line in cc_lines()[:60]]
    for year in ("2019", "2020"):  # the same file name in two folders, records without an id field
        folder = tmp_path / "in" / year
        folder.mkdir(parents=True)
        with open(folder / "part-0000.jsonl", "w") as f:
            for record in records[:30] if year == "2019" else records[30:]:
                f.write(json.dumps({"text": record["text"]}) + "\n")
    (tmp_path / "in" / "intro.txt").write_text(records[0]["text"])
    (tmp_path / "in" / "intro.md").write_text(records[1]["text"])
    with open(tmp_path / "in" / "repeats.jsonl", "w") as f:
        for record in records[:5]:
            f.write(json.dumps({"id": "same", "text": record["text"]}) + "\n")
    out = tmp_path / "out"
    assert cli("prepare", tmp_path / "in", "--output", out, "--keep-rejected", "--quiet") == 0
    ids = [
        row["id"]
        for kind in ("documents", "rejected")
        for path in shard_paths(str(out), kind)
        for row in read_table(path, ["id"]).to_pylist()
    ]
    counts = read_manifest(str(out))["counts"]
    assert len(ids) == len(set(ids)) == counts["read"] == 30 + 30 + 2 + 5
    assert {"2019/part-0000:1", "2020/part-0000:1", "intro.txt", "intro.md", "same", "same~5"} <= set(ids)
    assert counts["repaired"]["duplicate_id"] == 4
