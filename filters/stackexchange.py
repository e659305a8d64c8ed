"""StackExchange posts as LLaMA used them: HTML bodies to text, and one question with its answers by score.

The paper (section 2.1): "We kept the data from the 28 largest websites, removed the HTML tags from text and
sorted the answers by score (from highest to lowest)." RedPajama-Data v1 (`data_prep/stack_exchange`) did it
with BeautifulSoup's `get_text`, which runs code blocks, paragraphs and list items together. Here resiliparse
(an HTML5 parser, lexbor, in C++) puts paragraphs, list items and headings on their own lines and keeps `<pre>`
blocks verbatim (indentation and blank lines inside code matter), applying the HTML whitespace rules we would
otherwise write ourselves over the stdlib `html.parser`; on the coffee dump's bodies it runs as fast as a bare
`html.parser` walk that only collects text (about 17 MB/s of HTML per core for both).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from resiliparse.extract.html2text import extract_plain_text

# The 28 largest sites by number of posts (Posts.xml rows), the size RedPajama v1 used to pick them
# (`count.py`: rows per Posts.xml, meta sites included, Stack Overflow's `stackoverflow.com-Posts.7z` too).
# The paper does not name its 28; this list is our reading of the dumps of 2023 and may differ from
# Meta's at the tail (a site of rank 26-30 could be swapped): pass your own list where it matters.
LLAMA_SITES: tuple[str, ...] = (
    "stackoverflow.com",
    "math.stackexchange.com",
    "superuser.com",
    "askubuntu.com",
    "serverfault.com",
    "ru.stackoverflow.com",
    "unix.stackexchange.com",
    "tex.stackexchange.com",
    "physics.stackexchange.com",
    "electronics.stackexchange.com",
    "stats.stackexchange.com",
    "mathoverflow.net",
    "pt.stackoverflow.com",
    "english.stackexchange.com",
    "es.stackoverflow.com",
    "apple.stackexchange.com",
    "gis.stackexchange.com",
    "meta.stackexchange.com",
    "salesforce.stackexchange.com",
    "gaming.stackexchange.com",
    "wordpress.stackexchange.com",
    "softwareengineering.stackexchange.com",
    "codereview.stackexchange.com",
    "scifi.stackexchange.com",
    "dba.stackexchange.com",
    "magento.stackexchange.com",
    "ell.stackexchange.com",
    "sharepoint.stackexchange.com",
)

_TAG = re.compile(r"[^<>|]+")


def html_to_text(html: str) -> str:
    """A post body as text: block elements (paragraphs, list items, headings, quotes) on their own lines,
    `<pre><code>` kept verbatim, inline `<code>` and link labels kept, entities unescaped, images dropped."""
    if not html:
        return ""
    return extract_plain_text(
        html, preserve_formatting=True, main_content=False, list_bullets=True, alt_texts=False, links=False
    )


def parse_tags(value: str | None) -> list[str]:
    """A question's tags: `<python><regex>` in dumps up to 2023, `|python|regex|` since 2024."""
    return _TAG.findall(value or "")


def format_thread(title: str, question: str, answers: Iterable[str]) -> str:
    """`Q: title`, the question, then `A: answer` per answer, blank lines between (RedPajama: "Q: ... A: ...")."""
    head = f"Q: {title}".rstrip()
    parts = [head, question] if question else [head]
    parts += [f"A: {answer}" for answer in answers]
    return "\n\n".join(parts)
