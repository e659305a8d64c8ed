"""Gopher quality and repetition filters on hand-picked real web documents (kept and dropped)."""

import json
import random
from pathlib import Path

import numpy as np
import pytest

from filters.document import Document, Rejection
from filters.gopher import (
    GopherQualityConfig,
    GopherQualityFilter,
    GopherRepetitionConfig,
    GopherRepetitionFilter,
    dup_ngram_char_frac,
    duplicate_fractions,
    gopher_quality_reason,
    gopher_repetition_reason,
    top_ngram_char_frac,
    word_hashes_and_lengths,
)
from filters.options import ConfigError
from filters.registry import stage_class
from filters.text_stats import split_words

SAMPLES = [json.loads(line) for line in (Path(__file__).parent / "data/heuristics/web_samples.jsonl").open()]
BY_ID = {d["id"]: d for d in SAMPLES}
CCNET_HEAD = [d for d in SAMPLES if d["source"] == "ccnet-head"]
CITY_DOGS = "http://9pmstudios.com/9pm-studios-lends-support-to-city-dogs-rescue-city-kitties/"
STANLEY_WALK = "http://akindleinhongkong.blogspot.com/2012/02/walking-tour-stanley.html"


def as_doc(sample: dict, **extra) -> Document:
    return Document(id=sample["id"], text=sample["text"], source=sample["source"], url=sample["url"], **extra)


def outcome(stage, sample: dict, **extra) -> str:
    result = stage.process(as_doc(sample, **extra))
    return result.reason if isinstance(result, Rejection) else "kept"


def test_registered_names():
    assert stage_class("gopher_quality") is GopherQualityFilter
    assert stage_class("gopher_repetition") is GopherRepetitionFilter


def test_defaults_are_the_published_values():
    quality = GopherQualityConfig()
    assert (quality.min_doc_words, quality.max_doc_words) == (50, 100_000)
    assert (quality.min_avg_word_length, quality.max_avg_word_length) == (3, 10)
    assert quality.max_hash_word_ratio == quality.max_ellipsis_word_ratio == 0.1
    assert (quality.max_bullet_lines_ratio, quality.max_ellipsis_lines_ratio) == (0.9, 0.3)
    assert (quality.min_alpha_words_ratio, quality.min_stop_words) == (0.8, 2)
    assert quality.stop_words == ["the", "be", "to", "of", "and", "that", "have", "with"]
    rep = GopherRepetitionConfig()
    assert (rep.max_dup_line_frac, rep.max_dup_para_frac) == (0.3, 0.3)
    assert (rep.max_dup_line_char_frac, rep.max_dup_para_char_frac) == (0.2, 0.2)
    assert (rep.top_ngram_sizes, rep.top_ngram_max_fracs) == ([2, 3, 4], [0.2, 0.18, 0.16])
    assert rep.dup_ngram_sizes == [5, 6, 7, 8, 9, 10]
    assert rep.dup_ngram_max_fracs == [0.15, 0.14, 0.13, 0.12, 0.11, 0.10]


# ---- quality -----------------------------------------------------------------------------------------------

QUALITY_DROPS = {
    "zof2fmrn6g2psv6dlllnp4ps6ilef4sv": "word_count",  # empty page
    "tvkvymt4n4obhkpi3wjsv265hcozowz7": "word_count",  # "Registrarse" login stub
    "yrzeyn2yw3ydteybtefqauda5iu6ar53": "alpha_words",  # repository record: handles, dates, numbers
    "5vfthqpipzsjz57aunyw5mbj57a7fogu": "alpha_words",  # wiki "what links here" list
    "hgefpydayo4t6hvto2hioj2lqszpecd3": "mean_word_length",  # blog page full of raw HTML and image URLs
    "dg46jrylmhof6whsd4w3isvkjlk4t7mq": "ellipsis_lines",  # Spanish blog index of truncated teasers
    "plbahf4gvmtbmi5ct3wk7fbndimasuob": "stop_words",  # Spanish shop page: no English stop words
}


@pytest.mark.parametrize("doc_id,rule", QUALITY_DROPS.items())
def test_quality_drops_real_low_quality_pages(doc_id, rule):
    assert outcome(GopherQualityFilter(), BY_ID[doc_id]) == f"gopher_quality.{rule}"


