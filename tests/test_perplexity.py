"""Perplexity stage against a real KenLM model built here from bundled text.

The test trains a small SentencePiece model and writes a bigram ARPA model (absolute-discounting backoff,
counted in a few lines below) from four fifths of the bundled well-formed text (Debian Policy, Debian
FAQ, Botchan), normalized as CCNet does. It checks that the stage's perplexities equal (1) kenlm scoring
the same normalized, tokenized lines directly and (2) the backoff formula evaluated on the ARPA tables by
hand, and that the held-apart fifth lands in lower buckets than boilerplate web pages (link lists,
navigation) under CCNet's 30th/60th-percentile cut-offs.
"""

from __future__ import annotations

import gzip
import io
import json
import math
from collections import Counter
from pathlib import Path

import pytest

from filters.ccnet_normalize import normalize_for_lm
from filters.document import Document, Rejection
from filters.options import ConfigError, build_config
from filters.perplexity import PerplexityConfig, PerplexityStage, perplexity_bucket

kenlm = pytest.importorskip("kenlm")
sentencepiece = pytest.importorskip("sentencepiece")

SAMPLES = Path(__file__).resolve().parents[1] / "data" / "samples" / "quality"
DISCOUNT = 0.5


def read_texts(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f]


Tables = tuple[dict[str, float], dict[str, float], dict[tuple[str, str], float]]


def bigram_tables(sentences: list[list[str]]) -> Tables:
    """log10 unigram probabilities (add-one), log10 backoff weights, log10 discounted bigram probabilities."""
    unigrams = Counter(token for sentence in sentences for token in [*sentence, "</s>"])
    bigrams = Counter(pair for s in sentences for pair in zip(["<s>", *s], [*s, "</s>"], strict=True))
    vocabulary = [*unigrams, "<unk>"]
    total = sum(unigrams.values()) + len(vocabulary)
    p_unigram = {word: (unigrams[word] + 1) / total for word in vocabulary}
    history_counts: Counter = Counter()
    followers: dict[str, list[str]] = {}
    for (history, word), count in bigrams.items():
        history_counts[history] += count
        followers.setdefault(history, []).append(word)
    log_bigram = {(h, w): math.log10((count - DISCOUNT) / history_counts[h]) for (h, w), count in bigrams.items()}
    log_backoff = {}
    for history, words in followers.items():
        left_over = DISCOUNT * len(words) / history_counts[history]
        unseen_mass = 1.0 - sum(p_unigram[w] for w in words)
        log_backoff[history] = math.log10(left_over / unseen_mass)
    log_unigram = {word: math.log10(p) for word, p in p_unigram.items()}
    return log_unigram, log_backoff, log_bigram


def write_arpa(path: Path, tables: Tables) -> None:
    log_unigram, log_backoff, log_bigram = tables
    lines = ["\\data\\", f"ngram 1={len(log_unigram) + 1}", f"ngram 2={len(log_bigram)}", "", "\\1-grams:"]
    lines.append(f"-99\t<s>\t{log_backoff['<s>']:.7f}")
    for word, logp in log_unigram.items():
        lines.append(f"{logp:.7f}\t{word}\t{log_backoff.get(word, 0.0):.7f}")
    lines += ["", "\\2-grams:"]
    lines += [f"{logp:.7f}\t{h} {w}" for (h, w), logp in log_bigram.items()]
    lines += ["", "\\end\\", ""]
    path.write_text("\n".join(lines), encoding="utf-8")


def by_hand_perplexity(text: str, sp, tables: Tables) -> float:
    log_unigram, log_backoff, log_bigram = tables
    total, length = 0.0, 0
    for line in text.split("\n"):
        pieces = [p if p in log_unigram else "<unk>" for p in sp.encode_as_pieces(normalize_for_lm(line))]
        for history, word in zip(["<s>", *pieces], [*pieces, "</s>"], strict=True):
            if (history, word) in log_bigram:
                total += log_bigram[(history, word)]
            else:
                total += log_backoff.get(history, 0.0) + log_unigram[word]
        length += len(pieces) + 1
    return 10 ** (-total / length)


def well_formed() -> list[str]:
    names = ("debian-policy", "botchan", "debian-faq")
    return [text for name in names for text in read_texts(SAMPLES / "positive" / f"{name}.jsonl.gz")]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lm")
    training_texts = [text for i, text in enumerate(well_formed()) if i % 5]
    training_lines = [normalize_for_lm(line) for text in training_texts for line in text.split("\n")]
    training_lines = [line for line in training_lines if line]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(training_lines),
        model_writer=model,
        vocab_size=800,
        model_type="unigram",
        minloglevel=2,
    )
    sp_path = folder / "en.sp.model"
    sp_path.write_bytes(model.getvalue())
    sp = sentencepiece.SentencePieceProcessor(model_file=str(sp_path))
    tables = bigram_tables([sp.encode_as_pieces(line) for line in training_lines])
    arpa_path = folder / "en.arpa"
    write_arpa(arpa_path, tables)
    return {"sp_path": str(sp_path), "arpa_path": str(arpa_path), "sp": sp, "tables": tables, "folder": folder}


