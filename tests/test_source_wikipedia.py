"""The Wikipedia source on real dumps: pages counted by kind, wikitext cleaned as LLaMA did (links keep their
label; templates, references, tables, files and categories go; headings stay as lines), broken dumps as
counted skips, the llama-wikipedia recipe end to end and the reference URLs of `quality references`."""

from __future__ import annotations

import bz2
import html
import io
import json
import re
from collections import Counter
from datetime import UTC, datetime

import pytest

from filters.document import Document
from filters.prepared import iter_documents, read_manifest
from filters.urls import canonical_url
from filters.wikitext import Namespaces, reference_urls, wiki_to_text
from pipelines.formats import Oversized, ReaderConfig, Skip, parse_stream
from pipelines.read_wikipedia import LLAMA_LANGUAGES
from tests.conftest import SAMPLES

WIKI = SAMPLES / "sources" / "wikipedia"
ENWIKI = WIKI / "enwiki-sample-shared-pages-articles-multistream.xml.bz2"
DEWIKI = WIKI / "dewiki-sample-shared-pages-articles.xml.bz2"
FOWIKI = WIKI / "fowiki-sample.xml.bz2"
VIWIKI = WIKI / "viwiki-head-pages-articles.xml.bz2"
DUMPS = [ENWIKI, DEWIKI, FOWIKI, VIWIKI]
MEDIAWIKI = ReaderConfig(format="mediawiki")


def read(path, config: ReaderConfig = MEDIAWIKI, data: bytes | None = None) -> tuple[list[Document], list[Skip]]:
    """Documents and skips of one file (or of `data` under that file's name)."""
    raw = io.BufferedReader(io.BytesIO(path.read_bytes() if data is None else data))
    records = list(parse_stream(raw, str(path), config))
    return [r for r in records if isinstance(r, Document)], [r for r in records if isinstance(r, Skip)]


def by_title(path) -> dict[str, Document]:
    return {doc.metadata["title"]: doc for doc in read(path)[0]}


def page_kinds(xml: str) -> Counter:
    """Pages of a dump counted straight from its XML: articles, redirects and other namespaces."""
    kinds: Counter = Counter()
    for page in re.findall(r"<page>.*?</page>", xml, re.S):
        namespace = re.search(r"<ns>(-?\d+)</ns>", page).group(1)
        kinds["other_namespace" if namespace != "0" else "redirect" if "<redirect" in page else "article"] += 1
    return kinds


@pytest.mark.parametrize("path", DUMPS, ids=lambda p: p.name.split("-")[0])
def test_every_page_is_a_document_or_a_counted_skip(path):
    kinds = page_kinds(bz2.decompress(path.read_bytes()).decode("utf-8"))
    docs, skips = read(path)
    reasons = Counter(skip.reason for skip in skips)
    assert reasons["redirect"] == kinds["redirect"]
    assert reasons["not_article_namespace"] == kinds["other_namespace"]
    assert len(docs) + reasons["empty_article"] == kinds["article"]
    assert len({doc.id for doc in docs}) == len(docs)


def test_the_sample_dumps_hold_what_their_readme_says():
    assert [page_kinds(bz2.decompress(p.read_bytes()).decode()) for p in (ENWIKI, VIWIKI, FOWIKI)] == [
        {"article": 23, "redirect": 1},
        {"article": 6, "redirect": 3, "other_namespace": 1},
        {"article": 1, "other_namespace": 1},
    ]


def test_a_dump_head_without_its_closing_tag_keeps_its_pages_and_counts_the_cut():
    docs, skips = read(VIWIKI)
    assert [d.metadata["title"] for d in docs] == ["Internet Society", "Tiếng Việt", "Ohio", "California", "Thụy Điển"]
    assert [s.reason for s in skips][-1] == "truncated_xml"
    empty = [s.detail for s in skips if s.reason == "empty_article"]
    assert empty == ["2: Trang Chính"]  # the Main Page: only <div>s and templates


def test_a_template_goes_and_a_link_keeps_its_label():
    text = by_title(ENWIKI)["2008 British motorcycle Grand Prix"].text
    # {{Infobox Grand Prix motorcycle race report | Official_Name = bwin.com British Grand Prix ...}} and
    # [[2008 Grand Prix motorcycle racing season|2008 MotoGP championship]]
    assert text.startswith("The 2008 British motorcycle Grand Prix was the eighth round of the 2008 MotoGP champ")
    for gone in ("Infobox", "Official_Name", "bwin.com", "racing season", "{{", "[[", "'''", "OFFICIAL MOTOGP REPORT"):
        assert gone not in text


