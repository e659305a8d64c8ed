"""MinHash signatures and LSH banding for near-duplicate detection, vectorized with numpy.

Shingles are word n-grams (default 5, as datatrove and the Gopher/RefinedWeb pipelines use) of the
lowercased text, with digits folded to 0 and accents stripped (`filters.words.fold_table`, as CCNet and
datatrove normalize), where a word is a run of letters/digits (combining marks included) and every Han/Kana
character is a word of its own (`filters.words.WORD_RE`), so CJK text without spaces still gets shingles;
`char` shingles (character n-grams of the whitespace-collapsed text) are the alternative. A document with
fewer than n words has one shingle, all of its words; a document with no word has no signature and is
never a near-duplicate.

Hashing is vectorized end to end, with no Python code per word: code points are folded and classified by
table lookup, word boundaries found with numpy, every word hashed as a polynomial of its code points from
prefix sums (5x faster than `WORD_RE.findall`, which merely splits), n-grams combined with array arithmetic,
and the permutations applied to a (shingles x num_perm) array at once. The permutation family and its parameters are
datasketch's default `affine32` scheme (fmix32 pre-mix, then a*h+b mod 2^32 with odd a, parameters drawn
from `MinHash(num_perm, seed).permutations`), so a signature equals what `MinHash.update_batch` gives for
the same shingle hashes and wraps into a `LeanMinHash` for datasketch's Jaccard estimate.

Bands and rows come from datasketch's `_optimal_param` (the (b, r) minimizing the weighted false
positive and false negative areas around the threshold, as `MinHashLSH` does) unless given explicitly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from datasketch import MinHash
from datasketch.lsh import _optimal_param

from filters.options import ConfigError
from filters.words import char_classes, fold_table

SCHEME = "affine32"
SHINGLE_TYPES = ("word", "char")
CHUNK_SHINGLES = 4096  # rows of the (shingles x num_perm) array: ~2 MB at 128 permutations

_SPACE_RE = re.compile(r"\s+")

# Odd 64-bit multipliers combining the hashes of the n positions of an n-gram (position-sensitive).
_POSITION_MULTIPLIERS = np.array(
    [(0x9E3779B97F4A7C15 * (2 * i + 1) + 0x632BE59BD9B4E019 * i) % (1 << 64) | 1 for i in range(64)], dtype=np.uint64
)


def _fmix32(values: np.ndarray) -> np.ndarray:
    """MurmurHash3's 32-bit finalizer (the pre-mix of datasketch's affine schemes), element-wise."""
    values = values ^ (values >> np.uint32(16))
    values = values * np.uint32(0x85EBCA6B)
    values = values ^ (values >> np.uint32(13))
    values = values * np.uint32(0xC2B2AE35)
    return values ^ (values >> np.uint32(16))


def _fold32(values: np.ndarray) -> np.ndarray:
    """64-bit hashes to 32-bit ones (xor of halves), the input width of the affine32 scheme."""
    return ((values ^ (values >> np.uint64(32))) & np.uint64(0xFFFFFFFF)).astype(np.uint32)


def _combine_ngrams(unit_hashes: np.ndarray, n: int) -> np.ndarray:
    """Hash of every window of n consecutive unit hashes (all units if there are fewer than n)."""
    if len(unit_hashes) < n:
        n = len(unit_hashes)
    count = len(unit_hashes) - n + 1
    with np.errstate(over="ignore"):
        combined = np.zeros(count, dtype=np.uint64)
        for offset in range(n):
            combined += unit_hashes[offset : offset + count] * _POSITION_MULTIPLIERS[offset]
        combined ^= combined >> np.uint64(29)
        combined *= np.uint64(0xBF58476D1CE4E5B9)
        combined ^= combined >> np.uint64(32)
    return combined


class _Powers:
    """P^i and P^-i mod 2^64 for i < length, grown on demand (polynomial hashing of spans by prefix sums)."""

    BASE = np.uint64(0x100000001B3)  # odd, hence invertible mod 2^64
    INVERSE = np.uint64(pow(0x100000001B3, -1, 1 << 64))

    def __init__(self) -> None:
        self.forward = np.ones(1, dtype=np.uint64)
        self.backward = np.ones(1, dtype=np.uint64)

    def get(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        if len(self.forward) < length:
            size = max(length, 2 * len(self.forward))
            with np.errstate(over="ignore"):
                self.forward = np.cumprod(np.full(size, self.BASE, dtype=np.uint64)) * self.INVERSE
                self.backward = np.cumprod(np.full(size, self.INVERSE, dtype=np.uint64)) * self.BASE
        return self.forward[:length], self.backward[:length]


_POWERS = _Powers()


def word_hashes(text: str) -> np.ndarray:
    """64-bit hashes of the words of `text` (as WORD_RE.findall(text.lower()) would split them), computed
    without a per-word Python call: code points are classified by table lookup, word boundaries found with
    numpy, and each word hashed as a polynomial over its code points from prefix sums."""
    codes = fold_table()[np.frombuffer(text.lower().encode("utf-32-le", "surrogatepass"), dtype=np.uint32)]
    classes = char_classes()[codes]
    word = classes == 1
    single = classes == 2
    previous_word = np.concatenate(([False], word[:-1]))
    next_word = np.concatenate((word[1:], [False]))
    starts = np.flatnonzero((word & ~previous_word) | single)
    if len(starts) == 0:
        return np.empty(0, dtype=np.uint64)
    ends = np.flatnonzero((word & ~next_word) | single) + 1
    forward, backward = _POWERS.get(len(codes))
    with np.errstate(over="ignore"):
        prefix = np.zeros(len(codes) + 1, dtype=np.uint64)
        np.cumsum((codes.astype(np.uint64) + np.uint64(0x9E37)) * forward, out=prefix[1:])
        hashes = (prefix[ends] - prefix[starts]) * backward[starts]
        hashes += (ends - starts).astype(np.uint64) * np.uint64(0xC2B2AE3D27D4EB4F)
        hashes ^= hashes >> np.uint64(31)
        hashes *= np.uint64(0x94D049BB133111EB)
        hashes ^= hashes >> np.uint64(29)
    return hashes


def word_shingle_hashes(text: str, n: int) -> np.ndarray:
    """32-bit hashes of the word n-grams of `text` (empty when it has no word)."""
    hashes = word_hashes(text)
    if len(hashes) == 0:
        return np.empty(0, dtype=np.uint32)
    return _fold32(_combine_ngrams(hashes, n))


def char_shingle_hashes(text: str, n: int) -> np.ndarray:
    """32-bit hashes of the character n-grams of the lowercased, whitespace-collapsed `text`."""
    collapsed = _SPACE_RE.sub(" ", text.lower()).strip()
    if not collapsed:
        return np.empty(0, dtype=np.uint32)
    codes = np.frombuffer(collapsed.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    with np.errstate(over="ignore"):
        codes = (codes + np.uint64(1)) * np.uint64(0xD6E8FEB86659FD93)
    return _fold32(_combine_ngrams(codes, n))


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutation parameters (a, b) for `num_perm` and `seed`."""
    a, b = MinHash(num_perm=num_perm, seed=seed, scheme=SCHEME).permutations
    return a.astype(np.uint32), b.astype(np.uint32)


