"""Sharded checkpoints: a `torch.distributed.checkpoint` (DCP) directory in which every process writes the
shards it holds (`__RANK_N.distcp`) and rank 0 the index (`.metadata`).

Nothing is gathered: with 8 processes each writes 1/8 of the weights and AdamW state (~16 bytes per
parameter in all), and a run resumes on any number of processes, DCP cutting the saved shards to the new
ones' shapes. Read offline (one process, no process group), the model weights give the Meta and Hugging
Face layouts (`llamaprep convert`, `generate`).
"""

from __future__ import annotations

import os
import warnings
from concurrent.futures import Future
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint import FileSystemReader, FileSystemWriter

from model.integrity import DamagedCheckpoint

SHARDS_DIR = "shards"
METADATA_FILE = ".metadata"
MODEL_KEY = "model"

# DCP warns on every call made without a process group (also from an asynchronous save's thread); a
# single-process run is meant to have none.
warnings.filterwarnings("ignore", message="torch.distributed is disabled")


def is_sharded(directory: str | os.PathLike) -> bool:
    return (Path(directory) / SHARDS_DIR).is_dir()


def save_shards(
    state: dict, directory: Path, asynchronous: bool = False, process_group: object | None = None
) -> Future | None:
    """Collective: each rank writes its own shards of `state` under `directory`. Asynchronously, the state
    is copied to host memory first, written by a background thread, and the returned future completes when
    this rank's files (and, on rank 0, the index) are on disk."""
    writer = FileSystemWriter(directory)
    if not asynchronous:
        dcp.save(state, storage_writer=writer, process_group=process_group)
        return None
    response = dcp.async_save(state, storage_writer=writer, process_group=process_group)
    return getattr(response, "upload_completion", response)


def load_shards(state: dict, directory: Path) -> None:
    """Collective: fill `state` (this rank's tensors, sharded or whole) in place from a sharded checkpoint."""
    dcp.load(state, storage_reader=FileSystemReader(directory))


def rank_files(directory: Path, rank: int) -> list[Path]:
    """The files `rank` wrote in a shards directory (rank 0 also writes the index)."""
    written = sorted(directory.glob(f"__{rank}_*.distcp"))
    return [*written, directory / METADATA_FILE] if rank == 0 else written


def read_model_weights(directory: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Whole model tensors from a checkpoint's shards, in one process without a process group: the
    optimizer's shards are not read."""
    shards = Path(directory) / SHARDS_DIR
    reader = FileSystemReader(shards)
    try:
        metadata = reader.read_metadata()
        prefix = f"{MODEL_KEY}."
        weights = {
            key.removeprefix(prefix): torch.empty(entry.size, dtype=entry.properties.dtype)
            for key, entry in metadata.state_dict_metadata.items()
            if key.startswith(prefix) and hasattr(entry, "size")
        }
        dcp.load({MODEL_KEY: weights}, storage_reader=reader, no_dist=True)
    except Exception as error:  # DCP wraps every reader failure (pickle, zip, short read) in its own types
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DamagedCheckpoint(f"{shards} cannot be read ({message})") from None
    return weights
