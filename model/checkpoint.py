"""Training checkpoints: OUTPUT/checkpoints/step-NNNNNNN/, in one of two layouts.

- full: a complete Meta-layout model directory (params.json + consolidated.00.pth, loadable by Meta's
  code, `llamaprep generate` and `convert`) plus train_state.pt (optimizer, step, loader position, every
  rank's RNG state, the run's config). Sharded parameters and optimizer states are gathered into whole
  tensors on rank 0 first: simple, and right for one process or a small model.
- sharded: params.json + train_state.pt (all of the above but the optimizer) + shards/, a
  `torch.distributed.checkpoint` directory where each rank writes its own shards of the weights and
  optimizer state (`model.sharded_format`): no gather, optionally in a background thread, resumable on
  any number of processes; `llamaprep convert to-meta` turns it into the full layout offline.

Either is written under a temporary name and renamed into place once complete (checksums.json last), so a
crash mid-save never leaves a directory that looks complete. Each rank hashes the files it wrote.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

from model.config import ModelArgs
from model.distributed import DistributedContext, all_gather_objects, barrier
from model.integrity import DamagedCheckpoint, file_checksums, load_torch, verify_checkpoint, write_checksums
from model.meta_format import atomic_torch_save, write_model_files, write_params
from model.sharded_format import MODEL_KEY, SHARDS_DIR, is_sharded, load_shards, rank_files, save_shards

TRAIN_STATE_FILE = "train_state.pt"
OPTIMIZER_KEY = "optimizer"
_STEP_DIR = re.compile(r"^step-(\d+)$")


def checkpoint_root(output: str | os.PathLike) -> Path:
    return Path(output) / "checkpoints"


def step_directories(output: str | os.PathLike) -> list[Path]:
    """Complete checkpoints under OUTPUT, oldest first."""
    root = checkpoint_root(output)
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _STEP_DIR.match(p.name)) and p.is_dir()]
    return [path for _, path in sorted(found)]


def latest_checkpoint(output: str | os.PathLike) -> Path | None:
    directories = step_directories(output)
    return directories[-1] if directories else None


ABANDONED_DIR = "abandoned"


def set_aside_newer(
    output: str | os.PathLike, resume_from: Path, context: DistributedContext | None = None
) -> list[Path]:
    """Resuming from a checkpoint at step N (of this output or another) starts a new timeline: this
    output's checkpoints past step N belong to a run being abandoned and move to checkpoints/abandoned/,
    kept but no longer the `--resume` latest nor pruned. Returns where they went (on rank 0; the others
    wait). Collective."""
    match = _STEP_DIR.match(resume_from.name)
    root = checkpoint_root(output)
    moved: list[Path] = []
    if match and (context is None or context.is_main):
        step = int(match.group(1))
        for directory in step_directories(output):
            if int(_STEP_DIR.match(directory.name).group(1)) > step:
                target = root / ABANDONED_DIR / directory.name
                target.parent.mkdir(exist_ok=True)
                if target.exists():
                    shutil.rmtree(target)
                directory.rename(target)
                moved.append(target)
    barrier()
    return moved


def verify_together(directory: str | os.PathLike, context: DistributedContext | None = None) -> None:
    """Check a checkpoint's files against their checksums, each rank hashing its share of the files;
    every rank raises the same DamagedCheckpoint if any file is damaged. Collective."""
    rank, world = (context.rank, context.world_size) if context else (0, 1)
    try:
        verify_checkpoint(directory, rank, world)
        damage = None
    except DamagedCheckpoint as error:
        damage = str(error)
    found = [d for d in all_gather_objects(damage) if d]
    if found:
        raise DamagedCheckpoint(found[0])


def latest_intact_checkpoint(
    output: str | os.PathLike, context: DistributedContext | None = None
) -> tuple[Path | None, list[str]]:
    """The newest checkpoint whose files match their checksums, and why each newer one was passed over."""
    passed_over = []
    for directory in reversed(step_directories(output)):
        try:
            verify_together(directory, context)
        except DamagedCheckpoint as damage:
            passed_over.append(str(damage))
            continue
        return directory, passed_over
    return None, passed_over


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


@dataclass
class _PendingSave:
    staging: Path
    final: Path
    upload: Future | None


class CheckpointWriter:
    """Writes a run's checkpoints (every rank holds one and calls `save` and `finish` together).

    An asynchronous sharded save returns once the state is copied to host memory; its files are written
    by a background thread talking over a process group of its own (so its collectives never interleave
    with training's). It is completed (checksums, rename into place, pruning) by `finish_if_written` once
    every rank's thread is done, or else when the next save starts or at `finish`: a crash before then
    loses it, and the previous checkpoint is the one to resume."""

    def __init__(
        self, output: str | os.PathLike, context: DistributedContext, sharded: bool, asynchronous: bool, keep: int
    ) -> None:
        self.output = output
        self.context = context
        self.sharded = sharded
        self.asynchronous = asynchronous  # plan_run allows it with sharded checkpoints only
        self.keep = keep
        self._process_group = dist.new_group(backend="gloo") if self.asynchronous and context.distributed else None
        self._pending: _PendingSave | None = None

    def save(
        self,
        step: int,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        model_args: ModelArgs,
        train_state: dict,
        tokenizer_model: str | os.PathLike | None = None,
    ) -> Path:
        """Collective. Returns the directory the checkpoint has (or, asynchronously, will have) once complete."""
        self.finish()
        rng_states = all_gather_objects(rng_state())
        final = checkpoint_root(self.output) / f"step-{step:07d}"
        staging = final.with_name(f".{final.name}.tmp")
        state = {**train_state, "step": step, "rng": rng_states}
        if not self.sharded:
            self._save_full(staging, final, model, optimizer, model_args, state, tokenizer_model)
            return final
        if self.context.is_main:
            shutil.rmtree(staging, ignore_errors=True)
            staging.mkdir(parents=True)
            write_params(model_args, staging, tokenizer_model)
            atomic_torch_save(state, staging / TRAIN_STATE_FILE)
        barrier()
        model_state, optimizer_state = get_state_dict(model, optimizer)
        upload = save_shards(
            {MODEL_KEY: model_state, OPTIMIZER_KEY: optimizer_state},
            staging / SHARDS_DIR,
            asynchronous=self.asynchronous,
            process_group=self._process_group,
        )
        self._pending = _PendingSave(staging, final, upload)
        if not self.asynchronous:
            self.finish()
        return final

    def finish_if_written(self) -> None:
        """Collective: complete an asynchronous save whose files every rank has written; no wait."""
        pending = self._pending
        if pending is not None and pending.upload is not None and all(all_gather_objects(pending.upload.done())):
            self.finish()

    def finish(self) -> None:
        """Collective: complete the sharded save in flight, if any (each rank hashes the files it wrote)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        if pending.upload is not None:
            pending.upload.result()
        shards = pending.staging / SHARDS_DIR
        sums = all_gather_objects(file_checksums(pending.staging, rank_files(shards, self.context.rank)))
        if self.context.is_main:
            write_checksums(pending.staging, {name: sum_ for rank_sums in sums for name, sum_ in rank_sums.items()})
            self._publish(pending.staging, pending.final)
        barrier()

    def close(self) -> None:
        """Wait for a save still being written (left incomplete: after an error the other ranks may be gone)
        and leave the writer's own process group, so no thread uses a group after it is destroyed."""
        pending, self._pending = self._pending, None
        if pending is not None and pending.upload is not None:
            with contextlib.suppress(Exception):  # its staging directory is never taken for a checkpoint
                pending.upload.result()
        if self._process_group is not None:
            dist.destroy_process_group(self._process_group)
            self._process_group = None

    def __enter__(self) -> CheckpointWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _save_full(
        self,
        staging: Path,
        final: Path,
        model: nn.Module,
        optimizer: torch.optim.Optimizer,
        model_args: ModelArgs,
        state: dict,
        tokenizer_model: str | os.PathLike | None,
    ) -> None:
        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        model_state, optimizer_state = get_state_dict(model, optimizer, options=options)
        if self.context.is_main:
            shutil.rmtree(staging, ignore_errors=True)
            write_model_files(model_args, model_state, staging, tokenizer_model=tokenizer_model)
            atomic_torch_save({**state, OPTIMIZER_KEY: optimizer_state}, staging / TRAIN_STATE_FILE)
            write_checksums(staging)  # once, over the model's files and the train state
            self._publish(staging, final)
        barrier()

    def _publish(self, staging: Path, final: Path) -> None:
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        # Only older ones count: a newer directory is left by a run this one was resumed behind (a rollback).
        directories = step_directories(self.output)
        older = directories[: directories.index(final)]
        for old in older[: len(older) - self.keep + 1] if self.keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)


