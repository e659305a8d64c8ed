"""Bad input gets a clear error or a counted skip, and the run still accounts for every document."""

from __future__ import annotations

import gzip
import json

import pytest

from filters.document import Document
from filters.prepared import read_manifest, read_table, shard_paths
from pipelines.formats import ReaderConfig, Skip, parse_stream
from tests.conftest import CC_JSONL, WARC_0


def parse(path):
    with open(path, "rb") as raw:
        return list(parse_stream(raw, str(path), ReaderConfig()))


def test_truncated_gzip_keeps_what_came_before_and_counts_the_rest(tmp_path):
    data = CC_JSONL.read_bytes()
    path = tmp_path / "cut.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    items = parse(path)
    docs = [r for r in items if isinstance(r, Document)]
    skips = [r for r in items if isinstance(r, Skip)]
    assert 100 < len(docs) < 697
    assert [s.reason for s in skips] == ["corrupt_compression"]
    assert "EOFError" in skips[0].detail


def test_corrupt_gzip_member_in_a_warc(tmp_path):
    data = bytearray(WARC_0.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = b"\x00" * 64
    path = tmp_path / "bad.warc.gz"
    path.write_bytes(bytes(data))
    items = parse(path)
    assert sum(isinstance(r, Document) for r in items) < 22
    assert [r.reason for r in items if isinstance(r, Skip)] == ["corrupt_compression"]


def test_truncated_uncompressed_warc_record(tmp_path):
    raw = gzip.decompress(WARC_0.read_bytes())
    path = tmp_path / "cut.warc"
    path.write_bytes(raw[: len(raw) // 2])
    items = parse(path)
    assert [r.reason for r in items if isinstance(r, Skip)] == ["truncated_record"]
    assert sum(isinstance(r, Document) for r in items) >= 10


def test_empty_file_has_no_documents(tmp_path):
    for name in ("empty.jsonl", "empty.jsonl.gz", "empty.warc.wet.gz", "empty.txt"):
        path = tmp_path / name
        path.write_bytes(gzip.compress(b"") if name.endswith(".gz") else b"")
        assert [r for r in parse(path) if isinstance(r, Document) and r.text] == []


def test_pipeline_counts_every_kind_of_bad_record(tmp_path, cli):
    """A 50 MB single-line document, invalid UTF-8, broken JSON and a truncated gzip in one run:
    the huge one is read and dropped with a reason, the rest are counted skips, nothing is lost."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    huge = "word " * (10 * 1024 * 1024)
    with open(inputs / "huge.jsonl", "w") as f:
        f.write(json.dumps({"id": "huge", "text": huge}) + "\n")
        f.write(json.dumps({"id": "small", "text": "A normal sentence that stays."}) + "\n")
    (inputs / "mixed.jsonl").write_bytes(b'{"id": "u", "text": "caf\xe9"}\n{broken\n')
    data = CC_JSONL.read_bytes()
    (inputs / "cut.jsonl.gz").write_bytes(data[: len(data) // 3])
    out = tmp_path / "out"
    assert cli("prepare", str(inputs), "--output", out, "--set", "stages=", "--keep-rejected") == 0
    counts = read_manifest(str(out))["counts"]
    assert counts["balanced"] and counts["read"] == counts["kept"] + counts["dropped_total"]
    assert counts["dropped"] == {"reader.too_large": 1}
    assert counts["skipped"] == {"corrupt_compression": 1, "invalid_json": 1}
    assert counts["repaired"] == {"invalid_utf8": 1}
    rejected = read_table(shard_paths(str(out), "rejected")[0]).to_pylist()
    assert [(r["id"], r["drop_reason"]) for r in rejected] == [("huge", "reader.too_large")]
    assert json.loads(rejected[0]["metadata"])["original_bytes"] == len(huge.encode()) + 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--output", "OUT", "MISSING/*.jsonl"], "matches no file"),
        (["--output", "OUT", "--set", "gopher_quality.min_doc_words=many", "IN"], "expected int"),
        (["--output", "OUT", "--set", "nosuchstage.x=1", "IN"], "unknown stage"),
        (["--output", "OUT", "--stages", "normalize,bogus", "IN"], "unknown stage"),
        (["--output", "OUT", "--no_such_beam_flag=1", "IN"], "unknown option --no_such_beam_flag"),
        (["--output", "OUT", "--direct_running_mode=multi_threading", "IN"], "multi_threading"),
        (["--output", "OUT", "--set", "reader.limit=0", "IN"], "reader.limit"),
        (["--output", "OUT", "--memory-budget", "lots", "IN"], "--memory-budget"),
        (["--output", "OUT", "--memory-budget", "0", "IN"], "--memory-budget"),
    ],
)
def test_bad_options_give_clear_errors(tmp_path, capsys, cli, args, message):
    args = [a.replace("OUT", str(tmp_path / "out")).replace("IN", str(CC_JSONL)) for a in args]
    args = [str(tmp_path / a) if a.startswith("MISSING") else a for a in args]
    assert cli("prepare", *args) == 2
    assert message in capsys.readouterr().err


def test_unknown_cli_flag_is_rejected(capsys, cli):
    with pytest.raises(SystemExit):
        cli("stats", "somewhere", "--bogus")
    assert "unrecognized arguments" in capsys.readouterr().err
