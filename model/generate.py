"""Text generation from a checkpoint: KV-cached incremental decoding with temperature and nucleus (top-p)
sampling, as in Meta's `generation.py` (greedy when temperature is 0)."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from filters.options import ConfigError
from model.checkpoint import latest_checkpoint
from model.llama import Transformer
from model.meta_format import PARAMS_FILE, TOKENIZER_FILE, load_checkpoint


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A model directory (params.json + consolidated.*.pth), or a training output directory (its latest step)."""
    path = Path(path)
    if (path / PARAMS_FILE).is_file():
        return path
    latest = latest_checkpoint(path)
    if latest is None:
        raise FileNotFoundError(f"{path} is neither a model directory (no {PARAMS_FILE}) nor a training output")
    return latest


def load_checkpoint_model(
    checkpoint: str | os.PathLike, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
) -> Transformer:
    """The model of a checkpoint, in eval mode, without a throw-away random initialization."""
    args, state = load_checkpoint(resolve_checkpoint(checkpoint))
    with torch.device("meta"):
        model = Transformer(args)
    model.load_state_dict(state, assign=True)
    model.freqs_cis = None  # still on the meta device; rebuilt in float32 after the cast below
    model.to(device=device, dtype=dtype)
    model.reset_rope()
    return model.eval()


def sample_top_p(probs: torch.Tensor, top_p: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Sample from the smallest set of tokens whose probability mass reaches top_p (Holtzman et al. 2020)."""
    sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
    outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs > top_p
    sorted_probs = sorted_probs.masked_fill(outside, 0.0)
    sorted_probs /= sorted_probs.sum(dim=-1, keepdim=True)
    choice = torch.multinomial(sorted_probs, num_samples=1, generator=generator)
    return torch.gather(order, -1, choice).squeeze(-1)


def next_tokens(
    logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None
) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(dim=-1)
    return sample_top_p(torch.softmax(logits.float() / temperature, dim=-1), top_p, generator)


@torch.no_grad()
def generate_tokens(
    model: Transformer,
    prompts: list[list[int]],
    max_new_tokens: int,
    temperature: float = 0.6,
    top_p: float = 0.9,
    eos_id: int | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Continuations of each prompt: at most `max_new_tokens` ids after the prompt (fewer when max_seq_len
    comes first), up to and excluding EOS. Prompts of different lengths decode together: each position keeps
    its prompt token until that prompt is used up, and each row stops at its own prompt + max_new_tokens
    (Meta's cut), so a row's continuation is the one it would get alone."""
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ConfigError("every prompt needs at least one token (usually BOS)")
    if max_new_tokens < 1:
        raise ConfigError(f"max_new_tokens must be at least 1, not {max_new_tokens}")
    device = model.output.weight.device
    max_prompt = max(len(p) for p in prompts)
    total = min(model.args.max_seq_len, max_prompt + max_new_tokens)
    if max_prompt >= total:
        raise ConfigError(f"prompts of {max_prompt} tokens leave no room under max_seq_len {model.args.max_seq_len}")
    # One past each row's last position: its prompt plus max_new_tokens, within the sequence.
    ends = torch.tensor([min(len(p) + max_new_tokens, total) for p in prompts], device=device)
    tokens = torch.zeros((len(prompts), total), dtype=torch.long, device=device)
    is_prompt = torch.zeros_like(tokens, dtype=torch.bool)
    for row, prompt in enumerate(prompts):
        tokens[row, : len(prompt)] = torch.tensor(prompt, dtype=torch.long, device=device)
        is_prompt[row, : len(prompt)] = True
    finished = torch.zeros(len(prompts), dtype=torch.bool, device=device)
    cache = model.new_kv_cache(len(prompts), total) if use_cache else None
    previous = 0
    for position in range(min(len(p) for p in prompts), total):
        if use_cache:
            logits = model(tokens[:, previous:position], start_pos=previous, cache=cache)[:, -1]
        else:
            logits = model(tokens[:, :position])[:, -1]
        chosen = next_tokens(logits, temperature, top_p, generator)
        chosen = torch.where(is_prompt[:, position], tokens[:, position], chosen)
        tokens[:, position] = chosen
        if eos_id is not None:
            finished |= ~is_prompt[:, position] & (chosen == eos_id)
        finished |= ends <= position + 1
        if bool(finished.all()):
            break
        previous = position
    out = []
    for row, prompt in enumerate(prompts):
        continuation = tokens[row, len(prompt) : min(int(ends[row]), position + 1)].tolist()
        if eos_id is not None and eos_id in continuation:
            continuation = continuation[: continuation.index(eos_id)]
        out.append(continuation)
    return out


def generate_text(
    checkpoint: str | os.PathLike,
    prompts: list[str],
    tokenizer_path: str | os.PathLike | None = None,
    max_new_tokens: int = 128,
    temperature: float = 0.6,
    top_p: float = 0.9,
    seed: int | None = None,
    device: str = "cpu",
    use_cache: bool = True,
) -> list[str]:
    from tokenizer.tokenizer import Tokenizer

    directory = resolve_checkpoint(checkpoint)
    tokenizer_path = Path(tokenizer_path) if tokenizer_path else directory / TOKENIZER_FILE
    if not tokenizer_path.is_file():
        raise FileNotFoundError(f"no tokenizer at {tokenizer_path}: pass --tokenizer")
    tokenizer = Tokenizer(str(tokenizer_path))
    dtype = torch.bfloat16 if torch.device(device).type == "cuda" else torch.float32
    model = load_checkpoint_model(directory, device=device, dtype=dtype)
    if tokenizer.n_words != model.args.vocab_size:
        raise ConfigError(f"tokenizer has {tokenizer.n_words} words but the model {model.args.vocab_size}")
    generator = torch.Generator(device=device).manual_seed(seed) if seed is not None else None
    encoded = [tokenizer.encode(p, bos=True, eos=False) for p in prompts]
    continuations = generate_tokens(
        model, encoded, max_new_tokens, temperature, top_p, tokenizer.eos_id, use_cache, generator
    )
    return [tokenizer.decode(ids) for ids in continuations]
