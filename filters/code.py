"""LLaMA's cleaning of GitHub code (Touvron et al. 2023, section 2.1): "We kept projects distributed under
Apache, BSD and MIT licenses. We filtered low quality files with heuristics based on the line length or
proportion of alphanumeric characters, and removed boilerplate, such as headers, with regular expressions."

The paper gives no thresholds; the ones here are RedPajama v1's, which reproduced it
(togethercomputer/RedPajama-Data, rp_v1 `data_prep/github/github_run_filter.py` and
`github_clean_dedup_local.py`): a file is dropped when its path does not end with a listed code/text
extension, its longest line exceeds 1000 characters, its mean line length (characters / lines) exceeds 100,
its alphanumeric fraction is under 0.25, or it has fewer than 1.5 alphabetic characters per token.

Differences from RedPajama, each for a reason:
- RedPajama counted tokens with the Pythia (GPT-NeoX) BPE tokenizer, a model download. We count the pieces
  of the GPT-2/NeoX pre-tokenizer (letter runs, digit runs, punctuation runs, whitespace runs, each with its
  leading space), which BPE only splits further: our token count is lower, so the rule is a little more
  lenient (a file that passes RedPajama's rule passes ours).
- RedPajama's header cleaner deleted every leading line that starts with `//`, `#` or `--` (C's
  `#include` lines too) and then the first `/* */` block mentioning "copyright" anywhere in the first 100
  lines. We remove only the leading comment blocks that carry copyright or licence wording, in the comment
  syntax of the file's language, and keep a shebang and a Python encoding line (they change how the file
  runs). Heuristics are measured after the header is gone, as in RedPajama.

Licences are normalized to SPDX identifiers: from an export's licence key (BigQuery `github_repos` uses
lower-case SPDX keys such as "mit", "bsd-3-clause") or detected in a repository's licence file by key
phrases of each licence's text.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass, replace
from functools import cached_property
from typing import ClassVar

import numpy as np

from filters.base import Stage
from filters.document import Document, Rejection
from filters.options import ConfigError, option

UNKNOWN_LICENSE = "unknown"
PERMISSIVE_LICENSES = ("MIT", "Apache-2.0", "BSD-2-Clause", "BSD-3-Clause")  # the paper: Apache, BSD and MIT
KNOWN_LICENSES = (
    *PERMISSIVE_LICENSES,
    "BSD-4-Clause", "ISC", "Zlib", "BSL-1.0", "Unlicense", "CC0-1.0", "Apache-1.1",
    "GPL-2.0", "GPL-3.0", "LGPL-2.0", "LGPL-2.1", "LGPL-3.0", "AGPL-3.0",
    "MPL-1.1", "MPL-2.0", "EPL-1.0", "EPL-2.0", "Artistic-2.0",
)  # fmt: skip
_BY_KEY = {name.lower(): name for name in KNOWN_LICENSES}

# RedPajama v1's `extensions_whitelist` (github_run_filter.py), matched as it was: the path ends with one
# (case-sensitive: `.C` and `.H` are C++; `Makefile` and `Dockerfile` are whole names).
REDPAJAMA_EXTENSIONS = (
    ".asm", ".bat", ".cmd", ".c", ".h", ".cs", ".cpp", ".hpp", ".c++", ".h++", ".cc", ".hh", ".C", ".H",
    ".cmake", ".css", ".dockerfile", ".f90", ".f", ".f03", ".f08", ".f77", ".f95", ".for", ".fpp", ".go",
    ".hs", ".html", ".java", ".js", ".jl", ".lua", ".md", ".markdown", ".php", ".php3", ".php4", ".php5",
    ".phps", ".phpt", ".pl", ".pm", ".pod", ".perl", ".ps1", ".psd1", ".psm1", ".py", ".rb", ".rs", ".sql",
    ".scala", ".sh", ".bash", ".command", ".zsh", ".ts", ".tsx", ".tex", ".vb", "Dockerfile", "Makefile",
    ".xml", ".rst", ".m", ".smali",
)  # fmt: skip

# ------------------------------------------------------------------------------------------- languages

_LANGUAGES: dict[str, tuple[str, ...]] = {
    "Assembly": (".asm", ".s"),
    "Batchfile": (".bat", ".cmd"),
    "C": (".c", ".h"),
    "C#": (".cs",),
    "C++": (".cpp", ".hpp", ".c++", ".h++", ".cc", ".hh", ".cxx", ".hxx", ".C", ".H"),
    "CMake": (".cmake",),
    "CSS": (".css", ".scss", ".less"),
    "Dockerfile": (".dockerfile",),
    "Fortran": (".f90", ".f", ".f03", ".f08", ".f77", ".f95", ".for", ".fpp"),
    "Go": (".go",),
    "Haskell": (".hs",),
    "HTML": (".html", ".htm"),
    "INI": (".ini", ".cfg"),
    "JSON": (".json",),
    "Java": (".java",),
    "JavaScript": (".js", ".mjs", ".cjs", ".jsx"),
    "Julia": (".jl",),
    "Jupyter Notebook": (".ipynb",),
    "Kotlin": (".kt", ".kts"),
    "Lua": (".lua",),
    "Makefile": (".mk",),
    "Markdown": (".md", ".markdown"),
    "Objective-C": (".m", ".mm"),
    "PHP": (".php", ".php3", ".php4", ".php5", ".phps", ".phpt"),
    "Perl": (".pl", ".pm", ".pod", ".perl"),
    "PowerShell": (".ps1", ".psd1", ".psm1"),
    "Python": (".py", ".pyi"),
    "R": (".r", ".R"),
    "Ruby": (".rb",),
    "Rust": (".rs",),
    "SQL": (".sql",),
    "Scala": (".scala",),
    "Shell": (".sh", ".bash", ".command", ".zsh", ".fish"),
    "Smali": (".smali",),
    "Swift": (".swift",),
    "TOML": (".toml",),
    "TeX": (".tex", ".sty", ".cls"),
    "Text": (".txt",),
    "TypeScript": (".ts", ".tsx"),
    "Visual Basic": (".vb",),
    "XML": (".xml", ".xsd", ".xsl", ".svg"),
    "YAML": (".yml", ".yaml"),
    "reStructuredText": (".rst",),
}
_LANGUAGE_BY_EXTENSION = {ext: name for name, exts in _LANGUAGES.items() for ext in exts}
_LANGUAGE_BY_NAME = {"Makefile": "Makefile", "GNUmakefile": "Makefile", "Dockerfile": "Dockerfile"}


def file_extension(path: str) -> str:
    """The extension of a path's file name with its dot (".py"), or "" (`Makefile`, `.gitignore`)."""
    return posixpath.splitext(posixpath.basename(path))[1]


