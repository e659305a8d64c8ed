"""Wikitext to plain text, and the external reference URLs of an article (LLaMA section 2.1: Wikipedia
with "hyperlinks, comments and other formatting boilerplate" removed; the quality classifier's positives
are "web pages used as references in Wikipedia").

mwparserfromhell parses the markup into nodes and `wiki_to_text` renders them: a link keeps its label
(`[[a|b]]` -> b, `[[c]]s` -> cs); templates (infoboxes, citations, navigation boxes), comments, `<ref>`
references, tables, `<math>`, galleries, categories, files/images and interlanguage links are removed;
bold/italic markup goes, its text stays; headings and list items stay as lines of their own. Headings
whose section ends up empty (References, External links once their templates are gone) are removed.

Namespaces are recognised by name, not by an English prefix: `[[Datei:…]]`, `[[Kategorie:…]]`,
`[[Lêer:…]]` are files and categories like `[[File:…]]`. `Namespaces` holds the names of a built-in table
(the LLaMA languages and the sample dumps') plus, when reading a dump, the names its <siteinfo> declares.

Bold/italic markup is parsed as text and removed after (`skip_style_tags`): mwparserfromhell gives up on
a whole 7 KB infobox when a `''` span crosses it. Comments, `<ref>`s, templates and tables are cut from the
wikitext before parsing (regular expressions and a brace counter) unless the page has code or formulas
(`<nowiki>`, `<pre>`, `<syntaxhighlight>`, `<math>`...), where braces may be literal: building the parser's
nodes for what is dropped anyway was most of the time, and the text comes out the same (a test checks it on
every sample article).

mwparserfromhell's own `strip_code` is the obvious alternative; it keeps file captions with their
options ("thumb|A caption"), table cells and bare URLs, which is why the rendering is ours.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import mwparserfromhell
from mwparserfromhell.nodes import (
    ExternalLink,
    Heading,
    HTMLEntity,
    Node,
    Tag,
    Template,
    Text,
    Wikilink,
)

FILE_NAMESPACE = 6
CATEGORY_NAMESPACE = 14

# Canonical and localised names of the File (6) and Category (14) namespaces, from each Wikipedia's
# <siteinfo> and namespace aliases (Image, Bild, Imagen... are the old File aliases still used in text).
KNOWN_FILE_NAMES = (
    "File", "Image", "Файл", "Картинка", "Fitxer", "Imatge", "Soubor", "Obrázek", "Fil", "Billede", "Datei",
    "Bild", "Archivo", "Imagen", "Fichier", "Datoteka", "Slika", "Fájl", "Kép", "Immagine", "Bestand",
    "Afbeelding", "Plik", "Grafika", "Ficheiro", "Arquivo", "Imagem", "Fișier", "Fişier", "Imagine",
    "Изображение", "Датотека", "Слика", "Зображення", "Lêer", "Beeld", "Tập tin", "Hình", "Mynd",
)  # fmt: skip
KNOWN_CATEGORY_NAMES = (
    "Category", "Категория", "Categoria", "Kategorie", "Kategori", "Categoría", "Catégorie", "Kategorija",
    "Kategória", "Categorie", "Kategoria", "Категорија", "Категорія", "Thể loại", "Bólkur",
)  # fmt: skip

# Tags whose content is not prose: references, tables, formulas, media, page-layout helpers.
DROPPED_TAGS = frozenset(
    {
        "ref", "references", "table", "math", "chem", "ce", "gallery", "imagemap", "timeline", "graph",
        "mapframe", "maplink", "score", "templatestyles", "templatedata", "inputbox", "categorytree",
        "hiero", "indicator", "section", "includeonly", "style", "script",
    }
)  # fmt: skip
LINE_BREAK_TAGS = frozenset({"br", "hr"})
_INTERLANGUAGE = re.compile(r"[a-z]{2,3}(-[a-z]+)*$")
_MAGIC_WORD = re.compile(r"__[A-Z]+__")
_QUOTE_MARKUP = re.compile(r"'{2,}")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u3000]+")
_SPACE_BEFORE = re.compile(r" +([,.;)\]])")
_SPACE_AFTER = re.compile(r"([(\[]) +")
_EMPTY_BRACKETS = re.compile(r" ?(\( *[,;]? *\)|\[ *\])")
_HAS_WORD = re.compile(r"\w")
_LEFTOVER_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
_COMMENT = re.compile(r"<!--.*?(?:-->|$)", re.S)
_REFERENCE = re.compile(r"<ref(?:\s[^>]*?)?/>|<ref(?:\s[^>]*?)?(?<!/)>.*?</ref\s*>", re.S | re.I)
_BRACES = re.compile(r"\{\{|\}\}")
# Where braces may be literal (code, formulas), templates are left to the parser instead of cut before.
_LITERAL_BLOCK = re.compile(r"<(?:nowiki|pre|syntaxhighlight|source|code|math|chem|ce|score|timeline)\b", re.I)
_HEADING = "\x00"  # marks a heading line while rendering: "\x00<level>\x00<title>"


def _key(name: str) -> str:
    """Namespace names compare as MediaWiki does: case-insensitively, `_` as a space."""
    return " ".join(name.replace("_", " ").split()).casefold()


@dataclass(frozen=True)
class Namespaces:
    """The names of the namespaces whose links are not text: files (File:, Image:, Datei:...) and
    categories (Category:, Kategorie:...)."""

    files: frozenset[str]
    categories: frozenset[str]

    @classmethod
    def default(cls) -> Namespaces:
        return cls(frozenset(map(_key, KNOWN_FILE_NAMES)), frozenset(map(_key, KNOWN_CATEGORY_NAMES)))

    def with_site(self, names: dict[int, str]) -> Namespaces:
        """The built-in names plus those a dump's <siteinfo> gives for namespaces 6 and 14."""
        files = {_key(names[FILE_NAMESPACE])} if names.get(FILE_NAMESPACE) else set()
        categories = {_key(names[CATEGORY_NAMESPACE])} if names.get(CATEGORY_NAMESPACE) else set()
        return Namespaces(self.files | files, self.categories | categories)

    def hides(self, title: str) -> bool:
        """Whether a link to `title` shows no text: a file, a category or an interlanguage link.
        A leading colon (`[[:Category:X]]`) makes it an ordinary visible link."""
        if title.startswith(":") or ":" not in title:
            return False
        prefix = title.split(":", 1)[0].strip()
        key = _key(prefix)
        return key in self.files or key in self.categories or bool(_INTERLANGUAGE.match(prefix))