def signature(shingle_hashes: np.ndarray, num_perm: int, seed: int) -> np.ndarray:
    """The MinHash signature (uint32[num_perm]) of a non-empty set of 32-bit shingle hashes; equal to
    `MinHash(num_perm, seed, scheme="affine32")` updated with the same hashes."""
    if len(shingle_hashes) == 0:
        raise ValueError("a MinHash signature needs at least one shingle")
    a, b = permutations(num_perm, seed)
    mixed = _fmix32(np.ascontiguousarray(shingle_hashes, dtype=np.uint32))
    result = np.full(num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
    for start in range(0, len(mixed), CHUNK_SHINGLES):
        chunk = mixed[start : start + CHUNK_SHINGLES, None]
        np.minimum(result, (chunk * a + b).min(axis=0), out=result)
    return result


@lru_cache(maxsize=32)
def optimal_bands(
    threshold: float, num_perm: int, false_positive_weight: float = 0.5, false_negative_weight: float = 0.5
) -> tuple[int, int]:
    """(bands, rows) for a Jaccard threshold: datasketch's `_optimal_param` (what `MinHashLSH` uses)."""
    return _optimal_param(threshold, num_perm, false_positive_weight, false_negative_weight)


@dataclass(frozen=True)
class MinHasher:
    """Signature and band keys of documents, for fixed shingling and hashing parameters."""

    shingle: str = "word"
    ngram: int = 5
    num_perm: int = 128
    seed: int = 1
    bands: int = 0
    rows: int = 0

    def __post_init__(self) -> None:
        if self.shingle not in SHINGLE_TYPES:
            raise ConfigError(f"unknown shingle type {self.shingle!r}; known: {', '.join(SHINGLE_TYPES)}")
        if not 1 <= self.ngram <= len(_POSITION_MULTIPLIERS):
            raise ConfigError(f"ngram must be between 1 and {len(_POSITION_MULTIPLIERS)}, got {self.ngram}")
        if self.bands < 1 or self.rows < 1 or self.bands * self.rows > self.num_perm:
            raise ConfigError(f"need bands*rows <= num_perm, got {self.bands}x{self.rows} > {self.num_perm}")

    def shingle_hashes(self, text: str) -> np.ndarray:
        if self.shingle == "word":
            return word_shingle_hashes(text, self.ngram)
        return char_shingle_hashes(text, self.ngram)

    def signature(self, text: str) -> np.ndarray | None:
        """uint32[num_perm] signature, or None for a text without words."""
        hashes = self.shingle_hashes(text)
        return signature(hashes, self.num_perm, self.seed) if len(hashes) else None

    def band_keys(self, sig: np.ndarray) -> list[bytes]:
        """One key per band: the band number and the band's rows, as bytes (exact, no second hash)."""
        rows = self.rows
        return [
            band.to_bytes(2, "little") + sig[band * rows : (band + 1) * rows].tobytes() for band in range(self.bands)
        ]