def file_language(path: str) -> str | None:
    """The programming or markup language a file's name implies (GitHub linguist's names), or None."""
    name = posixpath.basename(path)
    if name in _LANGUAGE_BY_NAME:
        return _LANGUAGE_BY_NAME[name]
    extension = file_extension(path)
    return _LANGUAGE_BY_EXTENSION.get(extension) or _LANGUAGE_BY_EXTENSION.get(extension.lower())


# -------------------------------------------------------------------------------------------- licences


def canonical_license(key: str | None) -> str:
    """An export's licence key ("mit", "Apache-2.0", "GPL-3.0-or-later") as an SPDX id, or "unknown"."""
    if not key:
        return UNKNOWN_LICENSE
    key = key.strip().lower().removesuffix("-only").removesuffix("-or-later").removesuffix("+")
    return _BY_KEY.get(key, UNKNOWN_LICENSE)


_SPDX_TAG = re.compile(r"spdx-license-identifier:\s*([\w.+-]+)")
_GNU = re.compile(r"gnu (affero |lesser |library )?general public licen[sc]e")
_VERSION = re.compile(r"(?:version|v\.?) ?(\d(?:\.\d)?)")
_GNU_FAMILY = {"": "GPL", "affero ": "AGPL", "lesser ": "LGPL", "library ": "LGPL"}
_ISC = re.compile(
    r"permission to use, copy, modify, and(?:/or)? distribute this software for any purpose with or without fee"
)
_BSD_THIRD_CLAUSE = re.compile(
    r"neither the names? of|names? of (?:its|the) contributors may (?:not )?be used to endorse"
)
# Phrases of each licence's text, in the order they are tried (the first match names the licence).
_PHRASES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Apache-2.0", re.compile(r"apache licen[sc]e,? version 2\.0|apache-2\.0")),
    ("Apache-1.1", re.compile(r"apache software licen[sc]e,? version 1\.1")),
    ("MPL-2.0", re.compile(r"mozilla public licen[sc]e,? (?:version|v\.?) ?2\.0")),
    ("MPL-1.1", re.compile(r"mozilla public licen[sc]e,? (?:version|v\.?) ?1\.1")),
    ("EPL-2.0", re.compile(r"eclipse public licen[sc]e,?(?: -)? (?:version|v\.?) ?2\.0")),  # "... - v 2.0"
    ("EPL-1.0", re.compile(r"eclipse public licen[sc]e")),
    ("BSL-1.0", re.compile(r"boost software licen[sc]e")),
    ("Artistic-2.0", re.compile(r"the artistic licen[sc]e 2\.0")),
    ("Unlicense", re.compile(r"free and unencumbered software released into the public domain")),
    ("CC0-1.0", re.compile(r"\bcc0 1\.0 universal|creative commons legal code cc0")),
    ("ISC", _ISC),
    ("MIT", re.compile(r"permission is hereby granted, free of charge, to any person obtaining a copy")),
    ("BSD", re.compile(r"redistribution and use in source and binary forms")),
    ("Zlib", re.compile(r"altered source versions must be plainly marked as such")),
    ("MIT", re.compile(r"\bmit licen[sc]e\b|\blicensed under the mit\b")),
    ("BSD-3-Clause", re.compile(r"\b(?:new|modified|revised) bsd licen[sc]e\b|\bbsd[- ]3[- ]clause\b")),
    ("BSD-2-Clause", re.compile(r"\b(?:simplified|freebsd) bsd licen[sc]e\b|\bbsd[- ]2[- ]clause\b")),
)