def test_headings_are_lines_and_empty_sections_go():
    lines = by_title(DEWIKI)["Keilwelle"].text.split("\n")
    assert {"Keilwellen-Verbindungen", "Verwendung", "Herstellung", "Funktion", "Keilnabe"} <= set(lines)
    assert "Normen" not in lines and "Weblinks" not in lines  # only tables / {{Commonscat}} under them
    assert not any("==" in line for line in lines)
    assert "Fräsen mit einem Wälz- oder Formfräser" in lines  # a list item, as its own line
    bodmin = by_title(ENWIKI)["Bodmin"].text.split("\n")
    assert "See also" in bodmin and "Beast of Bodmin" in bodmin
    assert "References" not in bodmin  # only {{Reflist|30em}} under it
    assert bodmin[-3:] == ["External links", "", "North Cornwall's BC Radio"]  # its cite templates go, a label stays


def test_files_categories_and_references_go_in_every_language():
    keilwelle = by_title(DEWIKI)["Keilwelle"].text
    for gone in ("Datei:", "Kategorie:", "thumb", "Antriebswelle mit zwei Keilprofilen", "Verbindungselement"):
        assert gone not in keilwelle
    bodmin = by_title(ENWIKI)["Bodmin"].text
    assert "File:" not in bodmin and "A Cornish cross on Old Callywith Road" not in bodmin
    sweden = by_title(VIWIKI)["Thụy Điển"].text
    assert "Thể loại:" not in sweden and "Tập tin:" not in sweden and "<ref" not in sweden
    assert "Hộp thông tin quốc gia" not in sweden  # a 7 KB infobox mwparserfromhell parses only without style tags


def test_cutting_templates_before_parsing_gives_the_text_of_the_full_parse():
    """A page with a <nowiki/> is parsed whole (braces may be literal there): the same text must come out."""
    pages = 0
    for path in DUMPS:
        xml = html.unescape(bz2.decompress(path.read_bytes()).decode())
        for wikitext in re.findall(r'<text[^>]*xml:space="preserve">(.*?)</text>', xml, re.S):
            assert wiki_to_text(wikitext) == wiki_to_text(wikitext + "\n<nowiki/>")
            pages += 1
    assert pages == 24 + 1 + 2 + 10
    code = "<syntaxhighlight lang=c>int a[2][1] = {{1}, {2}};</syntaxhighlight> {{lang|c|x}}"
    assert wiki_to_text(code) == "int a[2][1] = {{1}, {2}};"


def test_namespace_names_come_from_the_table_and_the_dump():
    assert wiki_to_text("A [[Datei:X.jpg|thumb|caption]] B [[Kategorie:Y]]") == "A B"
    assert wiki_to_text("[[Mynd:Klaksvik.png|thumb|Bygdin]] Tekst") == "Tekst"
    assert wiki_to_text("[[Special:X|label]] [[:Category:Y|see Y]]") == "label see Y"
    site = Namespaces.default().with_site({6: "Berkas", 14: "Kategori"})
    assert wiki_to_text("[[Berkas:A.png|thumb|x]] teks", site) == "teks"
    assert wiki_to_text("[[Berkas:A.png|thumb|x]] teks") == "thumb|x teks"  # an ordinary link without the names


def test_document_fields_come_from_the_dump():
    (doc,) = read(FOWIKI)[0]
    assert doc.id == "fowiki-sample/2201"
    assert doc.url == "https://fo.wikipedia.org/wiki/Klaksv%C3%ADkar_kommuna"
    assert (doc.language, doc.source) == ("fo", "wikipedia")
    assert doc.date == datetime(2016, 11, 9, 13, 0, 10, tzinfo=UTC)
    assert doc.metadata == {
        "title": "Klaksvíkar kommuna", "page_id": "2201", "revision_id": "341301", "wiki": "fowiki",
        "dump_language": "fo",
    }  # fmt: skip
    assert doc.text.startswith("Klaksvíkar kommuna er næststørsta kommuna í Føroyum.")
    urls = {d.metadata["title"]: d.url for d in read(ENWIKI)[0]}
    assert urls["Alsea (company)"] == "https://en.wikipedia.org/wiki/Alsea_(company)"
    assert urls["Alanine—oxo-acid transaminase"] == "https://en.wikipedia.org/wiki/Alanine%E2%80%94oxo-acid_transaminase"


def test_a_multistream_dump_is_read_through_all_its_streams():
    data = ENWIKI.read_bytes()
    assert data.count(b"BZh9") >= 4  # header, pages 1-10, 11-20, 21-24, footer
    docs, skips = read(ENWIKI)
    assert len(docs) == 23 and docs[-1].metadata["title"] == "Toronto Star"
    assert [s.reason for s in skips] == ["redirect"]


