"""Reading source code (LLaMA's GitHub part) in three shapes, one document per file:

- an **export** shaped like BigQuery's public `github_repos` contents (JSON lines or Parquet; one row per
  file: `repo_name`, `path`, `content`, `binary`, `license`, and optionally `ref`, `commit`, `id`). The
  licence is the row's. A `.json` file is an export only when its first line is such a row (a repository's
  own `package.json` is a source file); `.jsonl`/`.ndjson`/`.parquet` are always exports.
- a **tar archive** (`.tar`, `.tar.gz`, `.tgz`, ...) of repositories laid out `<owner>/<repo>/<path>`, or of
  one repository (`<repo>/<path>` or `<path>`), read in streaming mode. A folder at depth 0, 1 or 2 that
  holds a licence file (LICENSE*, LICENCE*, COPYING*) is a repository root, and a file belongs to the
  deepest root above it. A tar may list a licence file after the files it covers, so a file whose deepest
  candidate folder has no recognised licence yet waits: its bytes go to one spooled temporary file (in
  memory up to `SPOOL_MEMORY_BYTES`, then on disk), so memory stays bounded whatever the archive's order.
  It is emitted as soon as that folder's licence is read, or at the end of the archive.
- a **file of a repository tree** (a directory input gives one task per file): its repository root is
  the nearest folder, walking up from the file, that holds a licence file or `.git`; the licence is read
  from that folder's licence files (the first one recognised, LICENSE*/LICENCE* before COPYING*).
  Roots are cached per process. Only local paths are walked: pack remote trees as tar or export them.

Every file becomes a document with id `<name>/<repo>/<path>` (`<repo>/<path>` for a tree), source
`config.source or "github"`, a GitHub url when the repository is `owner/repo`, and metadata `repo_name`,
`path`, `license` (SPDX id or "unknown"), `extension`, `language`. Not documents, and counted as skips:
binary files (a NUL byte, invalid UTF-8, `binary: true`, or a compressed file in a tree) `binary_file`;
empty files `empty_file`; broken JSON lines `invalid_json`; rows without `repo_name`/`path`
`not_an_export_row`; symlinks `link`; files under `.git/` `vcs_metadata`; an unreadable archive
`corrupt_archive`; an archive without files `empty_archive`. Licensing and quality are judged later, by
the `code_quality` stage.
"""

from __future__ import annotations

import functools
import io
import json
import os
import posixpath
import re
import tarfile
import tempfile
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from filters.code import (
    UNKNOWN_LICENSE,
    canonical_license,
    detect_license,
    file_extension,
    file_language,
    is_license_file,
)
from filters.document import Document
from pipelines.formats import (
    COMPRESSED_SUFFIXES,
    READ_ERRORS,
    Prefixed,
    ReaderConfig,
    Record,
    Repaired,
    Row,
    Skip,
    json_lines,
    parquet_rows,
    read_capped,
    sized,
    strip_compression,
    trailing_data,
)

SOURCE = "github"
SNIFF_BYTES = 1 << 20  # how much of a `.json` file's first line tells an export from a JSON source file
SPOOL_MEMORY_BYTES = 64 << 20  # pending tar members kept in memory up to this, then spilled to disk
_EXPORT_KEYS = (re.compile(rb'"repo_name"\s*:'), re.compile(rb'"path"\s*:'))
_TAR_SUFFIXES = (".tar", ".tgz", ".tbz2", ".txz")


def parse_code(stream: IO[bytes], path: str, config: ReaderConfig, name: str) -> Iterator[Record]:
    """The documents of one input of the `code` format (an export, a tar archive or one source file)."""
    kind = _input_kind(path)
    if kind == "tar":
        yield from parse_tar(stream, path, config, name)
    elif kind == "parquet":
        yield from parse_export(parquet_rows(stream, path), path, config, name)
    elif kind == "jsonl":
        yield from parse_export(json_lines(stream, path), path, config, name)
    elif kind == "json":
        first = stream.readline(SNIFF_BYTES)
        if _is_export_row(first):
            yield from parse_export(json_lines(io.BufferedReader(Prefixed(first, stream)), path), path, config, name)
        else:
            yield from parse_tree_file(io.BufferedReader(Prefixed(first, stream)), path, config)
    elif path.lower().endswith(COMPRESSED_SUFFIXES):
        yield Skip("binary_file", f"{path}: a compressed file in a repository tree")
    else:
        yield from parse_tree_file(stream, path, config)


