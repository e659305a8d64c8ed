"""The LLaMA model against Meta's layout and Hugging Face's LlamaForCausalLM."""

from __future__ import annotations

import json

import pytest
import torch
from memory_probe import bytes_left_allocated

from filters.options import ConfigError
from model.config import NAMED_CONFIGS, PAPER_CONFIGS, ModelArgs, load_model_args
from model.hf_format import load_hf, save_hf
from model.llama import (
    Attention,
    Transformer,
    apply_activation_checkpointing,
    apply_rope,
    build_model,
    compile_blocks,
    rope_frequencies,
)
from model.loss import next_token_loss
from model.meta_format import load_checkpoint, merge_shards, save_checkpoint

META_LAYER_KEYS = {
    "attention.wq.weight",
    "attention.wk.weight",
    "attention.wv.weight",
    "attention.wo.weight",
    "feed_forward.w1.weight",
    "feed_forward.w2.weight",
    "feed_forward.w3.weight",
    "attention_norm.weight",
    "ffn_norm.weight",
}


def test_state_dict_uses_meta_names_and_leaves_rope_tables_out() -> None:
    model = build_model(NAMED_CONFIGS["tiny"], seed=0)
    expected = {"tok_embeddings.weight", "norm.weight", "output.weight"}
    expected |= {f"layers.{i}.{key}" for i in range(2) for key in META_LAYER_KEYS}
    assert set(model.state_dict()) == expected
    assert {name for name, _ in model.named_buffers()} == {"freqs_cis"}


@pytest.mark.parametrize(
    ("name", "ffn_hidden", "parameters"),
    [
        # Meta's released LLaMA-1 shapes: FFN widths from their params.json and the parameter counts
        # of their checkpoints (6.7B, 13.0B, 32.5B, 65.2B in the paper's Table 2).
        ("7B", 11008, 6_738_415_616),
        ("13B", 13824, 13_015_864_320),
        ("33B", 17920, 32_528_943_616),
        ("65B", 22016, 65_285_660_672),
    ],
)
def test_paper_configs_have_the_released_shapes(name: str, ffn_hidden: int, parameters: int) -> None:
    args = PAPER_CONFIGS[name]
    assert args.ffn_hidden_dim == ffn_hidden
    with torch.device("meta"):
        model = Transformer(args)
    assert model.num_params() == parameters


def test_config_file_with_llama1_params_json(tmp_path) -> None:
    params = {"dim": 64, "multiple_of": 32, "n_heads": 4, "n_layers": 2, "norm_eps": 1e-06, "vocab_size": -1}
    (tmp_path / "params.json").write_text(json.dumps(params))
    with pytest.raises(ValueError, match="vocab_size"):
        load_model_args(tmp_path / "params.json")
    (tmp_path / "params.json").write_text(json.dumps({**params, "vocab_size": 256, "use_scaled_rope": True}))
    with pytest.raises(ValueError, match="scaled RoPE"):
        load_model_args(tmp_path / "params.json")
    (tmp_path / "params.json").write_text(json.dumps({**params, "vocab_size": 256, "max_batch_size": 32}))
    assert load_model_args(tmp_path / "params.json").ffn_hidden_dim == 192
    with pytest.raises(FileNotFoundError, match="named config"):
        load_model_args("no-such-config")


