"""`llamaprep stats` on the prepared sample: its figures equal what the shards and manifest hold."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc

from filters.prepared import read_manifest, read_table, shard_paths
from pipelines.stats import document_stats, render_html, render_text


def test_document_stats_match_the_shards(prepared_sample):
    stats = document_stats(str(prepared_sample))
    table = pa.concat_tables([read_table(p) for p in shard_paths(str(prepared_sample))])
    texts = table.column("text").to_pylist()
    assert stats["documents"] == len(texts) == read_manifest(str(prepared_sample))["counts"]["kept"]
    assert stats["bytes"] == sum(len(t.encode()) for t in texts)
    assert stats["characters"] == sum(len(t) for t in texts)
    assert stats["length_chars"]["max"] == max(len(t) for t in texts)
    assert stats["sources"] == dict(Counter(table.column("source").to_pylist()))
    languages = Counter(x if x is not None else "(none)" for x in table.column("language").to_pylist())
    assert stats["languages"] == dict(languages)
    assert sum(stats["length_histogram"]["counts"]) == len(texts)
    scored = pc.sum(pc.is_valid(table.column("quality_score"))).as_py()
    assert stats["quality_histogram"]["documents"] == scored


def test_table_json_and_html(prepared_sample, cli, capsys, tmp_path):
    report = tmp_path / "report.html"
    assert cli("stats", prepared_sample, "--html", report) == 0
    printed = capsys.readouterr().out
    stats = document_stats(str(prepared_sample))
    assert printed == render_text(stats)
    assert "read = kept + dropped" in printed and "Dropped, by reason" in printed
    page = report.read_text()
    assert page.count("data:image/png;base64,") >= 3 and "http" not in page.split("<pre>")[0]
    assert cli("stats", prepared_sample, "--json") == 0
    assert json.loads(capsys.readouterr().out)["documents"] == stats["documents"]
    assert render_html(stats).startswith("<!doctype html>")


def test_stats_of_a_directory_without_manifest_is_a_clear_error(tmp_path, cli, capsys):
    assert cli("stats", tmp_path) == 2
    assert "no manifest.json" in capsys.readouterr().err
