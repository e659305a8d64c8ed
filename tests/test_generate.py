"""Generation: the KV cache changes nothing under greedy decoding; nucleus sampling stays in the nucleus;
the `generate` and `convert` commands work on a checkpoint trained with a real SentencePiece tokenizer."""

from __future__ import annotations

import json

import pytest
import torch
from model_fixtures import documents, real_text, write_token_table

from filters.options import ConfigError
from model.config import NAMED_CONFIGS
from model.generate import generate_tokens, load_checkpoint_model, sample_top_p
from model.llama import build_model
from model.meta_format import save_checkpoint
from pipelines.cli import main
from tokenizer.token_shards import token_dtype, token_table


@pytest.mark.parametrize("name", ["tiny", "tiny-gqa"])
def test_greedy_generation_is_the_same_with_and_without_kv_cache(name: str) -> None:
    model = build_model(NAMED_CONFIGS[name], seed=11).eval()
    prompts = [[1, 40, 41, 42, 43, 44], [1, 90], [1, 7, 8, 9]]
    cached = generate_tokens(model, prompts, max_new_tokens=24, temperature=0.0)
    uncached = generate_tokens(model, prompts, max_new_tokens=24, temperature=0.0, use_cache=False)
    assert cached == uncached
    assert [len(c) for c in cached] == [24, 24, 24]  # every row stops at its own prompt + 24
    # The first new token of the single prompt is the plain forward pass's argmax.
    with torch.no_grad():
        first = model(torch.tensor([prompts[0]]))[0, -1].argmax().item()
    assert cached[0][0] == first


@pytest.mark.parametrize("name", ["tiny", "tiny-gqa"])
@pytest.mark.parametrize("use_cache", [True, False], ids=["cached", "uncached"])
def test_batched_prompts_of_different_lengths_decode_as_if_alone(name: str, use_cache: bool) -> None:
    model = build_model(NAMED_CONFIGS[name], seed=5).eval()
    prompts = [[1], [1, 30, 31, 32, 33, 34]]
    batched = generate_tokens(model, prompts, max_new_tokens=3, temperature=0.0, use_cache=use_cache)
    assert [len(c) for c in batched] == [3, 3]  # was 8 and 3: the short row ran to the long one's end
    alone = [generate_tokens(model, [p], max_new_tokens=3, temperature=0.0, use_cache=use_cache)[0] for p in prompts]
    assert batched == alone
    longer = generate_tokens(model, prompts, max_new_tokens=10, temperature=0.0, use_cache=use_cache)
    assert [c[:3] for c in longer] == batched


def test_each_row_stops_at_its_own_eos_or_the_sequence_end() -> None:
    model = build_model(NAMED_CONFIGS["tiny"].replace(max_seq_len=12), seed=11).eval()
    prompts = [[1, 40, 41], [1, 2, 3, 4, 5, 6, 7, 8, 9]]
    free = generate_tokens(model, prompts, max_new_tokens=6, temperature=0.0)
    assert [len(c) for c in free] == [6, 3]  # the long row meets max_seq_len 12 after 3 tokens
    eos = free[0][2]
    stopped = generate_tokens(model, prompts, max_new_tokens=6, temperature=0.0, eos_id=eos)
    expected = [c[: c.index(eos)] if eos in c else c for c in free]
    assert stopped == expected and len(stopped[0]) <= 2


def test_max_new_tokens_below_one_is_a_config_error() -> None:
    model = build_model(NAMED_CONFIGS["tiny"], seed=11).eval()
    with pytest.raises(ConfigError, match="max_new_tokens"):
        generate_tokens(model, [[1, 2]], max_new_tokens=0)


def test_generation_stops_at_eos() -> None:
    model = build_model(NAMED_CONFIGS["tiny"], seed=11).eval()
    free = generate_tokens(model, [[1, 40, 41]], max_new_tokens=12, temperature=0.0)[0]
    eos = free[4]
    stopped = generate_tokens(model, [[1, 40, 41]], max_new_tokens=12, temperature=0.0, eos_id=eos)[0]
    assert stopped == free[: free.index(eos)]


def test_top_p_samples_only_from_the_nucleus() -> None:
    probs = torch.tensor([[0.05, 0.5, 0.3, 0.15]]).repeat(2000, 1)
    generator = torch.Generator().manual_seed(0)
    drawn = sample_top_p(probs, top_p=0.7, generator=generator)
    assert set(drawn.tolist()) == {1, 2}  # 0.5 + 0.3 reach 0.7; 0.15 and 0.05 are cut
    share = (drawn == 1).float().mean().item()
    assert share == pytest.approx(0.5 / 0.8, abs=0.04)


