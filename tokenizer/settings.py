"""LLaMA's SentencePiece trainer settings, every field in one place with where its value comes from.

The reference is the `trainer_spec` and `normalizer_spec` stored inside Meta's LLaMA `tokenizer.model`
(the same file ships with LLaMA 1 and LLaMA 2; read it with `sentencepiece_model_pb2.ModelProto`). The
paper (Touvron et al. 2023, "LLaMA: Open and Efficient Foundation Language Models", section 2) states the
headline choices: BPE with SentencePiece, numbers split into digits, unknown UTF-8 characters decomposed
into bytes, 32k tokens. The rest of the fields are read off the published proto. A few values depend on
the machine or the corpus, and those are the only ones a run may change (see `RUN_DEPENDENT`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from filters.options import ConfigError

PROTO = "trainer_spec/normalizer_spec of Meta's LLaMA tokenizer.model"
PAPER = "LLaMA paper (Touvron et al. 2023), section 2 'Tokenizer'"


@dataclass(frozen=True)
class Setting:
    """One SentencePiece trainer flag: its LLaMA value and the source of that value."""

    name: str
    value: Any
    source: str


LLAMA_SETTINGS: tuple[Setting, ...] = (
    Setting("model_type", "bpe", f"{PAPER} (BPE); {PROTO}: model_type BPE"),
    Setting("vocab_size", 32000, f"{PAPER} (32k tokens); {PROTO}"),
    Setting("character_coverage", 0.99995, PROTO),
    Setting("split_digits", True, f"{PAPER} (numbers split into individual digits); {PROTO}"),
    Setting("byte_fallback", True, f"{PAPER} (fallback to bytes for unknown UTF-8 characters); {PROTO}"),
    Setting("normalization_rule_name", "identity", f"{PROTO}: normalizer_spec.name"),
    Setting("add_dummy_prefix", True, f"{PROTO}: normalizer_spec.add_dummy_prefix"),
    Setting("remove_extra_whitespaces", False, f"{PROTO}: normalizer_spec.remove_extra_whitespaces"),
    Setting("allow_whitespace_only_pieces", True, PROTO),
    Setting("split_by_unicode_script", True, PROTO),
    Setting("split_by_number", True, PROTO),
    Setting("split_by_whitespace", True, PROTO),
    Setting("treat_whitespace_as_suffix", False, PROTO),
    Setting("max_sentence_length", 4192, f"{PROTO} (bytes; longer lines are split by llamaprep, not dropped)"),
    Setting("max_sentencepiece_length", 16, PROTO),
    Setting("input_sentence_size", 200_000_000, f"{PROTO} (llamaprep samples them itself, seeded)"),
    Setting("shuffle_input_sentence", True, PROTO),
    Setting("seed_sentencepiece_size", 1_000_000, PROTO),
    Setting("shrinking_factor", 0.75, PROTO),
    Setting("num_sub_iterations", 2, PROTO),
    Setting("num_threads", 80, f"{PROTO} (llamaprep uses every core of the machine instead)"),
    Setting("self_test_sample_size", 0, PROTO),
    Setting("vocabulary_output_piece_score", True, PROTO),
    Setting("hard_vocab_limit", True, PROTO),
    Setting("use_all_vocab", False, PROTO),
    Setting("required_chars", "", PROTO),
    Setting("train_extremely_large_corpus", False, PROTO),
    Setting("unk_id", 0, PROTO),
    Setting("bos_id", 1, PROTO),
    Setting("eos_id", 2, PROTO),
    Setting("pad_id", -1, f"{PROTO} (no padding piece)"),
    Setting("unk_piece", "<unk>", PROTO),
    Setting("bos_piece", "<s>", PROTO),
    Setting("eos_piece", "</s>", PROTO),
    Setting("pad_piece", "<pad>", PROTO),
    Setting("unk_surface", " \u2047 ", PROTO),
)

RUN_DEPENDENT = frozenset({"vocab_size", "input_sentence_size", "num_threads", "character_coverage"})
"""The settings a run may change: vocabulary size, sample size, thread count and, for small multilingual
samples whose rare characters would not leave room for merges in a small vocabulary, character coverage
(characters left out still round-trip through byte fallback)."""

DEPRECATED = frozenset({"self_test_sample_size", "train_extremely_large_corpus"})
"""In LLaMA's proto but deprecated and ignored by SentencePiece >= 0.2.1: listed, not passed."""

NORMALIZER_FIELDS = frozenset({"normalization_rule_name", "add_dummy_prefix", "remove_extra_whitespaces"})


def llama_settings() -> dict[str, Any]:
    """LLaMA's trainer flags as a name -> value dict."""
    return {s.name: s.value for s in LLAMA_SETTINGS}


def trainer_settings(**overrides: Any) -> dict[str, Any]:
    """The flags passed to SentencePiece: LLaMA's, with this run's values of the RUN_DEPENDENT ones.

    Any other override is refused: a tokenizer trained here is LLaMA's recipe or it is a bug.
    """
    unknown = set(overrides) - RUN_DEPENDENT
    if unknown:
        raise ConfigError(f"only {sorted(RUN_DEPENDENT)} may differ from LLaMA's settings, not {sorted(unknown)}")
    settings = {name: value for name, value in llama_settings().items() if name not in DEPRECATED}
    settings["num_threads"] = os.cpu_count() or 1
    settings.update(overrides)
    return settings
