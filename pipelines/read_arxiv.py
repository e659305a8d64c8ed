"""Reading arXiv LaTeX sources as arXiv ships them: one paper per input file, one document per paper.

A paper's source is a tar (`.tar.gz`, `.tgz`, `.tar`; `parse_stream` has already undone a `.gz` suffix), a
gzipped single `.tex` (arXiv's bulk archives store single-file submissions as a `.gz` that is not a tarball:
told apart by the tar magic `ustar` at offset 257), or a plain `.tex`. Inside a tar the main file is the `.tex`
with `\\documentclass` (or LaTeX 2.09's `\\documentstyle`) and `\\begin{document}`; among several, one named
ms/main/paper, else the longest. Its `\\input`/`\\include` files are inlined from the archive (with or without
`.tex`, nested; cycles, depth and total size guarded). A plain `.tex` file's inputs are read from its folder
through Beam's FileSystems (local or remote), as TeX would find them; a gzipped single file has no neighbours.

Nothing is lost silently: an input that cannot be found is left as written and counted
(`repaired.missing_input`, and named in `metadata["missing_inputs"]`); a file or archive without a main
`.tex` (a `.bib`, a figure, an `\\input` fragment given on its own) is `skipped.no_main_tex`; an empty tar is
`skipped.empty_archive`; a broken one `skipped.corrupt_archive`; a non-UTF-8 `.tex` is read as Latin-1
(`repaired.latin1_tex`); binary members (NUL bytes) are never read as text.
"""

from __future__ import annotations

import gzip
import io
import posixpath
import re
import tarfile
from collections.abc import Callable, Iterator
from typing import IO

from filters.document import Document
from filters.latex import inline_inputs
from pipelines.formats import COMPRESSED_SUFFIXES, Prefixed, ReaderConfig, Record, Repaired, Skip, sized, trailing_data

TAR_MAGIC_OFFSET = 257
GZIP_MAGIC = b"\x1f\x8b"
MAIN_NAMES = ("ms", "main", "paper")
# Members never read as text: figures, fonts, archives, compiled output.
BINARY_SUFFIXES = (
    *(".pdf", ".png", ".jpg", ".jpeg", ".gif", ".eps", ".ps", ".svg", ".otf", ".ttf", ".pfb", ".dvi"),
    *(".zip", ".gz", ".tar", ".tgz", ".mp4", ".avi", ".pkl", ".npy", ".h5", ".fits"),
)
_DOCUMENTCLASS = re.compile(r"^[^%\n]*\\document(?:class|style)(?![A-Za-z])", re.MULTILINE)
_BEGIN_DOCUMENT = re.compile(r"^[^%\n]*\\begin\s*\{document\}", re.MULTILINE)
_NEW_ARXIV_ID = re.compile(r"(?<![\d.])(\d{4}\.\d{4,5})(?:v\d+)?(?![\d.])")
_OLD_ARXIV_ID = re.compile(r"(?<![A-Za-z])([a-z]+(?:-[a-z]+)?(?:\.[A-Z]{2})?)/?(\d{7})(?:v\d+)?(?!\d)")
_INPUT_SUFFIXES = ("", ".tex")


def _read_head(stream: IO[bytes], size: int = 512) -> bytes:
    head = b""
    while len(head) < size:
        chunk = stream.read(size - len(head))
        if not chunk:
            break
        head += chunk
    return head


def is_tar(head: bytes) -> bool:
    return head[TAR_MAGIC_OFFSET : TAR_MAGIC_OFFSET + 5] == b"ustar"


def arxiv_id(name: str) -> str | None:
    """The arXiv identifier in a file's name (`1703.09710`, `celerite-1703.09710/ms`, `hep-th9901001`)."""
    match = _NEW_ARXIV_ID.search(name)
    if match:
        return match.group(1)
    match = _OLD_ARXIV_ID.search(name)
    return f"{match.group(1)}/{match.group(2)}" if match else None


def _decode(data: bytes) -> tuple[str, bool]:
    """UTF-8, else Latin-1 (older arXiv sources); the flag says the fallback was needed."""
    try:
        return data.decode("utf-8"), False
    except UnicodeDecodeError:
        return data.decode("latin-1"), True


def _tar_texts(stream: IO[bytes], limit: int) -> tuple[dict[str, bytes], int]:
    """The text-like regular members of a tar read as a stream (no seeking), by normalized name, and how many
    members there were in all. Binary suffixes, NUL bytes and members over `limit` bytes are passed over."""
    members: dict[str, bytes] = {}
    count = 0
    with tarfile.open(fileobj=stream, mode="r|") as archive:
        for member in archive:
            count += 1
            name = posixpath.normpath(member.name).lstrip("/")
            if not member.isfile() or member.size > limit or name.lower().endswith(BINARY_SUFFIXES):
                continue
            handle = archive.extractfile(member)
            data = handle.read() if handle is not None else b""
            if b"\0" not in data[:8192]:
                members[name] = data
        if trailing_data(archive):
            raise tarfile.ReadError(f"a damaged header after {count} members ends the archive: the rest is unreadable")
    return members, count


