"""Checksums of checkpoint files: written with the checkpoint, verified before it is loaded, so a damaged
file is named in one line instead of loading silently wrong weights or failing deep inside torch.

    DIR/checksums.json   {"consolidated.00.pth": {"bytes": ..., "sha256": ...}, "params.json": ..., ...}
                         (a sharded checkpoint lists "shards/__0_0.distcp", ... the same way)

Checkpoints without the file (Meta's original LLaMA weights, Hugging Face conversions) load as before,
with read errors still reported as one line naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from filters.options import ConfigError

CHECKSUMS_FILE = "checksums.json"
_CHUNK = 8 << 20


class DamagedCheckpoint(ConfigError):
    """A checkpoint file that is missing, truncated, corrupted or unreadable (a user-facing error)."""


def file_digest(path: Path) -> dict[str, Any]:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}


def file_checksums(directory: Path, paths: Iterable[Path]) -> dict[str, dict[str, Any]]:
    """Size and sha256 of some files of a checkpoint, keyed by their path relative to it: the processes of
    a sharded save each hash only the files they wrote."""
    return {path.relative_to(directory).as_posix(): file_digest(path) for path in paths}


def write_checksums(directory: str | os.PathLike, extra: dict[str, dict[str, Any]] | None = None) -> None:
    """Record the size and sha256 of every top-level file of a checkpoint directory (hidden temporaries
    aside), plus `extra`: files below it whose sums their writers computed (each rank of a sharded save
    hashes its own shards). The writer calls it once, after its last file is in place."""
    directory = Path(directory)
    listed = [
        path
        for path in sorted(directory.iterdir())
        if path.is_file() and path.name != CHECKSUMS_FILE and not path.name.startswith(".")
    ]
    sums = {**file_checksums(directory, listed), **(extra or {})}
    tmp = directory / f".{CHECKSUMS_FILE}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(sums, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, directory / CHECKSUMS_FILE)


def verify_checkpoint(directory: str | os.PathLike, rank: int = 0, world_size: int = 1) -> bool:
    """Check the files the checkpoint's checksums list (with several processes, process `rank` checks every
    `world_size`-th of them); False when it has no checksums to check."""
    directory = Path(directory)
    listing = directory / CHECKSUMS_FILE
    if not listing.is_file():
        return False
    try:
        sums = json.loads(listing.read_text())
    except ValueError:
        raise DamagedCheckpoint(f"{listing} is damaged: not valid JSON") from None
    for name, expected in sorted(sums.items())[rank::world_size]:
        path = directory / name
        if not path.is_file():
            raise DamagedCheckpoint(f"{path} is missing (listed in {CHECKSUMS_FILE})")
        size = path.stat().st_size
        if size != expected["bytes"]:
            raise DamagedCheckpoint(f"{path} is damaged: {size:,} bytes instead of {expected['bytes']:,}")
        if file_digest(path)["sha256"] != expected["sha256"]:
            raise DamagedCheckpoint(f"{path} is damaged: its sha256 differs from the one recorded when it was saved")
    return True


def load_torch(path: str | os.PathLike, **options: Any) -> Any:
    """torch.load whose read errors name the file in one line."""
    import torch

    try:
        return torch.load(path, **options)
    except (RuntimeError, EOFError, OSError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
        message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise DamagedCheckpoint(f"{path} cannot be read ({message})") from None
