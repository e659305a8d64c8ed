"""StackExchange dumps on real sites: counts against the raw XML, answers by score, code kept verbatim, .7z and
Posts.xml alike, bad archives and XML counted, and the `llama-stackexchange` recipe end to end."""

from __future__ import annotations

import html
import io
import re
import shutil
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import replace
from pathlib import Path

import py7zr
import pytest

from filters.document import Document
from filters.prepared import iter_documents, read_manifest
from filters.stackexchange import LLAMA_SITES, format_thread, html_to_text, parse_tags
from pipelines.formats import Oversized, ReaderConfig, Skip, parse_stream
from pipelines.read_stackexchange import SiteSelection, parse_stackexchange, site_of
from tests.conftest import SAMPLES

SE = SAMPLES / "sources" / "stackexchange"
CONLANG_7Z = SE / "conlang.meta.stackexchange.com.7z"
COFFEE = SE / "coffee.stackexchange.com" / "Posts.head.xml"
CONFIG = ReaderConfig(format="stackexchange")


def parse(path: Path, config: ReaderConfig = CONFIG) -> tuple[list[Document], list[Skip]]:
    with open(path, "rb") as raw:
        records = list(parse_stream(raw, str(path), config))
    return [r for r in records if isinstance(r, Document)], [r for r in records if isinstance(r, Skip)]


def conlang_xml(tmp_path: Path) -> Path:
    """The archive's Posts.xml, extracted with py7zr into `<tmp>/conlang.meta.stackexchange.com/`."""
    folder = tmp_path / "conlang.meta.stackexchange.com"
    with py7zr.SevenZipFile(CONLANG_7Z) as archive:
        archive.extract(path=folder, targets=["Posts.xml"])
    return folder / "Posts.xml"


def raw_rows(xml: Path) -> list[dict[str, str]]:
    """Every row's attributes, read the obvious way (the whole file at once), to check the reader against."""
    return [row.attrib for row in ET.parse(xml).getroot()]


def test_html_to_text_keeps_a_real_code_block_verbatim():
    rows = {row["Id"]: row for row in raw_rows(COFFEE)}
    body = next(row["Body"] for row in rows.values() if "Tamper 'head'" in row["Body"])
    code = html.unescape(re.search(r"<pre><code>(.*?)</code></pre>", body, re.S).group(1)).rstrip("\n")
    text = html_to_text(body)
    assert code in text and "    ||||||     < Tamper\n| [||||||||] |" in text  # indentation and runs of spaces
    assert "<p>" not in text and "<em>" not in text and "&lt;" not in text
    assert "A crude diagram:\n\n    ||||||" in text  # the paragraph and the block on their own lines


def test_html_to_text_inline_markup_lists_and_entities():
    text = html_to_text(
        "<h2>Setup</h2><p>Call <code>f(a &lt; b)</code> as in <a href='https://x.org'>the docs</a>.</p>"
        "<ul><li>one</li><li>two</li></ul><blockquote><p>caf&eacute; &amp; tea</p></blockquote>"
        "<p><img src='a.png' alt='a chart'></p>"
    )
    assert text.split("\n") == ["Setup", "", "Call f(a < b) as in the docs.", "", "  • one", "  • two", "",
                                "café & tea"]  # fmt: skip
    assert "https://x.org" not in text and "a chart" not in text


def test_tags_in_both_dump_formats():
    assert parse_tags("<discussion><chat>") == parse_tags("|discussion|chat|") == ["discussion", "chat"]
    assert parse_tags(None) == []


def test_format_thread():
    assert format_thread("T?", "body", ["x", "y"]) == "Q: T?\n\nbody\n\nA: x\n\nA: y"
    assert format_thread("T?", "", []) == "Q: T?"


@pytest.mark.parametrize("source", ["archive", "xml", "coffee"])
def test_counts_match_the_raw_dump(source, tmp_path):
    xml = COFFEE if source == "coffee" else conlang_xml(tmp_path)
    path = CONLANG_7Z if source == "archive" else xml
    kinds = Counter(re.findall(r'<row Id="\d+" PostTypeId="(\d+)"', xml.read_text(encoding="utf-8-sig")))
    docs, skips = parse(path)
    assert len(docs) == kinds["1"] and sum(d.metadata["answer_count"] for d in docs) == kinds["2"]
    assert [s.reason for s in skips] == ["not_question_or_answer"] * (kinds["4"] + kinds["5"])
    expected = {"coffee": (91, 117, 0), "archive": (54, 115, 8), "xml": (54, 115, 8)}[source]
    assert (kinds["1"], kinds["2"], kinds["4"] + kinds["5"]) == expected  # the README's counts