def detect_license(text: str) -> str:
    """The SPDX id of the licence a licence file's text states, from key phrases, or "unknown".

    An SPDX tag wins; then the GNU family when it is named before any other licence's wording (with its
    version, read just after the name: "GNU General Public License as published by ..., either version 3";
    the bare family name, "GPL", when no version is given): MPL-2.0 and EPL-2.0 name the GPL later as their
    "Secondary License", an MIT file may end with a notice about an LGPL vendored file; then each licence's
    own wording. Text is compared lower-cased with whitespace collapsed, so line wrapping and Markdown/text
    layout do not matter."""
    norm = " ".join(text.lower().replace("\u2019", "'").split())
    tag = _SPDX_TAG.search(norm)
    if tag and canonical_license(tag.group(1)) != UNKNOWN_LICENSE:
        return canonical_license(tag.group(1))
    first_phrase = min((m.start() for _, pattern in _PHRASES if (m := pattern.search(norm))), default=len(norm))
    gnu = _GNU.search(norm, 0, first_phrase)
    if gnu:
        family = _GNU_FAMILY[gnu.group(1) or ""]
        version = _VERSION.search(norm, gnu.end(), gnu.end() + 200)
        number = version.group(1) if version else ""
        number = number if "." in number else f"{number}.0" if number else ""
        if family == "LGPL" and gnu.group(1) == "library " and not number:
            number = "2.0"
        return canonical_license(f"{family}-{number}") if number else family
    for name, pattern in _PHRASES:
        if pattern.search(norm):
            if name == "BSD":
                if "all advertising materials" in norm:
                    return "BSD-4-Clause"
                return "BSD-3-Clause" if _BSD_THIRD_CLAUSE.search(norm) else "BSD-2-Clause"
            return name
    return UNKNOWN_LICENSE


_LICENSE_FILE = re.compile(r"^(?:licen[sc]e|copying|unlicense)(?:[._-].*)?$", re.IGNORECASE)