DEFAULT_NAMESPACES = Namespaces.default()


def wiki_to_text(wikitext: str, namespaces: Namespaces = DEFAULT_NAMESPACES) -> str:
    """The plain text of an article's wikitext: paragraphs, headings and list items as lines."""
    if not _LITERAL_BLOCK.search(wikitext):
        wikitext = _without_tables(_without_templates(_REFERENCE.sub("", _COMMENT.sub("", wikitext))))
    parts: list[str] = []
    _render(mwparserfromhell.parse(wikitext, skip_style_tags=True).nodes, namespaces, parts)
    return _tidy("".join(parts))


def _without_templates(wikitext: str) -> str:
    """The text outside balanced `{{...}}`: what rendering drops anyway, cut before parsing because
    building mwparserfromhell's nodes for templates is most of the parse time (an unclosed `{{` stays)."""
    if "{{" not in wikitext:
        return wikitext
    kept: list[str] = []
    depth = position = 0
    for brace in _BRACES.finditer(wikitext):
        if brace.group() == "{{":
            if depth == 0:
                kept.append(wikitext[position : brace.start()])
                position = brace.start()
            depth += 1
        elif depth:
            depth -= 1
            if depth == 0:
                position = brace.end()
    kept.append(wikitext[position:])
    return "".join(kept)


def _without_tables(wikitext: str) -> str:
    """The lines outside `{| ... |}` tables (also indented `:{|` ones, which the parser does not see)."""
    if "{|" not in wikitext:
        return wikitext
    kept = []
    depth = 0
    for line in wikitext.split("\n"):
        start = line.lstrip(": \t")
        if start.startswith("{|") or depth:
            depth += start.startswith("{|") - start.startswith("|}")
        else:
            kept.append(line)
    return "\n".join(kept)


def _render(nodes: Iterable[Node], namespaces: Namespaces, out: list[str]) -> None:
    for node in nodes:
        if isinstance(node, Text):
            out.append(node.value)
        elif isinstance(node, Wikilink):
            _render_link(node, namespaces, out)
        elif isinstance(node, Tag):
            _render_tag(node, namespaces, out)
        elif isinstance(node, Heading):
            title: list[str] = []
            _render(node.title.nodes, namespaces, title)
            out.append(f"\n{_HEADING}{node.level}{_HEADING}{' '.join(''.join(title).split())}\n")
        elif isinstance(node, HTMLEntity):
            out.append(node.normalize())
        elif isinstance(node, ExternalLink) and node.brackets and node.title is not None:
            _render(node.title.nodes, namespaces, out)
        # templates, comments, template arguments, bare URLs: nothing