def _input_kind(path: str) -> str:
    """What a path names, from its suffix once the compression suffixes are gone (parse_stream undid the
    last; tarfile undoes one more itself)."""
    lower = path.lower()
    while (bare := strip_compression(lower)) != lower:
        lower = bare
    if lower.endswith(_TAR_SUFFIXES):
        return "tar"
    for kind, suffixes in (("parquet", (".parquet",)), ("jsonl", (".jsonl", ".ndjson")), ("json", (".json",))):
        if lower.endswith(suffixes):
            return kind
    return "file"


def _is_export_row(line: bytes) -> bool:
    """True when a `.json` file's first line is an export row (one cut at SNIFF_BYTES: when it names both
    keys), not a repository's own JSON document."""
    if len(line) == SNIFF_BYTES and not line.endswith(b"\n"):
        return line.lstrip().startswith(b"{") and all(key.search(line) for key in _EXPORT_KEYS)
    try:
        row = json.loads(line)
    except ValueError:
        return False
    return isinstance(row, dict) and "repo_name" in row and "path" in row


# ------------------------------------------------------------------------------------------- documents


@dataclass(frozen=True)
class FileRef:
    """Where a file comes from: its repository, its path in it, the licence, and the git ref if known."""

    repo: str
    path: str
    license: str
    ref: str | None = None


def github_url(file: FileRef) -> str | None:
    """The file's page on GitHub when the repository is named `owner/repo`."""
    if file.repo.count("/") != 1:
        return None
    return f"https://github.com/{file.repo}/blob/{file.ref or 'HEAD'}/{file.path}"


def code_document(doc_id: str, text: str, file: FileRef, config: ReaderConfig, extra: dict[str, Any]) -> Document:
    metadata = {
        "repo_name": file.repo,
        "path": file.path,
        "license": file.license,
        "extension": file_extension(file.path),
        "language": file_language(file.path),
        **extra,
    }
    return Document(id=doc_id, text=text, source=config.source or SOURCE, url=github_url(file), metadata=metadata)


def file_records(data: bytes, size: int, doc_id: str, file: FileRef, config: ReaderConfig) -> Iterator[Record]:
    """The records of a file's bytes (`data` may be cut at `max_document_bytes`; `size` is the whole):
    a binary or empty file is a Skip, a larger one Oversized, invalid UTF-8 past the cut is ignored."""
    where = f"{file.repo}/{file.path}"
    if size == 0:
        yield Skip("empty_file", where)
        return
    if b"\0" in data:
        yield Skip("binary_file", f"{where}: a NUL byte")
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        if size <= len(data) or error.start < len(data) - 3:
            yield Skip("binary_file", f"{where}: not UTF-8 ({error.reason} at byte {error.start})")
            return
        text = data.decode("utf-8", errors="ignore")  # a character cut by the size limit
    yield sized(code_document(doc_id, text, file, config, {}), config, size)


# -------------------------------------------------------------------------------------------- exports


def export_records(row: dict[str, Any], config: ReaderConfig, name: str, where: str) -> Iterator[Record]:
    """One export row (BigQuery `github_repos` contents shape) as records."""
    repo, path = row.get("repo_name"), row.get("path")
    if not isinstance(repo, str) or not isinstance(path, str) or not repo or not path:
        yield Skip("not_an_export_row", f"{where}: no repo_name/path")
        return
    ref = row.get("commit") or _branch(row.get("ref"))
    file = FileRef(repo, path, canonical_license(row.get("license")), ref)
    extra = {key: row[key] for key in ("ref", "commit") if row.get(key)}
    if row.get("id"):
        extra["blob_id"] = row["id"]
    content = row.get("content")
    if row.get("binary") or content is None:
        yield Skip("binary_file", f"{where}: {repo}/{path}")
        return
    if not isinstance(content, str):
        yield Skip("not_an_export_row", f"{where}: content is not a string")
        return
    if "\0" in content:
        yield Skip("binary_file", f"{where}: {repo}/{path}: a NUL character")
        return
    if not content:
        yield Skip("empty_file", f"{where}: {repo}/{path}")
        return
    doc = code_document(f"{name}/{repo}/{path}", content, file, config, extra)
    yield sized(doc, config, len(content.encode("utf-8", errors="surrogatepass")))