def load_training_checkpoint(
    directory: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer, context: DistributedContext
) -> dict:
    """Restore model and optimizer in place (either layout, sharded model or not, any number of processes)
    and this rank's RNG; returns the train state. Checksums are checked where the checkpoint is chosen
    (`model.train.resolve_resume`), once."""
    directory = Path(directory)
    state_path = directory / TRAIN_STATE_FILE
    if not state_path.is_file():
        raise FileNotFoundError(f"{directory} is not a training checkpoint (no {TRAIN_STATE_FILE})")
    state = load_torch(state_path, map_location="cpu", weights_only=True)
    if is_sharded(directory):
        model_state, optimizer_state = get_state_dict(model, optimizer)
        saved = {MODEL_KEY: model_state, OPTIMIZER_KEY: optimizer_state}
        load_shards(saved, directory / SHARDS_DIR)
        set_state_dict(model, optimizer, model_state_dict=saved[MODEL_KEY], optim_state_dict=saved[OPTIMIZER_KEY])
    else:
        model_state = load_torch(directory / "consolidated.00.pth", map_location="cpu", weights_only=True, mmap=True)
        set_state_dict(
            model,
            optimizer,
            model_state_dict=model_state,
            optim_state_dict=state.pop(OPTIMIZER_KEY),
            options=StateDictOptions(full_state_dict=True),
        )
    rng_states = state.pop("rng")
    set_rng_state(rng_states[context.rank % len(rng_states)])
    return state