@pytest.mark.parametrize("name", ["tiny", "tiny-gqa"])
def test_logits_match_hugging_face_llama_after_conversion(tmp_path, name: str) -> None:
    transformers = pytest.importorskip("transformers")
    args = NAMED_CONFIGS[name].replace(rope_theta=500000.0 if name == "tiny-gqa" else 10000.0)
    model = build_model(args, seed=1).eval()
    save_hf(args, model.state_dict(), tmp_path)
    hf_model = transformers.LlamaForCausalLM.from_pretrained(tmp_path).eval()
    assert hf_model.config.num_key_value_heads == args.kv_heads
    tokens = torch.randint(0, args.vocab_size, (2, 50), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = model(tokens)
        theirs = hf_model(tokens).logits
    assert ours.shape == theirs.shape
    assert (ours - theirs).abs().max().item() < 1e-4


@pytest.mark.parametrize("name", ["tiny", "tiny-gqa"])
def test_meta_to_hf_to_meta_round_trip_is_bit_identical(tmp_path, name: str) -> None:
    args = NAMED_CONFIGS[name].replace(multiple_of=16, ffn_dim_multiplier=1.3)
    state = build_model(args, seed=2).state_dict()
    save_checkpoint(args, state, tmp_path / "meta")
    loaded_args, loaded = load_checkpoint(tmp_path / "meta")
    save_hf(loaded_args, loaded, tmp_path / "hf")
    back_args, back = load_hf(tmp_path / "hf")
    assert back_args == args
    assert set(back) == set(state)
    for key, value in state.items():
        assert torch.equal(back[key], value), key


def test_hf_directory_without_our_params_gets_an_equivalent_shape(tmp_path) -> None:
    args = NAMED_CONFIGS["tiny-gqa"]
    save_hf(args, build_model(args, seed=0).state_dict(), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["llamaprep_params"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    recovered, _ = load_hf(tmp_path)
    assert recovered.ffn_hidden_dim == args.ffn_hidden_dim
    assert (recovered.dim, recovered.n_heads, recovered.kv_heads) == (args.dim, args.n_heads, args.kv_heads)


def split_like_meta(state: dict[str, torch.Tensor], parts: int, embedding_dim: int) -> list[dict[str, torch.Tensor]]:
    """What fairscale model parallelism saves: column-parallel rows, row-parallel columns, norms replicated."""
    shards: list[dict[str, torch.Tensor]] = [{} for _ in range(parts)]
    for key, value in state.items():
        if value.dim() == 1:
            chunks = [value] * parts
        elif key == "tok_embeddings.weight":
            chunks = value.chunk(parts, dim=embedding_dim)
        elif key.endswith(("wo.weight", "w2.weight")):
            chunks = value.chunk(parts, dim=1)
        else:
            chunks = value.chunk(parts, dim=0)
        for shard, chunk in zip(shards, chunks, strict=True):
            shard[key] = chunk.clone()
    shards[0]["rope.freqs"] = torch.zeros(8)  # LLaMA-1 checkpoints carry this buffer
    return shards


@pytest.mark.parametrize("embedding_dim", [1, 0], ids=["llama1-2-embedding", "llama3-vocab-embedding"])
def test_model_parallel_shards_merge_back(tmp_path, embedding_dim: int) -> None:
    args = NAMED_CONFIGS["tiny-gqa"]
    state = build_model(args, seed=3).state_dict()
    shards = split_like_meta(state, 2, embedding_dim)
    merged = merge_shards(shards, dim=args.dim)
    assert set(merged) == set(state)
    assert all(torch.equal(merged[k], v) for k, v in state.items())
    # And from files, with LLaMA-1's vocab_size -1 in params.json.
    for rank, shard in enumerate(shards):
        torch.save(shard, tmp_path / f"consolidated.{rank:02d}.pth")
    (tmp_path / "params.json").write_text(json.dumps({**args.to_params(), "vocab_size": -1}))
    loaded_args, loaded = load_checkpoint(tmp_path)
    assert loaded_args == args
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


def test_compiled_and_eager_rotary_forms_agree(monkeypatch) -> None:
    args = NAMED_CONFIGS["tiny"]
    x = torch.randn(2, 10, args.n_heads, args.head_dim)
    table = rope_frequencies(args.head_dim, 10, args.rope_theta)
    eager = apply_rope(x, table)
    monkeypatch.setattr(torch.compiler, "is_compiling", lambda: True)
    torch.testing.assert_close(apply_rope(x, table), eager)
    # Position 0 is the identity, and rotations keep each pair's length.
    torch.testing.assert_close(eager[:, 0], x[:, 0])
    torch.testing.assert_close(eager.unflatten(-1, (-1, 2)).norm(dim=-1), x.unflatten(-1, (-1, 2)).norm(dim=-1))


def test_forward_rejects_positions_beyond_max_seq_len() -> None:
    args = ModelArgs(dim=32, n_layers=1, n_heads=2, vocab_size=16, multiple_of=8, max_seq_len=8)
    model = build_model(args, seed=0)
    with pytest.raises(ValueError, match="max_seq_len"):
        model(torch.zeros((1, 9), dtype=torch.long))


def loss_and_gradients(model: Transformer, batch: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    loss = next_token_loss(model, batch)
    loss.backward()
    return loss.detach(), {name: param.grad for name, param in model.named_parameters()}


@pytest.mark.parametrize("policy", ["full", "every:2", "ops"])
def test_activation_checkpointing_policies_give_the_same_loss_and_gradients(policy: str) -> None:
    args = NAMED_CONFIGS["tiny-gqa"].replace(n_layers=3)
    batch = torch.randint(0, args.vocab_size, (2, 17), generator=torch.Generator().manual_seed(0))
    plain = build_model(args, seed=4)
    checkpointed = build_model(args, seed=4)
    apply_activation_checkpointing(checkpointed, policy)
    expected_loss, expected = loss_and_gradients(plain, batch)
    loss, grads = loss_and_gradients(checkpointed, batch)
    assert torch.equal(loss, expected_loss)
    for name, grad in expected.items():
        torch.testing.assert_close(grads[name], grad, rtol=0, atol=0, msg=name)


def test_activation_checkpointing_policies_keep_less_for_backward() -> None:
    args = NAMED_CONFIGS["tiny"].replace(n_layers=4)
    batch = torch.randint(0, args.vocab_size, (2, 65), generator=torch.Generator().manual_seed(0))
    model = build_model(args, seed=4)
    kept = {}
    for policy in ("none", "ops", "every:2", "full"):
        apply_activation_checkpointing(model, policy)
        kept[policy], _ = bytes_left_allocated(lambda: next_token_loss(model, batch))
    assert kept["none"] > kept["ops"] > kept["full"]
    assert kept["none"] > kept["every:2"] > kept["full"]
    assert [layer.recompute is not None for layer in model.layers] == [True] * 4
    apply_activation_checkpointing(model, "every:3")
    assert [layer.recompute is not None for layer in model.layers] == [True, False, False, True]
    model.eval()  # and nothing is recomputed outside training
    with torch.no_grad():
        torch.testing.assert_close(model(batch), build_model(args, seed=4).eval()(batch))


@pytest.mark.parametrize("policy", ["", "every", "every:0", "every:x", "selective", "full:2"])
def test_unknown_activation_checkpointing_policy_is_a_config_error(policy: str) -> None:
    with pytest.raises(ConfigError, match="activation checkpointing"):
        apply_activation_checkpointing(build_model(NAMED_CONFIGS["tiny"], seed=0), policy)


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["ops", "every:2"])
def test_compiled_blocks_trace_whole_and_train_the_same(policy: str) -> None:
    # aot_eager: dynamo and AOTAutograd as with Inductor, without generating C++ (seconds, not minutes).
    from torch._dynamo.utils import counters

    args = NAMED_CONFIGS["tiny-gqa"]
    batch = torch.randint(0, args.vocab_size, (2, 17), generator=torch.Generator().manual_seed(0))
    expected_loss, expected = loss_and_gradients(build_model(args, seed=4), batch)
    torch._dynamo.reset()
    counters.clear()
    model = build_model(args, seed=4)
    apply_activation_checkpointing(model, policy)
    compile_blocks(model, backend="aot_eager")  # fullgraph: a graph break would raise
    loss, grads = loss_and_gradients(model, batch)
    assert counters["stats"]["unique_graphs"] >= 1 and not counters["graph_break"]
    torch.testing.assert_close(loss, expected_loss)
    for name, grad in expected.items():
        torch.testing.assert_close(grads[name], grad, msg=name)
    assert set(model.state_dict()) == set(build_model(args, seed=4).state_dict())


def repeated_kv_attention(attention: Attention, x: torch.Tensor, freqs_cis: torch.Tensor) -> torch.Tensor:
    """The former computation: key/value heads copied per query head with repeat_interleave."""
    batch, seq_len, _ = x.shape
    q = attention.wq(x).view(batch, seq_len, attention.n_heads, attention.head_dim)
    k = attention.wk(x).view(batch, seq_len, attention.n_kv_heads, attention.head_dim)
    v = attention.wv(x).view(batch, seq_len, attention.n_kv_heads, attention.head_dim)
    q, k = apply_rope(q, freqs_cis), apply_rope(k, freqs_cis)
    q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
    repeats = attention.n_heads // attention.n_kv_heads
    k, v = k.repeat_interleave(repeats, dim=1), v.repeat_interleave(repeats, dim=1)
    out = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    return attention.wo(out.transpose(1, 2).reshape(batch, seq_len, -1))


@pytest.mark.parametrize("kv_heads", [1, 2])
def test_grouped_query_attention_reads_kv_heads_in_place_and_matches_the_repeated_copy(kv_heads: int) -> None:
    args = NAMED_CONFIGS["tiny-gqa"].replace(n_kv_heads=kv_heads)
    attention = build_model(args, seed=6).layers[0].attention
    x = torch.randn(2, 20, args.dim, generator=torch.Generator().manual_seed(1), requires_grad=True)
    table = rope_frequencies(args.head_dim, 20, args.rope_theta)
    ours = attention(x, table)
    reference = repeated_kv_attention(attention, x, table)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-6)
    (grad,) = torch.autograd.grad(ours.square().sum(), x)
    (reference_grad,) = torch.autograd.grad(reference.square().sum(), x)
    torch.testing.assert_close(grad, reference_grad, rtol=1e-5, atol=1e-5)
