"""The command line's one rule: a user's mistake (a bad input, option, file, model, checkpoint or output)
ends in one line that names it, with exit status 2; only a bug shows a traceback. Every command is run
here with bad arguments."""

from __future__ import annotations

import os

import pytest

from pipelines.cli import main
from tests.conftest import CC_JSONL, REPO

NOT_A_MODEL = REPO / "README.md"


@pytest.fixture(scope="module")
def places(tmp_path_factory, prepared_sample):
    root = tmp_path_factory.mktemp("bad")
    (root / "a_file").write_text("not a directory\n")
    (root / "empty_dir").mkdir()
    readonly = root / "readonly"
    readonly.mkdir()
    readonly.chmod(0o500)
    (root / "bad.toml").write_text("[langid]\nlanguages = 5\n")
    tokens = root / "tokens"
    tokens.mkdir()
    (tokens / "manifest.json").write_text('{"kind": "tokens", "splits": {}}')
    return {
        "BADCONFIG": str(root / "bad.toml"),
        "TOKENS": str(tokens),
        "FILE": str(root / "a_file"),
        "EMPTY": str(root / "empty_dir"),
        "READONLY": str(readonly),
        "MISSING": str(root / "missing"),
        "PREPARED": str(prepared_sample),
        "NOTMODEL": str(NOT_A_MODEL),
        "INPUT": str(CC_JSONL),
    }


CASES = [
    ["prepare", "INPUT", "--output", "FILE/sub"],
    ["prepare", "INPUT", "--output", "READONLY/out"],
    ["prepare", "MISSING/*.jsonl", "--output", "OUT"],
    ["prepare", "INPUT", "--output", "OUT", "--stages", "normalize,bogus"],
    ["prepare", "INPUT", "--output", "OUT", "--memory-budget", "lots"],
    ["prepare", "INPUT", "--output", "OUT", "--set", "shards.split_by_language=7"],
    ["prepare", "INPUT", "--output", "OUT", "--config", "BADCONFIG", "--stages", "langid"],
    ["prepare", "INPUT", "--output", "OUT", "--stages", "quality", "--quality-model", "NOTMODEL"],
    ["prepare", "INPUT", "--output", "OUT", "--no-such-flag"],
    ["prepare", "INPUT", "--output", "OUT", "--workers", "0"],
    ["stats", "MISSING"],
    ["stats", "EMPTY"],
    ["quality", "train", "--positive", "MISSING", "--negative", "INPUT", "--output", "OUT/q.bin"],
    ["quality", "eval", "--model", "NOTMODEL", "--labeled", "INPUT"],
    ["quality", "eval", "--model", "MISSING"],
    ["tokenizer", "train", "EMPTY", "--output", "OUT/tok"],
    ["tokenizer", "train", "PREPARED", "--output", "OUT/tok", "--vocab-size", "0"],
    ["tokenizer", "info", "NOTMODEL"],
    ["tokenizer", "info", "MISSING"],
    ["tokenize", "EMPTY", "--tokenizer", "NOTMODEL", "--output", "OUT/t"],
    ["tokenize", "PREPARED", "--tokenizer", "NOTMODEL", "--output", "OUT/t"],
    ["tokenize", "PREPARED", "--tokenizer", "MISSING", "--output", "OUT/t"],
    ["train", "--data", "MISSING", "--output", "OUT/run"],
    ["train", "--data", "PREPARED", "--output", "OUT/run"],
    ["train", "--data", "MISSING", "--config", "no-such-size", "--output", "OUT/run"],
    ["train", "--data", "MISSING", "--lr", "fast"],
    ["generate", "--checkpoint", "MISSING", "--prompt", "The"],
    ["generate", "--checkpoint", "EMPTY", "--prompt", "The"],
    ["convert", "to-hf", "MISSING", "OUT/hf"],
    ["convert", "from-hf", "EMPTY", "OUT/meta"],
    ["convert", "merge", "EMPTY", "OUT/merged"],
    ["prepare", "INPUT", "--output", "TOKENS", "--overwrite"],
    ["quality", "train", "--positive", "INPUT", "--negative", "INPUT", "--output", "FILE/q.bin"],
    ["no-such-command"],
]


@pytest.mark.parametrize("case", CASES, ids=[" ".join(c[:3]) for c in CASES])
def test_a_mistake_is_one_line_and_exit_2(places, tmp_path, capsys, case):
    if os.geteuid() == 0 and "READONLY/out" in case:
        pytest.skip("root writes into read-only folders")
    args = []
    for arg in case:
        for name, value in {**places, "OUT": str(tmp_path / "out")}.items():
            arg = arg.replace(name, value) if arg.startswith(name) else arg
        args.append(arg)
    try:
        code = main(args)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, (case, err)
    assert "Traceback" not in err and len(lines) == 1, (case, err)
    assert lines[0].startswith("llamaprep"), lines[0]


def test_an_output_of_another_kind_is_never_replaced(prepared_sample, tmp_path, capsys):
    tokenizer = tmp_path / "tok"
    assert main(["tokenizer", "train", str(prepared_sample), "--output", str(tokenizer), "--vocab-size", "3000"]) == 0
    other = tmp_path / "prepared-copy"
    other.mkdir()
    manifest = (prepared_sample / "manifest.json").read_text()
    (other / "manifest.json").write_text(manifest)
    capsys.readouterr()
    args = ["tokenize", str(prepared_sample), "--tokenizer", str(tokenizer / "tokenizer.model"), "--output", str(other)]
    assert main([*args, "--overwrite"]) == 2
    assert "not token shards" in capsys.readouterr().err
    assert (other / "manifest.json").read_text() == manifest  # untouched