def test_quality_keeps_ccnet_head_documents_and_a_good_cc_page():
    kept = [d for d in CCNET_HEAD if outcome(GopherQualityFilter(), d) == "kept"]
    assert len(kept) >= 10
    assert outcome(GopherQualityFilter(), BY_ID["dhpdbiqbt7epsjgtxb75pzakuoqdyy2m"]) == "kept"


def test_stop_word_rule_is_english_only_when_the_language_is_known():
    spanish, chinese = BY_ID["plbahf4gvmtbmi5ct3wk7fbndimasuob"], BY_ID["qujjfdcvqck2ipbkuvqh6k2vgrfaahgb"]
    stage = GopherQualityFilter()
    assert outcome(stage, spanish) == outcome(stage, chinese) == "gopher_quality.stop_words"
    assert outcome(stage, spanish, language="es") == "kept"
    assert outcome(stage, chinese, language="zh") == "kept"  # CJK characters count as words
    assert outcome(stage, spanish, language="en") == "gopher_quality.stop_words"
    spanish_words = GopherQualityFilter.from_options({"stop_words": "el,la,de,que,y,en", "stop_words_languages": "es"})
    assert outcome(spanish_words, spanish, language="es") == "kept"


def test_rules_fire_on_edited_real_text():
    text = BY_ID[STANLEY_WALK]["text"]
    config = GopherQualityConfig()
    assert gopher_quality_reason(text, config) is None
    lines = text.split("\n")
    assert gopher_quality_reason("\n".join("• " + line for line in lines), config) == "bullet_lines"
    assert gopher_quality_reason("\n".join(line + " ..." for line in lines), config) == "ellipsis_lines"
    words = text.split()
    assert gopher_quality_reason(" ".join(w + " #" for w in words[:300]), config) == "hash_ratio"
    assert gopher_quality_reason(" ".join(w + "…" for w in words[:300]), config) == "ellipsis_ratio"
    assert gopher_quality_reason(" ".join(words[:49]), config) == "word_count"
    assert gopher_quality_reason(" ".join(words[:49]), GopherQualityConfig(min_doc_words=40)) is None
    assert gopher_quality_reason(text, GopherQualityConfig(max_doc_words=len(words) - 1)) == "word_count"


def test_quality_config_validation():
    with pytest.raises(ConfigError):
        GopherQualityFilter.from_options({"min_doc_words": 10, "max_doc_words": 5})
    with pytest.raises(ConfigError, match="min_alpha_words_ratio"):
        GopherQualityFilter.from_options({"min_alpha_words_ratio": 1.5})


# ---- repetition --------------------------------------------------------------------------------------------

REPETITION_DROPS = {
    "d3dts4l6sqkzaewpwgb2naqw7txsgm4d": "dup_line_frac",  # museum record whose title line is repeated
    "v7wfior4fq6rjlfydmxiqbpsuxa3k7ne": "dup_line_frac",  # blog with repeated navigation lines
    "7saufcxg6kyj6pppo3ne7rrrx2pt6wvi": "top_2gram_char_frac",  # "malaria professionals" header
    "stcdwwq5pnw2qgo3mbk4gxa42vbyyzds": "top_4gram_char_frac",  # US Senate actions: "2012, 7:00 pm ET"
    "hlwb5enqm7czkx7fm54774oob2vd33vd": "dup_5gram_char_frac",  # "with score of 5 or more" twice
    CITY_DOGS: "dup_5gram_char_frac",  # "City Dogs Rescue & City Kitties" six times in 230 words
}


@pytest.mark.parametrize("doc_id,rule", REPETITION_DROPS.items())
def test_repetition_drops_real_repetitive_pages(doc_id, rule):
    assert outcome(GopherRepetitionFilter(), BY_ID[doc_id]) == f"gopher_repetition.{rule}"


def test_repetition_keeps_varied_real_documents():
    kept = [d["id"] for d in CCNET_HEAD if outcome(GopherRepetitionFilter(), d) == "kept"]
    assert len(kept) == len(CCNET_HEAD) - 1 and CITY_DOGS not in kept
    assert outcome(GopherRepetitionFilter(), BY_ID["qujjfdcvqck2ipbkuvqh6k2vgrfaahgb"]) == "kept"  # Chinese blog


