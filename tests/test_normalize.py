"""The `normalize` stage on real Common Crawl documents and on the invalid input web text carries."""

import json
import unicodedata
from pathlib import Path

import pytest

from filters.document import Document, Rejection
from filters.normalize import NormalizeConfig, NormalizeStage, clean_text, remove_invisible
from filters.options import ConfigError
from filters.registry import stage_class

SAMPLES = [json.loads(line) for line in (Path(__file__).parent / "data/heuristics/web_samples.jsonl").open()]
BY_ID = {d["id"]: d for d in SAMPLES}


def doc(text: str, **extra) -> Document:
    return Document(id="t", text=text, source="test", **extra)


def test_registered_under_its_name():
    assert stage_class("normalize") is NormalizeStage


def test_empty_real_document_is_rejected():
    empty = BY_ID["zof2fmrn6g2psv6dlllnp4ps6ilef4sv"]
    assert empty["text"] == ""
    result = NormalizeStage().process(doc(empty["text"]))
    assert isinstance(result, Rejection) and result.reason == "normalize.empty"


@pytest.mark.parametrize("text", [" \n\t\r\n ", "\x00\x01\u200b\ufeff", "\u3000\u00a0\n\n"])
def test_invisible_or_blank_only_documents_are_rejected(text):
    result = NormalizeStage().process(doc(text))
    assert isinstance(result, Rejection) and result.reason == "normalize.empty"


def test_byte_order_mark_and_no_break_spaces_of_real_pages_are_removed():
    with_bom = BY_ID["v7wfior4fq6rjlfydmxiqbpsuxa3k7ne"]["text"]
    with_nbsp = BY_ID["tvkvymt4n4obhkpi3wjsv265hcozowz7"]["text"]
    assert "\ufeff" in with_bom and "\xa0" in with_nbsp
    assert "\ufeff" not in clean_text(with_bom)
    assert clean_text(with_nbsp) == "– o –\n\nRegistrarse"


def test_real_documents_keep_their_words():
    for sample in SAMPLES:
        normalized = clean_text(sample["text"])
        assert normalized.split() == unicodedata.normalize("NFC", remove_invisible(sample["text"])).split()
        assert "\r" not in normalized and "\n\n\n" not in normalized
        assert all(line == line.strip() for line in normalized.split("\n"))


def test_control_characters_inside_a_real_page_are_removed():
    text = BY_ID["http://9crimes.org/charlesxavier/"]["text"]
    assert "\x10\x10categories" in text
    assert "Comics and Characters: Book/Movie ... categories" not in text
    assert "\x10" not in clean_text(text) and " categories" in clean_text(text)


def test_idempotent_on_real_and_adversarial_text():
    tricky = [
        "e\x00\u0301 then cafe\u0301",  # composing only possible once the NUL is gone
        "a\r\nb\rc\u2028d\u2029e\x85f\x0cg",
        "  lead\t \u00a0 trailing \u3000 \n\n\n\n\nnext ",
        " \u0301start with a combining mark",
        "Persian \u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 and emoji \U0001f469\u200d\U0001f4bb",
        "lone surrogate \ud800 and nonchar \ufffe end",
        "\u2000\u2001 en quads compose to en spaces",
    ] + [s["text"] for s in SAMPLES]
    for form in ("NFC", "NFKC", "NFD"):
        config = NormalizeConfig(form=form)
        for text in tricky:
            once = clean_text(text, config)
            assert clean_text(once, config) == once, (form, text[:40])


def test_unicode_forms():
    assert clean_text("cafe\u0301") == "café"
    assert clean_text("ﬁne") == "ﬁne"  # NFC keeps compatibility ligatures
    assert clean_text("ﬁne", NormalizeConfig(form="NFKC")) == "fine"


def test_joiners_that_spell_words_survive():
    persian = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
    assert clean_text(persian) == persian
    assert clean_text("zero\u200bwidth") == "zerowidth"


def test_invalid_characters_are_removed_so_the_text_encodes():
    text = clean_text("bad \ud83d surrogate, \x07bell and \ufdd0 nonchar")
    assert text == "bad surrogate, bell and nonchar"
    text.encode("utf-8")


def test_whitespace_options():
    text = "a  b \n\n\n\n c\t\n"
    assert clean_text(text) == "a b\n\nc"
    assert clean_text(text, NormalizeConfig(max_blank_lines=0)) == "a b\nc"
    assert clean_text(text, NormalizeConfig(collapse_spaces=False, strip_lines=False)) == "a  b\n\n c"


def test_unchanged_document_is_returned_as_is_and_changed_one_is_a_copy():
    stage = NormalizeStage()
    clean = doc("Already clean.", url="u")
    assert stage.process(clean) is clean
    dirty = doc("Not  clean. ", url="u", language="en")
    out = stage.process(dirty)
    assert out.text == "Not clean." and out.url == "u" and out.language == "en" and dirty.text == "Not  clean. "


def test_config_from_options_and_errors():
    stage = NormalizeStage.from_options({"form": "NFKC", "max_blank_lines": "2", "strip_document": "false"})
    assert stage.config == NormalizeConfig(form="NFKC", max_blank_lines=2, strip_document=False)
    with pytest.raises(ConfigError, match="form"):
        NormalizeStage.from_options({"form": "NFX"})
    with pytest.raises(ConfigError, match="unknown option"):
        NormalizeStage.from_options({"lowercase": True})


@pytest.mark.slow
def test_fifty_megabyte_single_line_document():
    sentence = clean_text(BY_ID["http://9crimes.org/charlesxavier/"]["text"]).replace("\n", " ")
    huge = ((sentence + "  ") * (50_000_000 // (len(sentence) + 2) + 1))[:50_000_000]
    result = NormalizeStage().process(doc(huge))
    assert isinstance(result, Document)
    assert "  " not in result.text and "\n" not in result.text
    assert len(result.text) > 49_000_000
