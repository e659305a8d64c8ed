"""Training checkpoints: OUTPUT/checkpoints/step-NNNNNNN/, each a complete Meta-layout model directory
(params.json + consolidated.00.pth, loadable by Meta's code, `llamaprep generate` and `convert`) plus
train_state.pt (optimizer, step, loader position, every rank's RNG state, the run's config).

A checkpoint is written under a temporary name and renamed into place, so a crash mid-save never leaves a
directory that looks complete. Sharded (FSDP2) parameters and optimizer states are gathered into full
tensors on rank 0 with `torch.distributed.checkpoint.state_dict`; every rank reads them back on resume.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

from model.config import ModelArgs
from model.distributed import DistributedContext, all_gather_objects, barrier
from model.integrity import DamagedCheckpoint, load_torch, verify_checkpoint, write_checksums
from model.meta_format import atomic_torch_save, write_model_files

TRAIN_STATE_FILE = "train_state.pt"
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


def latest_intact_checkpoint(output: str | os.PathLike) -> tuple[Path | None, list[str]]:
    """The newest checkpoint whose files match their checksums, and why each newer one was passed over."""
    passed_over = []
    for directory in reversed(step_directories(output)):
        try:
            verify_checkpoint(directory)
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


def save_training_checkpoint(
    output: str | os.PathLike,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    model_args: ModelArgs,
    train_state: dict,
    context: DistributedContext,
    keep: int = 3,
    tokenizer_model: str | os.PathLike | None = None,
) -> Path:
    """Collective: every rank must call it. Returns the checkpoint directory."""
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_state, optimizer_state = get_state_dict(model, optimizer, options=options)
    rng_states = all_gather_objects(rng_state())
    final = checkpoint_root(output) / f"step-{step:07d}"
    if context.is_main:
        staging = final.with_name(f".{final.name}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        write_model_files(model_args, model_state, staging, tokenizer_model=tokenizer_model)
        state = {**train_state, "step": step, "optimizer": optimizer_state, "rng": rng_states}
        atomic_torch_save(state, staging / TRAIN_STATE_FILE)
        write_checksums(staging)  # once, over the model's files and the train state
        shutil.rmtree(final, ignore_errors=True)
        os.replace(staging, final)
        for old in step_directories(output)[:-keep] if keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
    barrier()
    return final


def load_training_checkpoint(
    directory: str | os.PathLike, model: nn.Module, optimizer: torch.optim.Optimizer, context: DistributedContext
) -> dict:
    """Restore model and optimizer in place (sharded or not) and this rank's RNG; returns the train state.
    Checksums are checked where the checkpoint is chosen (`model.train.resolve_resume`), once."""
    directory = Path(directory)
    state_path = directory / TRAIN_STATE_FILE
    if not state_path.is_file():
        raise FileNotFoundError(f"{directory} is not a training checkpoint (no {TRAIN_STATE_FILE})")
    model_state = load_torch(directory / "consolidated.00.pth", map_location="cpu", weights_only=True, mmap=True)
    state = load_torch(state_path, map_location="cpu", weights_only=True)
    set_state_dict(
        model,
        optimizer,
        model_state_dict=model_state,
        optim_state_dict=state.pop("optimizer"),
        options=StateDictOptions(full_state_dict=True),
    )
    rng_states = state.pop("rng")
    set_rng_state(rng_states[context.rank % len(rng_states)])
    return state