def test_answers_follow_score_order_on_a_real_thread(tmp_path):
    rows = raw_rows(conlang_xml(tmp_path))
    answers = {int(r["Id"]): (int(r["Score"]), html_to_text(r["Body"])) for r in rows if r.get("ParentId") == "6"}
    assert len(answers) == 13 and len({score for score, _ in answers.values()}) > 3  # scores differ: worth checking
    docs, _ = parse(CONLANG_7Z)
    thread = next(d for d in docs if d.metadata["question_id"] == 6)
    order = thread.metadata["answer_ids"]
    assert order == sorted(answers, key=lambda i: (-answers[i][0], i))  # highest score first, then oldest
    assert [answers[i][0] for i in order] == sorted((score for score, _ in answers.values()), reverse=True)
    positions = [thread.text.index("A: " + answers[i][1]) for i in order]
    assert positions == sorted(positions)
    assert thread.text.startswith("Q: What should our main site chatroom be called?\n\nEvery Stack Exchange site")
    assert (thread.id, thread.url, thread.source) == (
        "conlang.meta.stackexchange.com/6", "https://conlang.meta.stackexchange.com/questions/6", "stackexchange"
    )  # fmt: skip
    assert thread.date.isoformat() == "2018-02-06T20:36:35.583000+00:00"
    assert thread.metadata["tags"] == ["discussion", "chat"] and thread.metadata["score"] == 12


def test_every_thread_of_the_coffee_dump_is_ordered_and_free_of_tags():
    rows = raw_rows(COFFEE)
    scores = {int(r["Id"]): int(r["Score"]) for r in rows if r["PostTypeId"] == "2"}
    docs, _ = parse(COFFEE)
    for doc in docs:
        ids = doc.metadata["answer_ids"]
        assert ids == sorted(ids, key=lambda i: (-scores[i], i))
        assert not re.search(r"</?(p|a|pre|code|em|strong|li|ul|ol|blockquote|img|br)\b", doc.text)
    assert sum(len(d.metadata["answer_ids"]) > 1 for d in docs) >= 20
    assert {d.metadata["accepted_answer_id"] for d in docs if d.metadata["accepted_answer_id"]} - set(scores)


def test_archive_and_extracted_xml_give_the_same_documents(tmp_path):
    from_archive, _ = parse(CONLANG_7Z)
    from_xml, _ = parse(conlang_xml(tmp_path))
    assert len(from_archive) == 54
    assert [(d.id, d.text, d.date, d.metadata) for d in from_archive] == [
        (d.id, d.text, d.date, d.metadata) for d in from_xml
    ]


