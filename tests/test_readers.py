"""Readers on the bundled real samples: every record the files hold becomes a document, with its
id, source, url and date."""

from __future__ import annotations

import gzip
import io
import json
import re

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from filters.document import Document
from filters.options import ConfigError
from pipelines.formats import ReaderConfig, Repaired, Skip, detect_format, parse_stream
from pipelines.readers import check_inputs, iter_documents_from, parse_input
from tests.conftest import CC_JSONL, WARC_0, WARC_1, WET


def records(path, config=None, data=None):
    config = config or ReaderConfig()
    if data is not None:
        return list(parse_stream(io.BytesIO(data), str(path), config))
    with open(path, "rb") as raw:
        return list(parse_stream(raw, str(path), config))


def cc_lines():
    with gzip.open(CC_JSONL, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def documents(items):
    return [r for r in items if isinstance(r, Document)]


def test_detect_format_from_names():
    assert detect_format("CC-MAIN-x.warc.wet.gz") == "wet"
    assert detect_format("crawl.warc.gz") == "warc"
    assert detect_format("a.jsonl.zst") == "jsonl"
    assert detect_format("gs://bucket/part-0.parquet") == "parquet"
    assert detect_format("book.txt.gz") == "text"
    with pytest.raises(ConfigError, match="--format"):
        detect_format("LICENSE")


def test_jsonl_reads_every_line_with_fields_mapped():
    lines = cc_lines()
    docs = documents(records(CC_JSONL))
    assert len(docs) == len(lines) == 697
    assert [d.id for d in docs] == [line["id"] for line in lines]
    first = docs[0]
    assert first.text == lines[0]["text"]
    assert first.url == lines[0]["metadata"]["warc_url"]
    assert first.date is not None and first.date.isoformat().startswith(lines[0]["created"][:19])
    assert first.source == lines[0]["source"]
    assert first.metadata["added"] == lines[0]["added"]


def test_warc_html_responses_become_main_text():
    for path in (WARC_0, WARC_1):
        raw = gzip.decompress(path.read_bytes())
        responses = len(re.findall(rb"WARC-Type: response\r\n", raw))
        docs = documents(records(path))
        assert len(docs) == responses > 10
        assert all(d.url.startswith("http") and d.date is not None for d in docs)
        assert all("<html" not in d.text.lower() and "<div" not in d.text.lower() for d in docs)
    creative_commons = documents(records(WARC_1))[0]
    assert creative_commons.url == "https://creativecommons.org/"
    assert "Creative Commons" in creative_commons.text
    assert not re.match(r"^[0-9a-f]+\s", creative_commons.text), "chunked transfer encoding must be undone"


def test_wet_conversion_records():
    docs = documents(records(WET))
    assert len(docs) == 1
    assert docs[0].url == "https://an.wikipedia.org/wiki/Escopete"
    assert docs[0].text.startswith("Escopete")
    assert docs[0].id.startswith("urn:uuid:")


def test_parquet_and_zstd_jsonl_read_the_same_documents(tmp_path):
    lines = cc_lines()[:50]
    for line in lines:
        line["metadata"] = json.dumps(line["metadata"])
        line.pop("attributes", None)
    parquet = tmp_path / "sample.parquet"
    pq.write_table(pa.Table.from_pylist(lines), parquet)
    zst = tmp_path / "sample.jsonl.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress("".join(json.dumps(x) + "\n" for x in lines).encode()))
    from_parquet = documents(records(parquet))
    from_zst = documents(records(zst))
    assert [d.id for d in from_parquet] == [d.id for d in from_zst] == [x["id"] for x in lines]
    assert [d.text for d in from_parquet] == [x["text"] for x in lines]
    assert from_parquet[0].url == json.loads(lines[0]["metadata"])["warc_url"]


def test_text_file_is_one_document(tmp_path):
    book = tmp_path / "botchan.txt.gz"
    text = "I was a reckless child.\n\nThat is how it started.\n"
    book.write_bytes(gzip.compress(text.encode()))
    [doc] = documents(records(book))
    assert doc.text == text and doc.id == "botchan" and doc.source == "botchan"


def test_configurable_fields_and_source_labels(tmp_path):
    path = tmp_path / "custom.jsonl"
    path.write_text(json.dumps({"doc": "body text", "key": 7, "meta": {"link": "https://x.org"}}) + "\n")
    config = ReaderConfig(text_field="doc", id_fields=("key",), url_fields=("meta.link",), source="mine")
    [doc] = documents(records(path, config))
    assert (doc.id, doc.text, doc.url, doc.source) == ("7", "body text", "https://x.org", "mine")
    assert parse_input("books=/data/*.txt").source == "books"
    assert parse_input("gs://bucket/a=b.jsonl").source is None
    labelled = list(iter_documents_from([f"web={path}"], text_field="doc"))
    assert labelled[0].source == "web"


def test_limit_reads_the_first_documents():
    docs = list(iter_documents_from([str(CC_JSONL)], limit=5))
    assert [d.id for d in docs] == [d.id for d in documents(records(CC_JSONL))[:5]]


def test_missing_inputs_fail_early(tmp_path):
    with pytest.raises(FileNotFoundError, match="matches no file"):
        check_inputs([parse_input(str(tmp_path / "nope" / "*.jsonl.gz"))])
    (tmp_path / "notes.weird").write_text("x")
    with pytest.raises(ConfigError, match="cannot tell the format"):
        check_inputs([parse_input(str(tmp_path))])


def test_repairs_and_skips_are_reported(tmp_path):
    data = b'{"id": "a", "text": "caf\xe9 ok"}\nnot json\n{"id": "b"}\n\n{"id": "c", "text": "fine"}\n'
    items = records(tmp_path / "x.jsonl", data=data)
    assert [d.id for d in documents(items)] == ["a", "c"]
    assert documents(items)[0].text == "caf\ufffd ok"
    assert [r.reason for r in items if isinstance(r, Skip)] == ["invalid_json", "missing_text"]
    assert [r.reason for r in items if isinstance(r, Repaired)] == ["invalid_utf8"]
