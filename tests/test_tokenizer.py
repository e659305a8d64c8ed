"""Training LLaMA's tokenizer on real multilingual text: settings read back from the model, digit
splitting, byte fallback, lossless round trips, seeded sampling and clear vocabulary-size errors."""

from __future__ import annotations

import json
import os

import pytest

from filters.options import ConfigError
from filters.prepared import shard_paths
from pipelines import cli
from tests.tokenizer_corpus import documents, works, write_prepared
from tokenizer.model_proto import load_model_proto
from tokenizer.sentences import parse_weights, sample_sentences, split_long_line
from tokenizer.settings import DEPRECATED, LLAMA_SETTINGS, NORMALIZER_FIELDS, RUN_DEPENDENT, trainer_settings
from tokenizer.tokenizer import Tokenizer
from tokenizer.train import train_tokenizer

VOCAB = 3000  # the 17 languages need ~2100 characters at LLaMA's coverage, plus 259 byte/special pieces


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return write_prepared(tmp_path_factory.mktemp("prepared"), documents())


@pytest.fixture(scope="module")
def trained(prepared, tmp_path_factory):
    output = tmp_path_factory.mktemp("tokenizer")
    record = train_tokenizer(shard_paths(str(prepared)), output, vocab_size=VOCAB, input_sentence_size=10**6)
    return output, record


@pytest.fixture(scope="module")
def tokenizer(trained):
    return Tokenizer(trained[0] / "tokenizer.model")


def test_model_proto_has_every_llama_setting(trained):
    proto = load_model_proto(trained[0] / "tokenizer.model")
    assert proto.trainer_spec.vocab_size == VOCAB
    for setting in LLAMA_SETTINGS:
        if setting.name in RUN_DEPENDENT or setting.name in DEPRECATED:
            continue
        if setting.name in NORMALIZER_FIELDS:
            field = "name" if setting.name == "normalization_rule_name" else setting.name
            assert getattr(proto.normalizer_spec, field) == setting.value, setting.name
        elif setting.name == "model_type":
            assert proto.trainer_spec.model_type == proto.trainer_spec.BPE
        else:
            assert getattr(proto.trainer_spec, setting.name) == pytest.approx(setting.value), setting.name
    assert proto.trainer_spec.character_coverage == pytest.approx(0.99995)


def test_trainer_settings_refuse_departures_from_llama():
    with pytest.raises(ValueError, match="split_digits"):
        trainer_settings(split_digits=False)


def test_record_lists_settings_and_sample(trained):
    output, record = trained
    on_disk = json.loads((output / "tokenizer.json").read_text())
    assert on_disk == json.loads(json.dumps(record))
    assert on_disk["trainer_flags"]["byte_fallback"] is True
    assert on_disk["normalizer_flags"] == {
        "normalization_rule_name": "identity",
        "add_dummy_prefix": True,
        "remove_extra_whitespaces": False,
    }
    languages = on_disk["sample"]["sentences_by_language"]
    assert {"en", "ja", "ru", "zh", "th"} <= set(languages)
    assert on_disk["sample"]["sentences_sampled"] == sum(languages.values())
    vocab_lines = (output / "tokenizer.vocab").read_text(encoding="utf-8").splitlines()
    assert len(vocab_lines) == VOCAB and vocab_lines[:3] == ["<unk>\t0", "<s>\t0", "</s>\t0"]


def test_reference_interface(tokenizer):
    assert (tokenizer.n_words, tokenizer.bos_id, tokenizer.eos_id, tokenizer.pad_id) == (VOCAB, 1, 2, -1)
    plain = tokenizer.encode("Everyone has the right to life.", bos=False, eos=False)
    assert tokenizer.encode("Everyone has the right to life.", bos=True, eos=True) == [1, *plain, 2]
    assert tokenizer.decode([1, *plain, 2]) == "Everyone has the right to life."


def test_digits_are_split(tokenizer):
    pieces = [tokenizer.id_to_piece(i) for i in tokenizer.encode("In 1948, article 25 and 3.14159", False, False)]
    digit_pieces = [p.lstrip("▁") for p in pieces if any(c.isdigit() for c in p)]
    assert "".join(digit_pieces) == "1948253" + "14159"
    assert all(len(p) == 1 for p in digit_pieces)
    vocabulary = [tokenizer.id_to_piece(i) for i in range(tokenizer.n_words) if not tokenizer.sp_model.is_byte(i)]
    assert not [p for p in vocabulary if sum(c.isdigit() for c in p) > 1]