def choose_main(texts: dict[str, str]) -> str | None:
    """The main file: `\\documentclass` and `\\begin{document}` outside comments (else `\\begin{document}`
    alone); among several, one named ms/main/paper, else the longest."""
    candidates = [n for n, t in texts.items() if _BEGIN_DOCUMENT.search(t) and _DOCUMENTCLASS.search(t)]
    candidates = candidates or [n for n, t in texts.items() if _BEGIN_DOCUMENT.search(t)]
    if not candidates:
        return None
    return max(candidates, key=lambda n: (posixpath.splitext(posixpath.basename(n))[0] in MAIN_NAMES, len(texts[n])))


def _archive_loader(texts: dict[str, str], folder: str) -> Callable[[str], tuple[str, str] | None]:
    def load(target: str) -> tuple[str, str] | None:
        for suffix in _INPUT_SUFFIXES:
            name = posixpath.normpath(posixpath.join(folder, target + suffix)).lstrip("/")
            if name in texts:
                return name, texts[name]
        return None

    return load


def _folder_loader(path: str, repairs: list[Repaired], limit: int) -> Callable[[str], tuple[str, str] | None]:
    """Inputs of a plain .tex read from its folder or below (Beam FileSystems: local, gs://, s3://), each up to
    `limit + 1` bytes (`inline_inputs` counts a longer one as too large). An absolute path or `..` is a missing
    input: `\\input{/etc/passwd}` in a downloaded paper must not put the host's files into a dataset."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    folder = posixpath.dirname(path)

    def load(target: str) -> tuple[str, str] | None:
        relative = posixpath.normpath(target)
        if relative.startswith(("/", "../")) or relative == "..":
            return None  # outside the paper's folder: a paper's inputs are its own files, never the host's
        for suffix in _INPUT_SUFFIXES:  # joined by hand: posixpath.normpath would turn gs:// into gs:/
            candidate = f"{folder}/{relative}{suffix}" if folder else relative + suffix
            try:
                with FileSystems.open(candidate, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
                    data = handle.read(limit + 1)
            except OSError:  # missing, a folder, unreadable (Beam's errors are OSErrors)
                continue
            if b"\0" in data[:8192]:
                continue
            text, latin1 = _decode(data)
            if latin1:
                repairs.append(Repaired("latin1_tex", candidate))
            return relative + suffix, text
        return None

    return load


def parse_arxiv(stream: IO[bytes], path: str, config: ReaderConfig, name: str) -> Iterator[Record]:
    """One paper (a tar, a gzipped single .tex or a plain .tex) as one document with its inputs inlined."""
    head = _read_head(stream)
    if head[:2] == GZIP_MAGIC:  # a .tgz, or a gzip that parse_stream did not undo
        stream = gzip.GzipFile(fileobj=io.BufferedReader(Prefixed(head, stream)), mode="rb")
        head = _read_head(stream)
    if not head.strip(b"\0"):  # nothing, or a tar's end-of-archive blocks only
        yield Skip("empty_archive" if head else "empty_file", path)
        return
    stream = io.BufferedReader(Prefixed(head, stream))
    repairs: list[Repaired] = []
    if is_tar(head):
        try:
            members, count = _tar_texts(stream, config.max_document_bytes)
        except tarfile.TarError as error:
            yield Skip("corrupt_archive", f"{path}: {error}")
            return
        texts: dict[str, str] = {}
        for member, data in members.items():
            texts[member], latin1 = _decode(data)
            if latin1 and member.lower().endswith(".tex"):
                repairs.append(Repaired("latin1_tex", f"{path}: {member}"))
        main = choose_main({n: t for n, t in texts.items() if n.lower().endswith((".tex", ".ltx", ".latex"))})
        if main is None:
            yield Skip("no_main_tex", f"{path}: no .tex member with \\begin{{document}} among {count} members")
            return
        load = _archive_loader(texts, posixpath.dirname(main))
        main_text = texts[main]
    else:
        data = stream.read(config.max_document_bytes + 1)
        if b"\0" in data[:8192]:
            yield Skip("no_main_tex", f"{path}: binary, not LaTeX")
            return
        main_text, latin1 = _decode(data)
        main = posixpath.basename(path)
        if latin1:
            repairs.append(Repaired("latin1_tex", path))
        if choose_main({main: main_text}) is None:
            yield Skip("no_main_tex", f"{path}: no \\begin{{document}} (an \\input fragment, a .bib, ...)")
            return
        plain = not path.lower().endswith(COMPRESSED_SUFFIXES)
        load = _folder_loader(path, repairs, config.max_document_bytes) if plain else _archive_loader({}, "")
    text, included, problems, missing = inline_inputs(main_text, load, main, max_chars=config.max_document_bytes)
    yield from repairs
    yield from (Repaired("missing_input", f"{path}: {target!r} not found") for target in missing)
    for reason in ("input_cycle", "input_too_deep", "input_too_large"):
        yield from (Repaired(reason, path) for _ in range(problems[reason]))
    identifier = arxiv_id(name)
    metadata = {"path": path, "main_file": main, "included_files": included}
    if missing:
        metadata["missing_inputs"] = missing
    if identifier:
        metadata["arxiv_id"] = identifier
    doc = Document(
        id=name,
        text=text,
        source=config.source or "arxiv",
        url=f"https://arxiv.org/abs/{identifier}" if identifier else None,
        metadata=metadata,
    )
    yield sized(doc, config, len(text.encode("utf-8")))
