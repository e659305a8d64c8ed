"""LLaMA's GitHub source: the `code` reader (export, tar archive, repository tree) and the `code_quality`
stage, on real files of five repositories (data/samples/sources/github/README.md): MIT, BSD-3-Clause and
one GPL-3.0 repository, with binary fixtures, empty files, minified JS and licence headers."""

from __future__ import annotations

import gzip
import io
import json
import random
import re
import tarfile
from collections import Counter
from pathlib import Path

import pytest

from filters.code import (
    CodeFilter,
    CodeStats,
    canonical_license,
    count_tokens,
    detect_license,
    strip_license_header,
)
from filters.document import Document, Rejection
from filters.prepared import iter_documents, read_manifest
from pipelines import read_code
from pipelines.formats import ReaderConfig, Skip, parse_stream
from pipelines.readers import iter_records

GITHUB = Path(__file__).resolve().parent.parent / "data" / "samples" / "sources" / "github"
TAR = GITHUB / "repos.tar.gz"
EXPORT = GITHUB / "github_repos_contents.jsonl"
CODE = ReaderConfig(format="code")
PERMISSIVE = {"benhoyt/inih": "BSD-3-Clause", "macbre/mediawiki-dump": "MIT",
              "mediawiki-utilities/python-mwxml": "MIT", "spencermountain/wtf_wikipedia": "MIT"}  # fmt: skip


def read(path: Path, config: ReaderConfig = CODE) -> tuple[list[Document], Counter[str]]:
    """The documents of an input and its skips by reason."""
    docs, skips = [], Counter()
    with path.open("rb") as stream:
        for record in parse_stream(stream, str(path), config):
            if isinstance(record, Document):
                docs.append(record)
            elif isinstance(record, Skip):
                skips[record.reason] += 1
    return docs, skips


def by_file(docs: list[Document]) -> dict[tuple[str, str], Document]:
    return {(d.metadata["repo_name"], d.metadata["path"]): d for d in docs}


def tar_members() -> dict[str, bytes]:
    with tarfile.open(TAR) as archive:
        return {m.name: archive.extractfile(m).read() for m in archive if m.isfile()}


def filtered(docs: list[Document]) -> tuple[dict[tuple[str, str], Document], dict[tuple[str, str], str]]:
    """The kept documents and the drop reasons of the others, by (repository, path)."""
    stage = CodeFilter()
    kept, dropped = {}, {}
    for doc in docs:
        result = stage.run([doc])[0]
        key = (doc.metadata["repo_name"], doc.metadata["path"])
        if isinstance(result, Rejection):
            dropped[key] = result.reason
        else:
            kept[key] = result
    return kept, dropped


# --------------------------------------------------------------------------------------------- licences


def test_licences_detected_from_the_real_licence_files() -> None:
    members = tar_members()
    found = {
        name.rsplit("/", 1)[0]: detect_license(members[name].decode())
        for name in ("benhoyt/inih/LICENSE.txt", "jarun/pdd/LICENSE", "macbre/mediawiki-dump/LICENSE",
                     "mediawiki-utilities/python-mwxml/LICENSE", "spencermountain/wtf_wikipedia/LICENSE.md")
    }  # fmt: skip
    assert found == {**PERMISSIVE, "jarun/pdd": "GPL-3.0"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("SPDX-License-Identifier: Apache-2.0", "Apache-2.0"),
        ('Licensed under the Apache License, Version 2.0 (the "License");', "Apache-2.0"),
        ("GNU LESSER GENERAL PUBLIC LICENSE\n   Version 2.1, February 1999", "LGPL-2.1"),
        ("GNU AFFERO GENERAL PUBLIC LICENSE\nVersion 3, 19 November 2007", "AGPL-3.0"),
        (
            "the terms of the GNU General Public License as published by\nthe Free Software Foundation; either\n"
            "version 2 of the License",
            "GPL-2.0",
        ),
        ("Mozilla Public License Version 2.0\n==================================", "MPL-2.0"),
        (
            "Mozilla Public License Version 2.0\n1.12. \"Secondary License\"\n    means either the GNU General "
            "Public License, Version 2.0, the GNU Lesser\n    General Public License, Version 2.1",
            "MPL-2.0",
        ),
        (
            "Eclipse Public License - v 2.0\n\"Secondary License\" means either the GNU General Public License, "
            "Version 2.0, or any later versions of that license",
            "EPL-2.0",
        ),
        (
            "MIT License\n\nPermission is hereby granted, free of charge, to any person obtaining a copy\n\n"
            "src/vendor/foo.c is licensed under the GNU Lesser General Public License version 2.1.",
            "MIT",
        ),
        (
            "Redistribution and use in source and binary forms, with or without modification, are permitted "
            "provided that the following conditions are met:",
            "BSD-2-Clause",
        ),
        ("This is free and unencumbered software released into the public domain.", "Unlicense"),
        ("All rights reserved. Do not copy.", "unknown"),
    ],
)
def test_licence_key_phrases(text: str, expected: str) -> None:
    assert detect_license(text) == expected