def well_formed_and_boilerplate() -> tuple[list[str], list[str]]:
    held_apart = [text for i, text in enumerate(well_formed()) if i % 5 == 0]
    return held_apart[:40], read_texts(SAMPLES / "negative" / "cc-2019-30-en-non-prose.jsonl.gz")[:40]


def make_stage(models, **options) -> PerplexityStage:
    values = {"model_path": models["arpa_path"], "sp_model_path": models["sp_path"], **options}
    stage = PerplexityStage(build_config(PerplexityConfig, values, "perplexity"))
    stage.setup()
    return stage


def test_stage_equals_kenlm_directly_and_the_arpa_formula(models):
    good, boilerplate = well_formed_and_boilerplate()
    docs = [Document(id=str(i), text=t, source="s", language="en") for i, t in enumerate(good + boilerplate)]
    results = make_stage(models).process_batch(docs)
    direct = kenlm.Model(models["arpa_path"])
    sp = models["sp"]
    for doc in results:
        log_score, length = 0.0, 0
        for line in doc.text.split("\n"):
            pieces = sp.encode_as_pieces(normalize_for_lm(line))
            log_score += direct.score(" ".join(pieces), bos=True, eos=True)
            length += len(pieces) + 1
        assert doc.perplexity == pytest.approx(10 ** (-log_score / length), rel=1e-9)
        assert doc.perplexity == pytest.approx(by_hand_perplexity(doc.text, sp, models["tables"]), rel=1e-4)
        assert doc.perplexity_bucket == "all"  # no cut-offs configured


def test_well_formed_text_lands_in_lower_buckets_than_boilerplate(models):
    good, boilerplate = well_formed_and_boilerplate()
    texts = good + boilerplate
    scored = make_stage(models).process_batch([Document(id=str(i), text=t, source="s") for i, t in enumerate(texts)])
    perplexities = sorted(doc.perplexity for doc in scored)
    head, tail = perplexities[len(texts) * 3 // 10], perplexities[len(texts) * 6 // 10]  # CCNet's percentiles
    stage = make_stage(models, cutoffs={"en": [head, tail]}, drop_buckets=["tail"], languages=["en"])
    docs = [Document(id=str(i), text=t, source="s", language="en") for i, t in enumerate(texts)]
    results = stage.process_batch(docs)
    rank = {"head": 0, "middle": 1, "tail": 2}
    good_ranks = [rank[(r.doc if isinstance(r, Rejection) else r).perplexity_bucket] for r in results[: len(good)]]
    bad_ranks = [rank[(r.doc if isinstance(r, Rejection) else r).perplexity_bucket] for r in results[len(good) :]]
    assert sum(good_ranks) / len(good_ranks) < 0.5 < 1.5 < sum(bad_ranks) / len(bad_ranks)
    dropped = [r for r in results if isinstance(r, Rejection)]
    assert dropped and all(r.reason == "perplexity.tail" for r in dropped)
    assert all(r.doc.perplexity >= tail for r in dropped)


def test_languages_without_a_model_are_kept_unscored(models):
    stage = make_stage(models, languages=["en"])
    fr = Document(id="fr", text="Bonjour tout le monde.", source="s", language="fr")
    empty = Document(id="e", text="  ", source="s", language="en")
    assert stage.process_batch([fr, empty]) == [fr, empty]
    assert fr.perplexity is None and empty.perplexity is None


def test_language_templated_paths(models):
    folder = models["folder"]
    stage = make_stage(
        models,
        model_path=str(folder / "{language}.arpa"),
        sp_model_path=str(folder / "{language}.sp.model"),
        languages=["en"],
    )
    doc = stage.process_batch([Document(id="a", text="The package must be installed.", source="s", language="en")])[0]
    assert doc.perplexity is not None and doc.perplexity > 1


def test_bucket_rules_and_config_errors():
    cutoffs = {"en": (100.0, 300.0), "*": (50.0, 60.0)}
    assert [perplexity_bucket(p, "en", cutoffs) for p in (99.9, 100.0, 299.0, 300.0)] == [
        "head",
        "middle",
        "middle",
        "tail",
    ]
    assert perplexity_bucket(55.0, "de", cutoffs) == "middle"
    assert perplexity_bucket(55.0, "de", {"en": (1.0, 2.0)}) == "all"
    with pytest.raises(ConfigError, match="required"):
        build_config(PerplexityConfig, {"model_path": "x.arpa"}, "perplexity")
    with pytest.raises(ConfigError, match="languages must list"):
        build_config(PerplexityConfig, {"model_path": "{language}.arpa", "sp_model_path": "s"}, "perplexity")
    with pytest.raises(ConfigError, match="head <= tail"):
        build_config(PerplexityConfig, {"model_path": "m", "sp_model_path": "s", "cutoffs": {"en": [5, 1]}}, "p")
    with pytest.raises(ConfigError, match="unknown bucket"):
        build_config(PerplexityConfig, {"model_path": "m", "sp_model_path": "s", "drop_buckets": ["low"]}, "p")