class Unseekable(io.RawIOBase):
    """A remote file: read only, no seek."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, target) -> int:
        chunk = self._data.read(len(target))
        target[: len(chunk)] = chunk
        return len(chunk)


def test_an_unseekable_archive_is_read_through_a_temporary_copy():
    records = list(parse_stackexchange(Unseekable(CONLANG_7Z.read_bytes()), str(CONLANG_7Z), CONFIG, "conlang"))
    assert sum(isinstance(r, Document) for r in records) == 54


def write_7z(path: Path, members: dict[str, bytes]) -> Path:
    with py7zr.SevenZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(data, name)
    return path


def test_bad_archives_are_counted_skips(tmp_path):
    data = CONLANG_7Z.read_bytes()
    (tmp_path / "cut.7z").write_bytes(data[: len(data) // 2])
    (tmp_path / "zero.7z").write_bytes(b"")
    write_7z(tmp_path / "empty.7z", {})
    write_7z(tmp_path / "comments.7z", {"Comments.xml": b"<comments/>"})
    for name, reason in [
        ("cut.7z", "corrupt_archive"),
        ("zero.7z", "corrupt_archive"),
        ("empty.7z", "no_posts_xml"),
        ("comments.7z", "no_posts_xml"),
    ]:
        docs, skips = parse(tmp_path / name)
        assert docs == [] and [s.reason for s in skips] == [reason], name


@pytest.mark.parametrize("packed", [False, True])
def test_malformed_xml_keeps_the_threads_read_before_it(tmp_path, packed):
    xml = conlang_xml(tmp_path).read_bytes()
    broken = xml.replace(b'<row Id="50" ', b'<row Id="50" <', 1)
    before = xml[: xml.index(b'<row Id="50" ')].decode("utf-8-sig")
    questions_before = len(re.findall(r'PostTypeId="1"', before))
    path = tmp_path / "conlang.meta.stackexchange.com-Posts.xml"
    path.write_bytes(broken)
    if packed:
        path = write_7z(tmp_path / "conlang.meta.stackexchange.com.7z", {"Posts.xml": broken})
    docs, skips = parse(path)
    assert len(docs) == questions_before > 0
    assert [s.reason for s in skips if s.reason != "not_question_or_answer"] == ["malformed_xml"]
    assert "line 48" in skips[-1].detail


def test_a_cut_posts_file_and_an_orphan_answer(tmp_path):
    xml = conlang_xml(tmp_path).read_text(encoding="utf-8-sig")
    question = re.search(r'  <row Id="6" PostTypeId="1".*\n', xml).group(0)
    path = tmp_path / "site.example.com" / "Posts.xml"
    path.parent.mkdir()
    path.write_text(xml.replace(question, "").replace("</posts>", ""), encoding="utf-8")
    docs, skips = parse(path)
    reasons = Counter(s.reason for s in skips)
    assert len(docs) == 53 and reasons["orphan_answer"] == 13 and reasons["malformed_xml"] == 1
    assert docs[0].id.startswith("site.example.com/")


def test_a_repeated_post_is_counted(tmp_path):
    xml = COFFEE.read_text(encoding="utf-8-sig")
    row = re.search(r'  <row Id="1" .*\n', xml).group(0)
    path = tmp_path / "coffee.stackexchange.com-Posts.xml"
    path.write_text(xml.replace(row, row + row), encoding="utf-8")
    docs, skips = parse(path)
    assert len(docs) == 91 and [s.reason for s in skips] == ["duplicate_post"]


def test_oversized_threads_are_read_then_dropped():
    with open(COFFEE, "rb") as raw:
        records = list(parse_stream(raw, str(COFFEE), ReaderConfig(format="stackexchange", max_document_bytes=4000)))
    oversized = [r for r in records if isinstance(r, Oversized)]
    assert 0 < len(oversized) < 91 and all(r.size > 4000 for r in oversized)
    assert len(oversized) + sum(isinstance(r, Document) for r in records) == 91


def test_site_names_and_the_llama_preset():
    assert site_of("/d/math.stackexchange.com.7z") == "math.stackexchange.com"
    assert site_of("/d/stackoverflow.com-Posts.7z") == "stackoverflow.com"
    assert site_of("/d/coffee.stackexchange.com/Posts.head.xml") == "coffee.stackexchange.com"
    assert site_of("gs://b/coffee.stackexchange.com-Posts.xml.bz2") == "coffee.stackexchange.com"
    assert len(set(LLAMA_SITES)) == 28 and "stackoverflow.com" in LLAMA_SITES
    llama = SiteSelection(("llama",))
    assert llama.selects("math.stackexchange.com") and not llama.selects("conlang.meta.stackexchange.com")
    assert SiteSelection().selects("conlang.meta.stackexchange.com")
    with open(CONLANG_7Z, "rb") as raw:
        records = list(parse_stackexchange(raw, str(CONLANG_7Z), replace(CONFIG, sites=("llama",)), "conlang"))
    assert [(type(r), r.reason) for r in records] == [(Skip, "site_not_selected")]


def test_other_files_of_a_site_folder_are_skipped(tmp_path):
    (tmp_path / "Tags.xml").write_text("<tags/>")
    docs, skips = parse(tmp_path / "Tags.xml")
    assert docs == [] and [s.reason for s in skips] == ["not_posts_file"]


def test_prepare_recipe_end_to_end(tmp_path, cli):
    """The archive, the same site extracted (exact duplicates), and the coffee dump: every thread accounted."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(CONLANG_7Z, inputs)
    shutil.copytree(COFFEE.parent, inputs / COFFEE.parent.name)
    conlang_xml(inputs)
    out = tmp_path / "out"
    assert cli("prepare", "--recipe", "llama-stackexchange", inputs, "-o", out, "-q") == 0
    counts = read_manifest(str(out))["counts"]
    assert counts["balanced"] and counts["read"] == counts["kept"] + counts["dropped_total"]
    assert counts["read"] == 54 + 54 + 91 and counts["kept"] == 54 + 91
    assert sum(counts["dropped"].values()) == 54 and all(r.startswith("exact_dedup") for r in counts["dropped"])
    assert counts["skipped"] == {"not_question_or_answer": 16}
    docs = {d.id: d for d in iter_documents(str(out))}
    assert len(docs) == 145 and {d.source for d in docs.values()} == {"stackexchange"}
    tamper = next(d for d in docs.values() if "< Tamper 'head'" in d.text)
    assert "\n    ||||||     < Tamper\n| [||||||||] | < Tamper 'head'" in tamper.text  # normalize kept the code
