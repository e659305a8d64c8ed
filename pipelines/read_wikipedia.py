"""MediaWiki XML dumps (`*-pages-articles*.xml[.bz2]`): one document per article, streamed.

A dump is tens of GB, so it is read with the standard library's pull parser (expat), one <page> at a
time, each page element cleared once read (memory stays at one page). mwxml would give the same pages
through ElementTree's iterparse and is one dependency more; it also raises where a truncated head of a
dump should keep its pages and count the cut.

What becomes a document: the latest revision of each page of the main namespace (ns 0) that is not a
redirect, its wikitext turned into plain text by `filters.wikitext`. Everything else is a counted Skip:
`not_article_namespace` (talk, user, project, MediaWiki: pages), `redirect` (a <redirect/> element or a
`#REDIRECT` text), `empty_article` (nothing left after cleaning), `unparseable_wikitext` (mwparserfromhell's
internal ParserError, known on a few real pages), `language_not_in_preset` (the whole file,
once, when its language is not among the wanted ones: nothing of it is parsed), `malformed_xml` and
`truncated_xml` (the XML breaks, or the file ends inside <mediawiki>: the pages before are kept; the real
heads of dumps that people cut with `head` end so), `empty_file` (no bytes at all).

The dump says its language (the root's xml:lang, else <dbname> `enwiki` -> en), which becomes each
document's `language`: the llama-wikipedia recipe runs no language ID. Urls are the dump's own article
URL (<base> without its page) plus the title with spaces as `_` and percent-encoded as MediaWiki does
(`wfUrlencode`: UTF-8 escaped, `;@$!*(),/~:` kept), so they match Wikipedia's links byte for byte.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO
from urllib.parse import quote, urlsplit

from mwparserfromhell.parser import ParserError

from filters.document import Document
from filters.wikitext import DEFAULT_NAMESPACES, Namespaces, wiki_to_text
from pipelines.formats import ReaderConfig, Record, Skip, parse_date, sized

ARTICLE_NAMESPACE = 0
# LLaMA section 2.1: "Wikipedia dumps from the June-August 2022 period, covering 20 languages, which use
# either the Latin or Cyrillic scripts".
LLAMA_LANGUAGES = (
    "bg", "ca", "cs", "da", "de", "en", "es", "fr", "hr", "hu", "it", "nl", "pl", "pt", "ro", "ru", "sl", "sr", "sv",
    "uk",
)  # fmt: skip
_REDIRECT_TEXT = re.compile(r"\s*#redirect\b", re.IGNORECASE)
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_URL_SAFE = ";@$!*(),/~:"  # MediaWiki's wfUrlencode leaves these unescaped
_CHUNK = 1 << 16


@dataclass(frozen=True)
class Site:
    """What a dump's <siteinfo> says: its language, article URL prefix and the names of its namespaces."""

    language: str
    dbname: str
    article_url: str  # "https://en.wikipedia.org/wiki/"
    namespaces: Namespaces = DEFAULT_NAMESPACES

    def url(self, title: str) -> str:
        return self.article_url + quote(title.replace(" ", "_"), safe=_URL_SAFE)


@dataclass
class Page:
    """One <page> with its latest revision."""

    title: str
    namespace: int
    page_id: str
    revision_id: str = ""
    timestamp: str = ""
    text: str = ""
    redirect: bool = False


def wiki_languages(config: ReaderConfig) -> tuple[str, ...]:
    """The languages whose dumps are read (empty: all): the reader option `wiki_languages`, where "llama"
    stands for the paper's 20 (`LLAMA_LANGUAGES`)."""
    return tuple(code for name in config.wiki_languages for code in (LLAMA_LANGUAGES if name == "llama" else (name,)))


def parse_mediawiki(stream: IO[bytes], path: str, config: ReaderConfig, name: str) -> Iterator[Record]:
    """The articles of one dump as documents; every other page, and a broken file's end, as a Skip."""
    source = config.source or "wikipedia"
    wanted = wiki_languages(config)
    site: Site | None = None
    for item in iter_dump(stream, path):
        if isinstance(item, Site):
            site = item
            if wanted and site.language not in wanted:
                yield Skip("language_not_in_preset", f"{path}: {site.dbname} ({site.language}) is not in {wanted}")
                return
        elif isinstance(item, Skip):
            yield item
        else:
            site = site or _site_from_path(path)  # a dump without <siteinfo>: named from its file, once
            yield _article(item, site, config, source, name)


def not_an_article(page: Page) -> Skip | None:
    """Why a page is not an article (another namespace, a redirect), or None for an article."""
    if page.namespace != ARTICLE_NAMESPACE:
        return Skip("not_article_namespace", f"{page.page_id}: ns {page.namespace} {page.title}")
    if page.redirect or _REDIRECT_TEXT.match(page.text):
        return Skip("redirect", f"{page.page_id}: {page.title}")
    return None


