"""The training loop: schedule, optimizer groups, learning on real text, exact resume, accumulation and
FSDP2 equivalence."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from model_fixtures import tiny_config, write_byte_dataset

from model.config import NAMED_CONFIGS, TrainConfig
from model.llama import build_model
from model.meta_format import load_checkpoint
from model.schedule import learning_rate, parameter_groups
from model.train import tokenizer_model_path, train

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_byte_dataset(tmp_path_factory.mktemp("tokens"), n_bytes=30_000)


def test_schedule_values_at_known_steps() -> None:
    peak, warmup, total = 3e-4, 2000, 100_000
    assert learning_rate(0, peak, warmup, total) == pytest.approx(peak / 2000)
    assert learning_rate(999, peak, warmup, total) == pytest.approx(peak / 2)
    assert learning_rate(1999, peak, warmup, total) == pytest.approx(peak)
    # Half-way through the cosine: the mean of peak and floor.
    middle = 1999 + (total - 1 - 1999) // 2
    assert learning_rate(middle, peak, warmup, total) == pytest.approx(0.55 * peak)
    assert learning_rate(total - 1, peak, warmup, total) == pytest.approx(0.1 * peak)
    assert learning_rate(total + 10, peak, warmup, total) == pytest.approx(0.1 * peak)
    rates = [learning_rate(s, peak, warmup, total) for s in range(1999, total, 997)]
    assert all(a >= b for a, b in itertools.pairwise(rates))


def test_paper_optimizer_settings_and_no_decay_on_norms() -> None:
    config = TrainConfig()
    assert (config.beta1, config.beta2, config.weight_decay, config.grad_clip) == (0.9, 0.95, 0.1, 1.0)
    assert (config.min_lr_ratio, config.warmup_steps) == (0.1, 2000)
    model = build_model(NAMED_CONFIGS["tiny"], seed=0)
    decay, no_decay = parameter_groups(model, 0.1)
    names = {id(p): n for n, p in model.named_parameters()}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert all(names[id(p)].endswith("norm.weight") for p in no_decay["params"])
    assert len(no_decay["params"]) == 2 * 2 + 1
    assert any(names[id(p)] == "tok_embeddings.weight" for p in decay["params"])


def test_short_cpu_run_learns_real_text(dataset, tmp_path) -> None:
    config = tiny_config(dataset, tmp_path, steps=40, eval_every=20, log_every=5, warmup_steps=4)
    result = train(config)
    losses = list(result.losses.values())
    assert losses[0] > 4.0  # near ln(259) = 5.56 at the start
    assert losses[-1] < losses[0] - 1.0
    assert result.val_losses[40] < result.val_losses[20]
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert {"loss", "lr", "grad_norm", "tokens_per_s"} <= set(records[0])
    assert any("val_perplexity" in r for r in records)
    validations = [r for r in records if "val_loss" in r]
    assert [r["step"] for r in validations] == [20, 40]
    assert all({"val_loss/books", "val_loss/manuals"} <= set(r) for r in validations)  # per source, and the total
    assert result.checkpoint == tmp_path / "checkpoints" / "step-0000040"
    args, _ = load_checkpoint(result.checkpoint)
    assert args.vocab_size == 259  # taken from the token manifest


def test_resumed_run_reproduces_the_uninterrupted_losses(dataset, tmp_path) -> None:
    full = train(tiny_config(dataset, tmp_path / "full", save_every=4))
    interrupted = tmp_path / "resumed"
    (interrupted / "checkpoints").mkdir(parents=True)
    shutil.copytree(tmp_path / "full" / "checkpoints" / "step-0000004", interrupted / "checkpoints" / "step-0000004")
    resumed = train(tiny_config(dataset, interrupted, save_every=4), resume="latest")
    assert sorted(resumed.losses) == [5, 6, 7, 8]
    assert all(resumed.losses[s] == full.losses[s] for s in resumed.losses)
    _, full_weights = load_checkpoint(full.checkpoint)
    _, resumed_weights = load_checkpoint(resumed.checkpoint)
    assert all(torch.equal(full_weights[k], resumed_weights[k]) for k in full_weights)


def test_resuming_from_an_older_checkpoint_sets_the_newer_ones_aside(dataset, tmp_path, capsys) -> None:
    output = tmp_path / "run"
    train(tiny_config(dataset, output, save_every=2, keep_checkpoints=0))
    older = output / "checkpoints" / "step-0000004"
    again = train(tiny_config(dataset, output, save_every=2, keep_checkpoints=0), resume=str(older))
    assert "2 newer checkpoint(s) of the abandoned run moved to" in capsys.readouterr().err
    abandoned = sorted(p.name for p in (output / "checkpoints" / "abandoned").iterdir())
    assert abandoned == ["step-0000006", "step-0000008"]
    assert again.checkpoint == output / "checkpoints" / "step-0000008"  # the new timeline's, not the old one
    again_weights = load_checkpoint(again.checkpoint)[1]
    old_weights = load_checkpoint(output / "checkpoints" / "abandoned" / "step-0000008")[1]
    assert all(torch.equal(again_weights[k], old_weights[k]) for k in again_weights)  # same data, same steps


def test_deterministic_kernels_change_nothing_on_cpu_and_are_switched_off_after(dataset, tmp_path) -> None:
    plain = train(tiny_config(dataset, tmp_path / "plain", steps=3))
    strict = train(tiny_config(dataset, tmp_path / "strict", steps=3, deterministic=True))
    assert strict.losses == plain.losses
    assert not torch.are_deterministic_algorithms_enabled()


def test_gradient_accumulation_matches_one_big_batch(dataset, tmp_path) -> None:
    whole = train(tiny_config(dataset, tmp_path / "whole", steps=3))
    accumulated = train(tiny_config(dataset, tmp_path / "accum", steps=3, micro_batch_size=2, batch_tokens=8 * 64))
    for step, loss in whole.losses.items():
        assert accumulated.losses[step] == pytest.approx(loss, rel=1e-5)


def test_tokenizer_named_by_the_manifest_is_found(dataset, tmp_path) -> None:
    model_file = tmp_path / "tok.model"
    model_file.write_bytes(b"sentencepiece model")
    data = tmp_path / "data"
    shutil.copytree(dataset, data)
    manifest = json.loads((data / "manifest.json").read_text())
    assert tokenizer_model_path(str(data), None) is None
    (data / "manifest.json").write_text(json.dumps({**manifest, "tokenizer": {"path": str(model_file)}}))
    assert tokenizer_model_path(str(data), None) == model_file
    assert tokenizer_model_path(str(data), "other.model") == Path("other.model")


def test_batch_tokens_must_divide_into_micro_batches(dataset, tmp_path) -> None:
    with pytest.raises(ValueError, match="not a multiple"):
        train(tiny_config(dataset, tmp_path, batch_tokens=1000))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_fsdp_two_processes_match_one_process(dataset, tmp_path) -> None:
    steps = 4
    single = train(tiny_config(dataset, tmp_path / "single", steps=steps))
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nnodes=1",
        "--nproc-per-node=2",
        "--master-addr=127.0.0.1",
        f"--master-port={free_port()}",
        "-m",
        "pipelines.cli",
        "train",
        "--data", str(dataset),
        "--output", str(tmp_path / "fsdp"),
        "--config", "tiny",
        "--seq-len", "64",
        "--micro-batch-size", "4",
        "--steps", str(steps),
        "--lr", "3e-3",
        "--warmup-steps", "2",
        "--eval-every", "1000",
        "--eval-batches", "2",
        "--save-every", "1000",
        "--log-every", "1",
        "--seed", "5",
        "--device", "cpu",
        "--checkpoint-format", "full",  # the gather onto rank 0 (tests/test_train_distributed.py: sharded)
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    completed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=240)
    assert completed.returncode == 0, completed.stderr[-3000:]
    records = [json.loads(line) for line in (tmp_path / "fsdp" / "metrics.jsonl").read_text().splitlines()]
    distributed = {r["step"]: r["loss"] for r in records if "loss" in r}
    assert sorted(distributed) == list(range(1, steps + 1))
    for step, loss in single.losses.items():
        assert distributed[step] == pytest.approx(loss, rel=1e-5)
    _, single_weights = load_checkpoint(single.checkpoint)
    _, sharded_weights = load_checkpoint(tmp_path / "fsdp" / "checkpoints" / f"step-{steps:07d}")
    # Adam divides by the gradient's running RMS, so where a gradient is ~0 a summation-order difference can
    # move a weight by a small fraction of lr (3e-3); elsewhere the weights agree far more closely.
    for key, value in single_weights.items():
        torch.testing.assert_close(sharded_weights[key], value, rtol=1e-4, atol=3e-4)
        assert (sharded_weights[key] - value).abs().mean() < 1e-6


def test_mixture_and_train_config_options(tmp_path) -> None:
    from model.cli import parse_mixture, train_config_from_args
    from pipelines.cli import build_parser

    assert parse_mixture("llama")["commoncrawl"] == 0.67
    assert sum(parse_mixture("llama").values()) == pytest.approx(1.0)
    assert parse_mixture("web=0.8, books=0.2") == {"web": 0.8, "books": 0.2}
    (tmp_path / "mix.toml").write_text("[mixture]\nweb = 3\nbooks = 1\n")
    assert parse_mixture(str(tmp_path / "mix.toml")) == {"web": 3.0, "books": 1.0}
    with pytest.raises(ValueError, match="NAME=WEIGHT"):
        parse_mixture("web")
    (tmp_path / "train.toml").write_text("steps = 50\nlr = 1e-3\nweight_decay = 0.0\n")
    args = build_parser().parse_args(
        ["train", "--data", "d", "--train-config", str(tmp_path / "train.toml"), "--lr", "2e-3", "--compile"]
    )
    config = train_config_from_args(args)
    assert (config.steps, config.lr, config.weight_decay, config.compile) == (50, 2e-3, 0.0, True)
    assert config.beta2 == 0.95 and config.mixture == {}
    (tmp_path / "bad.toml").write_text("stepz = 5\n")
    args = build_parser().parse_args(["train", "--data", "d", "--train-config", str(tmp_path / "bad.toml")])
    with pytest.raises(ValueError, match="stepz"):
        train_config_from_args(args)


def test_commands_report_bad_input_in_one_line(dataset, tmp_path, capsys) -> None:
    from pipelines.cli import main

    bad_batch = ["--seq-len", "64", "--batch-tokens", "1000"]
    assert main(["train", "--data", str(dataset), "--output", str(tmp_path), *bad_batch]) == 2
    assert "llamaprep train: error: batch_tokens 1000 is not a multiple" in capsys.readouterr().err
    assert main(["train", "--data", str(tmp_path / "missing"), "--output", str(tmp_path)]) == 2
    assert "no manifest.json" in capsys.readouterr().err
    assert main(["train", "--data", str(dataset), "--output", str(tmp_path), "--micro-batch-size", "0"]) == 2
    assert "micro_batch_size must be at least 1, not 0" in capsys.readouterr().err
    assert main(["train", "--data", str(dataset), "--output", str(tmp_path), "--mixture", "books=many"]) == 2
    err = capsys.readouterr().err
    assert "--mixture books=many: could not convert string to float: 'many'" in err and len(err.splitlines()) == 1
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    assert main(["convert", "from-hf", str(tmp_path / "hf"), str(tmp_path / "out")]) == 2
    assert "not llama" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("entry", ["pipelines.cli", "model.cli"])
def test_the_training_entries_start_without_beam(entry):
    """`llamaprep train` and `torchrun -m model.cli train` build their parser and import the training code
    without Apache Beam (it took 4 s on every rank)."""
    code = (
        f"import sys\nfrom {entry} import build_parser\n"
        "args = build_parser().parse_args(['train', '--data', 'tokens'])\n"
        "import model.train\n"
        "assert args.func.__name__ == 'run_train' and 'torch' in sys.modules\n"
        "assert 'apache_beam' not in sys.modules, sorted(m for m in sys.modules if m.startswith('apache_beam'))"
    )
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-2000:]