def is_license_file(name: str) -> bool:
    """True for the names repositories give their licence file (LICENSE, LICENCE.md, COPYING, LICENSE-MIT)."""
    return _LICENSE_FILE.match(name) is not None


# --------------------------------------------------------------------------------------------- headers


@dataclass(frozen=True)
class CommentStyle:
    """How a language writes comments: line markers ("//", "#") and block delimiters ("/*", "*/")."""

    line: tuple[str, ...] = ()
    block: tuple[tuple[str, str], ...] = ()


_C_STYLE = CommentStyle(("//",), (("/*", "*/"),))
_HASH = CommentStyle(("#",))
_MARKUP = CommentStyle((), (("<!--", "-->"),))
_STYLES: dict[str, CommentStyle] = {
    **dict.fromkeys(
        ("C", "C#", "C++", "CSS", "Go", "Java", "JavaScript", "Kotlin", "Objective-C", "PHP", "Rust", "Scala",
         "Swift", "TypeScript"),
        _C_STYLE,
    ),
    **dict.fromkeys(
        ("CMake", "Dockerfile", "Makefile", "Perl", "PowerShell", "Python", "R", "Ruby", "Shell", "TOML", "YAML",
         "Julia"),
        _HASH,
    ),
    **dict.fromkeys(("HTML", "Markdown", "XML"), _MARKUP),
    **dict.fromkeys(("SQL", "Lua", "Haskell"), CommentStyle(("--",), (("/*", "*/"),))),
    "TeX": CommentStyle(("%",)),
}  # fmt: skip
_LICENSE_WORDS = re.compile(
    r"copyright|licen[sc]e[ds]?\b|\(c\)|©|all rights reserved|spdx-license-identifier|permission is hereby granted|"
    r"redistribution and use",
    re.IGNORECASE,
)
_ENCODING_LINE = re.compile(r"^[ \t\f]*#.*?coding[:=]")  # PEP 263


def _comment_end(lines: list[str], start: int, style: CommentStyle) -> int | None:
    """The index after the comment block that starts at `lines[start]`, or None if no block starts there
    (or a block comment is never closed, or code follows its closing delimiter on the same line)."""
    head = lines[start].lstrip()
    for marker in style.line:
        if head.startswith(marker):
            end = start + 1
            while end < len(lines) and lines[end].lstrip().startswith(marker):
                end += 1
            return end
    for opener, closer in style.block:
        if head.startswith(opener):
            rest, index = head[len(opener) :], start
            while closer not in rest:
                index += 1
                if index == len(lines):
                    return None
                rest = lines[index]
            return index + 1 if not rest.split(closer, 1)[1].strip() else None
    return None


def strip_license_header(text: str, path: str) -> tuple[str, int]:
    """Remove the leading comment blocks that carry copyright or licence wording (blocks are comment lines
    or one block comment, separated by blank lines, before the first line of code); a shebang and an
    encoding line stay. Returns the text and the number of characters removed. A script without an
    extension is read by its shebang (`#` comments); other files without a known comment syntax are left
    alone."""
    style = _STYLES.get(file_language(path) or "") or (_HASH if text.startswith("#!") else None)
    if style is None:
        return text, 0
    lines = text.splitlines(keepends=True)
    index = 1 if lines and lines[0].startswith("#!") else 0
    while index < min(len(lines), 2) and _ENCODING_LINE.match(lines[index]):
        index += 1
    kept, removed = lines[:index], 0
    while index < len(lines):
        if not lines[index].strip():
            kept.append(lines[index])
            index += 1
            continue
        end = _comment_end(lines, index, style)
        if end is None:
            break
        block = lines[index:end]
        if _LICENSE_WORDS.search("".join(block)):
            while end < len(lines) and not lines[end].strip():
                end += 1  # the blank lines after a removed block go with it
            removed += sum(map(len, lines[index:end]))
        else:
            kept.extend(block)
        index = end
    if not removed:
        return text, 0
    return "".join(kept + lines[index:]), removed


# ------------------------------------------------------------------------------------------ heuristics