def test_a_truncated_bz2_keeps_the_pages_before_and_counts_one_skip():
    data = ENWIKI.read_bytes()
    docs, skips = read(ENWIKI, data=data[:70_000])  # inside the stream of pages 11-20
    assert [d.metadata["page_id"] for d in docs] == [str(n) for n in range(1, 11)]
    assert [s.reason for s in skips] == ["corrupt_compression"]


def test_malformed_xml_keeps_the_pages_before_and_counts_one_skip():
    xml = bz2.decompress(ENWIKI.read_bytes())
    broken = xml.replace(b"<title>Alanine", b"<title>Alanine</tilte>", 1)
    docs, skips = read(WIKI / "enwiki-broken.xml", data=broken)
    assert [d.metadata["title"] for d in docs] == [
        "2008 British motorcycle Grand Prix", "AACTA Award for Outstanding Achievement in Short Film Screen Craft",
    ]  # fmt: skip
    assert [s.reason for s in skips] == ["malformed_xml"]
    assert read(WIKI / "enwiki-empty.xml", data=b"")[1][0].reason == "empty_file"


def test_the_llama_language_preset_refuses_other_dumps_as_one_counted_skip():
    assert len(LLAMA_LANGUAGES) == 20
    preset = ReaderConfig(format="mediawiki", wiki_languages=("llama",))
    docs, skips = read(FOWIKI, preset)
    assert docs == [] and [s.reason for s in skips] == ["language_not_in_preset"]
    assert len(read(DEWIKI, preset)[0]) == 1
    assert len(read(FOWIKI, ReaderConfig(format="mediawiki", wiki_languages=("fo",)))[0]) == 1


def test_reference_urls_of_an_article():
    wikitext = bz2.decompress(ENWIKI.read_bytes()).decode()
    page = re.search(r"<title>2008 British motorcycle Grand Prix</title>.*?</page>", wikitext, re.S).group(0)
    urls = reference_urls(page)
    # the {{cite web | url = ...}} of its references list; the table's [http://resources.motogp.com ...] links
    # are not references
    assert urls == ["http://www.motogp.com/en/Results+Statistics/2008/GBR/"]


def test_an_article_over_the_size_limit_is_read_as_oversized():
    sizes = [len(doc.text.encode()) for doc in read(ENWIKI)[0]]
    raw = io.BufferedReader(io.BytesIO(ENWIKI.read_bytes()))
    records = list(parse_stream(raw, str(ENWIKI), ReaderConfig(format="mediawiki", max_document_bytes=10_000)))
    oversized = [r for r in records if isinstance(r, Oversized)]
    assert len(oversized) == sum(size > 10_000 for size in sizes) > 0
    assert {r.doc.metadata["title"] for r in oversized} >= {"Bazooka", "Allen R. Morris"}


@pytest.mark.slow
def test_prepare_with_the_wikipedia_recipe_accounts_for_every_page(cli, tmp_path):
    out = tmp_path / "out"
    assert cli("prepare", "--recipe", "llama-wikipedia", ENWIKI, DEWIKI, "-o", out, "-q") == 0
    counts = read_manifest(str(out))["counts"]
    assert counts["read"] == counts["kept"] + counts["dropped_total"] == 24
    assert counts["skipped"] == {"redirect": 1}
    docs = {doc.metadata["title"]: doc for doc in iter_documents(str(out))}
    assert docs["Keilwelle"].language == "de" and docs["Bodmin"].language == "en"
    assert {doc.source for doc in docs.values()} == {"wikipedia"}


def test_quality_references_writes_each_cited_url_once(cli, tmp_path, capsys):
    output = tmp_path / "urls.txt"
    assert cli("quality", "references", ENWIKI, FOWIKI, "-o", output) == 0
    urls = output.read_text().splitlines()
    assert urls[0] == "http://www.motogp.com/en/Results+Statistics/2008/GBR/"
    assert len(urls) == len(set(urls)) > 150
    xml = html.unescape(bz2.decompress(ENWIKI.read_bytes()).decode())
    assert "https://www.theatlantic.com/entertainment/archive/2013/11/the-stubborn-gladness-of-elizabeth-gilberts-" \
        "favorite-poet/281158/" in urls  # fmt: skip
    assert all(url in xml for url in urls)
    assert not any("web.archive.org" in url or "resources.motogp.com" in url for url in urls)
    assert "http://www.klaksvik.fo" not in urls  # an infobox's homepage link is not a reference
    printed = capsys.readouterr().out
    assert f"wrote {len(urls)} unique reference URLs" in printed and "skipped.redirect: 1" in printed


