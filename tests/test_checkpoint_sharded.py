"""Sharded (torch.distributed.checkpoint) training checkpoints in one process: layout, asynchronous save,
exact resume across layouts, offline conversion to Meta's and Hugging Face's layouts, damaged shards;
float16 with loss scaling; validation on a fixed held-out set; the process-group timeout."""

from __future__ import annotations

import contextlib
import json
import shutil
import time

import model_fixtures
import numpy as np
import pytest
import torch
from model_fixtures import BOS, write_byte_dataset

from model.checkpoint import CheckpointWriter
from model.config import NAMED_CONFIGS, TrainConfig
from model.distributed import DistributedContext
from model.generate import load_checkpoint_model
from model.hf_format import load_hf
from model.integrity import DamagedCheckpoint, verify_checkpoint
from model.llama import build_model
from model.meta_format import load_checkpoint
from model.schedule import build_optimizer
from model.train import train
from model.validation import build_validation_set, evaluate, held_out_samples
from tokenizer.token_shards import TokenShard, token_shard_paths


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_byte_dataset(tmp_path_factory.mktemp("tokens"), n_bytes=30_000)


def tiny_config(dataset, output, **changes) -> TrainConfig:
    """Validation and a checkpoint every 4 steps."""
    every_four = {"eval_every": 4, "eval_batches": 1, "save_every": 4}
    return model_fixtures.tiny_config(dataset, output, **{**every_four, **changes})


@pytest.fixture(scope="module")
def sharded_run(dataset, tmp_path_factory):
    output = tmp_path_factory.mktemp("sharded") / "run"
    return output, train(tiny_config(dataset, output, checkpoint_format="sharded", async_save=True))


def test_an_asynchronous_sharded_run_resumes_exactly_into_the_full_layout(dataset, sharded_run, tmp_path):
    output, uninterrupted = sharded_run
    middle = output / "checkpoints" / "step-0000004"
    files = sorted(str(p.relative_to(middle)) for p in middle.rglob("*") if p.is_file())
    assert files == [
        "checksums.json", "params.json", "shards/.metadata", "shards/__0_0.distcp", "train_state.pt"
    ]  # fmt: skip
    assert set(json.loads((middle / "checksums.json").read_text())) == set(files) - {"checksums.json"}
    assert not list(output.glob("checkpoints/.*"))  # every asynchronous save was completed and renamed
    (tmp_path / "checkpoints").mkdir()
    shutil.copytree(middle, tmp_path / "checkpoints" / middle.name)
    resumed = train(tiny_config(dataset, tmp_path, checkpoint_format="full"), resume="latest")
    assert sorted(resumed.losses) == [5, 6, 7, 8]
    assert all(resumed.losses[s] == uninterrupted.losses[s] for s in resumed.losses)
    assert resumed.val_losses[8] == uninterrupted.val_losses[8]
    assert (resumed.checkpoint / "consolidated.00.pth").is_file()
    _, sharded_weights = load_checkpoint(uninterrupted.checkpoint)
    _, full_weights = load_checkpoint(resumed.checkpoint)
    assert sharded_weights.keys() == full_weights.keys()
    assert all(torch.equal(sharded_weights[k], full_weights[k]) for k in full_weights)


def test_an_asynchronous_save_is_completed_once_written_without_waiting_for_the_next(tmp_path):
    args = NAMED_CONFIGS["tiny"]
    model = build_model(args, seed=0)
    optimizer = build_optimizer(model, TrainConfig(), 1e-3)
    writer = CheckpointWriter(tmp_path, DistributedContext(0, 1, 0, torch.device("cpu")), True, True, keep=2)
    final = writer.save(1, model, optimizer, args, {"note": "state"})
    deadline = time.monotonic() + 60
    while not final.is_dir() and time.monotonic() < deadline:
        writer.finish_if_written()  # what the loop calls at each logged step
        time.sleep(0.01)
    assert verify_checkpoint(final) and torch.load(final / "train_state.pt", weights_only=True)["note"] == "state"
    assert not list(tmp_path.glob("checkpoints/.*"))


def test_pruning_never_deletes_the_checkpoint_just_written(tmp_path):
    """A run resumed behind newer checkpoints (a rollback) keeps what it writes; `keep` counts older ones."""
    args = NAMED_CONFIGS["tiny"]
    model = build_model(args, seed=0)
    optimizer = build_optimizer(model, TrainConfig(), 1e-3)
    (tmp_path / "checkpoints" / "step-0000009").mkdir(parents=True)  # the abandoned run's
    writer = CheckpointWriter(tmp_path, DistributedContext(0, 1, 0, torch.device("cpu")), True, False, keep=2)
    for step in (3, 4, 5):
        writer.save(step, model, optimizer, args, {})
    kept = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert kept == ["step-0000004", "step-0000005", "step-0000009"]
    assert verify_checkpoint(tmp_path / "checkpoints" / "step-0000005")


def test_convert_and_generate_read_a_sharded_checkpoint_offline(sharded_run, tmp_path, cli, capsys):
    output, result = sharded_run
    args, weights = load_checkpoint(result.checkpoint)
    assert weights["layers.1.feed_forward.w2.weight"].shape == (args.dim, args.ffn_hidden_dim)
    assert cli("convert", "to-meta", output, tmp_path / "meta") == 0  # a training output: its latest checkpoint
    meta = torch.load(tmp_path / "meta" / "consolidated.00.pth", weights_only=True)
    assert meta.keys() == weights.keys() and all(torch.equal(meta[k], weights[k]) for k in meta)
    assert verify_checkpoint(tmp_path / "meta")
    assert cli("convert", "to-hf", result.checkpoint, tmp_path / "hf") == 0
    hf_args, from_hf = load_hf(tmp_path / "hf")
    assert hf_args == args and all(torch.equal(from_hf[k], weights[k]) for k in weights)
    model = load_checkpoint_model(result.checkpoint)
    assert torch.equal(model.output.weight, weights["output.weight"])
    capsys.readouterr()


