"""Meta's checkpoint layout: DIR/params.json + DIR/consolidated.NN.pth (one file per model-parallel rank).

Meta's model-parallel shards split each weight along the dimension its fairscale layer partitions:
column-parallel layers (wq, wk, wv, w1, w3, output) along the output rows (dim 0), row-parallel layers
(wo, w2) along the input columns (dim 1), the embedding along dim 1 in LLaMA 1/2 (`ParallelEmbedding`) or
dim 0 in LLaMA 3 (`VocabParallelEmbedding`); norms are replicated. Merging concatenates along those dims.
Our own checkpoints are written as a single `consolidated.00.pth`, which Meta's loader reads as-is; sharded
training checkpoints (`model.sharded_format`) are read here too, so `generate` and `convert` take them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from filters.options import ConfigError
from model.config import ModelArgs
from model.integrity import DamagedCheckpoint, load_torch, verify_checkpoint, write_checksums
from model.sharded_format import is_sharded, read_model_weights

PARAMS_FILE = "params.json"
TOKENIZER_FILE = "tokenizer.model"
ROW_PARALLEL_SUFFIXES = ("attention.wo.weight", "feed_forward.w2.weight")
# Keys some original checkpoints carry that are not parameters (LLaMA 1 saved its rotary frequencies).
NON_PARAMETER_KEYS = ("rope.freqs",)


def shard_paths(directory: str | os.PathLike) -> list[Path]:
    paths = sorted(Path(directory).glob("consolidated.*.pth"))
    if not paths:
        raise FileNotFoundError(f"{directory} holds no consolidated.*.pth checkpoint files")
    return paths


def read_params(directory: str | os.PathLike, vocab_size: int | None = None) -> ModelArgs:
    """params.json of a checkpoint directory; `vocab_size` fills LLaMA 1's `-1`."""
    path = Path(directory) / PARAMS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{directory} has no {PARAMS_FILE}")
    try:
        params = json.loads(path.read_text())
    except ValueError as error:
        raise DamagedCheckpoint(f"{path} is not valid JSON ({error})") from None
    if not isinstance(params, dict) or "dim" not in params:
        raise DamagedCheckpoint(f"{path} is not a LLaMA params.json (no 'dim')")
    if params.get("vocab_size", -1) <= 0:
        if vocab_size is None:
            raise ConfigError(f"{path} leaves vocab_size unset; pass it (the tokenizer's n_words)")
        params["vocab_size"] = vocab_size
    return ModelArgs.from_params(params)


def merge_shards(shards: list[dict[str, torch.Tensor]], dim: int) -> dict[str, torch.Tensor]:
    """One state dict from Meta's model-parallel shards (`dim` is the model width, which tells which
    dimension the embedding was split along)."""
    if len(shards) == 1:
        return {k: v for k, v in shards[0].items() if k not in NON_PARAMETER_KEYS}
    merged = {}
    for key, first in shards[0].items():
        if key in NON_PARAMETER_KEYS:
            continue
        parts = [shard[key] for shard in shards]
        if first.dim() == 1:
            merged[key] = first
        elif key == "tok_embeddings.weight":
            merged[key] = torch.cat(parts, dim=1 if first.shape[1] * len(parts) == dim else 0)
        elif key.endswith(ROW_PARALLEL_SUFFIXES):
            merged[key] = torch.cat(parts, dim=1)
        else:
            merged[key] = torch.cat(parts, dim=0)
    return merged


def load_checkpoint(
    directory: str | os.PathLike, vocab_size: int | None = None
) -> tuple[ModelArgs, dict[str, torch.Tensor]]:
    """params and one merged state dict from a Meta-layout directory (original LLaMA or ours), or from a
    sharded training checkpoint (its model shards read offline)."""
    verify_checkpoint(directory)
    if is_sharded(directory):
        return read_params(directory, vocab_size=vocab_size), read_model_weights(directory)
    paths = shard_paths(directory)
    shards = [load_torch(path, map_location="cpu", weights_only=True, mmap=True) for path in paths]
    params_path = Path(directory) / PARAMS_FILE
    raw_dim = read_params(directory, vocab_size=1).dim if params_path.is_file() else None
    state = merge_shards(shards, raw_dim or 0)
    if vocab_size is None:
        vocab_size = state["output.weight"].shape[0]
    return read_params(directory, vocab_size=vocab_size), state


def save_checkpoint(
    args: ModelArgs,
    state_dict: dict[str, torch.Tensor],
    directory: str | os.PathLike,
    tokenizer_model: str | os.PathLike | None = None,
) -> None:
    """Write params.json + consolidated.00.pth (each via a temporary name and rename), copy the tokenizer,
    then record the checksums."""
    write_model_files(args, state_dict, directory, tokenizer_model)
    write_checksums(directory)


def write_model_files(
    args: ModelArgs,
    state_dict: dict[str, torch.Tensor],
    directory: str | os.PathLike,
    tokenizer_model: str | os.PathLike | None = None,
) -> None:
    """The files of a model directory without checksums (a training checkpoint adds its own files first)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    weights = {k: v.detach().contiguous() for k, v in state_dict.items()}
    atomic_torch_save(weights, directory / "consolidated.00.pth")
    write_params(args, directory, tokenizer_model)


def write_params(
    args: ModelArgs, directory: str | os.PathLike, tokenizer_model: str | os.PathLike | None = None
) -> None:
    """params.json and the tokenizer: the files a model directory holds besides its weights."""
    directory = Path(directory)
    atomic_write_text(directory / PARAMS_FILE, json.dumps(args.to_params(), indent=2) + "\n")
    if tokenizer_model is not None and Path(tokenizer_model).resolve() != (directory / TOKENIZER_FILE).resolve():
        shutil.copyfile(tokenizer_model, directory / TOKENIZER_FILE)


def atomic_torch_save(obj: object, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)
