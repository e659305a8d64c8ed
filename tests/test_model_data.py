"""The token-shard loader: packing, mixture sampling, determinism, resume and data-parallel sharding."""

from __future__ import annotations

import json

import numpy as np
import pytest
from model_fixtures import BOS, EOS, write_byte_dataset

from model.data import TokenLoader

SEQ = 32


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_byte_dataset(tmp_path_factory.mktemp("tokens"), n_bytes=20_000)


def test_samples_are_packed_runs_of_real_documents(dataset) -> None:
    loader = TokenLoader(dataset, "train", SEQ, seed=0)
    samples = loader.next_samples(200)
    assert samples.shape == (200, SEQ + 1)
    assert samples.dtype == np.int64
    flat = samples.ravel()
    assert (flat == BOS).any() and (flat == EOS).any()  # sequences cross document boundaries
    # Every EOS that is not a sample's last token is followed by the next document's BOS.
    eos_rows, eos_cols = np.nonzero(samples[:, :-1] == EOS)
    assert (samples[eos_rows, eos_cols + 1] == BOS).all()
    # Decoding gives real text (bytes + 3): mostly letters and spaces.
    text = bytes((flat[flat > EOS] - 3).astype(np.uint8)).decode("utf-8", errors="replace")
    assert sum(c.isalpha() or c.isspace() for c in text) > 0.8 * len(text)


def test_consecutive_samples_of_a_source_overlap_by_one_token(dataset) -> None:
    loader = TokenLoader(dataset, "train", SEQ, mixture={"books": 1.0, "manuals": 0.0}, seed=0)
    first, second = loader.next_samples(2)
    assert first[-1] == second[0]


def test_same_seed_same_stream_other_seed_other_stream(dataset) -> None:
    a = TokenLoader(dataset, "train", SEQ, seed=7).next_samples(50)
    b = TokenLoader(dataset, "train", SEQ, seed=7).next_samples(50)
    c = TokenLoader(dataset, "train", SEQ, seed=8).next_samples(50)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_resume_continues_at_the_exact_next_sample(dataset) -> None:
    reference = TokenLoader(dataset, "train", SEQ, seed=3)
    expected = reference.next_samples(1500)  # long enough to wrap into later epochs
    interrupted = TokenLoader(dataset, "train", SEQ, seed=3)
    head = interrupted.next_samples(700)
    state = json.loads(json.dumps(interrupted.state_dict()))  # survives serialization
    resumed = TokenLoader(dataset, "train", SEQ, seed=3)
    resumed.load_state_dict(state)
    assert np.array_equal(np.concatenate([head, resumed.next_samples(800)]), expected)
    assert max(resumed.epochs_seen().values()) > 1.0


def test_ranks_split_the_global_stream(dataset) -> None:
    single = TokenLoader(dataset, "train", SEQ, seed=1).next_samples(40)
    rank0 = TokenLoader(dataset, "train", SEQ, seed=1, rank=0, world_size=2).next_samples(20)
    rank1 = TokenLoader(dataset, "train", SEQ, seed=1, rank=1, world_size=2).next_samples(20)
    assert np.array_equal(rank0, single[0::2])
    assert np.array_equal(rank1, single[1::2])


def test_resume_on_a_different_number_of_ranks(dataset) -> None:
    single = TokenLoader(dataset, "train", SEQ, seed=1)
    single.next_samples(10)
    state = single.state_dict()
    expected = single.next_samples(10)
    rank1 = TokenLoader(dataset, "train", SEQ, seed=1, rank=1, world_size=2)
    rank1.load_state_dict(state)
    assert np.array_equal(rank1.next_samples(5), expected[1::2])


def test_mixture_weights_set_source_shares(dataset) -> None:
    loader = TokenLoader(dataset, "train", SEQ, mixture={"books": 0.8, "manuals": 0.2}, seed=0)
    loader.next_samples(2000)
    books = loader.sources[[s.name for s in loader.sources].index("books")]
    manuals = loader.sources[[s.name for s in loader.sources].index("manuals")]
    books_tokens = books.epoch * books.tokens + books.cursor
    manuals_tokens = manuals.epoch * manuals.tokens + manuals.cursor
    assert books_tokens / (books_tokens + manuals_tokens) == pytest.approx(0.8, abs=0.03)


def test_planned_epochs_match_the_epochs_seen(dataset) -> None:
    loader = TokenLoader(dataset, "train", SEQ, mixture={"books": 0.7, "manuals": 0.3}, seed=0)
    planned = loader.planned_epochs(3000)
    loader.next_samples(3000)
    for name, seen in loader.epochs_seen().items():
        assert seen == pytest.approx(planned[name], rel=0.05)
    assert planned["books"] > 1.0  # a source sampled above its size repeats, as in the paper's Table 1


def test_default_mixture_follows_token_counts(dataset) -> None:
    loader = TokenLoader(dataset, "train", SEQ, seed=0)
    tokens = np.array([s.tokens for s in loader.sources], dtype=float)
    assert np.allclose(loader.weights, tokens / tokens.sum())


def test_bad_mixture_and_resume_state_are_refused(dataset) -> None:
    with pytest.raises(ValueError, match="absent"):
        TokenLoader(dataset, "train", SEQ, mixture={"commoncrawl": 1.0})
    state = TokenLoader(dataset, "train", SEQ, seed=0).state_dict()
    with pytest.raises(ValueError, match="seq_len"):
        TokenLoader(dataset, "train", SEQ * 2, seed=0).load_state_dict(state)
    with pytest.raises(FileNotFoundError, match="'test'"):
        TokenLoader(dataset, "test", SEQ)