# The GPT-2 / GPT-NeoX pre-tokenizer with Python's classes: contractions, letter runs, digit runs and other
# symbol runs (each may take one leading space), then whitespace runs.
_PRETOKEN = re.compile(r"""'(?:[sdmt]|ll|ve|re)| ?[^\W\d_]+| ?\d+| ?(?:[^\w\s]|_)+|\s+(?!\S)|\s+""")
# On ASCII text the same count comes from runs of character classes (numpy): 2-3 times faster than the regex.
_SPACE, _WHITESPACE, _LETTER, _DIGIT, _SYMBOL = range(5)
_ASCII_CLASS = np.array(
    [
        _SPACE if c == 32 else _WHITESPACE if chr(c).isspace() else _LETTER if chr(c).isalpha()
        else _DIGIT if chr(c).isdigit() else _SYMBOL
        for c in range(128)
    ],
    dtype=np.uint8,
)  # fmt: skip
_CONTRACTION = re.compile(r"'(?:[sdmt]|ll|ve|re)(?![^\W\d_])")
_ASCII_ALNUM = bytes(c for c in range(128) if chr(c).isalnum())
_ASCII_ALPHA = bytes(c for c in range(128) if chr(c).isalpha())
_NON_ALNUM = re.compile(r"[\W_]+")


def count_tokens(text: str) -> int:
    """Tokens as the GPT-NeoX pre-tokenizer splits them (a lower bound of its BPE token count)."""
    if not text.isascii() or not text:
        return _PRETOKEN.subn("", text)[1]
    classes = _ASCII_CLASS[np.frombuffer(text.encode("ascii"), dtype=np.uint8)]
    kinds = np.maximum(classes, _WHITESPACE)  # one kind for all whitespace
    starts = np.flatnonzero(np.diff(kinds)) + 1
    run_starts = np.concatenate(([0], starts))
    run_ends = np.concatenate((starts, [len(classes)]))
    blank = kinds[run_starts] == _WHITESPACE
    tokens = int(np.count_nonzero(~blank))
    # A whitespace run before a non-space: all but its last character are one token, and its last character
    # is a token of its own unless it is a space (" ?X+" takes it); a run at the end is one token.
    inner = blank & (run_ends < len(classes))
    tokens += int(np.count_nonzero(inner & (run_ends - run_starts > 1)))
    tokens += int(np.count_nonzero(inner & (classes[run_ends - 1] != _SPACE)))
    tokens += int(blank[-1])
    # "'s", "'ll"... starting a token (after a letter, digit or non-space whitespace) are one token where runs
    # count two ("'" and the letters).
    if "'" in text:
        tokens -= sum(1 for m in _CONTRACTION.finditer(text) if m.start() == 0 or _starts_token(text[m.start() - 1]))
    return tokens


def _starts_token(before: str) -> bool:
    return before.isalnum() or (before.isspace() and before != " ")


class CodeStats:
    """RedPajama v1's file statistics (`get_filecontent_stats`) and its alphabetic characters per token, of a
    non-empty text: line lengths over `splitlines()`, mean = characters / lines (newlines included, as
    RedPajama), alphanumeric and alphabetic characters by `str.isalnum` / `str.isalpha`. Each is computed on
    first use, so a file that fails an early rule never pays for the later ones."""

    def __init__(self, text: str) -> None:
        self.text = text

    @cached_property
    def _line_lengths(self) -> list[int]:
        return [len(line) for line in self.text.splitlines()] or [0]

    @cached_property
    def _alnum_alpha(self) -> tuple[int, int]:
        if self.text.isascii():
            data = self.text.encode("ascii")
            return len(data) - len(data.translate(None, _ASCII_ALNUM)), len(data) - len(
                data.translate(None, _ASCII_ALPHA)
            )
        return len(self.text) - len(_NON_ALNUM.sub("", self.text)), sum(map(str.isalpha, self.text))

    @property
    def max_line_length(self) -> int:
        return max(self._line_lengths)

    @property
    def mean_line_length(self) -> float:
        return len(self.text) / len(self._line_lengths)

    @property
    def alphanum_fraction(self) -> float:
        return self._alnum_alpha[0] / len(self.text)

    @property
    def alpha_per_token(self) -> float:
        tokens = count_tokens(self.text)
        return self._alnum_alpha[1] / tokens if tokens else 0.0