def test_a_page_mwparserfromhell_cannot_parse_is_one_counted_skip(cli, tmp_path, capsys, monkeypatch):
    """mwparserfromhell raises ParserError ("this is a bug") on a few real pages: that page is a counted skip,
    the rest of the dump is read."""
    from mwparserfromhell.parser import ParserError

    from pipelines import quality_references, read_wikipedia

    def fails_on_the_second_page(parse):
        calls = []

        def wrapped(text, *args):
            calls.append(1)
            if len(calls) == 2:
                raise ParserError("C tokenizer exited with non-empty token stack.")
            return parse(text, *args)

        return wrapped

    articles = len(read(VIWIKI)[0])
    monkeypatch.setattr(read_wikipedia, "wiki_to_text", fails_on_the_second_page(wiki_to_text))
    monkeypatch.setattr(quality_references, "reference_urls", fails_on_the_second_page(reference_urls))
    docs, skips = read(VIWIKI)
    assert len(docs) == articles - 1 and [s.reason for s in skips].count("unparseable_wikitext") == 1
    assert cli("quality", "references", VIWIKI, "-o", tmp_path / "urls.txt") == 0
    assert "skipped.unparseable_wikitext: 1" in capsys.readouterr().out


def test_an_interrupted_quality_references_run_leaves_no_temporary_file(cli, tmp_path, monkeypatch):
    from pipelines import quality_references

    def interrupted(paths, counts):
        yield "https://example.org/"
        raise KeyboardInterrupt

    monkeypatch.setattr(quality_references, "iter_reference_urls", interrupted)
    with pytest.raises(KeyboardInterrupt):
        cli("quality", "references", ENWIKI, "-o", tmp_path / "urls.txt")
    assert list(tmp_path.iterdir()) == []


def test_quality_references_memory_stays_flat_with_many_urls(monkeypatch):
    """The URLs seen live on disk: 50,000 of them (about 6 MB in a Python set) take no memory to speak of."""
    import tracemalloc

    from pipelines import quality_references
    from pipelines.read_wikipedia import Page

    pages = [Page(title=str(n), namespace=0, page_id=str(n), text=str(n)) for n in range(500)]
    monkeypatch.setattr(quality_references, "_pages", lambda path, counts: iter(pages))
    monkeypatch.setattr(
        quality_references, "reference_urls", lambda text: [f"https://example.org/{text}/{i:08d}" for i in range(100)]
    )
    counts = Counter()
    tracemalloc.start()
    try:
        unique = sum(1 for _ in quality_references.iter_reference_urls(["a.xml", "b.xml"], counts))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert unique == 50_000 and counts["urls_found"] == 100_000 and counts["files"] == 2
    assert peak < 1_500_000


def test_canonical_url_folds_only_what_never_changes_the_page():
    assert canonical_url("http://www.Example.org:80/a/b/#top") == canonical_url("https://example.org/a/b")
    assert canonical_url("https://example.org/a?x=1&y=2") == "example.org/a?x=1&y=2"
    assert canonical_url("https://example.org/A") != canonical_url("https://example.org/a")
    assert canonical_url("https://example.org:8080/a") == "example.org:8080/a"
    assert canonical_url("not a url ") == "not a url"


def test_quality_positives_joins_cited_urls_with_a_crawl(cli, tmp_path, capsys):
    """Cited pages found in a crawl (whatever their scheme, www. or fragment) are written once each;
    uncited pages, repeated copies and documents without a url are counted, not written."""
    refs = tmp_path / "refs.txt"
    assert cli("quality", "references", ENWIKI, "-o", refs) == 0
    cited = refs.read_text().splitlines()
    crawl = tmp_path / "crawl.jsonl"
    rows = [
        {"id": "first", "url": cited[0], "text": "MotoGP results"},
        {"id": "variant", "url": cited[1].replace("http://www.", "https://") + "#page", "text": "AFI winners"},
        {"id": "uncited", "url": "https://example.org/elsewhere", "text": "not cited"},
        {"id": "copy", "url": cited[0] + "/", "text": "the same page again"},
        {"id": "no-url", "text": "a page without a url"},
    ]
    crawl.write_text("".join(json.dumps(row) + "\n" for row in rows))
    output = tmp_path / "positives.jsonl"
    assert cli("quality", "positives", crawl, "--urls", refs, "-o", output) == 0
    written = [json.loads(line) for line in output.read_text().splitlines()]
    assert [row["id"] for row in written] == ["first", "variant"]
    assert written[0] == {"id": "first", "url": cited[0], "text": "MotoGP results"}
    printed = capsys.readouterr().out
    assert f"2 of the {len(cited)} cited URLs found among 5 crawl documents" in printed
    assert "1 repeated copies" in printed and "1 documents without a url" in printed
    assert cli("quality", "positives", crawl, "--urls", tmp_path / "missing.txt", "-o", output) == 2