def test_a_damaged_shard_is_named_and_resume_passes_over_it(dataset, sharded_run, tmp_path, cli, capsys):
    output, _ = sharded_run
    run = tmp_path / "run"
    shutil.copytree(output, run)
    shard = run / "checkpoints" / "step-0000008" / "shards" / "__0_0.distcp"
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    capsys.readouterr()
    assert cli("convert", "to-meta", run, tmp_path / "meta") == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(shard) in err, err
    resumed = train(tiny_config(dataset, run, steps=10, checkpoint_format="sharded"), resume="latest")
    err = capsys.readouterr().err
    assert "passing over a damaged checkpoint" in err and "step-0000004" in err
    assert sorted(resumed.losses) == list(range(5, 11))


def test_each_rank_verifies_its_share_of_the_files(sharded_run, tmp_path):
    output, _ = sharded_run
    checkpoint = tmp_path / "step"
    shutil.copytree(output / "checkpoints" / "step-0000008", checkpoint)
    names = sorted(json.loads((checkpoint / "checksums.json").read_text()))
    assert names == ["params.json", "shards/.metadata", "shards/__0_0.distcp", "train_state.pt"]
    damaged = checkpoint / names[1]
    damaged.write_bytes(b"")
    with pytest.raises(DamagedCheckpoint, match=str(damaged)):
        verify_checkpoint(checkpoint, rank=1, world_size=2)  # entries 1 and 3 of the sorted listing
    assert verify_checkpoint(checkpoint, rank=0, world_size=2)


def test_float16_scales_the_loss_and_learns(dataset, tmp_path):
    result = train(tiny_config(dataset, tmp_path, dtype="float16", steps=12, save_every=1000, eval_every=12))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    scales = [r["loss_scale"] for r in records if "loss_scale" in r]
    assert len(scales) == 12 and scales[0] == 65536.0  # GradScaler's initial scale, logged every step
    losses = list(result.losses.values())
    assert losses[-1] < losses[0] - 0.5 and np.isfinite(result.val_losses[12])
    # Computed in float16, not silently in float32: the first step's loss (same weights, same batch) differs.
    float32 = train(tiny_config(dataset, tmp_path / "fp32", steps=1, save_every=1000, eval_batches=0))
    assert losses[0] != float32.losses[1] and losses[0] == pytest.approx(float32.losses[1], rel=1e-4)
    state = torch.load(result.checkpoint / "train_state.pt", weights_only=True)
    assert state["grad_scaler"]["scale"] == scales[-1]  # resumed with the scale it had


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"dtype": "float8"}, "dtype 'float8' is not one of"),
        ({"checkpoint_format": "zip"}, "checkpoint_format 'zip' is not one of"),
        ({"async_save": True, "checkpoint_format": "full"}, "async_save needs sharded checkpoints"),
    ],
)
def test_settings_that_cannot_work_are_refused_before_training(dataset, tmp_path, changes, message):
    with pytest.raises(ValueError, match=message):
        train(tiny_config(dataset, tmp_path, **changes))


def test_the_held_out_set_is_each_sources_first_documents_packed(dataset):
    shards = [TokenShard.open(path) for path in token_shard_paths(dataset, "val")]
    books = [shard.document(i) for shard in shards for i, source in enumerate(shard.sources) if source == "books"]
    stream = np.concatenate(books)
    samples = held_out_samples(shards, "books", 3, 64)
    assert samples.shape == (3, 65) and samples[0, 0] == BOS
    assert np.array_equal(samples.flatten(), np.concatenate([stream[i * 64 : i * 64 + 65] for i in range(3)]))
    assert len(held_out_samples(shards, "books", 10_000, 64)) < 10_000  # as many as the source holds
    validation = build_validation_set(dataset, 64, 5, {"books": 3.0})
    assert validation.sources == ["books", "manuals"] and len(validation) == 10
    assert validation.weights.tolist() == [1.0, 0.0]  # manuals is not trained on: it does not count in the total


def test_validation_does_not_depend_on_the_micro_batch(dataset):
    model = build_model(NAMED_CONFIGS["tiny"].replace(vocab_size=259), seed=1)
    validation = build_validation_set(dataset, 64, 6, {"books": 0.25, "manuals": 0.75})
    context = DistributedContext(0, 1, 0, torch.device("cpu"))
    one = evaluate(model, validation, 1, context, contextlib.nullcontext)
    four = evaluate(model, validation, 4, context, contextlib.nullcontext)
    assert set(one) == {"val_loss", "val_loss/books", "val_loss/manuals"}
    for key, value in one.items():
        assert four[key] == pytest.approx(value, abs=1e-6)
    assert one["val_loss"] == pytest.approx(0.25 * one["val_loss/books"] + 0.75 * one["val_loss/manuals"])
    assert one["val_loss/books"] != one["val_loss/manuals"]


def test_the_process_group_timeout_is_the_configured_one(monkeypatch):
    import torch.distributed as dist

    from model.distributed import setup

    joined = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kwargs: joined.update(backend=backend, **kwargs))
    context = setup("cpu", timeout_minutes=45)
    assert joined["backend"] == "gloo" and joined["timeout"].total_seconds() == 45 * 60
    assert context.world_size == 2