def _render_link(link: Wikilink, namespaces: Namespaces, out: list[str]) -> None:
    title = str(link.title)
    if namespaces.hides(title):
        return
    if link.text is not None and str(link.text).strip():
        _render(link.text.nodes, namespaces, out)
    else:
        _render(link.title.nodes, namespaces, out)
        if title.startswith(":") and out:
            out[-1] = out[-1].lstrip(":")


def _render_tag(tag: Tag, namespaces: Namespaces, out: list[str]) -> None:
    name = str(tag.tag).strip().lower()
    if name in DROPPED_TAGS:
        return
    if name in LINE_BREAK_TAGS:
        out.append("\n")
    elif name == "nowiki" and tag.contents is not None:
        out.append(str(tag.contents))
    elif tag.contents is not None and not tag.self_closing:
        _render(tag.contents.nodes, namespaces, out)


def _tidy(text: str) -> str:
    """One space between words, no space before punctuation or empty brackets left by removed templates,
    no line without a letter or digit, at most one blank line, empty sections' headings removed; tables
    and templates the parser left as text (it gives up on some, e.g. an indented `:{|` table) removed."""
    text = _QUOTE_MARKUP.sub("", _MAGIC_WORD.sub("", text))
    while "{{" in text and _LEFTOVER_TEMPLATE.search(text):
        text = _LEFTOVER_TEMPLATE.sub("", text)
    text = _SPACE_AFTER.sub(r"\1", _SPACE_BEFORE.sub(r"\1", _SPACES.sub(" ", _without_tables(text))))
    lines = []
    for raw in _EMPTY_BRACKETS.sub("", text).split("\n"):
        line = raw.strip()
        if line.startswith(_HEADING) or not line or _HAS_WORD.search(line):
            lines.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(_drop_empty_sections(lines))).strip()


def _drop_empty_sections(lines: list[str]) -> list[str]:
    """Remove each heading followed by nothing but blank lines and headings of its level or above; walk
    backwards so a section holding only empty subsections goes too."""
    kept: list[str] = []
    next_level: int | None = None  # level of the next kept heading; 0: text follows; None: the end
    for line in reversed(lines):
        if line.startswith(_HEADING):
            _, level_text, title = line.split(_HEADING, 2)
            level = int(level_text)
            if next_level is None or (next_level != 0 and next_level <= level) or not title:
                continue
            kept.append(title)
            next_level = level
        elif line:
            kept.append(line)
            next_level = 0
        else:
            kept.append(line)
    return kept[::-1]


# ---------------------------------------------------------------- reference URLs

_CITATION_TEMPLATE = re.compile(r"\s*(cite|citation|cytuj|cita|citar|lien web|literatur|internetquelle)", re.I)
URL_PARAMETERS = ("url", "URL")
# Copies of cited pages (a {{webarchive}} or a bare archive link next to the original): not the cited page.
ARCHIVE_HOSTS = frozenset(
    {"web.archive.org", "webcitation.org", "www.webcitation.org", "archive.today", "archive.is", "archive.ph"}
)


def reference_urls(wikitext: str) -> list[str]:
    """The external URLs an article cites, in order of appearance, each once: the `url=` of citation
    templates (`{{cite web}}`, `{{citation}}` and their localised names) anywhere in the article, and every
    external link or `url=` parameter inside `<ref>` tags. Archive copies (`archive-url`, links to
    web.archive.org and the like) are not the cited page and are not taken."""
    seen: dict[str, None] = {}
    for url in _cited(mwparserfromhell.parse(wikitext).nodes, in_reference=False):
        normal = _normal_url(url)
        if normal:
            seen.setdefault(normal, None)
    return list(seen)


def _cited(nodes: Iterable[Node], in_reference: bool) -> Iterator[str]:
    for node in nodes:
        if isinstance(node, Tag) and node.contents is not None:
            yield from _cited(node.contents.nodes, in_reference or str(node.tag).strip().lower() == "ref")
        elif isinstance(node, Template):
            url = next((node.get(name).value for name in URL_PARAMETERS if node.has(name)), None)
            if url is not None and (in_reference or _CITATION_TEMPLATE.match(str(node.name))):
                yield str(url)  # and not its other parameters (archive-url, chapter-url)
            else:
                for parameter in node.params:
                    yield from _cited(parameter.value.nodes, in_reference)
        elif isinstance(node, ExternalLink) and in_reference:
            yield str(node.url)


def _normal_url(url: str) -> str | None:
    """An absolute http(s) URL (protocol-relative ones get https), or None for anything else (an empty
    parameter, a URL built from a template)."""
    url = url.strip()
    if url.startswith("//"):
        url = "https:" + url
    if not url.lower().startswith(("http://", "https://")) or any(c in url for c in " {}|<>[]\n"):
        return None
    if urlsplit(url).hostname in ARCHIVE_HOSTS:
        return None
    return url
