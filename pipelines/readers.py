"""Reading inputs: matching patterns to files, the records of one file, and a local iterator for small
jobs (quality-model training, tools, tests).

Inputs are paths, globs or URLs (anything Beam's FileSystems can match: local, gs://, s3://), optionally
prefixed with a source label (`books=/data/gutenberg/*.txt`). `prepare` matches them once, up front, so a
wrong path fails before any work starts and its tasks (one per file) are known and numbered.
"""

from __future__ import annotations

import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from filters.document import Document, Rejection
from filters.options import ConfigError
from pipelines.formats import Oversized, ReaderConfig, Record, Skip, detect_format, file_stem, parse_stream

LOG = logging.getLogger(__name__)
TOO_LARGE_REASON = "reader.too_large"
REJECTED_TEXT_CHARS = 4096  # an oversized document's text is kept only this long in rejected shards
_LABEL = re.compile(r"^([A-Za-z0-9_.-]+)=(.+)$")


@dataclass(frozen=True)
class InputSpec:
    """One input pattern and the source label its documents get (None: from the records/file name)."""

    pattern: str
    source: str | None = None


def parse_input(spec: str) -> InputSpec:
    match = _LABEL.match(spec)
    if match and "://" not in match.group(1):
        return InputSpec(match.group(2), match.group(1))
    return InputSpec(spec)


def match_file_sizes(pattern: str) -> list[tuple[str, int]]:
    """(path, size) of the files a pattern names; a directory means every file in it (recursively for
    local paths)."""
    if "://" not in pattern and not any(ch in pattern for ch in "*?[") and os.path.isdir(pattern):
        pattern = os.path.join(pattern, "**")
    result = FileSystems.match([pattern])[0]
    return sorted((m.path, m.size_in_bytes) for m in result.metadata_list if not m.path.endswith("/"))


Listing = dict[str, list[tuple[str, int]]]  # pattern -> its (path, size) files


def check_inputs(specs: Iterable[InputSpec], fmt: str | None = None) -> Listing:
    """Fail early, with the offending pattern named, when an input matches nothing or a matched file's
    format cannot be told from its name; returns what each pattern matched, for `plan_tasks` (a gs:// glob
    is listed once)."""
    listed: Listing = {}
    for spec in specs:
        try:
            files = match_file_sizes(spec.pattern)
        except Exception as error:  # FileSystems raises BeamIOError / ValueError for bad schemes
            raise ConfigError(f"cannot read input {spec.pattern!r}: {error}") from None
        if not files:
            raise FileNotFoundError(f"input {spec.pattern!r} matches no file")
        if fmt is None:
            for path, _ in files:
                detect_format(path)
        listed[spec.pattern] = files
    return listed


def plan_tasks(
    specs: Iterable[InputSpec], config: ReaderConfig, listed: Listing | None = None
) -> list[dict[str, object]]:
    """The tasks of a run: every matched file once, sorted by path (so the order of the inputs on the
    command line never matters), numbered; with `limit`, only the files holding the first `limit` documents
    in that order, the last one cut at the right record. `listed`: what `check_inputs` matched."""
    files: dict[str, tuple[int, str | None, str]] = {}
    for spec in specs:
        matched = listed[spec.pattern] if listed is not None else match_file_sizes(spec.pattern)
        for path, size in matched:
            if path in files and files[path][2] != spec.pattern:
                raise ConfigError(f"{path} is matched by two inputs ({files[path][2]!r} and {spec.pattern!r})")
            files[path] = (size, spec.source, spec.pattern)
    tasks: list[dict[str, object]] = []
    remaining = config.limit
    names = record_names(sorted(files))
    for path in sorted(files):
        size, source, _ = files[path]
        task: dict[str, object] = {
            "index": len(tasks),
            "path": path,
            "source": source,
            "size": size,
            "name": names[path],
        }
        if remaining is not None:
            if remaining <= 0:
                break
            task["limit"] = min(remaining, _count_documents(path, config, remaining))
            remaining -= task["limit"]  # type: ignore[operator]
        tasks.append(task)
    return tasks


def record_names(paths: list[str]) -> dict[str, str]:
    """The prefix of each file's default ids (`name:line`): its path relative to the folder all inputs
    share, without format suffixes, so `2019/part-0000.jsonl` and `2020/part-0000.jsonl` stay apart (and
    the files of one folder keep their stem; `intro.txt` and `intro.md` keep their suffixes). Stable for the
    same set of inputs."""
    folders = [path.split("/")[:-1] for path in paths]
    common = 0
    while folders and all(len(f) > common and f[common] == folders[0][common] for f in folders):
        common += 1
    names = {path: "/".join([*path.split("/")[common:-1], file_stem(path)]) for path in paths}
    taken = Counter(names.values())
    return {path: name if taken[name] == 1 else "/".join(path.split("/")[common:]) for path, name in names.items()}


def _count_documents(path: str, config: ReaderConfig, at_most: int) -> int:
    count = 0
    for record in iter_records(path, config):
        if isinstance(record, Document | Oversized):
            count += 1
            if count >= at_most:
                break
    return count


def iter_records(path: str, config: ReaderConfig, name: str | None = None) -> Iterator[Record]:
    """All records of one file, opened through Beam FileSystems (compression handled by the parser);
    `name` prefixes default ids (see `record_names`)."""
    try:
        raw = FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    except Exception as error:
        yield Skip("unreadable_file", f"{path}: {error}")
        return
    with raw:
        yield from parse_stream(raw, path, config, name)


def truncated_rejection(record: Oversized) -> Rejection:
    doc = replace(record.doc, text=record.doc.text[:REJECTED_TEXT_CHARS])
    doc.metadata = {**doc.metadata, "original_bytes": record.size}
    return Rejection(doc, TOO_LARGE_REASON)


def iter_documents_from(inputs: Iterable[str], fmt: str | None = None, **options: object) -> Iterator[Document]:
    """Documents of local or remote inputs, without Beam (quality-model training, tools, tests).
    Skips and oversized documents are logged with counts at the end."""
    config = ReaderConfig(format=fmt, **options)  # type: ignore[arg-type]
    config.validate()
    specs = [parse_input(spec) for spec in inputs]
    listed = check_inputs(specs, fmt)
    counts: dict[str, int] = {}
    produced = 0
    for task in plan_tasks(specs, replace(config, limit=None), listed):
        file_config = replace(config, source=task["source"] or config.source)
        for record in iter_records(str(task["path"]), file_config, str(task["name"])):
            if isinstance(record, Document):
                yield record
                produced += 1
                if config.limit is not None and produced >= config.limit:
                    _log_counts(counts)
                    return
            else:
                key = type(record).__name__.lower() + "." + getattr(record, "reason", "too_large")
                counts[key] = counts.get(key, 0) + 1
    _log_counts(counts)


def _log_counts(counts: dict[str, int]) -> None:
    if counts:
        LOG.warning("records not read as documents: %s", ", ".join(f"{k}={v}" for k, v in sorted(counts.items())))
