"""MinHash signatures, shingling and LSH parameters (engine-free)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
from datasketch import LeanMinHash, MinHash

from filters.minhash import (
    MinHasher,
    char_shingle_hashes,
    optimal_bands,
    signature,
    word_hashes,
    word_shingle_hashes,
)
from filters.options import ConfigError
from filters.words import WORD_RE, fold_table

ROOT = Path(__file__).resolve().parents[1]


def lean_minhash(sig: np.ndarray, seed: int) -> LeanMinHash:
    return LeanMinHash(seed=seed, hashvalues=sig, scheme="affine32")


def collision_probability(jaccard: float, bands: int, rows: int) -> float:
    """Probability that two documents with this Jaccard similarity share at least one band."""
    return 1.0 - (1.0 - jaccard**rows) ** bands


CC_SAMPLE = ROOT / "data/samples/web/CC-MAIN-20190717121559-20190717143559-00140.jsonl.gz"


def cc_texts(limit: int | None = None) -> list[str]:
    with gzip.open(CC_SAMPLE, "rt", encoding="utf-8") as f:
        return [json.loads(line)["text"] for line in f][:limit]


def test_word_hashes_split_like_the_reference_regex_on_multilingual_web_text_after_folding():
    # 697 real pages in 54 languages: the vectorized tokenizer must find exactly WORD_RE's words.
    table = fold_table()
    folding = {int(code): int(table[code]) for code in np.flatnonzero(table != np.arange(len(table)))}
    for text in cc_texts():
        words = [word.translate(folding) for word in WORD_RE.findall(text.lower())]
        hashes = word_hashes(text).tolist()
        assert len(hashes) == len(words)
        by_word = dict(zip(words, hashes, strict=True))
        assert [by_word[w] for w in words] == hashes  # same word, same hash
        assert len(set(by_word.values())) == len(by_word)  # different words, different hashes


def test_digits_and_accents_fold_so_shifted_numbers_and_accent_fixes_match():
    assert np.array_equal(word_hashes("Café 2019"), word_hashes("cafe 2024"))
    assert not np.array_equal(word_hashes("cafe"), word_hashes("cafes"))


def test_cjk_characters_are_words_and_marks_stay_inside_words():
    assert len(word_hashes("東京は晴れ")) == 5
    assert len(word_hashes("नमस्ते दुनिया")) == 2  # Devanagari vowel signs are combining marks
    assert len(word_hashes("  ,;!  ")) == 0


def test_signature_equals_datasketch_update_batch():
    hashes = word_shingle_hashes(cc_texts(5)[4], 5)
    ours = signature(hashes, 128, 7)
    reference = MinHash(num_perm=128, seed=7, scheme="affine32", hashfunc=int)
    reference.update_batch(hashes.tolist())
    np.testing.assert_array_equal(ours, reference.hashvalues)
    assert lean_minhash(ours, 7).jaccard(lean_minhash(ours, 7)) == 1.0


def test_estimated_jaccard_tracks_true_shingle_jaccard():
    text = cc_texts(30)[29]
    words = text.split()
    edited = " ".join(words[: len(words) // 2] + ["inserted"] * 5 + words[len(words) // 2 :])
    a, b = word_shingle_hashes(text, 5), word_shingle_hashes(edited, 5)
    true = len(set(a) & set(b)) / len(set(a) | set(b))
    estimate = lean_minhash(signature(a, 256, 1), 1).jaccard(lean_minhash(signature(b, 256, 1), 1))
    assert abs(estimate - true) < 0.1


def test_punctuation_and_case_do_not_change_word_shingles():
    assert np.array_equal(
        word_shingle_hashes("Hello, World! It is fine.", 2), word_shingle_hashes("hello world it IS fine", 2)
    )
    assert len(word_shingle_hashes("only three words", 5)) == 1  # fewer words than n: one shingle
    assert len(char_shingle_hashes("abc   def", 3)) == len("abc def") - 2


def test_optimal_bands_match_datasketch_and_behave_like_an_s_curve():
    bands, rows = optimal_bands(0.8, 128)
    assert (bands, rows) == (9, 13)
    assert collision_probability(0.95, bands, rows) > 0.99
    assert collision_probability(0.5, bands, rows) < 0.01


def test_hasher_rejects_bad_parameters():
    with pytest.raises(ConfigError):
        MinHasher(bands=20, rows=10, num_perm=128)
    with pytest.raises(ConfigError):
        MinHasher(shingle="sentence", bands=9, rows=13)


def test_band_keys_are_exact_band_contents():
    hasher = MinHasher(bands=4, rows=2, num_perm=8)
    sig = np.arange(8, dtype=np.uint32)
    keys = hasher.band_keys(sig)
    assert len(keys) == 4 and len(set(keys)) == 4
    other = sig.copy()
    other[7] = 99
    assert hasher.band_keys(other)[:3] == keys[:3] and hasher.band_keys(other)[3] != keys[3]