@dataclass
class CodeConfig:
    """The licence and extension allow-lists and RedPajama v1's thresholds (see the module docstring)."""

    licenses: list[str] = option(
        factory=lambda: list(PERMISSIVE_LICENSES), help="SPDX ids of the licences kept (empty: keep every licence)"
    )
    extensions: list[str] = option(
        factory=lambda: list(REDPAJAMA_EXTENSIONS),
        help="a file is kept when its path ends with one of these (RedPajama v1's list; empty: keep all)",
    )
    max_line_length: int = option(1000, "drop files with a longer line (RedPajama: 1000)")
    max_mean_line_length: float = option(100.0, "drop files whose characters per line exceed this (RedPajama: 100)")
    min_alphanum_fraction: float = option(0.25, "drop files with fewer alphanumeric characters (RedPajama: 0.25)")
    min_alpha_per_token: float = option(1.5, "drop files with fewer alphabetic characters per token (RedPajama: 1.5)")
    remove_headers: bool = option(True, "remove leading comment blocks with copyright/licence wording")

    def validate(self) -> None:
        if self.max_line_length < 1 or self.max_mean_line_length <= 0:
            raise ConfigError("code_quality: max_line_length and max_mean_line_length must be positive")
        if not 0 <= self.min_alphanum_fraction <= 1:
            raise ConfigError("code_quality.min_alphanum_fraction: must be between 0 and 1")
        if self.min_alpha_per_token < 0:
            raise ConfigError("code_quality.min_alpha_per_token: must be >= 0")
        unknown = [name for name in self.licenses if canonical_license(name) == UNKNOWN_LICENSE]
        if unknown:
            raise ConfigError(f"code_quality.licenses: unknown {unknown}; known: {', '.join(KNOWN_LICENSES)}")


def code_reason(text: str, config: CodeConfig) -> str | None:
    """The first of RedPajama's content rules a (header-stripped) file breaks, or None."""
    if not text.strip():
        return "empty"
    stats = CodeStats(text)
    if stats.max_line_length > config.max_line_length:
        return "max_line_length"
    if stats.mean_line_length > config.max_mean_line_length:
        return "mean_line_length"
    if stats.alphanum_fraction < config.min_alphanum_fraction:
        return "alphanum_fraction"
    if stats.alpha_per_token < config.min_alpha_per_token:
        return "alpha_per_token"
    return None


class CodeFilter(Stage):
    """Keep permissively licensed code files that pass RedPajama's heuristics, without their licence header.

    Reads `license` and `path` from the document's metadata (the code reader sets them); a document without
    them has an unknown licence and no extension, and is dropped. Reasons (`code_quality.` and): `license`,
    `extension`, `empty`, `max_line_length`, `mean_line_length`, `alphanum_fraction`, `alpha_per_token`.
    A removed header is recorded as `header_removed_chars` in the metadata."""

    name: ClassVar[str] = "code_quality"
    Config: ClassVar[type] = CodeConfig

    def __init__(self, config: CodeConfig | None = None) -> None:
        super().__init__(config)
        self._licenses = frozenset(canonical_license(name) for name in self.config.licenses)
        self._extensions = tuple(self.config.extensions)

    def process(self, doc: Document) -> Document | Rejection:
        metadata = doc.metadata
        if self._licenses and canonical_license(metadata.get("license")) not in self._licenses:
            return Rejection(doc, f"{self.name}.license")
        path = str(metadata.get("path") or "")
        if self._extensions and not path.endswith(self._extensions):
            return Rejection(doc, f"{self.name}.extension")
        text, removed = strip_license_header(doc.text, path) if self.config.remove_headers else (doc.text, 0)
        reason = code_reason(text, self.config)
        if reason is not None:
            return Rejection(doc, f"{self.name}.{reason}")
        if not removed:
            return doc
        return replace(doc, text=text, metadata={**metadata, "header_removed_chars": removed})
