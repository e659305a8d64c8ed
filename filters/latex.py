"""LLaMA's cleaning of arXiv LaTeX (Touvron et al. 2023, section 2.1: "We process arXiv LaTeX files... removed
everything before the first section, as well as the bibliography. We also removed the comments from the .tex
files, and inline-expanded definitions and macros written by users to increase consistency across papers").

The paper gives no code; RedPajama-Data v1 (`data_prep/arxiv/arxiv_cleaner.py`) is the public reproduction, and
these rules follow it where it is right and differ where its regexes misfire, each for a reason:

- **Comments**: `%` to the end of the line unless escaped (`\\%` is text, `\\\\%` is a comment), whole comment
  lines with their newline, `comment` environments; verbatim environments are kept as written. RedPajama's
  `[^\\]%.+$` also ate the character before the `%` and missed comments after `\\\\`.
- **Front matter**: everything before the first sectioning command (`\\part` ... `\\subparagraph`, as
  RedPajama) found after `\\begin{document}` and after comments are gone, so a commented-out or preamble
  `\\section` does not count. RedPajama's greedy `^(.*)(\\section...)` kept from the *last* header instead of the
  first. A paper with no section at all is dropped (`arxiv_clean.no_section`, as RedPajama's empty output was) unless
  `keep_sectionless`, which keeps its body from `\\begin{document}`.
- **Bibliography**: cut at the first `thebibliography`/`references` environment, `\\bibliography{}`,
  `\\bibliographystyle{}` or `\\printbibliography`, with what follows, and at `\\appendix` (RedPajama's rule).
  `keep_appendix` instead removes only the bibliography blocks and keeps the appendices wherever they are.
  Text after `\\end{document}` (editor settings) always goes.
- **Macros**: definitions without arguments (`\\newcommand{\\x}{..}`, `\\newcommand\\x{..}`, `\\renewcommand`,
  `\\providecommand`, `\\def\\x{..}`) with brace-balanced bodies on any number of lines (RedPajama took one line
  up to its last `}`), expanded in each other in dependency order (a fixed point), then in the text; their
  definitions are removed so they do not turn into `\\newcommand{body}{body}`. Macros with arguments, `\\def`s
  with parameter text, bodies using `@` internals or `#`, and redefinitions of the commands this cleaner relies on
  (`\\section`, `\\begin`, ...) are left alone. A definition whose braces never balance, a body longer than
  `max_macro_chars` (also once expanded) and a macro on a reference cycle (or using one) are skipped and counted
  in the document's metadata.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import ClassVar

from filters.base import Stage
from filters.document import Document, Rejection
from filters.options import ConfigError, option

SECTION_COMMANDS = ("part", "chapter", "section", "subsection", "subsubsection", "paragraph", "subparagraph")
# Names whose redefinition is layout, not content: expanding them would break the rules above.
_PROTECTED = frozenset(
    (*SECTION_COMMANDS, "appendix", "begin", "end", "bibliography", "input", "include", "item", "par", "label")
)

_COMMENT_LINE = re.compile(r"\n[ \t]*%[^\n]*")  # a newline and the comment line after it
# Blocks where `%` is not a comment (verbatim, \verb) or that are comments as a whole (the comment package's).
_BLOCKS = re.compile(
    r"\\begin\{(?P<env>verbatim\*?|Verbatim|lstlisting|minted|comment)\}[\s\S]*?\\end\{(?P=env)\}\n?"
    r"|\\verb\*?(?P<delimiter>[^A-Za-z\s*])[^\n]*?(?P=delimiter)"
)
_DEFINITION = re.compile(
    r"\\(?:re)?newcommand\*?\s*(?:\{\s*\\(?P<braced>[A-Za-z]+)\s*\}|\\(?P<bare>[A-Za-z]+))"
    r"|\\providecommand\*?\s*(?:\{\s*\\(?P<pbraced>[A-Za-z]+)\s*\}|\\(?P<pbare>[A-Za-z]+))"
    r"|\\[egx]?def\s*\\(?P<def>[A-Za-z]+)"
)
_OPTIONS = re.compile(r"\s*(?:\[[^\]]*\]\s*)*")  # \newcommand{\x}[1][default]
_DEF_PARAMETERS = re.compile(r"[^{}]{0,200}")  # \def\x#1#2{ (parameter text up to the body)
_BRACES = re.compile(r"[{}]|\\[{}\\]")  # a brace, or an escaped brace or backslash (skipped as a pair)
_BEGIN_DOCUMENT = re.compile(r"\\begin\s*\{document\}")
_END_DOCUMENT = re.compile(r"\\end\s*\{document\}")
_FIRST_SECTION = re.compile(r"\\(?:" + "|".join(SECTION_COMMANDS) + r")(?![A-Za-z])\*?\s*[\[{]")
_BIBLIOGRAPHY = (
    r"\\begin\s*\{(?:thebibliography|references|REFERENCES)\}|\\bibliography(?:style)?\s*\{"
    r"|\\printbibliography(?![A-Za-z])"
)
_CUT_AT_BIBLIOGRAPHY_OR_APPENDIX = re.compile(
    _BIBLIOGRAPHY + r"|\\append(?:ix|ices)(?![A-Za-z])|\\begin\s*\{appendix\}"
)
_BIBLIOGRAPHY_BLOCK = re.compile(
    r"\\begin\s*\{(thebibliography|references|REFERENCES)\}[\s\S]*?(?:\\end\s*\{\1\}|\Z)"
    r"|\\bibliography(?:style)?\s*\{[^{}]*\}|\\printbibliography(?![A-Za-z])(?:\[[^\]]*\])?"
)
_BLANK_LINES = re.compile(r"\n[ \t]*(?:\n[ \t]*)+\n")
_INPUT = re.compile(
    r"\\(?:input|include)(?![A-Za-z])\s*\{\s*(?P<braced>[^{}]*?)\s*\}|\\input(?![A-Za-z])[ \t]+(?P<bare>[^\s{}\\%]+)"
)


def _escaped(text: str, index: int) -> bool:
    """True when `text[index]` follows an odd number of backslashes (`\\%` is text, `\\\\%` a comment)."""
    backslashes = 0
    while index - backslashes > 0 and text[index - backslashes - 1] == "\\":
        backslashes += 1
    return backslashes % 2 == 1


def _commented(text: str, index: int) -> bool:
    """True when `text[index]` sits after an unescaped `%` on its line."""
    line_start = text.rfind("\n", 0, index) + 1
    percent = text.find("%", line_start, index)
    while percent >= 0:
        if not _escaped(text, percent):
            return True
        percent = text.find("%", percent + 1, index)
    return False


def _strip_line_comments(text: str) -> str:
    """Comments removed from text without verbatim blocks: whole comment lines with their newline (one regex
    pass in C: a comment line cannot be escaped), then end-of-line comments with the spaces before them, visiting
    only the remaining `%` signs."""
    if "%" not in text:
        return text
    text = _COMMENT_LINE.sub("", "\n" + text)[1:]
    pieces: list[str] = []
    emitted = search = 0
    while (percent := text.find("%", search)) >= 0:
        if _escaped(text, percent):
            search = percent + 1
            continue
        line_end = text.find("\n", percent)
        pieces.append(text[emitted:percent].rstrip(" \t"))
        emitted = search = len(text) if line_end < 0 else line_end
    pieces.append(text[emitted:])
    return "".join(pieces)


def strip_comments(text: str) -> str:
    """`text` without TeX comments (see the module docstring); verbatim blocks and `\\verb` are kept as
    written, `comment` environments removed."""
    pieces: list[str] = []
    position = search = 0
    while (block := _BLOCKS.search(text, search)) is not None:
        if _commented(text, block.start()):  # `%\begin{lstlisting}`: a commented-out block is a comment
            search = block.start() + 1
            continue
        pieces.append(_strip_line_comments(text[position : block.start()]))
        if block.group("env") != "comment":
            pieces.append(block.group(0))
        position = search = block.end()
    pieces.append(_strip_line_comments(text[position:]))
    return "".join(pieces)


@dataclass
class Macros:
    """The argument-free macros of a document (name -> expanded body), the spans of their definitions, and the
    definitions skipped, by reason."""

    bodies: dict[str, str] = field(default_factory=dict)
    spans: list[tuple[int, int]] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)


def _balanced_group(text: str, start: int) -> int | None:
    """The index after the `}` closing the group opened at `text[start] == "{"`, or None when it never closes
    (escaped braces do not count). The regex jumps from brace to brace in C."""
    depth = 0
    for match in _BRACES.finditer(text, start):
        token = match.group()
        if token == "{":
            depth += 1
        elif token == "}":
            depth -= 1
            if depth == 0:
                return match.end()
    return None


def _closing_braces(text: str) -> dict[int, int]:
    """For every `{` of `text` that closes, the index after its `}` (one pass, a stack)."""
    closing: dict[int, int] = {}
    opened: list[int] = []
    for match in _BRACES.finditer(text):
        token = match.group()
        if token == "{":
            opened.append(match.start())
        elif token == "}" and opened:
            closing[opened.pop()] = match.end()
    return closing


def find_macros(text: str, max_chars: int = 2000) -> Macros:
    """Collect the argument-free macro definitions of `text` (comments already removed); a later definition
    of a name replaces an earlier one, as `\\renewcommand` does. Definitions inside another definition's
    body (a macro with arguments defining helpers) are not collected: the scan resumes after each body."""
    macros = Macros()
    closing: dict[int, int] | None = None
    position = 0
    while (match := _DEFINITION.search(text, position)) is not None:
        position = match.end()
        name = match.group("braced") or match.group("bare") or match.group("pbraced") or match.group("pbare")
        parameters = (_OPTIONS if name else _DEF_PARAMETERS).match(text, position)
        name = name or match.group("def")
        start = parameters.end()
        if start >= len(text) or text[start] != "{":
            continue  # a body without braces (`\newcommand\x\y`): left alone
        if closing is None:
            end = _balanced_group(text, start)
            if end is None:  # a brace that never closes: later definitions look up one table, not scan to the end
                closing = _closing_braces(text)
        else:
            end = closing.get(start)
        if end is None:
            macros.skipped["unbalanced"] += 1
            continue
        position = end
        body = text[start + 1 : end - 1]
        if parameters.group().strip() or name in _PROTECTED or "@" in body or "#" in body:
            continue  # arguments or parameter text, a layout command, or TeX internals: left alone
        if len(body) > max_chars:
            macros.skipped["too_long"] += 1
            continue
        if (match.group("pbraced") or match.group("pbare")) and name in macros.bodies:
            macros.spans.append((match.start(), end))  # \providecommand of a known name changes nothing
            continue
        macros.bodies[name] = body
        macros.spans.append((match.start(), end))
    return macros


def _macro_pattern(names: list[str]) -> re.Pattern[str]:
    alternatives = "|".join(sorted(names, key=len, reverse=True))
    return re.compile(rf"\\({alternatives})(?![A-Za-z])(\{{\}}|\\ )?")


def _substitute(pattern: re.Pattern[str], bodies: dict[str, str], text: str) -> tuple[str, int]:
    """Replace every use of a macro in `bodies` by its body (others stay as written); `\\x{}` and `\\x\\ ` lose
    their space guard unless the body ends with a control word, which needs it."""
    expanded = 0

    def expand(match: re.Match[str]) -> str:
        nonlocal expanded
        body = bodies.get(match.group(1))
        if body is None:
            return match.group(0)
        expanded += 1
        guard = match.group(2)
        if guard and re.search(r"\\[A-Za-z]+$", body):
            return body + guard
        return body + (" " if guard == "\\ " else "")

    return pattern.sub(expand, text), expanded


def resolve_macros(macros: Macros, max_chars: int) -> None:
    """Expand the bodies in each other to the fixed point, in dependency order (Kahn's algorithm): a body is
    expanded once every macro it uses is. Bodies that grow past `max_chars` (exponential nesting) are dropped,
    so their uses stay as written; what is left when no macro is ready is on a reference cycle or uses one (its
    expansion would never end): dropped and counted as `cyclic`."""
    if not macros.bodies:
        return
    pattern = _macro_pattern(list(macros.bodies))
    uses = {name: {m.group(1) for m in pattern.finditer(body)} for name, body in macros.bodies.items()}
    resolved: dict[str, str] = {}
    remaining = dict(macros.bodies)
    while ready := [name for name in remaining if not uses[name] & remaining.keys()]:
        for name in ready:
            body, _ = _substitute(pattern, resolved, remaining.pop(name))
            if len(body) > max_chars:
                macros.skipped["too_long"] += 1
            else:
                resolved[name] = body
    if remaining:
        macros.skipped["cyclic"] += len(remaining)
    macros.bodies = resolved


def _without_spans(text: str, spans: list[tuple[int, int]]) -> str:
    pieces, position = [], 0
    for start, end in sorted(spans):
        if start >= position:
            pieces.append(text[position:start])
            position = end
    pieces.append(text[position:])
    return "".join(pieces)


def inline_inputs(
    text: str,
    load: Callable[[str], tuple[str, str] | None],
    name: str = "",
    max_depth: int = 8,
    max_chars: int | None = None,
) -> tuple[str, list[str], Counter[str], list[str]]:
    """`text` (the file `name`) with every `\\input{x}`/`\\include{x}`/`\\input x` outside comments replaced by
    the file `load(x)` returns as (resolved name, text), recursively. Returns the text, the files included, a
    count of problems (`missing_input`, `input_cycle`, `input_too_deep`, `input_too_large`: more than `max_chars`
    inlined in all, as a file included twice at every level would) and the names that could not be loaded; an
    input that cannot be inlined is left as written."""
    included: list[str] = []
    problems: Counter[str] = Counter()
    missing: list[str] = []
    inlined = 0

    def inline(source: str, stack: tuple[str, ...]) -> str:
        def replace_input(match: re.Match[str]) -> str:
            if _escaped(source, match.start()) or _commented(source, match.start()):
                return match.group(0)
            target = match.group("braced") or match.group("bare")
            loaded = load(target) if target else None
            if loaded is None:
                problems["missing_input"] += 1
                missing.append(target or "")
                return match.group(0)
            resolved, content = loaded
            if resolved in stack:
                problems["input_cycle"] += 1
                return match.group(0)
            if len(stack) > max_depth:
                problems["input_too_deep"] += 1
                return match.group(0)
            nonlocal inlined
            if max_chars is not None and inlined + len(content) > max_chars:
                problems["input_too_large"] += 1
                return match.group(0)
            inlined += len(content)
            included.append(resolved)
            return inline(content, (*stack, resolved))

        return _INPUT.sub(replace_input, source)

    return inline(text, (name,)), included, problems, missing


@dataclass
class ArxivCleanConfig:
    """The paper's arXiv rules (section 2.1), RedPajama-Data v1's choices where the paper is silent."""

    keep_appendix: bool = option(
        False, "keep appendices (remove only the bibliography); default: cut at \\appendix as RedPajama"
    )
    keep_sectionless: bool = option(
        False,
        "keep a paper without any \\section from \\begin{document} instead of dropping it (arxiv_clean.no_section)",
    )
    expand_macros: bool = option(True, "inline-expand argument-free user macros (\\newcommand, \\def), as the paper")
    max_macro_chars: int = option(2000, "longest macro body expanded (also after expanding macros inside it)")

    def validate(self) -> None:
        if self.max_macro_chars < 1:
            raise ConfigError("arxiv_clean.max_macro_chars must be >= 1")


@dataclass
class LatexCleanResult:
    """The cleaned text, or the reason the paper is dropped, and what macro expansion did."""

    text: str
    reason: str | None
    macros_expanded: int = 0
    definitions_skipped: dict[str, int] = field(default_factory=dict)


def clean_latex(text: str, config: ArxivCleanConfig) -> LatexCleanResult:
    """Apply the rules of the module docstring to one paper's LaTeX (its includes already inlined)."""
    text = strip_comments(text)
    macros = Macros()
    if config.expand_macros:
        macros = find_macros(text, config.max_macro_chars)
        resolve_macros(macros, config.max_macro_chars)
        text = _without_spans(text, macros.spans)
    skipped = dict(sorted(macros.skipped.items()))
    begin = _BEGIN_DOCUMENT.search(text)
    start = begin.end() if begin else 0
    end_match = _END_DOCUMENT.search(text, start)
    text = text[: end_match.start()] if end_match else text
    section = _FIRST_SECTION.search(text, start)
    if section is None and not config.keep_sectionless:
        return LatexCleanResult("", "no_section", definitions_skipped=skipped)
    text = text[section.start() if section else start :]
    if config.keep_appendix:
        text = _BIBLIOGRAPHY_BLOCK.sub("", text)
    else:
        cut = _CUT_AT_BIBLIOGRAPHY_OR_APPENDIX.search(text)
        text = text[: cut.start()] if cut else text
    expanded = 0
    if macros.bodies:
        text, expanded = _substitute(_macro_pattern(list(macros.bodies)), macros.bodies, text)
    text = _BLANK_LINES.sub("\n\n", text).strip()
    if not text:
        return LatexCleanResult("", "empty", expanded, skipped)
    return LatexCleanResult(text + "\n", None, expanded, skipped)


class ArxivCleaner(Stage):
    """Clean one arXiv paper's LaTeX as LLaMA did (reasons `arxiv_clean.no_section`, `arxiv_clean.empty`); the
    number of macro uses expanded and the definitions skipped go to `metadata["arxiv_clean"]`."""

    name: ClassVar[str] = "arxiv_clean"
    Config: ClassVar[type] = ArxivCleanConfig

    def process(self, doc: Document) -> Document | Rejection:
        result = clean_latex(doc.text, self.config)
        if result.reason is not None:
            return Rejection(doc, f"{self.name}.{result.reason}")
        notes = {"macros_expanded": result.macros_expanded, "definitions_skipped": result.definitions_skipped}
        return replace(doc, text=result.text, metadata={**doc.metadata, "arxiv_clean": notes})
