"""A tiny random checkpoint laid out as the published LLaDA2.x Hub repositories are (inclusionAI/LLaDA2.0-mini).

Written by hand, tensor by tensor, without hf_unmask's model classes, so that loading it tests the native class
against the real layout and not against its own `save_pretrained`:

* `config.json` with the fields of the published LLaDA2.0-mini file (values as third-party copies of it record
  them: 20 layers, hidden 2048, 256 experts, 8 per token, 8 groups / 4 kept, routed scaling 2.5, partial rotary
  0.5, rope_theta 600000, pad 156892, vocab 157184, bfloat16, the remote-code `auto_map`), the real vocabulary size
  and special ids; only the sizes of the network are shrunk (hidden 32, 3 layers of which the first is dense,
  8 experts in 4 groups, 2 kept groups, 2 experts per token, 1 shared expert);
* the published weight names and shapes (fused `query_key_value`, no attention biases, `mlp.gate.expert_bias`,
  experts one by one), stored in bfloat16 as two safetensors shards with a `model.safetensors.index.json`;
* the repository's remote-code files replaced by files that raise on import: loading must never execute them.

The real vocabulary (157184 rows) is kept so that the real mask / EOS ids are valid tokens; at hidden size 32 the
embedding and head are 5M parameters each, which loads in well under a second. The selection bias `expert_bias` is
drawn large enough (std 0.5, against sigmoid scores spread over ~0.2-0.8) that it changes which experts many
tokens get.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from hub_layouts import RAISING_MODULE, write_sharded_safetensors

SEED = 20260214
MASK_ID, EOS_ID = 156895, 156892

LLADA2_CONFIG: dict[str, Any] = {
    "architectures": ["LLaDA2MoeModelLM"],
    "attention_dropout": 0.0,
    "auto_map": {
        "AutoConfig": "configuration_llada2_moe.LLaDA2MoeConfig",
        "AutoModel": "modeling_llada2_moe.LLaDA2MoeModel",
        "AutoModelForCausalLM": "modeling_llada2_moe.LLaDA2MoeModelLM",
    },
    "embedding_dropout": 0.0,
    "first_k_dense_replace": 1,
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 2048,
    "initializer_range": 0.02,
    "intermediate_size": 5120,
    "max_position_embeddings": 32768,
    "model_type": "llada2_moe",
    "moe_intermediate_size": 512,
    "moe_router_enable_expert_bias": True,
    "n_group": 8,
    "norm_head": False,
    "norm_topk_prob": True,
    "num_attention_heads": 16,
    "num_experts": 256,
    "num_experts_per_tok": 8,
    "num_hidden_layers": 20,
    "num_key_value_heads": 4,
    "num_shared_experts": 1,
    "output_dropout": 0.0,
    "output_router_logits": False,
    "pad_token_id": 156892,
    "partial_rotary_factor": 0.5,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 600000,
    "routed_scaling_factor": 2.5,
    "score_function": "sigmoid",
    "tie_word_embeddings": False,
    "topk_group": 4,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.56.1",
    "use_bias": False,
    "use_cache": True,
    "use_qk_norm": True,
    "use_qkv_bias": False,
    "vocab_size": 157184,
}
LLADA2_TINY = {
    "hidden_size": 32,
    "head_dim": 8,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 3,
    "intermediate_size": 64,
    "moe_intermediate_size": 16,
    "num_experts": 8,
    "n_group": 4,
    "topk_group": 2,
    "num_experts_per_tok": 2,
}


def llada2_weight_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The published weight names of a LLaDA2.x checkpoint and their shapes."""
    d, head_dim = config["hidden_size"], config["head_dim"]
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    vocab, moe = config["vocab_size"], config["moe_intermediate_size"]
    shapes: dict[str, tuple[int, ...]] = {"model.word_embeddings.weight": (vocab, d)}

    def mlp(prefix: str, width: int) -> None:
        shapes[f"{prefix}.gate_proj.weight"] = (width, d)
        shapes[f"{prefix}.up_proj.weight"] = (width, d)
        shapes[f"{prefix}.down_proj.weight"] = (d, width)

    for i in range(config["num_hidden_layers"]):
        layer = f"model.layers.{i}"
        shapes[f"{layer}.input_layernorm.weight"] = (d,)
        shapes[f"{layer}.attention.query_key_value.weight"] = ((heads + 2 * kv_heads) * head_dim, d)
        if config["use_qkv_bias"]:
            shapes[f"{layer}.attention.query_key_value.bias"] = ((heads + 2 * kv_heads) * head_dim,)
        shapes[f"{layer}.attention.query_layernorm.weight"] = (head_dim,)
        shapes[f"{layer}.attention.key_layernorm.weight"] = (head_dim,)
        shapes[f"{layer}.attention.dense.weight"] = (d, heads * head_dim)
        if config["use_bias"]:
            shapes[f"{layer}.attention.dense.bias"] = (d,)
        shapes[f"{layer}.post_attention_layernorm.weight"] = (d,)
        if i < config["first_k_dense_replace"]:
            mlp(f"{layer}.mlp", config["intermediate_size"])
            continue
        shapes[f"{layer}.mlp.gate.weight"] = (config["num_experts"], d)
        shapes[f"{layer}.mlp.gate.expert_bias"] = (config["num_experts"],)
        for e in range(config["num_experts"]):
            mlp(f"{layer}.mlp.experts.{e}", moe)
        mlp(f"{layer}.mlp.shared_experts", moe * config["num_shared_experts"])
    shapes["model.norm.weight"] = (d,)
    if not config["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (vocab, d)
    return shapes


def random_weights(shapes: dict[str, tuple[int, ...]], seed: int = SEED) -> dict[str, torch.Tensor]:
    """Seeded bfloat16 weights: embeddings std 1, matrices std 0.2 (the head 0.15), norm weights 1 +- 0.1, biases
    std 0.1, the routers' `expert_bias` std 0.5."""
    gen = torch.Generator().manual_seed(seed)
    weights = {}
    for name, shape in shapes.items():
        noise = torch.randn(shape, generator=gen)
        if name.endswith("expert_bias"):
            value = 0.5 * noise
        elif "norm" in name:
            value = 1 + 0.1 * noise
        elif len(shape) == 1:
            value = 0.1 * noise
        elif "word_embeddings" in name:
            value = noise
        elif name == "lm_head.weight":
            value = 0.15 * noise
        else:
            value = 0.2 * noise
        weights[name] = value.to(torch.bfloat16)
    return weights


def build_llada2_checkpoint(folder: Path, **overrides: Any) -> Path:
    """An inclusionAI/LLaDA2.0-mini-shaped folder with tiny random weights (`overrides` change config fields)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {**LLADA2_CONFIG, **LLADA2_TINY, **overrides}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    write_sharded_safetensors(folder, random_weights(llada2_weight_shapes(config)))
    for module in ("configuration_llada2_moe.py", "modeling_llada2_moe.py"):
        (folder / module).write_text(RAISING_MODULE)
    return folder


_BUILT: dict[str, Path] = {}


def llada2_checkpoint(tmp_path_factory: Any) -> Path:
    """The folder of the published layout, built once per test session. Read-only: copy it before changing it."""
    if "llada2" not in _BUILT or not (_BUILT["llada2"] / "config.json").is_file():
        _BUILT["llada2"] = build_llada2_checkpoint(tmp_path_factory.mktemp("hub_llada2"))
    return _BUILT["llada2"]
