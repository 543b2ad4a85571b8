"""Tiny random checkpoints laid out exactly as the published LLaDA and Dream Hub repositories are.

Written by hand here, tensor by tensor, without hf_unmask's model classes, so that loading them tests the native
classes against the real layout and not against their own `save_pretrained`:

* `config.json` with every field of the published file (GSAI-ML/LLaDA-8B-Instruct, Dream-org/Dream-v0-Instruct-7B)
  and the real special-token ids and vocabulary sizes; only the sizes of the network are shrunk;
* the published weight names and shapes, stored in bfloat16 as two safetensors shards with a
  `model.safetensors.index.json`, as the 8B checkpoints are;
* the repositories' remote-code files (`configuration_*.py`, `modeling_*.py`, Dream's `tokenization_dream.py` and
  `generation_utils.py`) replaced by files that raise on import: loading must never execute them;
* tokenizers with the published special tokens at their published ids and chat templates of the published form
  (LLaDA: `tokenizer.json`, `PreTrainedTokenizerFast`; Dream: `vocab.json` + `merges.txt` for the remote
  `DreamTokenizer`, Qwen2's byte-level BPE). Their ordinary vocabulary is a few words plus filler entries.

No real weights exist on this machine; these layouts are what the tests can check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

SEED = 20251209
RAISING_MODULE = 'raise ImportError("remote code from the checkpoint folder was imported")\n'

LLADA_CONFIG: dict[str, Any] = {
    "activation_type": "silu",
    "alibi": False,
    "alibi_bias_max": 8.0,
    "architectures": ["LLaDAModelLM"],
    "attention_dropout": 0.0,
    "attention_layer_norm": False,
    "attention_layer_norm_with_affine": True,
    "auto_map": {
        "AutoConfig": "configuration_llada.LLaDAConfig",
        "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
        "AutoModel": "modeling_llada.LLaDAModelLM",
    },
    "bias_for_layer_norm": False,
    "block_group_size": 1,
    "block_type": "llama",
    "d_model": 4096,
    "embedding_dropout": 0.0,
    "embedding_size": 126464,
    "eos_token_id": 126081,
    "flash_attention": False,
    "include_bias": False,
    "include_qkv_bias": False,
    "init_cutoff_factor": None,
    "init_device": "meta",
    "init_fn": "mitchell",
    "init_std": 0.02,
    "input_emb_norm": False,
    "layer_norm_type": "rms",
    "layer_norm_with_affine": True,
    "mask_token_id": 126336,
    "max_sequence_length": 4096,
    "mlp_hidden_size": 12288,
    "mlp_ratio": 4,
    "model_type": "llada",
    "multi_query_attention": None,
    "n_heads": 32,
    "n_kv_heads": 32,
    "n_layers": 32,
    "pad_token_id": 126081,
    "precision": "amp_bf16",
    "residual_dropout": 0.0,
    "rms_norm_eps": 1e-05,
    "rope": True,
    "rope_full_precision": True,
    "rope_theta": 500000.0,
    "scale_logits": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.46.3",
    "use_cache": False,
    "vocab_size": 126464,
    "weight_tying": False,
}
LLADA_TINY = {"d_model": 32, "n_heads": 4, "n_kv_heads": 4, "n_layers": 2, "mlp_hidden_size": 64}
LLADA_SPECIALS = {
    126080: "<|startoftext|>",
    126081: "<|endoftext|>",
    126336: "<|mdm_mask|>",
    126346: "<|start_header_id|>",
    126347: "<|end_header_id|>",
    126348: "<|eot_id|>",
}
LLADA_CHAT_TEMPLATE = (
    "{% set loop_messages = messages %}{% for message in loop_messages %}"
    "{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim"
    " + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}"
)

DREAM_CONFIG: dict[str, Any] = {
    "architectures": ["DreamModel"],
    "attention_dropout": 0.0,
    "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
    "bos_token_id": 151643,
    "eos_token_id": 151643,
    "hidden_act": "silu",
    "hidden_size": 3584,
    "initializer_range": 0.02,
    "intermediate_size": 18944,
    "mask_token_id": 151666,
    "max_position_embeddings": 131072,
    "max_window_layers": 28,
    "model_type": "Dream",
    "num_attention_heads": 28,
    "num_hidden_layers": 28,
    "num_key_value_heads": 4,
    "pad_token_id": 151643,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000.0,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.46.2",
    "use_cache": False,
    "use_sliding_window": False,
    "vocab_size": 152064,
}
DREAM_TINY = {
    "hidden_size": 32,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "intermediate_size": 64,
}
DREAM_GENERATION_CONFIG = {
    "alg": "origin",
    "alg_temp": None,
    "bos_token_id": 151643,
    "eos_token_id": 151643,
    "eps": 0.001,
    "mask_token_id": 151666,
    "max_length": 20,
    "output_history": False,
    "pad_token_id": 151643,
    "steps": 512,
    "temperature": 0.0,
    "top_k": None,
    "top_p": None,
    "transformers_version": "4.46.2",
}
# Qwen2.5's added tokens (151643-151664) and Dream's two (151665, 151666), contiguous as in the published file
DREAM_SPECIALS = dict(
    enumerate(
        [
            "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
            "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
            "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
            "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<|beginoftext|>",
            "<|mask|>",
        ],
        start=151643,
    )
)  # fmt: skip
DREAM_CHAT_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and message['role'] != 'system' %}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
WORDS = [
    "user",
    "assistant",
    "system",
    "the",
    "cat",
    "sat",
    "on",
    "mat",
    "a",
    "dog",
    "ran",
    "what",
    "is",
    "two",
    "plus",
    "three",
    "five",
    "?",
    ".",
]


def llada_weight_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The published weight names of a LLaDA checkpoint and their shapes."""
    d, heads, layers = config["d_model"], config["n_heads"], config["n_layers"]
    kv = (config["n_kv_heads"] or heads) * (d // heads)
    hidden, rows = config["mlp_hidden_size"], config["embedding_size"] or config["vocab_size"]
    shapes: dict[str, tuple[int, ...]] = {"model.transformer.wte.weight": (rows, d)}
    for i in range(layers):
        block = f"model.transformer.blocks.{i}"
        shapes.update(
            {
                f"{block}.attn_norm.weight": (d,),
                f"{block}.q_proj.weight": (d, d),
                f"{block}.k_proj.weight": (kv, d),
                f"{block}.v_proj.weight": (kv, d),
                f"{block}.attn_out.weight": (d, d),
                f"{block}.ff_norm.weight": (d,),
                f"{block}.ff_proj.weight": (hidden, d),
                f"{block}.up_proj.weight": (hidden, d),
                f"{block}.ff_out.weight": (d, hidden),
            }
        )
    shapes["model.transformer.ln_f.weight"] = (d,)
    if not config["weight_tying"]:
        shapes["model.transformer.ff_out.weight"] = (rows, d)
    return shapes


def dream_weight_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The published weight names of a Dream checkpoint (Qwen2's) and their shapes."""
    d, heads, layers = config["hidden_size"], config["num_attention_heads"], config["num_hidden_layers"]
    head_dim = d // heads
    q, kv, inter, vocab = (
        heads * head_dim,
        config["num_key_value_heads"] * head_dim,
        config["intermediate_size"],
        config["vocab_size"],
    )
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, d)}
    for i in range(layers):
        layer = f"model.layers.{i}"
        shapes.update(
            {
                f"{layer}.input_layernorm.weight": (d,),
                f"{layer}.self_attn.q_proj.weight": (q, d),
                f"{layer}.self_attn.q_proj.bias": (q,),
                f"{layer}.self_attn.k_proj.weight": (kv, d),
                f"{layer}.self_attn.k_proj.bias": (kv,),
                f"{layer}.self_attn.v_proj.weight": (kv, d),
                f"{layer}.self_attn.v_proj.bias": (kv,),
                f"{layer}.self_attn.o_proj.weight": (d, q),
                f"{layer}.post_attention_layernorm.weight": (d,),
                f"{layer}.mlp.gate_proj.weight": (inter, d),
                f"{layer}.mlp.up_proj.weight": (inter, d),
                f"{layer}.mlp.down_proj.weight": (d, inter),
            }
        )
    shapes["model.norm.weight"] = (d,)
    if not config["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (vocab, d)
    return shapes


def random_weights(shapes: dict[str, tuple[int, ...]], seed: int = SEED) -> dict[str, torch.Tensor]:
    """Seeded bfloat16 weights, peaked enough that argmax choices are far from ties: embeddings std 1, matrices
    std 0.2 (the output head 0.15, which keeps logits within about +-5), biases std 0.1, norm weights 1 +- 0.1."""
    gen = torch.Generator().manual_seed(seed)
    weights = {}
    for name, shape in shapes.items():
        noise = torch.randn(shape, generator=gen)
        if "norm" in name or "ln_f" in name:
            value = 1 + 0.1 * noise
        elif len(shape) == 1:
            value = 0.1 * noise
        elif "wte" in name or "embed_tokens" in name:
            value = noise
        elif name in ("model.transformer.ff_out.weight", "lm_head.weight"):
            value = 0.15 * noise
        else:
            value = 0.2 * noise
        weights[name] = value.to(torch.bfloat16)
    return weights


def write_sharded_safetensors(folder: Path, weights: dict[str, torch.Tensor], shards: int = 2) -> None:
    """`model-0000k-of-0000n.safetensors` files plus `model.safetensors.index.json`, as the Hub checkpoints are."""
    names = list(weights)
    per_shard = -(-len(names) // shards)
    weight_map, total = {}, 0
    for k in range(shards):
        file = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
        chunk = {n: weights[n].contiguous() for n in names[k * per_shard : (k + 1) * per_shard]}
        save_file(chunk, str(folder / file), metadata={"format": "pt"})
        weight_map.update({n: file for n in chunk})
        total += sum(t.numel() * t.element_size() for t in chunk.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))


def _filler_vocab(size: int, specials: dict[int, str]) -> dict[str, int]:
    vocab = {word: i for i, word in enumerate(WORDS)}
    for i in range(len(vocab), size):
        vocab[specials.get(i, f"<filler_{i}>")] = i
    return vocab


def _added_tokens(specials: dict[int, str]) -> dict[str, dict[str, Any]]:
    flags = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False, "special": True}
    return {str(i): {"content": text, **flags} for i, text in specials.items()}


