"""The train/validation split: a pure function of the document id, so it never changes between runs,
runners, worker counts or machines (unlike Python's salted `hash`)."""

from __future__ import annotations

import hashlib

from filters.options import ConfigError

SPLIT_HASH = "blake2b-64 of the UTF-8 id, as a fraction of 2**64, below val_fraction means val"


def split_of(doc_id: str, val_fraction: float) -> str:
    """ "val" for a stable `val_fraction` share of document ids, "train" for the rest."""
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return "val" if int.from_bytes(digest, "big") < val_fraction * 2**64 else "train"
