"""Conversion between Meta's LLaMA layout and Hugging Face's `LlamaForCausalLM` layout.

Two differences matter. Names: HF calls `layers.N.attention.wq` `model.layers.N.self_attn.q_proj`, etc.
Rotary convention: Meta rotates interleaved pairs (x[2i], x[2i+1]); HF rotates halves (x[i], x[i+d/2]).
Permuting the rows of wq and wk inside each head (evens first, then odds) makes the two equivalent, which
is what transformers' `convert_llama_weights_to_hf.py` does; the inverse permutation restores Meta's rows
exactly, so Meta -> HF -> Meta is bit-identical.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from filters.options import ConfigError
from model.config import ModelArgs

CONFIG_FILE = "config.json"
# Our params.json, kept inside config.json so from-hf restores multiple_of etc. exactly (HF ignores it).
PARAMS_KEY = "llamaprep_params"
SAFETENSORS_FILE = "model.safetensors"

_LAYER_NAMES = {
    "attention.wq.weight": "self_attn.q_proj.weight",
    "attention.wk.weight": "self_attn.k_proj.weight",
    "attention.wv.weight": "self_attn.v_proj.weight",
    "attention.wo.weight": "self_attn.o_proj.weight",
    "feed_forward.w1.weight": "mlp.gate_proj.weight",
    "feed_forward.w2.weight": "mlp.down_proj.weight",
    "feed_forward.w3.weight": "mlp.up_proj.weight",
    "attention_norm.weight": "input_layernorm.weight",
    "ffn_norm.weight": "post_attention_layernorm.weight",
}
_TOP_NAMES = {
    "tok_embeddings.weight": "model.embed_tokens.weight",
    "norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_LAYER_KEY = re.compile(r"^layers\.(\d+)\.(.+)$")
_HF_LAYER_KEY = re.compile(r"^model\.layers\.(\d+)\.(.+)$")


def interleaved_to_halves(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Reorder each head's rows from Meta's interleaved pairs to HF's halves."""
    out_dim, in_dim = weight.shape
    head_dim = out_dim // n_heads
    return weight.view(n_heads, head_dim // 2, 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


def halves_to_interleaved(weight: torch.Tensor, n_heads: int) -> torch.Tensor:
    out_dim, in_dim = weight.shape
    head_dim = out_dim // n_heads
    return weight.view(n_heads, 2, head_dim // 2, in_dim).transpose(1, 2).reshape(out_dim, in_dim)


def meta_to_hf_state_dict(state: dict[str, torch.Tensor], args: ModelArgs) -> dict[str, torch.Tensor]:
    converted = {}
    for key, value in state.items():
        if key in _TOP_NAMES:
            converted[_TOP_NAMES[key]] = value
            continue
        match = _LAYER_KEY.match(key)
        if not match or match.group(2) not in _LAYER_NAMES:
            raise ConfigError(f"unexpected key in a LLaMA state dict: {key}")
        layer, name = match.groups()
        if name == "attention.wq.weight":
            value = interleaved_to_halves(value, args.n_heads)
        elif name == "attention.wk.weight":
            value = interleaved_to_halves(value, args.kv_heads)
        converted[f"model.layers.{layer}.{_LAYER_NAMES[name]}"] = value.contiguous()
    return converted


def hf_to_meta_state_dict(state: dict[str, torch.Tensor], args: ModelArgs) -> dict[str, torch.Tensor]:
    top = {hf: meta for meta, hf in _TOP_NAMES.items()}
    layer_names = {hf: meta for meta, hf in _LAYER_NAMES.items()}
    converted = {}
    for key, value in state.items():
        if key in top:
            converted[top[key]] = value
            continue
        match = _HF_LAYER_KEY.match(key)
        if not match:
            raise ConfigError(f"unexpected key in a Hugging Face Llama state dict: {key}")
        layer, name = match.groups()
        if name.endswith("rotary_emb.inv_freq"):
            continue
        if name not in layer_names:
            raise ConfigError(f"unexpected key in a Hugging Face Llama state dict: {key}")
        if name == "self_attn.q_proj.weight":
            value = halves_to_interleaved(value, args.n_heads)
        elif name == "self_attn.k_proj.weight":
            value = halves_to_interleaved(value, args.kv_heads)
        converted[f"layers.{layer}.{layer_names[name]}"] = value.contiguous()
    if "output.weight" not in converted and "tok_embeddings.weight" in converted:
        converted["output.weight"] = converted["tok_embeddings.weight"]  # a tied HF model
    return converted


def hf_config(args: ModelArgs, bos_id: int = 1, eos_id: int = 2, dtype: str = "float32") -> dict:
    """config.json for `LlamaForCausalLM`; rope_theta is written both ways transformers 4.x and 5.x read it."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": args.dim,
        "intermediate_size": args.ffn_hidden_dim,
        "num_hidden_layers": args.n_layers,
        "num_attention_heads": args.n_heads,
        "num_key_value_heads": args.kv_heads,
        "head_dim": args.head_dim,
        "vocab_size": args.vocab_size,
        "rms_norm_eps": args.norm_eps,
        "rope_theta": args.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": args.rope_theta},
        "max_position_embeddings": args.max_seq_len,
        "hidden_act": "silu",
        "tie_word_embeddings": False,
        "attention_bias": False,
        "mlp_bias": False,
        "bos_token_id": bos_id,
        "eos_token_id": eos_id,
        "torch_dtype": dtype,
        PARAMS_KEY: args.to_params(),
    }


def model_args_from_hf_config(config: dict) -> ModelArgs:
    """ModelArgs whose SwiGLU width equals the HF `intermediate_size` (a multiple_of that reproduces it
    when one exists, else an exact ffn_dim_multiplier)."""
    dim, intermediate = config["hidden_size"], config["intermediate_size"]
    if PARAMS_KEY in config:
        saved = ModelArgs.from_params(config[PARAMS_KEY])
        if saved.ffn_hidden_dim == intermediate and saved.dim == dim and saved.vocab_size == config["vocab_size"]:
            return saved
    rope = config.get("rope_parameters") or {}
    base = ModelArgs(
        dim=dim,
        n_layers=config["num_hidden_layers"],
        n_heads=config["num_attention_heads"],
        n_kv_heads=config.get("num_key_value_heads") or None,
        vocab_size=config["vocab_size"],
        norm_eps=config.get("rms_norm_eps", 1e-6),
        rope_theta=float(rope.get("rope_theta", config.get("rope_theta", 10000.0))),
        max_seq_len=config.get("max_position_embeddings", 2048),
    )
    if base.n_kv_heads == base.n_heads:
        base = base.replace(n_kv_heads=None)
    for multiple_of in (256, 4096, 2048, 1024, 512, 128, 64, 32, 16, 8, 4, 2, 1):
        candidate = base.replace(multiple_of=multiple_of)
        if candidate.ffn_hidden_dim == intermediate:
            return candidate
    return base.replace(multiple_of=1, ffn_dim_multiplier=(intermediate + 0.5) / int(8 * dim / 3))


def save_hf(
    args: ModelArgs,
    state: dict[str, torch.Tensor],
    directory: str | os.PathLike,
    bos_id: int = 1,
    eos_id: int = 2,
) -> None:
    """Write an HF model directory (config.json + model.safetensors) loadable by `from_pretrained`."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    hf_state = meta_to_hf_state_dict(state, args)
    dtype = str(next(iter(hf_state.values())).dtype).removeprefix("torch.")
    save_file(hf_state, str(directory / SAFETENSORS_FILE), metadata={"format": "pt"})
    config = hf_config(args, bos_id=bos_id, eos_id=eos_id, dtype=dtype)
    (directory / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")


def load_hf(directory: str | os.PathLike) -> tuple[ModelArgs, dict[str, torch.Tensor]]:
    """Read an HF Llama directory (single or sharded safetensors, or pytorch_model*.bin) in Meta's layout."""
    directory = Path(directory)
    config_path = directory / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{directory} has no {CONFIG_FILE}: not a Hugging Face model directory")
    config = json.loads(config_path.read_text())
    if config.get("model_type", "llama") != "llama":
        raise ConfigError(f"{directory} holds a {config.get('model_type')!r} model, not llama")
    args = model_args_from_hf_config(config)
    state: dict[str, torch.Tensor] = {}
    safetensor_files = sorted(directory.glob("*.safetensors"))
    if safetensor_files:
        from safetensors.torch import load_file

        for path in safetensor_files:
            state.update(load_file(str(path)))
    else:
        bin_files = sorted(directory.glob("pytorch_model*.bin"))
        if not bin_files:
            raise FileNotFoundError(f"{directory} holds no *.safetensors or pytorch_model*.bin weights")
        for path in bin_files:
            state.update(torch.load(path, map_location="cpu", weights_only=True))
    return args, hf_to_meta_state_dict(state, args)
