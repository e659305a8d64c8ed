"""Imports flow one way: filters <- tokenizer <- model, and pipelines on top. Each package is imported in a
fresh interpreter (every module of it) and the heavy modules that came with it are checked; the command
line builds its parser without any engine."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # each test starts a fresh interpreter

HEAVY = ("apache_beam", "torch", "fasttext", "sentencepiece", "kenlm", "transformers")


def loaded_after(code: str) -> set[str]:
    """Top-level packages in sys.modules after running `code` in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{name.split('.')[0] for name in sys.modules}})))"
    result = subprocess.run([sys.executable, "-c", probe], cwd=REPO, capture_output=True, text=True, check=True)
    return set(json.loads(result.stdout.strip().splitlines()[-1]))


def import_every_module(package: str) -> str:
    return (
        f"import importlib, pkgutil, {package}\n"
        f"for info in pkgutil.walk_packages({package}.__path__, '{package}.'):\n"
        f"    importlib.import_module(info.name)"
    )


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("filters", {"apache_beam", "torch", "pipelines", "tokenizer", "model", "sentencepiece"}),
        ("tokenizer", {"apache_beam", "torch", "pipelines", "model", "fasttext"}),
        ("model", {"apache_beam", "pipelines", "fasttext"}),
    ],
)
def test_each_layer_imports_only_what_is_below_it(package, forbidden):
    loaded = loaded_after(import_every_module(package))
    assert package in loaded
    assert not loaded & forbidden, f"importing {package} loaded {sorted(loaded & forbidden)}"


def test_the_command_line_parser_loads_no_engine():
    loaded = loaded_after("from pipelines.cli import build_parser\nbuild_parser()")
    assert not loaded & set(HEAVY) - {"sentencepiece"}, sorted(loaded & set(HEAVY))


def test_train_does_not_import_beam():
    loaded = loaded_after("import model.train, model.cli, model.data")
    assert "torch" in loaded and "apache_beam" not in loaded