def _branch(ref: Any) -> str | None:
    """BigQuery's `ref` ("refs/heads/master") as a name for a url; None for HEAD or nothing."""
    if not isinstance(ref, str) or not ref or ref == "HEAD":
        return None
    return ref.removeprefix("refs/heads/").removeprefix("refs/tags/")


def parse_export(rows: Iterable[Row | Skip | Repaired], path: str, config: ReaderConfig, name: str) -> Iterator[Record]:
    """The records of an export's rows (`formats.json_lines` or `formats.parquet_rows`)."""
    for item in rows:
        if isinstance(item, tuple):
            yield from export_records(item[1], config, name, f"{path}:{item[0]}")
        else:
            yield item


# -------------------------------------------------------------------------------------------- archives


@dataclass(frozen=True)
class _Pending:
    """A tar member waiting for its repository's licence: its path and where its bytes are in the spool."""

    path: str
    offset: int
    length: int
    size: int


def _candidate_roots(path: str) -> list[str]:
    """The folders at depth 0, 1 and 2 that hold a member ("" is the archive's top)."""
    parts = path.split("/")
    return ["/".join(parts[:depth]) for depth in range(min(3, len(parts)))]


class _TarRepositories:
    """Licences per repository root of one archive, and the members that wait for theirs."""

    def __init__(self, config: ReaderConfig, name: str, spool: IO[bytes]) -> None:
        self.config, self.name, self.spool = config, name, spool
        self.licenses: dict[str, str] = {}  # root -> SPDX id, or "unknown" while only unrecognised files seen
        self.pending: list[_Pending] = []

    def known(self, root: str) -> bool:
        return self.licenses.get(root, UNKNOWN_LICENSE) != UNKNOWN_LICENSE

    def add_license(self, folder: str, text: str) -> Iterator[Record]:
        """Record a licence file of `folder`; if it names a licence, release the members waiting for it."""
        if self.known(folder):
            return
        self.licenses[folder] = detect_license(text)
        if self.known(folder):
            waiting = [p for p in self.pending if _candidate_roots(p.path)[-1] == folder]
            self.pending = [p for p in self.pending if _candidate_roots(p.path)[-1] != folder]
            yield from self._release(waiting)

    def records(self, path: str, data: bytes, size: int) -> Iterator[Record]:
        """A member's records now, if its deepest candidate root has a known licence; else it waits."""
        if self.known(_candidate_roots(path)[-1]):
            yield from self._member_records(path, data, size)
            return
        self.spool.seek(0, io.SEEK_END)
        self.pending.append(_Pending(path, self.spool.tell(), len(data), size))
        self.spool.write(data)

    def finish(self) -> Iterator[Record]:
        """The members still waiting, each under the deepest root holding a licence file (or its own
        depth-2 folder, with an unknown licence)."""
        waiting, self.pending = self.pending, []
        yield from self._release(waiting)

    def _release(self, waiting: Iterable[_Pending]) -> Iterator[Record]:
        for item in waiting:
            self.spool.seek(item.offset)
            yield from self._member_records(item.path, self.spool.read(item.length), item.size)

    def _member_records(self, path: str, data: bytes, size: int) -> Iterator[Record]:
        candidates = _candidate_roots(path)
        root = next((c for c in reversed(candidates) if c in self.licenses), candidates[-1])
        relative = path[len(root) + 1 :] if root else path
        repo = root or self.name
        file = FileRef(repo, relative, self.licenses.get(root, UNKNOWN_LICENSE))
        yield from file_records(data, size, f"{self.name}/{repo}/{relative}", file, self.config)


def _member_path(member: tarfile.TarInfo) -> str:
    return posixpath.normpath(member.name.lstrip("/")).removeprefix("./")