def test_sampling_is_reproducible_with_a_seeded_generator() -> None:
    model = build_model(NAMED_CONFIGS["tiny"], seed=11).eval()
    runs = [
        generate_tokens(model, [[1, 5]], 16, temperature=1.0, top_p=0.9, generator=torch.Generator().manual_seed(3))
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


@pytest.fixture(scope="module")
def sentencepiece_dataset(tmp_path_factory):
    """A 300-piece SentencePiece BPE model trained on Tiny Shakespeare, and token shards encoded with it."""
    spm = pytest.importorskip("sentencepiece")
    root = tmp_path_factory.mktemp("sp")
    text = real_text("tinyshakespeare.txt.gz", 60_000)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(text.splitlines()),
        model_prefix=str(root / "tokenizer"),
        vocab_size=300,
        model_type="bpe",
        num_threads=1,
        minloglevel=2,
    )
    processor = spm.SentencePieceProcessor(model_file=str(root / "tokenizer.model"))
    docs = documents(text)
    encoded = [torch.tensor([processor.bos_id(), *processor.encode(d), processor.eos_id()]).numpy() for d in docs]
    dtype = token_dtype(300)
    splits = {}
    for split, rows in (("train", range(len(docs) - 20)), ("val", range(len(docs) - 20, len(docs)))):
        rows = list(rows)
        table = token_table([str(i) for i in rows], ["books"] * len(rows), ["en"] * len(rows),
                            [encoded[i] for i in rows], dtype)  # fmt: skip
        write_token_table(table, root / "data" / split / "tokens-00000-of-00001.arrow")
        splits[split] = [{"path": f"{split}/tokens-00000-of-00001.arrow"}]
    manifest = {"kind": "tokens", "vocab_size": 300, "bos_id": 1, "eos_id": 2, "splits": splits}
    (root / "data" / "manifest.json").write_text(json.dumps(manifest))
    return root


def test_train_then_generate_and_convert_commands(sentencepiece_dataset, tmp_path, capsys) -> None:
    pytest.importorskip("tokenizer.tokenizer")
    root = sentencepiece_dataset
    output = tmp_path / "run"
    code = main(
        ["train", "--data", str(root / "data"), "--output", str(output), "--config", "tiny", "--seq-len", "64",
         "--micro-batch-size", "8", "--steps", "30", "--lr", "3e-3", "--log-every", "10", "--eval-every", "30",
         "--tokenizer", str(root / "tokenizer.model")]
    )  # fmt: skip
    assert code == 0
    checkpoint = output / "checkpoints" / "step-0000030"
    assert (checkpoint / "tokenizer.model").is_file()
    capsys.readouterr()
    assert main(["generate", "--checkpoint", str(output), "--prompt", "ROMEO:", "--temperature", "0",
                 "--max-new-tokens", "20"]) == 0  # fmt: skip
    cached = capsys.readouterr().out
    assert cached.startswith("ROMEO:") and len(cached.splitlines()[0]) > len("ROMEO:")
    assert main(["generate", "--checkpoint", str(checkpoint), "--prompt", "ROMEO:", "--temperature", "0",
                 "--max-new-tokens", "20", "--no-cache"]) == 0  # fmt: skip
    assert capsys.readouterr().out == cached

    assert main(["convert", "to-hf", str(checkpoint), str(tmp_path / "hf")]) == 0
    assert main(["convert", "from-hf", str(tmp_path / "hf"), str(tmp_path / "back")]) == 0
    original, back = load_checkpoint_model(checkpoint), load_checkpoint_model(tmp_path / "back")
    assert original.args == back.args
    back_state = back.state_dict()
    assert all(torch.equal(value, back_state[key]) for key, value in original.state_dict().items())
    assert (tmp_path / "back" / "tokenizer.model").is_file()


def test_merge_command_writes_one_consolidated_file(tmp_path, capsys) -> None:
    args = NAMED_CONFIGS["tiny"]
    state = build_model(args, seed=0).state_dict()
    halves = [{}, {}]
    for key, value in state.items():
        dim = 1 if key.endswith(("wo.weight", "w2.weight", "tok_embeddings.weight")) else 0
        for half, chunk in zip(halves, value.chunk(2, dim=dim) if value.dim() == 2 else [value, value], strict=True):
            half[key] = chunk.clone()
    for rank, half in enumerate(halves):
        torch.save(half, tmp_path / f"consolidated.{rank:02d}.pth")
    (tmp_path / "params.json").write_text(json.dumps({**args.to_params(), "vocab_size": -1}))
    assert main(["convert", "merge", str(tmp_path), str(tmp_path / "merged")]) == 0
    assert sorted(p.name for p in (tmp_path / "merged").iterdir()) == [
        "checksums.json",
        "consolidated.00.pth",
        "params.json",
    ]
    merged = load_checkpoint_model(tmp_path / "merged")
    assert all(torch.equal(merged.state_dict()[k], v) for k, v in state.items())
    save_checkpoint(args, state, tmp_path / "single")
    assert merged.args == load_checkpoint_model(tmp_path / "single").args
