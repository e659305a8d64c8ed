"""Checksums of checkpoint files: written with the checkpoint, verified before it is loaded, so a damaged
file is named in one line instead of loading silently wrong weights or failing deep inside torch.

    DIR/checksums.json   {"consolidated.00.pth": {"bytes": ..., "sha256": ...}, "params.json": ..., ...}

Checkpoints without the file (Meta's original LLaMA weights, Hugging Face conversions) load as before,
with read errors still reported as one line naming the file.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import zipfile
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


def write_checksums(directory: str | os.PathLike) -> None:
    """Record the size and sha256 of every file of a checkpoint directory (hidden temporaries aside); the
    writer calls it once, after its last file is in place."""
    directory = Path(directory)
    listed = sorted(
        path.name
        for path in directory.iterdir()
        if path.is_file() and path.name != CHECKSUMS_FILE and not path.name.startswith(".")
    )
    sums = {name: file_digest(directory / name) for name in listed}
    tmp = directory / f".{CHECKSUMS_FILE}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(sums, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, directory / CHECKSUMS_FILE)


def verify_checkpoint(directory: str | os.PathLike) -> bool:
    """Check every file the checkpoint's checksums list; False when it has no checksums to check."""
    directory = Path(directory)
    listing = directory / CHECKSUMS_FILE
    if not listing.is_file():
        return False
    try:
        sums = json.loads(listing.read_text())
    except ValueError:
        raise DamagedCheckpoint(f"{listing} is damaged: not valid JSON") from None
    for name, expected in sums.items():
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