def test_export_keys_become_spdx_ids() -> None:
    assert [canonical_license(k) for k in ("mit", "bsd-3-clause", "gpl-3.0", "GPL-3.0-or-later", "", "wtfpl")] == [
        "MIT", "BSD-3-Clause", "GPL-3.0", "GPL-3.0", "unknown", "unknown"
    ]  # fmt: skip


# ---------------------------------------------------------------------------------------------- readers


def test_tar_reader_reads_every_file_with_its_repository_licence() -> None:
    docs, skips = read(TAR)
    assert len(docs) == 181 and skips == {"empty_file": 6, "binary_file": 2}  # 189 files in the tar
    licences = Counter((d.metadata["repo_name"], d.metadata["license"]) for d in docs)
    assert licences == {("benhoyt/inih", "BSD-3-Clause"): 61, ("mediawiki-utilities/python-mwxml", "MIT"): 49,
                        ("spencermountain/wtf_wikipedia", "MIT"): 27, ("macbre/mediawiki-dump", "MIT"): 25,
                        ("jarun/pdd", "GPL-3.0"): 19}  # fmt: skip
    ini = by_file(docs)[("benhoyt/inih", "ini.c")]
    assert ini.id == "repos/benhoyt/inih/ini.c" and ini.source == "github"
    assert ini.url == "https://github.com/benhoyt/inih/blob/HEAD/ini.c"
    assert ini.metadata == {"repo_name": "benhoyt/inih", "path": "ini.c", "license": "BSD-3-Clause",
                            "extension": ".c", "language": "C"}  # fmt: skip
    assert ini.text.encode() == tar_members()["benhoyt/inih/ini.c"]


def test_binary_files_are_counted_skips_in_both_shapes() -> None:
    tar_docs, _ = read(TAR)
    export_docs, export_skips = read(EXPORT)
    for docs in (tar_docs, export_docs):
        paths = {d.metadata["path"] for d in docs}
        assert "test/fixtures/dump.xml" in paths and not paths & {
            "test/fixtures/dump.xml.7z",
            "test/fixtures/dump.xml.bz2",
        }
    assert export_skips == {"binary_file": 2, "empty_file": 6} and len(export_docs) == 132  # 140 rows


def test_export_and_tar_agree_on_the_same_files() -> None:
    tar_docs, export_docs = by_file(read(TAR)[0]), by_file(read(EXPORT)[0])
    assert export_docs.keys() < tar_docs.keys()
    for key, doc in export_docs.items():
        assert doc.text == tar_docs[key].text and doc.metadata["license"] == tar_docs[key].metadata["license"], key
    export_kept, export_dropped = filtered(list(export_docs.values()))
    tar_kept, tar_dropped = filtered([tar_docs[key] for key in export_docs])
    assert export_dropped == tar_dropped and {k: d.text for k, d in export_kept.items()} == {
        k: d.text for k, d in tar_kept.items()
    }
    mwxml = export_docs[("mediawiki-utilities/python-mwxml", "mwxml/about.py")]
    assert mwxml.id == "github_repos_contents/mediawiki-utilities/python-mwxml/mwxml/about.py"
    assert mwxml.url == ("https://github.com/mediawiki-utilities/python-mwxml/blob/"
                         "702ce7f41ac160250f0163e6a97453f7c6fb23ce/mwxml/about.py")  # fmt: skip