def _article(page: Page, site: Site, config: ReaderConfig, source: str, name: str) -> Record:
    skip = not_an_article(page)
    if skip is not None:
        return skip
    try:
        text = wiki_to_text(page.text, site.namespaces)
    except ParserError as error:  # mwparserfromhell's "this is a bug" on a few real pages: one page, not the dump
        return Skip("unparseable_wikitext", f"{page.page_id}: {page.title}: {error}")
    if not text:
        return Skip("empty_article", f"{page.page_id}: {page.title}")
    doc = Document(
        id=f"{name}/{page.page_id}",
        text=text,
        source=source,
        url=site.url(page.title),
        date=parse_date(page.timestamp),
        language=site.language,
        metadata={
            "title": page.title,
            "page_id": page.page_id,
            "revision_id": page.revision_id,
            "wiki": site.dbname,
            "dump_language": site.language,
        },
    )
    return sized(doc, config, len(text.encode("utf-8")))


# ---------------------------------------------------------------- the XML


def iter_dump(stream: IO[bytes], path: str) -> Iterator[Site | Page | Skip]:
    """The dump's Site (first, once its <siteinfo> is read) and its pages, one element in memory at a time.
    Broken XML ends the file with a `malformed_xml` Skip, a file ending inside <mediawiki> with
    `truncated_xml`, a file without a byte with `empty_file`; a decompression error propagates (`parse_stream`
    counts it) after every page whose bytes came out before it: chunks are taken with `read1`, which hands
    over what one step decompressed (a buffered `read(n)` would drop the bytes it had gathered when the next
    step fails)."""
    parser = ET.XMLPullParser(events=("start", "end"))
    read = getattr(stream, "read1", stream.read)
    state = _DumpState(path)
    fed = False
    try:
        while chunk := read(_CHUNK):
            fed = True
            parser.feed(chunk)
            yield from state.take(parser.read_events())
    except ET.ParseError as error:
        yield Skip("malformed_xml", f"{path}: {error}; the pages before it are kept")
        return
    if not fed:
        yield Skip("empty_file", path)
        return
    try:
        parser.close()
    except ET.ParseError as error:
        yield Skip("truncated_xml", f"{path}: the file ends inside <mediawiki> ({error}); the pages before it are kept")
        return
    yield from state.take(parser.read_events())


class _DumpState:
    """Turns parser events into Site and Page values, clearing each page once read."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.root: ET.Element | None = None
        self.namespace = ""

    def take(self, events: Iterator[tuple[str, ET.Element]]) -> Iterator[Site | Page]:
        for event, element in events:
            if self.root is None:
                self.root = element
                self.namespace = element.tag[: element.tag.find("}") + 1]
            elif event == "end":
                tag = element.tag[len(self.namespace) :]
                if tag == "siteinfo":
                    yield _site(element, self.namespace, self.root.get(_XML_LANG), self.path)
                    self.root.clear()
                elif tag == "page":
                    yield _page(element, self.namespace)
                    self.root.clear()


def _site(element: ET.Element, ns: str, xml_lang: str | None, path: str) -> Site:
    dbname = element.findtext(f"{ns}dbname") or ""
    base = element.findtext(f"{ns}base") or ""
    language = xml_lang or _language_of_dbname(dbname) or _site_from_path(path).language
    parts = urlsplit(base)
    article_url = (
        f"{parts.scheme}://{parts.netloc}{parts.path.rsplit('/', 1)[0]}/"
        if parts.netloc
        else f"https://{language}.wikipedia.org/wiki/"
    )
    names = {int(n.get("key", "0")): (n.text or "") for n in element.iter(f"{ns}namespace")}
    return Site(language, dbname, article_url, DEFAULT_NAMESPACES.with_site(names))


def _language_of_dbname(dbname: str) -> str:
    """`enwiki` -> en, `zh_yuewiki` -> zh-yue (Wikimedia's database names)."""
    return dbname.removesuffix("wiki").replace("_", "-") if dbname.endswith("wiki") else ""


def _site_from_path(path: str) -> Site:
    """A dump without <siteinfo>: the language from a file name such as `enwiki-...`."""
    match = re.search(r"([a-z_]+)wiki", path.rsplit("/", 1)[-1])
    language = match.group(1).replace("_", "-") if match else "und"
    return Site(language, f"{language}wiki", f"https://{language}.wikipedia.org/wiki/")


def _page(element: ET.Element, ns: str) -> Page:
    revisions = element.findall(f"{ns}revision")
    revision = revisions[-1] if revisions else ET.Element("revision")
    return Page(
        title=element.findtext(f"{ns}title") or "",
        namespace=_namespace(element.findtext(f"{ns}ns")),
        page_id=element.findtext(f"{ns}id") or "",
        revision_id=revision.findtext(f"{ns}id") or "",
        timestamp=revision.findtext(f"{ns}timestamp") or "",
        text=revision.findtext(f"{ns}text") or "",
        redirect=element.find(f"{ns}redirect") is not None,
    )


def _namespace(text: str | None) -> int:
    """The page's namespace number; a missing one is the main namespace, an unreadable one none (-1)."""
    text = (text or str(ARTICLE_NAMESPACE)).strip()
    return int(text) if text.lstrip("-").isdigit() else -1
