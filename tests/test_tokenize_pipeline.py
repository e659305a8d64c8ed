"""`llamaprep tokenize`: token shards hold exactly what the tokenizer gives for each document, the
train/val split is a stable function of the id, and the output does not depend on the runner."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from filters.document import Document
from filters.prepared import read_table, shard_paths
from pipelines import cli
from tests.tokenizer_corpus import documents, write_prepared
from tokenizer.split import split_of
from tokenizer.stats import render, token_stats
from tokenizer.token_shards import SPLITS, TokenShard, read_token_manifest, token_shard_paths
from tokenizer.tokenizer import Tokenizer
from tokenizer.train import train_tokenizer

VAL_FRACTION = 0.2


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return write_prepared(tmp_path_factory.mktemp("prepared"), documents(), shards=3)


@pytest.fixture(scope="module")
def model(prepared, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("tokenizer")
    train_tokenizer(shard_paths(str(prepared)), output, vocab_size=3000, input_sentence_size=10**6)
    return output / "tokenizer.model"


def tokenize(prepared: Path, model: Path, output: Path, *extra: str) -> int:
    args = ["tokenize", str(prepared), "--tokenizer", str(model), "--output", str(output)]
    return cli.main([*args, "--val-fraction", str(VAL_FRACTION), *extra])


@pytest.fixture(scope="module")
def tokens(prepared, model, tmp_path_factory) -> Path:
    output = tmp_path_factory.mktemp("tokens")
    assert tokenize(prepared, model, output) == 0
    return output


def read_all(directory: Path) -> dict[str, tuple[str, np.ndarray, str, str | None]]:
    """{id: (split, tokens, source, language)} over every shard of a token dataset."""
    rows = {}
    for split in SPLITS:
        for path in token_shard_paths(directory, split):
            shard = TokenShard.open(path)
            for i, doc_id in enumerate(shard.ids):
                rows[doc_id] = (split, shard.document(i), shard.sources[i], shard.languages[i])
    return rows


def test_shards_round_trip_to_the_tokenizer_ids(tokens, model):
    tokenizer = Tokenizer(model)
    rows = read_all(tokens)
    docs = documents()
    assert set(rows) == {d.id for d in docs}
    for doc in docs:
        split, ids, source, language = rows[doc.id]
        assert ids.dtype == np.uint16
        assert ids.tolist() == tokenizer.encode(doc.text, bos=True, eos=True)
        assert tokenizer.decode(ids) == doc.text
        assert (split, source, language) == (split_of(doc.id, VAL_FRACTION), doc.source, doc.language)


def test_manifest_describes_the_shards(tokens, model):
    manifest = read_token_manifest(tokens)
    rows = read_all(tokens)
    assert (manifest["vocab_size"], manifest["bos_id"], manifest["eos_id"], manifest["dtype"]) == (
        3000,
        1,
        2,
        "uint16",
    )
    for split in SPLITS:
        entries = manifest["splits"][split]
        assert [e["path"] for e in entries] == [f"{split}/tokens-{i:05d}-of-{len(entries):05d}.arrow" for i in range(3)]
        for entry in entries:
            shard = TokenShard.open(tokens / entry["path"])
            assert (entry["documents"], entry["tokens"]) == (len(shard), len(shard.tokens))
            assert shard.tokens[shard.offsets[:-1]].tolist() == [1] * len(shard)  # every document starts with BOS
            assert shard.tokens[shard.offsets[1:] - 1].tolist() == [2] * len(shard)  # and ends with EOS
        assert manifest["tokens"][split] == sum(len(t) for s, t, _, _ in rows.values() if s == split)
    gutenberg = sum(len(t) for s, t, source, _ in rows.values() if source == "gutenberg" and s == "train")
    assert manifest["by_source"]["gutenberg"]["train"]["tokens"] == gutenberg
    assert set(manifest["by_language"]) >= {"en", "ja", "ru", "zh"}
    assert 0.1 < manifest["documents"]["val"] / sum(manifest["documents"].values()) < 0.3


def test_shards_are_memory_mapped(tokens):
    manifest = read_token_manifest(tokens)
    shard = TokenShard.open(tokens / manifest["splits"]["train"][0]["path"])
    assert not shard.tokens.flags.owndata and not shard.tokens.flags.writeable


def test_two_workers_write_the_same_bytes(tokens, prepared, model, tmp_path):
    assert tokenize(prepared, model, tmp_path, "--workers", "2") == 0
    for split in SPLITS:
        ours, theirs = token_shard_paths(tokens, split), token_shard_paths(tmp_path, split)
        assert [p.name for p in ours] == [p.name for p in theirs]
        assert all(a.read_bytes() == b.read_bytes() for a, b in zip(ours, theirs, strict=True))


def test_split_is_a_stable_function_of_the_id():
    # pinned: the rule (blake2b-64 of the id) must never change, or old validation sets leak into training
    pinned = ["train", "val", "train", "train", "val", "val", "train", "val"]
    assert [split_of(f"doc-{i}", 0.5) for i in range(8)] == pinned
    ids = [f"id-{i}" for i in range(20000)]
    small = {i for i in ids if split_of(i, 0.05) == "val"}
    large = {i for i in ids if split_of(i, 0.10) == "val"}
    assert small < large  # growing the validation share only moves documents from train to val
    assert abs(len(small) / len(ids) - 0.05) < 0.01
    assert all(split_of(i, 0.0) == "train" for i in ids[:100])


def test_empty_documents_are_counted_not_written(model, tmp_path):
    docs = [*documents()[:20], Document(id="empty-1", text="", source="udhr", language="en")]
    prepared = write_prepared(tmp_path / "prepared", docs, shards=1)
    assert tokenize(prepared, model, tmp_path / "tokens") == 0
    manifest = read_token_manifest(tmp_path / "tokens")
    assert manifest["skipped"] == {"empty_text": 1}
    assert sum(manifest["documents"].values()) == 20


def test_existing_output_needs_overwrite(tokens, prepared, model, capsys):
    assert tokenize(prepared, model, tokens) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_token_stats(tokens):
    stats = token_stats(tokens)
    manifest = json.loads((tokens / "manifest.json").read_text())
    for split in SPLITS:
        counts = {"documents": manifest["documents"][split], "tokens": manifest["tokens"][split]}
        assert stats["splits"][split] == counts
    gutenberg = manifest["by_source"]["gutenberg"]
    assert stats["by_source"]["gutenberg"]["tokens"] == sum(gutenberg[split]["tokens"] for split in SPLITS)
    assert stats["document_tokens"]["min"] > 2 and stats["manifest_mismatch"] == []
    text = render(stats)
    assert "gutenberg" in text and "median" in text


def test_portable_runner_writes_the_same_bytes(tokens, prepared, model, tmp_path, portable_runner_args):
    assert tokenize(prepared, model, tmp_path, *portable_runner_args) == 0
    for split in SPLITS:
        ours, theirs = token_shard_paths(tokens, split), token_shard_paths(tmp_path, split)
        assert [a.read_bytes() for a in ours] == [b.read_bytes() for b in theirs]


def test_demo_flow_on_prepare_output(prepared_sample, tmp_path):
    """`tokenizer train` and `tokenize` on the real `llamaprep prepare` output of the bundled web samples
    (default stages: every language kept, so the vocabulary must hold thousands of characters)."""
    model = tmp_path / "tokenizer" / "tokenizer.model"
    train = ["tokenizer", "train", str(prepared_sample), "--vocab-size", "8000", "--output", str(model.parent)]
    assert cli.main(train) == 0
    assert tokenize(prepared_sample, model, tmp_path / "tokens") == 0
    tokenizer = Tokenizer(model)
    rows = read_all(tmp_path / "tokens")
    texts = {d["id"]: d["text"] for path in shard_paths(str(prepared_sample)) for d in read_table(path).to_pylist()}
    assert set(rows) == set(texts)
    assert all(tokenizer.decode(rows[i][1]) == text for i, text in texts.items())


def test_stats_command_reads_token_directories(tokens, capsys, tmp_path):
    from pipelines.cli import main

    report = tmp_path / "tokens.html"
    assert main(["stats", str(tokens), "--html", str(report)]) == 0
    printed = capsys.readouterr().out
    assert printed == render(token_stats(tokens))
    assert "gutenberg" in printed and "<pre>" in report.read_text()