@pytest.mark.parametrize("text", ["🦙", "𠮷野家", "鬱", "Ꭰ Cherokee ᏣᎳᎩ"])
def test_byte_fallback_for_characters_outside_the_vocabulary(tokenizer, text):
    ids = tokenizer.encode(text, bos=False, eos=False)
    pieces = [tokenizer.id_to_piece(i) for i in ids]
    assert 0 not in ids  # never <unk>
    assert any(p.startswith("<0x") for p in pieces)
    assert tokenizer.decode(ids) == text


def test_round_trip_on_real_text(tokenizer):
    docs = documents()
    texts = [d.text for d in docs] + ["  two leading spaces", "tab\tand\n\nnewlines  ", "x" * 5000]
    for text, ids in zip(texts, tokenizer.encode_batch(texts, bos=True, eos=True), strict=True):
        assert tokenizer.decode(ids) == text
        assert list(ids) == tokenizer.encode(text, bos=True, eos=True)


def test_sample_is_seeded_and_weighted(prepared):
    paths = shard_paths(str(prepared))
    first, record = sample_sentences(paths, 300, seed=1, weights={}, max_sentence_length=4192)
    again, _ = sample_sentences(paths, 300, seed=1, weights={}, max_sentence_length=4192)
    other, _ = sample_sentences(paths, 300, seed=2, weights={}, max_sentence_length=4192)
    assert first == again and first != other
    assert len(first) == record.sentences == 300 < record.lines_offered
    _, record = sample_sentences(
        paths, 10**6, seed=1, weights=parse_weights(["language:ja=0", "source:gutenberg=2"]), max_sentence_length=4192
    )
    assert "ja" not in record.sentences_by_language
    assert record.sentences_by_source["gutenberg"] == 2 * sum(1 for line in _lines(documents(), "gutenberg"))


def _lines(docs, source):
    return [line for d in docs if d.source == source for line in d.text.split("\n") if line.strip()]


def test_long_lines_are_cut_not_dropped():
    japanese = next(w["text"] for w in works() if w["id"] == "neko-1").replace("\n", "")
    pieces = split_long_line(japanese, 4192)
    assert "".join(pieces) == japanese
    assert all(len(p.encode()) <= 4192 for p in pieces) and len(pieces) >= 8


@pytest.mark.parametrize("spec", ["ja=2", "language:ja", "lang:ja=1", "source:web=-1", "source:web=x"])
def test_bad_weights_are_refused(spec):
    with pytest.raises(ConfigError):
        parse_weights([spec])


def test_too_small_vocabulary_says_what_to_do(prepared, tmp_path):
    with pytest.raises(ConfigError, match=r"--vocab-size 500 is too small .*need \d+ ids"):
        train_tokenizer(shard_paths(str(prepared)), tmp_path, vocab_size=500, input_sentence_size=10**6)


def test_cli_trains_with_lower_coverage(prepared, tmp_path):
    code = cli.main(
        ["tokenizer", "train", str(prepared), "--vocab-size", "1200", "--character-coverage", "0.98",
         "--output", str(tmp_path), "--input-sentence-size", "1000", "--weight", "language:en=0.5"]
    )  # fmt: skip
    assert code == 0
    record = json.loads((tmp_path / "tokenizer.json").read_text())
    assert record["trainer_flags"]["character_coverage"] == 0.98
    assert record["sample"]["sentences_sampled"] == 1000
    assert Tokenizer(tmp_path / "tokenizer.model").n_words == 1200


def test_cli_reports_missing_shards(tmp_path, capsys):
    assert cli.main(["tokenizer", "train", str(tmp_path), "--output", str(tmp_path / "out")]) == 2
    assert "has no manifest.json: not a prepared directory, or the run did not finish" in capsys.readouterr().err


def test_info_lists_only_the_settings_a_run_changed(trained, capsys):
    assert cli.main(["tokenizer", "info", str(trained[0] / "tokenizer.model")]) == 0
    changed = {line.split(":")[0] for line in capsys.readouterr().out.splitlines()}
    expected = {"vocab_size", "input_sentence_size", "num_threads"}
    assert changed == (expected if os.cpu_count() != 80 else expected - {"num_threads"})