def write_llada_tokenizer(folder: Path, vocab_size: int = 126464) -> None:
    """`tokenizer.json` + `tokenizer_config.json` (class `PreTrainedTokenizerFast`, no mask token named, as
    published: the mask id comes from config.json)."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

    backend = Tokenizer(models.WordLevel(vocab=_filler_vocab(vocab_size, LLADA_SPECIALS), unk_token="<|endoftext|>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    backend.add_special_tokens([AddedToken(text, special=True, normalized=False) for text in LLADA_SPECIALS.values()])
    backend.save(str(folder / "tokenizer.json"))
    config = {
        "added_tokens_decoder": _added_tokens(LLADA_SPECIALS),
        "bos_token": "<|startoftext|>",
        "chat_template": LLADA_CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "model_max_length": 1000000000000000019884624838656,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    (folder / "special_tokens_map.json").write_text(
        json.dumps({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>"})
    )


def write_dream_tokenizer(folder: Path) -> None:
    """`vocab.json` + `merges.txt` + `tokenizer_config.json` naming the remote `DreamTokenizer`, as published."""
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = sorted(ByteLevel.alphabet())
    merges = ["Ġ t", "Ġt h", "Ġth e", "h e", "t he"]
    vocab = {char: i for i, char in enumerate(alphabet)}
    for merge in merges:
        vocab["".join(merge.split())] = len(vocab)
    for i in range(len(vocab), min(DREAM_SPECIALS)):
        vocab[f"<filler_{i}>"] = i
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    config = {
        "add_prefix_space": False,
        "added_tokens_decoder": _added_tokens(DREAM_SPECIALS),
        "auto_map": {"AutoTokenizer": ["tokenization_dream.DreamTokenizer", None]},
        "bos_token": "<|beginoftext|>",
        "chat_template": DREAM_CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "errors": "replace",
        "mask_token": "<|mask|>",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "DreamTokenizer",
        "unk_token": None,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))


def build_llada_checkpoint(folder: Path, with_tokenizer: bool = True, **overrides: Any) -> Path:
    """A GSAI-ML/LLaDA-8B-Instruct-shaped folder with tiny random weights (`overrides` change config fields)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {**LLADA_CONFIG, **LLADA_TINY, **overrides}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    write_sharded_safetensors(folder, random_weights(llada_weight_shapes(config)))
    for module in ("configuration_llada.py", "modeling_llada.py"):
        (folder / module).write_text(RAISING_MODULE)
    if with_tokenizer:
        write_llada_tokenizer(folder, config["vocab_size"])
    return folder