def test_repetition_thresholds_from_cli_strings():
    lenient = GopherRepetitionFilter.from_options({"dup_ngram_max_fracs": "0.3,0.3,0.3,0.3,0.3,0.3"})
    assert outcome(lenient, BY_ID[CITY_DOGS]) == "kept"
    with pytest.raises(ConfigError, match="same length"):
        GopherRepetitionFilter.from_options({"top_ngram_sizes": "2,3"})


def test_duplicate_fractions_count_repeats_not_first_occurrences():
    assert duplicate_fractions(["ab", "cd", "ab", "ab"]) == (0.5, 0.5)
    assert duplicate_fractions([]) == (0.0, 0.0)


def reference_dup_ngram_char_frac(words: list[str], n: int) -> float:
    """Direct transcription of the paper's definition, for checking the vectorised version."""
    positions: dict[tuple[str, ...], list[int]] = {}
    for i in range(len(words) - n + 1):
        positions.setdefault(tuple(words[i : i + n]), []).append(i)
    covered = set()
    for starts in positions.values():
        if len(starts) > 1:
            covered.update(j for i in starts for j in range(i, i + n))
    total = sum(map(len, words))
    return sum(len(words[j]) for j in covered) / total if total else 0.0


def reference_top_ngram_char_frac(words: list[str], n: int) -> float:
    counts: dict[tuple[str, ...], int] = {}
    for i in range(len(words) - n + 1):
        gram = tuple(words[i : i + n])
        counts[gram] = counts.get(gram, 0) + 1
    if not counts or max(counts.values()) < 2:
        return 0.0
    top = max(counts.values())
    chars = max(sum(map(len, g)) for g, c in counts.items() if c == top)
    return top * chars / sum(map(len, words))


def test_vectorised_ngram_fractions_match_the_definition_on_real_text():
    for sample in SAMPLES:
        words = split_words(sample["text"])
        hashes, lengths = word_hashes_and_lengths(sample["text"])
        assert list(lengths) == [len(w) for w in words]
        for n in (2, 3, 4):
            assert top_ngram_char_frac(hashes, lengths, n) == pytest.approx(reference_top_ngram_char_frac(words, n))
        for n in (5, 7, 10):
            assert dup_ngram_char_frac(hashes, lengths, n) == pytest.approx(reference_dup_ngram_char_frac(words, n))


@pytest.mark.parametrize("middle", [" ", " café ", " 中文字符 ", " \u3000 "])  # numpy and str paths
def test_word_hashing_is_chunked_without_splitting_words(monkeypatch, middle):
    text = BY_ID[CITY_DOGS]["text"] + middle + BY_ID[CITY_DOGS]["text"]
    whole = word_hashes_and_lengths(text)
    monkeypatch.setattr("filters.gopher._CHUNK_CHARS", 7)
    chunked = word_hashes_and_lengths(text)
    assert np.array_equal(whole[0], chunked[0]) and np.array_equal(whole[1], chunked[1])
    assert list(whole[1]) == [len(w) for w in split_words(text)]
    half = (len(whole[0]) - len(split_words(middle))) // 2
    assert np.array_equal(whole[0][:half], whole[0][-half:])  # equal words hash equally


@pytest.mark.slow
def test_fifty_megabyte_single_line_documents():
    """Huge inputs finish with a sensible reason: word count stops early; repetition stays O(W log W)."""
    source = " ".join(d["text"] for d in CCNET_HEAD).split()
    repeated = " ".join(source)
    huge = ((repeated + " ") * (50_000_000 // len(repeated) + 1))[:50_000_000]
    assert gopher_quality_reason(huge, GopherQualityConfig()) == "word_count"
    assert gopher_repetition_reason(huge, GopherRepetitionConfig()) == "dup_5gram_char_frac"
    random.seed(0)
    shuffled = " ".join(random.choices(source, k=300_000))  # ~2 MB of varied words: every n-gram rule runs
    assert gopher_repetition_reason(shuffled, GopherRepetitionConfig()) is None


@pytest.mark.parametrize("text", ["", "\n\n \t", "\x00\x01 \ud800 broken \udfff surrogates \ufffd"])
def test_degenerate_input_gets_a_verdict_not_an_error(text):
    assert gopher_quality_reason(text, GopherQualityConfig()) == "word_count"
    assert gopher_repetition_reason(text, GopherRepetitionConfig()) is None  # nothing repeated
    hashes, lengths = word_hashes_and_lengths(text)
    assert len(hashes) == len(lengths) == len(split_words(text))
