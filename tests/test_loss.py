"""Chunked cross-entropy: the same loss and gradients as the whole-batch loss, without keeping the logits
for backward; also inside a model sharded with FSDP2."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from memory_probe import bytes_left_allocated

from model.config import NAMED_CONFIGS
from model.llama import Transformer, build_model
from model.loss import chunked_cross_entropy, next_token_loss

ARGS = NAMED_CONFIGS["tiny-gqa"].replace(vocab_size=1000)


def token_batch(batch: int = 3, seq_len: int = 41, seed: int = 0) -> torch.Tensor:
    return torch.randint(0, ARGS.vocab_size, (batch, seq_len + 1), generator=torch.Generator().manual_seed(seed))


def loss_and_gradients(model: Transformer, batch: torch.Tensor, chunk_tokens: int):
    model.zero_grad(set_to_none=True)
    loss = next_token_loss(model, batch, chunk_tokens)
    loss.backward()
    return loss.detach(), {name: param.grad.clone() for name, param in model.named_parameters()}


def test_whole_batch_loss_is_the_mean_next_token_cross_entropy_of_the_logits() -> None:
    model = build_model(ARGS, seed=1)
    batch = token_batch()
    logits = model(batch[:, :-1])
    expected = F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten())
    torch.testing.assert_close(next_token_loss(model, batch), expected, rtol=0, atol=0)
    assert expected.item() == pytest.approx(torch.log(torch.tensor(ARGS.vocab_size)).item(), abs=0.1)


@pytest.mark.parametrize("chunk_tokens", [1, 7, 41, 64, 122, 123, 1000])
def test_chunked_loss_and_gradients_equal_the_whole_batch_ones(chunk_tokens: int) -> None:
    model = build_model(ARGS, seed=1)
    batch = token_batch()  # 3 x 41 = 123 predicted tokens: chunks that divide it, and that do not
    expected_loss, expected = loss_and_gradients(model, batch, 0)
    loss, grads = loss_and_gradients(model, batch, chunk_tokens)
    torch.testing.assert_close(loss, expected_loss, rtol=1e-6, atol=1e-6)
    for name, grad in expected.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-5, atol=1e-7, msg=name)


def test_chunked_loss_without_gradients_is_the_same() -> None:
    model = build_model(ARGS, seed=1).eval()
    batch = token_batch()
    with torch.no_grad():
        torch.testing.assert_close(next_token_loss(model, batch, 10), next_token_loss(model, batch), rtol=1e-6, atol=0)


def test_chunks_keep_no_logits_for_backward() -> None:
    model = build_model(ARGS, seed=1)
    batch = token_batch(batch=4, seq_len=128)
    logits_bytes = 4 * 128 * ARGS.vocab_size * 4  # float32
    whole, _ = bytes_left_allocated(lambda: next_token_loss(model, batch))
    chunked, _ = bytes_left_allocated(lambda: next_token_loss(model, batch, 64))
    assert whole - chunked >= 0.9 * logits_bytes  # the whole-batch loss keeps (at least) the log-softmax


def test_head_sees_at_most_a_chunk_of_tokens() -> None:
    hidden = torch.randn(2, 10, 8, requires_grad=True)
    weight = torch.randn(5, 8, requires_grad=True)
    targets = torch.randint(0, 5, (2, 10))
    seen = []

    def head(h: torch.Tensor) -> torch.Tensor:
        seen.append(h.shape[0])
        return h @ weight.T

    loss = chunked_cross_entropy(hidden, targets, head, chunk_tokens=6)
    assert seen == [6, 6, 6, 2]
    loss.backward()  # recomputes each chunk once, one at a time
    assert sorted(seen[4:]) == [2, 6, 6, 6]
    torch.testing.assert_close(loss, F.cross_entropy((hidden @ weight.T).flatten(0, 1), targets.flatten()))


def test_bfloat16_autocast_loss_is_float32_and_close_to_the_whole_batch_one() -> None:
    model = build_model(ARGS, seed=1)
    batch = token_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        whole = next_token_loss(model, batch)
        chunked = next_token_loss(model, batch, 16)
    assert whole.dtype == chunked.dtype == torch.float32
    torch.testing.assert_close(chunked, whole, rtol=1e-3, atol=1e-3)


@pytest.mark.slow
def test_chunked_loss_inside_an_fsdp2_sharded_model_matches_the_plain_one(tmp_path) -> None:
    # One gloo process: FSDP2's hooks gather the root's norm and output weights for the loss taken in forward.
    import torch.distributed as dist

    from model.distributed import shard_model
    from model.llama import apply_activation_checkpointing

    batch = token_batch()
    expected_loss, expected = loss_and_gradients(build_model(ARGS, seed=1), batch, 0)
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        model = build_model(ARGS, seed=1)
        apply_activation_checkpointing(model, "ops")
        shard_model(model, param_dtype=None)
        loss, grads = loss_and_gradients(model, batch, 32)
    finally:
        dist.destroy_process_group()
    torch.testing.assert_close(loss, expected_loss, rtol=1e-6, atol=1e-6)
    for name, grad in expected.items():
        torch.testing.assert_close(grads[name].full_tensor(), grad, rtol=1e-5, atol=1e-7, msg=name)
