"""The shipped per-source recipes: every one is a valid configuration, `--recipe` layers under --config
and flags, C4 is read as released with its provenance, and `stats` sets sources against LLaMA's mixture."""

from __future__ import annotations

import gzip
import json

import pytest

from filters.llama_sources import LLAMA_MIXTURE, LLAMA_TABLE1
from filters.prepared import iter_documents
from pipelines.config import load_prepare_config, recipe_names
from pipelines.mixture_stats import mixture_report, parse_count
from tests.conftest import SAMPLES, WET

C4 = SAMPLES / "sources" / "c4" / "c4-en.first40.json.gz"


def test_every_shipped_recipe_is_a_valid_config():
    names = recipe_names()
    assert {"llama-commoncrawl", "llama-c4"} <= set(names)
    for name in names:
        config = load_prepare_config(None, recipe=name)
        assert config.stages, name
        assert config.reader.source, f"{name} sets no source label"


def test_recipe_sources_are_the_mixture_names():
    for name in recipe_names():
        source = load_prepare_config(None, recipe=name).reader.source
        assert source in LLAMA_TABLE1, f"{name}: source {source!r} is not one of Table 1's"


def test_config_file_and_flags_apply_on_top_of_a_recipe(tmp_path):
    override = tmp_path / "more.toml"
    override.write_text('[reader]\nlimit = 5\n[minhash_dedup]\nthreshold = 0.9\n')
    config = load_prepare_config(str(override), ["langid.min_score=0.7"], recipe="llama-commoncrawl")
    assert config.reader.source == "commoncrawl" and config.reader.limit == 5
    assert config.stage_options["minhash_dedup"]["threshold"] == 0.9
    assert config.to_dict()["langid"]["min_score"] == 0.7
    assert "minhash_dedup" in config.stages


def test_unknown_recipe_is_a_one_line_user_error(cli, capsys, tmp_path):
    assert cli("prepare", "--recipe", "llama-nope", str(C4), "-o", tmp_path / "out") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown recipe 'llama-nope'" in err[0] and "llama-c4" in err[0]


def test_recipe_list(cli, capsys):
    assert cli("prepare", "--recipe", "list") == 0
    assert capsys.readouterr().out.split() == recipe_names()


def test_c4_is_read_as_released_with_its_provenance(cli, tmp_path):
    out = tmp_path / "c4"
    assert cli("prepare", "--recipe", "llama-c4", str(C4), "-o", out, "-q") == 0
    with gzip.open(C4, "rt", encoding="utf-8") as f:
        released = [json.loads(line) for line in f]
    docs = list(iter_documents(str(out)))
    assert len(docs) == len(released) == 40
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["read"] == manifest["counts"]["kept"] == 40
    by_url = {doc.url: doc for doc in docs}
    for record in released:
        doc = by_url[record["url"]]
        assert doc.source == "c4"
        assert doc.date.strftime("%Y-%m-%dT%H:%M:%SZ") == record["timestamp"]
        assert doc.text.split()[:5] == record["text"].split()[:5]


def test_mixture_report_against_table1(cli, tmp_path, capsys):
    c4 = tmp_path / "c4"
    web = tmp_path / "web"
    assert cli("prepare", "--recipe", "llama-c4", str(C4), "-o", c4, "-q") == 0
    assert cli("prepare", "--recipe", "llama-commoncrawl", "--stages", "normalize", str(WET), "-o", web, "-q") == 0
    report = mixture_report([str(c4), str(web)], token_budget=1e6)
    sources = report["sources"]
    assert sources["c4"]["tokens"] > 0 and sources["commoncrawl"]["tokens"] > 0
    assert report["tokens"] == sum(row["tokens"] for row in sources.values())
    assert sources["c4"]["tokens_needed"] == pytest.approx(1e6 * LLAMA_MIXTURE["c4"])
    assert sources["c4"]["epochs"] == pytest.approx(1e6 * 0.15 / sources["c4"]["tokens"])
    short = {warning.split(":")[0] for warning in report["warnings"]}
    assert {"github", "wikipedia", "books", "arxiv", "stackexchange"} <= short
    big_enough = mixture_report([str(c4), str(web)], token_budget=sources["c4"]["tokens"] / 0.15)
    assert "c4" not in {warning.split(":")[0] for warning in big_enough["warnings"]}
    assert cli("stats", c4, web, "--token-budget", "1M") == 0
    out = capsys.readouterr().out
    assert "WARNING: github: no tokens" in out and "c4" in out


def test_token_budget_parsing():
    assert parse_count("1.4T") == 1.4e12 and parse_count("200b") == 2e11 and parse_count("5e9") == 5e9


@pytest.mark.parametrize("option", [["--token-budget", "nan"], ["--token-budget", "0"], ["--max-epochs", "0"]])
def test_a_bad_budget_or_epoch_limit_is_a_one_line_user_error(cli, capsys, tmp_path, option):
    out = tmp_path / "c4"
    assert cli("prepare", "--recipe", "llama-c4", str(C4), "-o", out, "-q") == 0
    capsys.readouterr()
    assert cli("stats", out, "--token-budget", "1M", *option) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "must be a positive number" in err[0]


@pytest.mark.slow
def test_per_source_directories_feed_tokenizer_tokenize_and_a_mixture(cli, tmp_path):
    """Each recipe's output keeps its source label through tokenizer training, tokenize (several prepared
    directories into one token dataset) and training with a mixture over those sources."""
    from tokenizer.stats import token_stats

    wiki = SAMPLES / "sources" / "wikipedia" / "enwiki-sample-shared-pages-articles-multistream.xml.bz2"
    c4, wikipedia = tmp_path / "c4", tmp_path / "wikipedia"
    assert cli("prepare", "--recipe", "llama-c4", str(C4), "-o", c4, "-q") == 0
    assert cli("prepare", "--recipe", "llama-wikipedia", str(wiki), "-o", wikipedia, "-q") == 0
    assert cli("tokenizer", "train", c4, wikipedia, "--vocab-size", "600", "--output", tmp_path / "tok") == 0
    tokens = tmp_path / "tokens"
    model = tmp_path / "tok" / "tokenizer.model"
    assert cli("tokenize", c4, wikipedia, "--tokenizer", model, "--output", tokens, "--val-fraction", "0.1") == 0
    manifest = json.loads((tokens / "manifest.json").read_text())
    assert manifest["input"] == [str(c4), str(wikipedia)]
    stats = token_stats(tokens)
    documents = {name: counts["documents"] for name, counts in stats["by_source"].items()}
    kept = {name: json.loads((tmp_path / name / "manifest.json").read_text())["counts"]["kept"]
            for name in ("c4", "wikipedia")}  # fmt: skip
    assert documents == kept
    mixture = "c4=0.5,wikipedia=0.5"
    args = ["--data", tokens, "--mixture", mixture, "--config", "tiny", "--seq-len", "32", "--micro-batch-size", "2"]
    assert cli("train", *args, "--steps", "2", "--eval-batches", "1", "--output", tmp_path / "model") == 0