def parse_tar(stream: IO[bytes], path: str, config: ReaderConfig, name: str) -> Iterator[Record]:
    """Every file of a tar archive of repositories (see the module docstring for roots and licences)."""
    with tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES) as spool:
        repos = _TarRepositories(config, name, spool)  # type: ignore[arg-type]
        try:
            files = yield from _tar_members(stream, path, config, repos)
        except tarfile.TarError as error:
            yield from repos.finish()
            yield Skip("corrupt_archive", f"{path}: {error}")
            return
        except READ_ERRORS:
            yield from repos.finish()  # what was read stays read; parse_stream counts the error
            raise
        yield from repos.finish()
    if not files:
        yield Skip("empty_archive", path)


def _tar_members(
    stream: IO[bytes], path: str, config: ReaderConfig, repos: _TarRepositories
) -> Generator[Record, None, int]:
    """The records of the members read so far (waiting ones stay with `repos`); returns the file count."""
    files = 0
    with tarfile.open(fileobj=stream, mode="r|*") as archive:
        for member in archive:
            archive.members.clear()  # stream mode keeps every member's TarInfo: memory would grow with the archive
            member_path = _member_path(member)
            if member.isdir():
                continue
            files += 1
            if member.issym() or member.islnk():
                yield Skip("link", f"{path}: {member_path}")
            elif not member.isfile():
                yield Skip("not_a_file", f"{path}: {member_path}")
            elif ".git" in member_path.split("/")[:-1]:
                yield Skip("vcs_metadata", f"{path}: {member_path}")
            else:
                # the header knows the size: an oversized member is not read through to measure it
                data, size = archive.extractfile(member).read(config.max_document_bytes + 1), member.size  # type: ignore[union-attr]
                folder, base = posixpath.split(member_path)
                if is_license_file(base) and folder in _candidate_roots(member_path):
                    yield from repos.add_license(folder, data.decode("utf-8", errors="replace"))
                yield from repos.records(member_path, data, size)
        if trailing_data(archive):
            raise tarfile.ReadError(f"a damaged header after {files} files ends the archive: the rest is unreadable")
    return files


# ----------------------------------------------------------------------------------------------- trees


@functools.lru_cache(maxsize=1024)
def _listing(folder: str) -> tuple[str, ...]:
    try:
        return tuple(sorted(os.listdir(folder)))
    except OSError:
        return ()


@functools.lru_cache(maxsize=4096)
def repository_root(folder: str) -> tuple[str, str] | None:
    """The repository root holding `folder` (the nearest folder, walking up, with a licence file or `.git`)
    and its licence; None when there is none up to the file system's root."""
    folder = os.path.abspath(folder)
    while True:
        names = _listing(folder)
        licenses = [n for n in names if is_license_file(n) and os.path.isfile(os.path.join(folder, n))]
        if licenses or ".git" in names:
            return folder, _tree_license(folder, licenses)
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent


def _tree_license(folder: str, names: list[str]) -> str:
    """The first recognised licence among a root's licence files (LICENSE*/LICENCE*, then the others)."""
    for file_name in sorted(names, key=lambda n: (not n.lower().startswith("licen"), n.lower())):
        with open(os.path.join(folder, file_name), "rb") as handle:
            found = detect_license(handle.read(1 << 20).decode("utf-8", errors="replace"))
        if found != UNKNOWN_LICENSE:
            return found
    return UNKNOWN_LICENSE


def parse_tree_file(stream: IO[bytes], path: str, config: ReaderConfig) -> Iterator[Record]:
    """One file of a repository tree; its repository is `owner/repo`, the last two folders of its root."""
    if ".git" in path.replace(os.sep, "/").split("/")[:-1]:
        yield Skip("vcs_metadata", path)
        return
    folder = os.path.dirname(path)
    found = repository_root(folder) if "://" not in path else None
    root, license_id = found if found else (folder, UNKNOWN_LICENSE)
    repo = "/".join(root.replace(os.sep, "/").rstrip("/").split("/")[-2:])
    relative = os.path.relpath(path, root).replace(os.sep, "/") if "://" not in path else posixpath.basename(path)
    data, size = read_capped(stream, config.max_document_bytes)
    yield from file_records(data, size, f"{repo}/{relative}", FileRef(repo, relative, license_id), config)