def build_dream_checkpoint(folder: Path, with_tokenizer: bool = True, **overrides: Any) -> Path:
    """A Dream-org/Dream-v0-Instruct-7B-shaped folder with tiny random weights."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {**DREAM_CONFIG, **DREAM_TINY, **overrides}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "generation_config.json").write_text(json.dumps(DREAM_GENERATION_CONFIG, indent=2))
    write_sharded_safetensors(folder, random_weights(dream_weight_shapes(config)))
    for module in ("configuration_dream.py", "modeling_dream.py", "generation_utils.py", "tokenization_dream.py"):
        (folder / module).write_text(RAISING_MODULE)
    if with_tokenizer:
        write_dream_tokenizer(folder)
    return folder


def read_checkpoint(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """`(config.json as a dict, every weight of the shards in float32)`."""
    from safetensors.torch import load_file

    folder = Path(folder)
    index = json.loads((folder / "model.safetensors.index.json").read_text())
    weights: dict[str, torch.Tensor] = {}
    for file in sorted(set(index["weight_map"].values())):
        weights.update({k: v.float() for k, v in load_file(str(folder / file)).items()})
    return json.loads((folder / "config.json").read_text()), weights


_BUILT: dict[str, Path] = {}


def hub_checkpoint(tmp_path_factory: Any, kind: str) -> Path:
    """The folder of the published layout `kind` ("llada", "llada_gqa", "dream"), built once per test session.
    Read-only: copy it before changing anything inside."""
    builders = {
        "llada": lambda folder: build_llada_checkpoint(folder),
        "llada_gqa": lambda folder: build_llada_checkpoint(folder, with_tokenizer=False, n_kv_heads=2),
        "dream": lambda folder: build_dream_checkpoint(folder),
    }
    if kind not in _BUILT or not (_BUILT[kind] / "config.json").is_file():
        _BUILT[kind] = builders[kind](tmp_path_factory.mktemp(f"hub_{kind}"))
    return _BUILT[kind]
