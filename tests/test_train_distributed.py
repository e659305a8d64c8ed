"""Two processes under torchrun (gloo, CPU, FSDP2): exact resume, resume on another process count, sharded
checkpoints, validation that does not depend on the process count, accumulation with sharded or whole
gradients, float16 with loss scaling. Tiny model, a few steps; each torchrun start costs a few seconds."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from model_fixtures import write_byte_dataset

from model.checkpoint import load_training_checkpoint
from model.config import TrainConfig
from model.data import TokenLoader
from model.distributed import DistributedContext
from model.llama import build_model
from model.meta_format import load_checkpoint
from model.schedule import build_optimizer
from model.train import train
from model.validation import build_validation_set, evaluate

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
STEPS = 6
# One optimizer step: 2 processes x 2 micro-batches of 2 sequences of 64 tokens = 512 tokens, the same global
# batch as one process with a micro-batch of 8.
SETTINGS = {
    "config": "tiny",
    "seq_len": 64,
    "micro_batch_size": 2,
    "batch_tokens": 512,
    "steps": STEPS,
    "lr": 3e-3,
    "warmup_steps": 2,
    "eval_every": 3,
    "eval_batches": 2,
    "save_every": 3,
    "log_every": 1,
    "seed": 5,
    "threads": 1,
}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_byte_dataset(tmp_path_factory.mktemp("tokens"), n_bytes=30_000)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(dataset: Path, output: Path, *extra: str, **changes) -> dict[int, dict]:
    """`torchrun --nproc-per-node 2 -m model.cli train` (the Beam-free entry, checked to leave nothing holding
    a process group at exit); the run's metrics by step."""
    settings = {**SETTINGS, **changes}
    flags = [f"--{key.replace('_', '-')}={value}" for key, value in settings.items()]
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc-per-node=2",
        "--master-addr=127.0.0.1", f"--master-port={free_port()}",
        str(REPO / "tests" / "torchrun_train.py"), "train",
        "--data", str(dataset), "--output", str(output), "--device", "cpu",
        *flags, *extra,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO), "PYTHONFAULTHANDLER": "1"}
    completed = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stdout[-2000:] + completed.stderr[-4000:]
    return metrics(output)


def metrics(output: Path) -> dict[int, dict]:
    by_step: dict[int, dict] = {}
    for line in (output / "metrics.jsonl").read_text().splitlines():
        record = json.loads(line)
        by_step.setdefault(record["step"], {}).update(record)
    return by_step


def one_process_config(dataset: Path, output: Path, **changes) -> TrainConfig:
    settings = {**SETTINGS, "micro_batch_size": 8, **changes}
    return TrainConfig(data=str(dataset), output=str(output), **settings)


@pytest.fixture(scope="module")
def two_process_run(dataset, tmp_path_factory):
    """6 steps, an asynchronous sharded checkpoint every 3 (each written by a background thread over a
    process group of its own while training goes on)."""
    output = tmp_path_factory.mktemp("two") / "run"
    return output, torchrun(dataset, output, "--async-save")


def test_two_processes_resume_bit_identically_from_sharded_checkpoints(dataset, two_process_run, tmp_path):
    output, uninterrupted = two_process_run
    middle = output / "checkpoints" / "step-0000003"
    # No rank gathered the model: each wrote its own shards, rank 0 the index.
    assert sorted(p.name for p in (middle / "shards").iterdir()) == [".metadata", "__0_0.distcp", "__1_0.distcp"]
    sizes = [(middle / "shards" / f"__{rank}_0.distcp").stat().st_size for rank in (0, 1)]
    assert min(sizes) > 0.8 * max(sizes)  # half of the weights and AdamW moments each (~1 MB), not all on rank 0
    listed = json.loads((middle / "checksums.json").read_text())
    assert {"shards/__0_0.distcp", "shards/__1_0.distcp", "shards/.metadata", "train_state.pt"} <= set(listed)
    assert not list(middle.glob("consolidated.*.pth"))

    resumed_output = tmp_path / "resumed"
    (resumed_output / "checkpoints").mkdir(parents=True)
    shutil.copytree(middle, resumed_output / "checkpoints" / middle.name)
    resumed = torchrun(dataset, resumed_output, "--resume")
    assert sorted(s for s in resumed if "loss" in resumed[s]) == [4, 5, 6]
    for step in (4, 5, 6):
        assert resumed[step]["loss"] == uninterrupted[step]["loss"], step
    assert resumed[6]["val_loss"] == uninterrupted[6]["val_loss"]
    _, weights = load_checkpoint(output / "checkpoints" / f"step-{STEPS:07d}")
    _, resumed_weights = load_checkpoint(resumed_output / "checkpoints" / f"step-{STEPS:07d}")
    assert weights.keys() == resumed_weights.keys()
    assert all(torch.equal(weights[k], resumed_weights[k]) for k in weights)


