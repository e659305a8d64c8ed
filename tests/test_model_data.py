"""The token-shard loader: packing, mixture sampling, determinism, resume and data-parallel sharding."""

from __future__ import annotations

import itertools
import json

import numpy as np
import pyarrow as pa
import pytest
from model_fixtures import BOS, EOS, write_byte_dataset, write_token_table

from model.data import TokenLoader
from tokenizer.token_shards import TokenShard, token_table

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
    read = {name: s["epoch"] * s["tokens"] + s["cursor"] for name, s in loader.state_dict()["sources"].items()}
    assert read["books"] + read["manuals"] == 2000 * SEQ
    assert read["books"] / (read["books"] + read["manuals"]) == pytest.approx(0.8, abs=0.03)


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


def test_every_token_of_an_epoch_is_read_once(dataset) -> None:
    """One source, one epoch: the samples' strides are the source's documents, each exactly once."""
    loader = TokenLoader(dataset, "train", SEQ, mixture={"books": 1.0, "manuals": 0.0}, seed=5)
    books = loader.sources[[s.name for s in loader.sources].index("books")]
    n = books.tokens // SEQ
    stream = loader.next_samples(n)[:, :-1].ravel()
    books_docs = {
        doc.tobytes()
        for shard in loader.shards
        for doc, name in zip(shard.documents(), shard.sources, strict=True)
        if name == "books"
    }
    cut = np.flatnonzero(stream == BOS)
    pieces = [stream[a:b].astype(np.uint16).tobytes() for a, b in itertools.pairwise(cut)]
    assert len(pieces) > 0.9 * len(books_docs)  # whole documents between two BOS
    assert len(set(pieces)) == len(pieces)  # none twice within the epoch
    assert set(pieces) <= books_docs


def test_shards_stay_mapped_and_per_document_state_is_small(dataset) -> None:
    loader = TokenLoader(dataset, "train", SEQ, seed=0)
    loader.next_samples(100)  # builds each source's epoch order
    for shard in loader.shards:
        assert not shard.tokens.flags.owndata and not shard.offsets.flags.owndata  # views of the mapped file
        assert not {"ids", "sources", "languages"} & set(vars(shard))  # no per-document Python strings
    documents = sum(len(shard) for shard in loader.shards)
    held = 0
    for source in loader.sources:
        permutation, block_ends = source.order(0, loader.seed)
        held += source.docs.nbytes + source.lengths.nbytes + permutation.nbytes + block_ends.nbytes
    assert held / documents <= 16  # the goal; 12.1 with uint32 numbers, lengths and permutation
    assert sum(len(s.docs) for s in loader.sources) == documents  # the byte fixture has no empty document


def test_a_shard_of_several_record_batches_reads_the_same_documents(dataset, tmp_path) -> None:
    one = TokenShard.open(next((dataset / "train").glob("*.arrow")))
    table = one.table
    path = tmp_path / "batches.arrow"
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=7)
    several = TokenShard.open(path)
    assert several.table.column("tokens").num_chunks > 1
    assert len(several) == len(one) > 7
    assert all(np.array_equal(a, b) for a, b in zip(several.documents(), one.documents(), strict=True))
    names, codes = several.source_codes()
    assert [names[c] for c in codes] == one.sources


def test_empty_documents_and_sources_without_tokens_are_left_out(tmp_path) -> None:
    rows = [("a", "books", [BOS, 10, 11, EOS]), ("b", "books", []), ("c", "empty", []), ("d", "books", [BOS, 12, EOS])]
    table = token_table(
        [r[0] for r in rows], [r[1] for r in rows], ["en"] * 4, [np.array(r[2]) for r in rows], np.dtype(np.uint16)
    )
    write_token_table(table, tmp_path / "train" / "tokens-00000-of-00001.arrow")
    manifest = {"kind": "tokens", "splits": {"train": [{"path": "train/tokens-00000-of-00001.arrow"}]}}
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    loader = TokenLoader(tmp_path, "train", 3)
    assert [(s.name, s.docs.tolist(), s.tokens) for s in loader.sources] == [("books", [0, 3], 7)]
    tokens = loader.next_samples(7)[:, :-1].ravel()  # 3 epochs of the 7 tokens
    assert sorted(tokens[:7].tolist()) == sorted([BOS, 10, 11, EOS, BOS, 12, EOS])
