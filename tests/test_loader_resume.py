"""Exact resume across data-parallel ranks and world sizes, and prefetching that changes nothing but timing.

Ranks are simulated as loader objects with their own rank (what each process of a torchrun job builds), so
the stream arithmetic is checked without torch.distributed."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from model_fixtures import write_byte_dataset

from model.data import TokenLoader

SEQ = 16
SEED = 4


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_byte_dataset(tmp_path_factory.mktemp("tokens"), n_bytes=12_000)


def ranks(dataset, world: int, **kwargs) -> list[TokenLoader]:
    return [TokenLoader(dataset, "train", SEQ, seed=SEED, rank=r, world_size=world, **kwargs) for r in range(world)]


def global_batch(loaders: list[TokenLoader], n: int) -> np.ndarray:
    """One call of `n` on every rank, put back in global order: rank r of W holds samples i % W == r."""
    start = loaders[0].state_dict()["sample_index"]
    world = len(loaders)
    batch = np.empty((n * world, SEQ + 1), dtype=np.int64)
    for loader in loaders:
        first = (loader.rank - start) % world  # the rank's first sample within this window
        batch[first::world] = loader.next_samples(n)
    return batch


def saved(loader: TokenLoader) -> dict:
    return json.loads(json.dumps(loader.state_dict()))  # as a checkpoint stores it


def resumed(dataset, state: dict, world: int, **kwargs) -> list[TokenLoader]:
    loaders = ranks(dataset, world, **kwargs)
    for loader in loaders:
        loader.load_state_dict(state)
    return loaders


def test_ranks_stand_at_the_same_position_and_split_the_global_stream(dataset) -> None:
    single = TokenLoader(dataset, "train", SEQ, seed=SEED)
    three = ranks(dataset, 3)
    # 1500 x 3 samples wrap both sources into a later epoch and cross a block of source draws (4096 samples)
    for n in (4, 1, 7, 1500):
        expected = single.next_samples(3 * n)
        assert np.array_equal(global_batch(three, n), expected)
        states = [loader.state_dict() for loader in three]
        assert states[0]["sample_index"] == single.state_dict()["sample_index"]
        assert all(state == states[0] for state in states)
    assert min(three[0].epochs_seen().values()) > 1.0


@pytest.mark.parametrize(("world", "n", "new_world", "new_n"), [(2, 6, 1, 12), (2, 6, 4, 3), (4, 3, 3, 5)])
def test_rank_zero_state_resumes_any_world_size(dataset, world, n, new_world, new_n) -> None:
    """Rank 0's saved state continues the global stream on every rank of a different world, even where the
    saved position is not a multiple of the new world size (4 x 3 x 5 = 60 samples, then 3 ranks)."""
    reference = TokenLoader(dataset, "train", SEQ, seed=SEED)
    before = ranks(dataset, world)
    for _ in range(5):
        assert np.array_equal(global_batch(before, n), reference.next_samples(n * world))
    after = resumed(dataset, saved(before[0]), new_world)
    for _ in range(3):
        assert np.array_equal(global_batch(after, new_n), reference.next_samples(new_n * new_world))
    assert after[0].state_dict() == reference.state_dict() | {"world_size": new_world}


def test_resuming_on_more_ranks_does_not_retrain_samples(dataset) -> None:
    """The bug this replaces: ranks ended at different positions, so a resume repeated samples of ranks > 0."""
    two = ranks(dataset, 2)
    seen = {row.tobytes() for _ in range(4) for row in global_batch(two, 5)}
    four = resumed(dataset, saved(two[0]), 4)  # rank 0 saves, as in training
    later = {row.tobytes() for row in global_batch(four, 5)}
    assert len(seen) == 40 and len(later) == 20
    assert not seen & later


def test_prefetch_hands_out_the_same_samples_and_the_position_of_those_handed_out(dataset) -> None:
    sync = TokenLoader(dataset, "train", SEQ, seed=SEED, rank=1, world_size=2)
    with TokenLoader(dataset, "train", SEQ, seed=SEED, rank=1, world_size=2, prefetch=3) as ahead:
        for n in (5, 5, 5, 2, 2, 400):  # a new n restarts the thread at the position handed out
            assert np.array_equal(ahead.next_samples(n), sync.next_samples(n))
            assert ahead.state_dict() == sync.state_dict()  # not the batches waiting in the queue
            assert ahead.epochs_seen() == sync.epochs_seen()
        state = saved(ahead)
    expected = resumed(dataset, state, 1)[0].next_samples(8)  # the global stream, read synchronously
    for world in (1, 2):  # resume with prefetch on one rank, or as rank 1 of two
        with TokenLoader(dataset, "train", SEQ, seed=SEED, rank=world - 1, world_size=world, prefetch=2) as again:
            again.load_state_dict(state)
            assert np.array_equal(again.next_samples(8 // world), expected[world - 1 :: world])


def test_prefetch_restarts_on_reset_and_load_state_dict(dataset) -> None:
    with TokenLoader(dataset, "train", SEQ, seed=SEED, prefetch=2) as loader:
        first = loader.next_samples(6)
        state = saved(loader)
        second = loader.next_samples(6)
        loader.reset()
        assert np.array_equal(loader.next_samples(6), first)
        loader.load_state_dict(state)
        assert np.array_equal(loader.next_samples(6), second)


def prefetch_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "token-prefetch"]


def test_the_prefetch_thread_stops_on_close_and_on_error(dataset) -> None:
    loader = TokenLoader(dataset, "train", SEQ, seed=SEED, prefetch=2)
    loader.next_samples(3)
    assert len(prefetch_threads()) == 1
    loader.close()
    assert not prefetch_threads()
    with pytest.raises(RuntimeError, match="step failed"), loader:  # an error in the training loop
        loader.next_samples(3)
        raise RuntimeError("step failed")
    assert not prefetch_threads()
    state = loader.state_dict()

    def broken(doc: int, within: int, count: int) -> np.ndarray:
        raise OSError("shard unreadable")

    loader._document_tokens = broken  # the next read in the thread fails
    with pytest.raises(OSError, match="shard unreadable"):
        loader.next_samples(3)
    assert not prefetch_threads()
    assert loader.state_dict() == state  # nothing was handed out
