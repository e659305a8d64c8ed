"""Every configuration example in the README, the docs and data/ is a valid `prepare` configuration, and
`--print-config` prints one that loads back to the same settings."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pipelines.config import dump_config, load_prepare_config
from tests.conftest import REPO

FENCED = re.compile(r"^```(toml|yaml)\n(.*?)^```", re.S | re.M)
DOCUMENTS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def examples() -> list[tuple[str, str, str]]:
    found = []
    for document in DOCUMENTS:
        for index, match in enumerate(FENCED.finditer(document.read_text(encoding="utf-8"))):
            found.append((f"{document.name}#{index}", match.group(1), match.group(2)))
    return found


def test_the_documents_have_config_examples():
    assert len(examples()) >= 4


@pytest.mark.parametrize(("where", "language", "text"), examples(), ids=[e[0] for e in examples()])
def test_config_example_loads(tmp_path, where, language, text):
    path = tmp_path / f"example.{language}"
    path.write_text(text, encoding="utf-8")
    config = load_prepare_config(str(path))
    assert config.stages, where


def test_demo_config_and_printed_config_load(tmp_path):
    demo = load_prepare_config(str(REPO / "data" / "demo-prepare.toml"), ["quality.model_path=demo.bin"])
    printed = tmp_path / "printed.yaml"
    printed.write_text(dump_config(demo), encoding="utf-8")
    assert load_prepare_config(str(printed)).to_dict() == demo.to_dict()
    assert Path(printed).read_text().startswith("stages:")
