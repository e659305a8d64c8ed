"""The tokenizer the model and the token pipeline use, with the interface of Meta's reference
`llama/tokenizer.py`: `encode(s, bos, eos)`, `decode(ids)`, `n_words`, `bos_id`, `eos_id`, `pad_id`.

It loads any SentencePiece model file, so Meta's original LLaMA `tokenizer.model` works unchanged, and
adds `encode_batch`, which hands a list of texts to SentencePiece's multi-threaded batch encoder and gets
numpy arrays back (no Python loop per token).
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import sentencepiece as spm

from filters.options import ConfigError


class Tokenizer:
    """A SentencePiece model with LLaMA's special-token conventions (BOS/EOS added on request)."""

    def __init__(self, model_path: str | os.PathLike, model_proto: bytes | None = None):
        """Load `model_path`, or, with `model_proto`, the serialized model itself (`model_path` then only
        names it): Beam ships those bytes to workers that cannot see the driver's disk."""
        self.model_path = str(model_path)
        if model_proto is None:
            if not os.path.isfile(model_path):
                raise FileNotFoundError(f"no SentencePiece model at {model_path}")
            with open(model_path, "rb") as f:
                model_proto = f.read()
        if not model_proto:
            raise ConfigError(f"{model_path} is empty, not a SentencePiece model")
        try:
            self.sp_model = spm.SentencePieceProcessor(model_proto=model_proto)
        except RuntimeError:
            raise ConfigError(f"{model_path} is not a SentencePiece model (it does not parse)") from None
        self.n_words: int = self.sp_model.vocab_size()
        self.bos_id: int = self.sp_model.bos_id()
        self.eos_id: int = self.sp_model.eos_id()
        self.pad_id: int = self.sp_model.pad_id()
        if self.bos_id < 0 or self.eos_id < 0:
            raise ConfigError(f"{model_path} defines no BOS/EOS pieces, which LLaMA's document format needs")

    def encode(self, s: str, bos: bool, eos: bool) -> list[int]:
        ids = self.sp_model.encode(s)
        if bos:
            ids = [self.bos_id, *ids]
        if eos:
            ids = [*ids, self.eos_id]
        return ids

    def decode(self, t: Sequence[int]) -> str:
        return self.sp_model.decode([int(i) for i in t])

    def encode_batch(self, texts: list[str], bos: bool, eos: bool, num_threads: int = -1) -> list[np.ndarray]:
        """Encode many texts at once (int32 arrays); `num_threads=-1` lets SentencePiece use every core."""
        return self.sp_model.encode(texts, add_bos=bos, add_eos=eos, num_threads=num_threads, return_type="numpy")

    def id_to_piece(self, i: int) -> str:
        return self.sp_model.id_to_piece(int(i))

    def __repr__(self) -> str:
        return f"Tokenizer({self.model_path!r}, n_words={self.n_words})"
