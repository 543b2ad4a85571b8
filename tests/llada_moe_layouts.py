"""Tiny random checkpoints laid out as the published LLaDA-MoE Hub repositories are (inclusionAI/LLaDA-MoE-7B-A1B-Base,
-Instruct).

Written by hand, tensor by tensor, without hf_unmask's model classes, so that loading them tests the native class
against the published layout and not against its own `save_pretrained`:

* `config.json` with every field of the published configuration class (an OLMoE-style MoE config) under its
  published name, `model_type` "llada" and an `auto_map` to the repository's own `configuration_lladamoe.py` /
  `modeling_lladamoe.py`, as on the Hub, the real special ids (mask `<|mask|>` 156895, EOS / pad `<|endoftext|>`
  156892) and vocabulary size (157184); only the network is shrunk (hidden 32, 4 heads over 2 key-value heads,
  2 layers, 4 experts of width 16, 2 per token);
* the published weight names and shapes (`model.layers.{i}.mlp.experts.{e}.*`, the router `mlp.gate`, the
  `mlp.expert_bias` buffer, per-head `self_attn.{q,k}_norm`), stored in bfloat16 as two safetensors shards with a
  `model.safetensors.index.json`;
* the repository's remote-code files replaced by files that raise on import: loading must never execute them.

The Hub `config.json` itself could not be read here: field names come from the published configuration class;
values are those of the 7B-A1B model where known (16 layers, hidden 2048, 16 heads, 64 experts of width 1024,
8 per token, QK norm, no shared expert, every layer MoE), the rest plausible stand-ins.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from hub_layouts import RAISING_MODULE, write_sharded_safetensors

SEED = 20251210

LLADA_MOE_CONFIG: dict[str, Any] = {
    "architectures": ["LLaDAModelLM"],
    "attention_bias": False,
    "attention_dropout": 0.0,
    "auto_map": {
        "AutoConfig": "configuration_lladamoe.LLaDAConfig",
        "AutoModel": "modeling_lladamoe.LLaDAModelLM",
        "AutoModelForCausalLM": "modeling_lladamoe.LLaDAModelLM",
    },
    "bos_token_id": None,
    "clip_qkv": None,
    "dense_intermediate_size": 8192,
    "eos_token_id": 156892,
    "expert_intermediate_size": 1024,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "max_position_embeddings": 8192,
    "model_type": "llada",
    "moe_layer_freq": [1] * 16,
    "moe_router_enable_expert_bias": True,
    "moe_router_score_function": "softmax",
    "norm_topk_prob": True,
    "num_attention_heads": 16,
    "num_experts": 64,
    "num_experts_per_tok": 8,
    "num_hidden_layers": 16,
    "num_key_value_heads": 16,
    "output_router_logits": False,
    "pad_token_id": 156892,
    "partial_rotary_factor": 1,
    "qk_layernorm": True,
    "rms_norm_eps": 1e-05,
    "rope_scaling": None,
    "rope_theta": 50000,
    "routed_scaling_factor": 1,
    "router_aux_loss_coef": 0.01,
    "router_num_group": -2,
    "router_topk_group": -2,
    "shared_expert_intermediate_size": None,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.52.4",
    "use_cache": False,
    "vocab_size": 157184,
}
LLADA_MOE_TINY = {
    "hidden_size": 32,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "num_experts": 4,
    "num_experts_per_tok": 2,
    "expert_intermediate_size": 16,
    "dense_intermediate_size": 48,
    "moe_layer_freq": [1, 1],
}
#: Every option of the published forward that the published checkpoints leave off: a dense first layer, a shared
#: expert, RoPE on half of each head, q/k/v/o biases, clipped q/k/v, no expert bias.
LLADA_MOE_VARIANT = {
    "moe_layer_freq": [0, 1],
    "shared_expert_intermediate_size": 24,
    "partial_rotary_factor": 0.5,
    "attention_bias": True,
    "clip_qkv": 2.0,
    "moe_router_enable_expert_bias": False,
}


def llada_moe_weight_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The published weight names of a LLaDA-MoE checkpoint and their shapes."""
    d, heads, kv_heads = config["hidden_size"], config["num_attention_heads"], config["num_key_value_heads"]
    head_dim, vocab = d // heads, config["vocab_size"]
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, d)}

    def mlp(prefix: str, width: int) -> None:
        shapes.update(
            {
                f"{prefix}.gate_proj.weight": (width, d),
                f"{prefix}.up_proj.weight": (width, d),
                f"{prefix}.down_proj.weight": (d, width),
            }
        )

    for i in range(config["num_hidden_layers"]):
        layer = f"model.layers.{i}"
        shapes[f"{layer}.input_layernorm.weight"] = (d,)
        for name, rows in (("q", heads), ("k", kv_heads), ("v", kv_heads), ("o", None)):
            out, inp = (d, heads * head_dim) if rows is None else (rows * head_dim, d)
            shapes[f"{layer}.self_attn.{name}_proj.weight"] = (out, inp)
            if config["attention_bias"]:
                shapes[f"{layer}.self_attn.{name}_proj.bias"] = (out,)
        if config["qk_layernorm"]:
            shapes[f"{layer}.self_attn.q_norm.weight"] = (head_dim,)
            shapes[f"{layer}.self_attn.k_norm.weight"] = (head_dim,)
        shapes[f"{layer}.post_attention_layernorm.weight"] = (d,)
        if config["moe_layer_freq"][i] == 0:
            mlp(f"{layer}.mlp", config["dense_intermediate_size"])
            continue
        shapes[f"{layer}.mlp.gate.weight"] = (config["num_experts"], d)
        if config["moe_router_enable_expert_bias"]:
            shapes[f"{layer}.mlp.expert_bias"] = (config["num_experts"],)
        for e in range(config["num_experts"]):
            mlp(f"{layer}.mlp.experts.{e}", config["expert_intermediate_size"])
        if config["shared_expert_intermediate_size"] is not None:
            mlp(f"{layer}.shared_expert", config["shared_expert_intermediate_size"])
    shapes["model.norm.weight"] = (d,)
    if not config["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (vocab, d)
    return shapes


def random_moe_weights(shapes: dict[str, tuple[int, ...]], seed: int = SEED) -> dict[str, torch.Tensor]:
    """Seeded bfloat16 weights: embeddings std 1, matrices std 0.2 (the router 0.5, so that routing is decided,
    the head 0.15), biases and expert biases std 0.1, norm weights 1 +- 0.1."""
    gen = torch.Generator().manual_seed(seed)
    weights = {}
    for name, shape in shapes.items():
        noise = torch.randn(shape, generator=gen)
        if "norm" in name:
            value = 1 + 0.1 * noise
        elif len(shape) == 1:
            value = 0.1 * noise
        elif name == "model.embed_tokens.weight":
            value = noise
        elif name == "lm_head.weight":
            value = 0.15 * noise
        elif name.endswith("mlp.gate.weight"):
            value = 0.5 * noise
        else:
            value = 0.2 * noise
        weights[name] = value.to(torch.bfloat16)
    return weights


def build_llada_moe_checkpoint(folder: Path, variant: bool = False, **overrides: Any) -> Path:
    """An inclusionAI/LLaDA-MoE-7B-A1B-Instruct-shaped folder with tiny random weights (`variant`: with every
    option the published checkpoints leave off, see `LLADA_MOE_VARIANT`; `overrides` change config fields)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {**LLADA_MOE_CONFIG, **LLADA_MOE_TINY, **(LLADA_MOE_VARIANT if variant else {}), **overrides}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    write_sharded_safetensors(folder, random_moe_weights(llada_moe_weight_shapes(config)))
    for module in ("configuration_lladamoe.py", "modeling_lladamoe.py"):
        (folder / module).write_text(RAISING_MODULE)
    return folder


_BUILT: dict[str, Path] = {}


def llada_moe_checkpoint(tmp_path_factory: Any, kind: str = "published") -> Path:
    """The folder of layout `kind` ("published" or "variant"), built once per test session. Read-only: copy it
    before changing anything inside."""
    if kind not in _BUILT or not (_BUILT[kind] / "config.json").is_file():
        folder = tmp_path_factory.mktemp(f"hub_llada_moe_{kind}")
        _BUILT[kind] = build_llada_moe_checkpoint(folder, variant=kind == "variant")
    return _BUILT[kind]
