"""C4 line and page rules on hand-picked real web documents (kept, cleaned and dropped)."""

import json
from pathlib import Path

import pytest

from filters.c4 import C4Config, C4Filter, c4_clean
from filters.document import Document, Rejection
from filters.options import ConfigError
from filters.registry import stage_class

SAMPLES = [json.loads(line) for line in (Path(__file__).parent / "data/heuristics/web_samples.jsonl").open()]
BY_ID = {d["id"]: d for d in SAMPLES}
CCNET_HEAD = [d for d in SAMPLES if d["source"] == "ccnet-head"]
STANLEY_WALK = "http://akindleinhongkong.blogspot.com/2012/02/walking-tour-stanley.html"
CITY_DOGS = "http://9pmstudios.com/9pm-studios-lends-support-to-city-dogs-rescue-city-kitties/"
BADGE_PAGE = "sejkzm3oigavdgvgk4u23uy5xpn5oqtp"
CHINESE_BLOG = "qujjfdcvqck2ipbkuvqh6k2vgrfaahgb"


def as_doc(text: str) -> Document:
    return Document(id="t", text=text, source="test")


def test_registered_and_defaults_are_the_reference_constants():
    assert stage_class("c4") is C4Filter
    config = C4Config()
    assert (config.min_words_per_line, config.min_num_sentences, config.max_word_length) == (5, 3, 1000)
    assert set(config.end_marks) >= {".", "?", "!", '"'}
    assert config.policy_substrings == [
        "terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies",
    ]  # fmt: skip
    assert config.bad_words == [] and config.bad_words_file is None


PAGE_DROPS = {
    "zof2fmrn6g2psv6dlllnp4ps6ilef4sv": "no_lines_left",  # empty page
    "vqilwnr7xh67qhpvd7zmwk7d573gpxub": "no_lines_left",  # library site navigation, no sentence at all
    "xxhi5tgaf3kefeecjiy5ez6xu67cuare": "curly_bracket",  # forum question quoting CSS
    "uwtlyc7lfzx6eqedt7znrltlkagxdc3e": "too_few_sentences",  # wiki category stub
    "hlwb5enqm7czkx7fm54774oob2vd33vd": "too_few_sentences",  # user profile
}


@pytest.mark.parametrize("doc_id,rule", PAGE_DROPS.items())
def test_page_rules_drop_real_pages(doc_id, rule):
    result = C4Filter().process(as_doc(BY_ID[doc_id]["text"]))
    assert isinstance(result, Rejection) and result.reason == f"c4.{rule}"


def test_latex_question_is_dropped_only_once_its_lines_survive():
    """The reference checks "{" only on kept lines: this math page loses its lines first."""
    latex = BY_ID["3yoohbag44mba3tbg6i3fkfysm6gjzc7"]["text"]
    assert "{" in latex
    assert c4_clean(latex, C4Config()).reason == "curly_bracket"
    assert c4_clean(latex, C4Config(reject_curly_bracket=False)).reason is None


def test_line_rules_clean_a_real_page():
    original = BY_ID[BADGE_PAGE]["text"]
    result = C4Filter().process(as_doc(original))
    assert isinstance(result, Document)
    assert result.text.split("\n") == [
        "Answer score of 100 or more. This badge can be awarded multiple times.",
        "earned this badge 2 times.",
    ]
    outcome = c4_clean(original, C4Config())
    assert outcome.lines_kept == 2 and outcome.lines_removed["no_end_mark"] == 2


def test_ccnet_head_documents_are_kept_with_every_line_ending_in_punctuation():
    kept = 0
    for sample in CCNET_HEAD:
        outcome = c4_clean(sample["text"], C4Config())
        if outcome.reason is None:
            kept += 1
            assert all(line.endswith(tuple(C4Config().end_marks)) for line in outcome.text.split("\n"))
            assert set(outcome.text.split("\n")) <= {line.strip() for line in sample["text"].split("\n")}
    assert kept >= 10
    truncated = "http://blogs.boardprospects.com/articles/3928691/opendoor-adds-to-leadership-team-board-of-director/"
    assert BY_ID[truncated]["text"].endswith("directors...")
    assert c4_clean(BY_ID[truncated]["text"], C4Config()).reason == "no_lines_left"  # ellipsis line dropped