def write_tar(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as archive:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return path


def test_licence_file_after_the_files_it_covers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Streaming order: files listed before their repository's LICENSE wait for it (spilled to disk past the
    spool's memory limit); a repository without a licence file gets "unknown"; a one-repository archive
    (`<repo>/<path>`) works too."""
    monkeypatch.setattr(read_code, "SPOOL_MEMORY_BYTES", 1024)  # ini.c alone is 9 KB
    members = tar_members()
    inih = [(n, members[n]) for n in ("benhoyt/inih/ini.c", "benhoyt/inih/tests/unittest.c")]
    licence = ("benhoyt/inih/LICENSE.txt", members["benhoyt/inih/LICENSE.txt"])
    no_licence = ("jarun/pdd/setup.py", members["jarun/pdd/setup.py"])
    docs, _ = read(write_tar(tmp_path / "late.tar.gz", [*inih, no_licence, licence]))
    assert {(d.metadata["path"], d.metadata["license"]) for d in docs} == {
        ("ini.c", "BSD-3-Clause"), ("tests/unittest.c", "BSD-3-Clause"), ("LICENSE.txt", "BSD-3-Clause"),
        ("setup.py", "unknown"),
    }  # fmt: skip
    single = [(name.removeprefix("benhoyt/"), data) for name, data in [*inih, licence]]
    docs, _ = read(write_tar(tmp_path / "inih.tgz", single))
    assert {(d.metadata["repo_name"], d.metadata["path"], d.metadata["license"]) for d in docs} == {
        ("inih", "ini.c", "BSD-3-Clause"), ("inih", "tests/unittest.c", "BSD-3-Clause"),
        ("inih", "LICENSE.txt", "BSD-3-Clause"),
    }  # fmt: skip
    assert all(d.url is None for d in docs)  # "inih" is not an owner/repo name


def test_directory_of_repositories(tmp_path: Path) -> None:
    """Each file is its own input: the repository root is the nearest folder up with a licence file or .git."""
    with tarfile.open(TAR) as archive:
        archive.extractall(tmp_path, filter="data")
    (tmp_path / "macbre/mediawiki-dump/.git").mkdir()
    (tmp_path / "macbre/mediawiki-dump/.git/HEAD").write_text("ref: refs/heads/master\n")
    records = {}
    for path in sorted(tmp_path.rglob("*")):
        if path.is_file() and path.relative_to(tmp_path).parts[0] in ("benhoyt", "macbre"):
            records[path.relative_to(tmp_path).as_posix()] = list(iter_records(str(path), CODE))
    skips = Counter(r.reason for recs in records.values() for r in recs if isinstance(r, Skip))
    assert skips == {"binary_file": 2, "empty_file": 2, "vcs_metadata": 1}
    docs = by_file([r for recs in records.values() for r in recs if isinstance(r, Document)])
    assert len(docs) == 61 + 25
    unittest = docs[("benhoyt/inih", "tests/unittest.c")]
    assert unittest.metadata["license"] == "BSD-3-Clause" and unittest.id == "benhoyt/inih/tests/unittest.c"
    assert docs[("macbre/mediawiki-dump", "mediawiki_dump/reader.py")].metadata["license"] == "MIT"


def test_parquet_and_json_exports(tmp_path: Path) -> None:
    """The export as Parquet reads like the JSONL; a `.json` file is an export only when its first line is a
    row, so a repository's own package.json stays a source file."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [json.loads(line) for line in EXPORT.read_text().splitlines()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "contents.parquet")
    expected = {k: d.text for k, d in by_file(read(EXPORT)[0]).items()}
    parquet_docs, parquet_skips = read(tmp_path / "contents.parquet")
    assert {k: d.text for k, d in by_file(parquet_docs).items()} == expected
    assert parquet_skips == {"binary_file": 2, "empty_file": 6}
    (tmp_path / "contents.json").write_bytes(EXPORT.read_bytes())
    assert {k: d.text for k, d in by_file(read(tmp_path / "contents.json")[0]).items()} == expected
    package = tmp_path / "spencermountain/wtf_wikipedia/plugins/html/package.json"
    package.parent.mkdir(parents=True)
    package.write_bytes(tar_members()["spencermountain/wtf_wikipedia/plugins/html/package.json"])
    (tmp_path / "spencermountain/wtf_wikipedia/LICENSE.md").write_bytes(
        tar_members()["spencermountain/wtf_wikipedia/LICENSE.md"]
    )
    [doc], _ = read(package)
    assert doc.metadata["path"] == "plugins/html/package.json" and doc.metadata["license"] == "MIT"
    assert doc.text == package.read_text()


def test_bad_inputs_are_counted(tmp_path: Path) -> None:
    lines = EXPORT.read_bytes().splitlines(keepends=True)
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(lines[0] + lines[1][: len(lines[1]) // 2] + b"\n" + b'{"path": "x.py"}\n' + lines[2])
    docs, skips = read(broken)
    assert len(docs) == 2 and skips == {"invalid_json": 1, "not_an_export_row": 1}

    whole = gzip.decompress(TAR.read_bytes())
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(gzip.compress(whole)[:40_000])
    docs, skips = read(truncated)
    assert skips["corrupt_compression"] == 1 and 0 < len(docs) < 181

    (tmp_path / "garbage.tar").write_bytes(b"not a tar archive at all" * 100)
    assert read(tmp_path / "garbage.tar")[1] == {"corrupt_archive": 1}
    assert read(write_tar(tmp_path / "empty.tar.gz", []))[1] == {"empty_archive": 1}


def test_a_streamed_tar_keeps_no_member_list(monkeypatch: pytest.MonkeyPatch) -> None:
    """tarfile's stream mode appends every TarInfo to `members`: millions of files would grow the memory."""
    opened = []
    real_open = tarfile.open
    monkeypatch.setattr(tarfile, "open", lambda *a, **k: opened.append(real_open(*a, **k)) or opened[-1])
    docs, _ = read(TAR)
    assert len(docs) == 181 and len(opened) == 1 and len(opened[0].members) <= 1


def test_a_damaged_header_or_corrupt_gzip_midway_is_counted(tmp_path: Path) -> None:
    """tarfile's stream mode ends an archive silently at a damaged header: the files after it must not vanish
    uncounted, and a gzip whose deflate data was altered must fail its CRC."""
    whole = bytearray(gzip.decompress(TAR.read_bytes()))
    with tarfile.open(fileobj=io.BytesIO(bytes(whole))) as archive:
        offsets = [m.offset for m in archive if m.isfile()]
    whole[offsets[50] : offsets[50] + 100] = b"x" * 100  # the 51st file's name: its header checksum fails
    (tmp_path / "damaged.tar").write_bytes(bytes(whole))
    docs, skips = read(tmp_path / "damaged.tar")
    assert skips["corrupt_archive"] == 1 and 0 < len(docs) < 181

    data = bytearray(TAR.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 64] = bytes(b ^ 0x5A for b in data[middle : middle + 64])
    (tmp_path / "flipped.tar.gz").write_bytes(bytes(data))
    docs, skips = read(tmp_path / "flipped.tar.gz")
    assert skips["corrupt_compression"] + skips["corrupt_archive"] == 1 and len(docs) < 181


# -------------------------------------------------------------------------------------------- the stage


def test_filter_drops_gpl_and_keeps_permissive_code() -> None:
    kept, dropped = filtered(read(TAR)[0])
    assert Counter(dropped.values()) == {
        "code_quality.extension": 64, "code_quality.license": 19, "code_quality.alpha_per_token": 5,
        "code_quality.mean_line_length": 2, "code_quality.max_line_length": 2,
    }  # fmt: skip
    assert {key for key, reason in dropped.items() if reason == "code_quality.license"} == {
        key for key in dropped if key[0] == "jarun/pdd"
    }
    assert len(kept) == 89 and {repo for repo, _ in kept} == set(PERMISSIVE)
    assert ("benhoyt/inih", "ini.c") in kept and ("macbre/mediawiki-dump", "mediawiki_dump/reader.py") in kept
    assert dropped[("benhoyt/inih", "LICENSE.txt")] == "code_quality.extension"  # no code extension
    assert dropped[("benhoyt/inih", "tests/baseline_single.txt")] == "code_quality.extension"


def test_gpl_kept_when_the_allow_list_says_so() -> None:
    stage = CodeFilter.from_options({"licenses": ["MIT", "GPL-3.0"]})
    pdd = by_file(read(TAR)[0])[("jarun/pdd", "setup.py")]
    assert isinstance(stage.run([pdd])[0], Document)


def test_minified_javascript_dropped_by_max_line_length() -> None:
    kept, dropped = filtered(read(TAR)[0])
    wtf = "spencermountain/wtf_wikipedia"
    for build in ("plugins/classify/builds/wtf-plugin-classify.min.js", "plugins/html/builds/wtf-plugin-html.min.js"):
        assert dropped[(wtf, build)] == "code_quality.max_line_length"
    assert (wtf, "plugins/html/src/01-doc.js") in kept  # the plugin's source, not minified
    minified = by_file(read(TAR)[0])[(wtf, "plugins/html/builds/wtf-plugin-html.min.js")].text
    assert CodeStats(minified).max_line_length == 4853


def test_licence_header_removed_from_inih_sources() -> None:
    kept, _ = filtered(read(TAR)[0])
    original = tar_members()["benhoyt/inih/ini.c"].decode()
    ini = kept[("benhoyt/inih", "ini.c")]
    assert original.startswith("/* inih -- simple .INI file parser\n\nSPDX-License-Identifier: BSD-3-Clause")
    assert ini.text == original[original.index("#if defined(_MSC_VER)") :]
    assert ini.metadata["header_removed_chars"] == len(original) - len(ini.text) == 253
    reader = kept[("benhoyt/inih", "cpp/INIReader.cpp")].text
    assert reader.startswith("// Read an INI file into easy-to-access name/value pairs.\n\n#include <algorithm>")
    assert "Copyright" not in reader and "SPDX" not in reader


def test_header_removal_keeps_shebang_and_non_licence_comments() -> None:
    members = tar_members()
    pdd = members["jarun/pdd/pdd"].decode()
    text, removed = strip_license_header(pdd, "pdd")
    assert text.startswith("#!/usr/bin/env python3\nimport argparse\n") and "GNU General Public" not in text[:2000]
    assert removed == len(pdd) - len(text) > 700
    conf = members["mediawiki-utilities/python-mwxml/doc/conf.py"].decode()  # a sphinx comment, no licence
    assert strip_license_header(conf, "doc/conf.py") == (conf, 0)
    c_code = "#include <stdio.h>\n/* Copyright 2024 */\nint x;\n"  # `#` is not a comment in C
    assert strip_license_header(c_code, "x.c") == (c_code, 0)


# The GPT-2 / GPT-NeoX pre-tokenizer (\p{L} and \p{N} in Python's classes): the reference count_tokens matches.
GPT2_PRETOKENIZER = re.compile(r"""'s|'t|'re|'ve|'m|'ll|'d| ?[^\W\d_]+| ?\d+| ?(?:[^\w\s]|_)+|\s+(?!\S)|\s+""")


def test_token_count_is_the_pretokenizer_count() -> None:
    """The numpy run count of ASCII text equals the regex's piece count: on every sample file and on random
    strings made of the characters where the rules differ (contractions, spaces before words, tabs)."""
    texts = [d.text for d in read(TAR)[0]]
    assert sum(t.isascii() for t in texts) > 100
    rng = random.Random(0)
    texts += ["".join(rng.choices("ab 's'll\t\n  x1_'-'ve.'tD9", k=rng.randint(1, 14))) for _ in range(3000)]
    assert [count_tokens(t) for t in texts] == [len(GPT2_PRETOKENIZER.findall(t)) for t in texts]
    assert count_tokens("it's 12 apples,\n\tx_y") == len(["it", "'s", " 12", " apples", ",", "\n", "\t", "x", "_", "y"])


# ---------------------------------------------------------------------------------------------- recipe


@pytest.mark.slow
def test_prepare_recipe_end_to_end(cli, tmp_path: Path) -> None:
    """The tar and the export hold the same files: file-level exact dedup keeps one copy of each."""
    out = tmp_path / "out"
    assert cli("prepare", "--recipe", "llama-github", TAR, EXPORT, "-o", out, "-q", "--keep-rejected") == 0
    counts = read_manifest(str(out))["counts"]
    export_kept, _ = filtered(read(EXPORT)[0])
    assert counts["read"] == 181 + 132 == counts["kept"] + counts["dropped_total"]
    assert counts["skipped"] == {"binary_file": 4, "empty_file": 12}
    assert counts["kept"] == 89 and counts["dropped"]["exact_dedup.duplicate"] == len(export_kept)
    assert counts["dropped"]["code_quality.license"] == 19 + 12
    kept = list(iter_documents(str(out)))
    assert {d.metadata["license"] for d in kept} == {"MIT", "BSD-3-Clause"} and all(d.source == "github" for d in kept)
    ini = next(d for d in kept if d.metadata["path"] == "ini.c")
    assert ini.text.startswith("#if defined(_MSC_VER)")
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["stages"] == ["code_quality", "exact_dedup"]