def test_a_two_process_checkpoint_resumes_in_one_process(dataset, two_process_run, tmp_path):
    output, uninterrupted = two_process_run
    (tmp_path / "one" / "checkpoints").mkdir(parents=True)
    shutil.copytree(output / "checkpoints" / "step-0000003", tmp_path / "one" / "checkpoints" / "step-0000003")
    resumed = train(one_process_config(dataset, tmp_path / "one"), resume="latest")
    assert sorted(resumed.losses) == [4, 5, 6]
    # The same samples and weights: only the order of float sums differs (one batch mean of 8 sequences here,
    # there two means of 4 averaged across processes), a few units in the 7th digit.
    for step, loss in resumed.losses.items():
        assert loss == pytest.approx(uninterrupted[step]["loss"], rel=1e-5, abs=0), step


def test_validation_is_the_same_for_any_process_count_and_micro_batch(dataset, two_process_run):
    output, uninterrupted = two_process_run
    checkpoint = output / "checkpoints" / "step-0000003"
    config = one_process_config(dataset, output, micro_batch_size=1)
    model = build_model(load_checkpoint(checkpoint)[0], seed=0)
    context = DistributedContext(0, 1, 0, torch.device("cpu"))
    load_training_checkpoint(checkpoint, model, build_optimizer(model, config, 3e-3), context)
    with TokenLoader(dataset, "train", 64) as loader:  # the run's mixture: each source's share of the tokens
        mixture = {s.name: float(w) for s, w in zip(loader.sources, loader.weights, strict=True)}
    validation = build_validation_set(dataset, 64, 2 * 8, mixture)
    assert validation.sources == ["books", "manuals"] and len(validation) == 32
    logged = {k: v for k, v in uninterrupted[3].items() if k.startswith("val_loss")}
    assert set(logged) == {"val_loss", "val_loss/books", "val_loss/manuals"}
    for micro in (1, 4):
        here = evaluate(model, validation, micro, context, contextlib.nullcontext)
        for key, value in logged.items():
            assert here[key] == pytest.approx(value, abs=1e-6), (micro, key)


def test_accumulating_whole_gradients_matches_sharded_accumulation(dataset, two_process_run, tmp_path):
    """Also with the loss taken in uneven chunks of 48 of a micro-batch's 128 tokens (recomputed in backward
    while FSDP holds the output weights gathered)."""
    _, sharded = two_process_run
    whole = torchrun(
        dataset, tmp_path / "whole", "--accumulate-unsharded", save_every=1000, eval_every=1000, loss_chunk_tokens=48
    )
    for step in range(1, STEPS + 1):
        assert whole[step]["loss"] == pytest.approx(sharded[step]["loss"], rel=1e-5, abs=0), step


def test_float16_on_two_processes_scales_the_loss_and_learns(dataset, two_process_run, tmp_path):
    _, float32 = two_process_run
    run = torchrun(dataset, tmp_path / "fp16", dtype="float16", steps=8, save_every=1000, eval_every=1000)
    losses = [run[s]["loss"] for s in range(1, 9)]
    assert all(torch.isfinite(torch.tensor(losses)))
    assert losses[-1] < losses[0] - 0.5
    # Computed in float16, not silently in float32: the first step's loss (same weights, same batch) differs.
    assert losses[0] != float32[1]["loss"] and losses[0] == pytest.approx(float32[1]["loss"], rel=1e-4)
    assert run[8]["loss_scale"] > 1  # GradScaler's scale (65536 at the start, halved on each overflow)