def insert_line(text: str, line: str) -> str:
    lines = text.split("\n")
    return "\n".join([*lines[:3], line, *lines[3:]])


def test_notice_lines_are_removed_and_citations_stripped():
    base = BY_ID[STANLEY_WALK]["text"]
    expected = c4_clean(base, C4Config()).text
    for notice in (
        "Please enable JavaScript to view the comments powered by Disqus.",
        "By using this site you agree to our Privacy Policy and Terms of Use.",
        "This website uses cookies to improve your experience.",
    ):
        assert c4_clean(insert_line(base, notice), C4Config()).text == expected
    cited = base.replace("Stanley Market", "Stanley Market[1][citation needed]", 1)
    assert "[1]" not in c4_clean(cited, C4Config()).text
    assert "[1]" in c4_clean(cited, C4Config(remove_citations=False)).text


def test_lorem_ipsum_and_code_lines_reject_the_page():
    base = BY_ID[STANLEY_WALK]["text"]
    lorem = insert_line(base, "Lorem ipsum dolor sit amet, consectetur adipiscing elit.")
    assert c4_clean(lorem, C4Config()).reason == "lorem_ipsum"
    assert c4_clean(lorem, C4Config(reject_lorem_ipsum=False)).reason is None
    code = insert_line(base, "function show() { return document.getElementById('map'); }")
    assert c4_clean(code, C4Config()).reason is None  # no end mark: the line goes first
    code = insert_line(base, "The map loads with function show() { init(); } on this page.")
    assert c4_clean(code, C4Config()).reason == "curly_bracket"


def test_bad_words_only_when_configured(tmp_path):
    text = BY_ID[CITY_DOGS]["text"]
    assert c4_clean(text, C4Config()).reason is None
    assert c4_clean(text, C4Config(bad_words=["auction"])).reason == "bad_words"
    assert c4_clean(text, C4Config(bad_words=["auct"])).reason is None  # whole words only
    words_file = tmp_path / "bad_words.txt"
    words_file.write_text("high-kill\n\n", encoding="utf-8")
    stage = C4Filter.from_options({"bad_words_file": str(words_file)})
    assert stage.process(as_doc(text)).reason == "c4.bad_words"
    with pytest.raises(ConfigError, match="bad_words_file"):
        C4Filter.from_options({"bad_words_file": str(tmp_path / "missing.txt")})


def test_chinese_page_is_judged_with_cjk_punctuation_and_words():
    text = BY_ID[CHINESE_BLOG]["text"]
    outcome = c4_clean(text, C4Config())
    assert outcome.reason is None and outcome.text.endswith("。")
    reference_marks = C4Config(end_marks=[".", "?", "!", '"'])  # the English-only reference behaviour
    assert c4_clean(text, reference_marks).reason == "no_lines_left"


def test_options_from_cli_strings():
    stage = C4Filter.from_options({"min_num_sentences": "1", "min_words_per_line": "3"})
    assert isinstance(stage.process(as_doc(BY_ID["uwtlyc7lfzx6eqedt7znrltlkagxdc3e"]["text"])), Document)
    with pytest.raises(ConfigError):
        C4Filter.from_options({"end_marks": ""})


@pytest.mark.slow
def test_long_words_and_huge_single_line():
    line = "This sentence ends well and has a " + "x" * 1001 + " word."
    assert c4_clean("\n".join([line] * 5), C4Config()).lines_removed["too_long_word"] == 5
    accented = "Ce café a un mot de " + "é" * 1001 + " lettres."  # the non-ASCII (regex) path
    assert c4_clean(accented, C4Config()).lines_removed["too_long_word"] == 1
    assert c4_clean(accented, C4Config(max_word_length=1001, min_num_sentences=1)).reason is None
    sentence = "The walking tour starts at the market and ends by the sea. "
    huge = sentence * (50_000_000 // len(sentence))
    outcome = c4_clean(huge, C4Config())
    assert outcome.reason is None and outcome.lines_kept == 1 and len(outcome.text) > 49_000_000


@pytest.mark.parametrize("text", ["", "\n \n", "\x00 \ud800 broken surrogate in a line that ends well."])
def test_degenerate_input_gets_a_reason(text):
    assert c4_clean(text, C4Config()).reason in ("no_lines_left", "too_few_sentences")
