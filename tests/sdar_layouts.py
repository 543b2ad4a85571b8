"""Tiny random checkpoints laid out as the published SDAR Hub repositories are (JetLM/SDAR-4B-Chat, -8B-Chat).

Written by hand here, tensor by tensor, without hf_unmask's model classes:

* `config.json` with every field of JetLM/SDAR-4B-Chat's file as published on the Hub (its `auto_map`, the
  training-time `"attn_implementation": "flex_attention"`, no `mask_token_id` and no `block_size`: the copies in
  the SDAR GitHub repository add those two) and the real special ids and vocabulary size; only the sizes of the
  network are shrunk (`head_dim` stays unequal to `hidden_size / num_attention_heads`, as in the 4B);
* the published weight names (Qwen3's, with per-head `q_norm` / `k_norm`) in bfloat16, as two safetensors shards
  with a `model.safetensors.index.json` (the 4B layout), or one `model.safetensors` (the 1.7B repository holds a
  single file; whether its config ties the head is not known here, the `tied` layout is a guess that covers the
  tied case);
* `generation_config.json` as published (EOS `<|im_end|>` 151645 and `<|endoftext|>` 151643);
* the repository's remote-code files (`configuration_sdar.py`, `modeling_sdar.py`, the fused loss and the two
  `tokenization_qwen2*.py`) replaced by files that raise on import: loading must never execute them;
* a tokenizer with the published special tokens at their published ids (`<|MASK|>` 151669, named `mask_token`),
  `tokenizer_class: Qwen2Tokenizer` with the published remote `auto_map`, and `added_tokens.json` as published
  (which spells the mask `<MASK>`); its ordinary vocabulary is the byte alphabet, a few merges and filler entries.

No real weights exist on this machine; these layouts are what the tests can check.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from hub_layouts import RAISING_MODULE, random_weights, write_sharded_safetensors
from safetensors.torch import load_file, save_file

SDAR_CONFIG: dict[str, Any] = {
    "architectures": ["SDARForCausalLM"],
    "auto_map": {
        "AutoConfig": "configuration_sdar.SDARConfig",
        "AutoModel": "modeling_sdar.SDARModel",
        "AutoModelForCausalLM": "modeling_sdar.SDARForCausalLM",
    },
    "attention_bias": False,
    "attention_dropout": 0.0,
    "attn_implementation": "flex_attention",
    "bos_token_id": 151643,
    "debug": False,
    "eos_token_id": 151643,
    "ep_size": 1,
    "fuse_cross_entropy": True,
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 2560,
    "initializer_range": 0.02,
    "intermediate_size": 9728,
    "max_position_embeddings": 32768,
    "max_window_layers": 36,
    "micro_forward": False,
    "model_type": "sdar",
    "num_attention_heads": 32,
    "num_hidden_layers": 36,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-06,
    "rope_scaling": None,
    "rope_theta": 1000000,
    "skip_checkpoint": False,
    "sliding_window": None,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "transformers_version": "4.52.4",
    "use_cache": False,
    "use_deepep": False,
    "use_sliding_window": False,
    "vocab_size": 151936,
}
SDAR_TINY = {
    "hidden_size": 32,
    "head_dim": 16,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "intermediate_size": 64,
    "max_window_layers": 2,
}
SDAR_GENERATION_CONFIG = {
    "bos_token_id": 151643,
    "do_sample": True,
    "eos_token_id": [151645, 151643],
    "pad_token_id": 151643,
    "temperature": 0.6,
    "top_k": 20,
    "top_p": 0.95,
    "transformers_version": "4.51.0",
}
MASK_ID, EOS_ID, END_OF_TURN_ID = 151669, 151643, 151645
# Qwen3's added tokens (151643-151668) and SDAR's mask (151669), contiguous as in the published tokenizer_config
SDAR_SPECIALS = dict(
    enumerate(
        [
            "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
            "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
            "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>", "<|fim_prefix|>",
            "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>", "<tool_response>",
            "</tool_response>", "<think>", "</think>", "<|MASK|>",
        ],
        start=151643,
    )
)  # fmt: skip
# the published file marks 151643-151656 special, the tool / fim / think tokens and the mask not
_NOT_SPECIAL_FROM = 151657
SDAR_CHAT_TEMPLATE = (
    "{%- for message in messages %}{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>'"
    " + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)
REMOTE_FILES = (
    "configuration_sdar.py",
    "modeling_sdar.py",
    "fused_linear_diffusion_cross_entropy.py",
    "tokenization_qwen2.py",
    "tokenization_qwen2_fast.py",
)


def sdar_weight_shapes(config: dict[str, Any]) -> dict[str, tuple[int, ...]]:
    """The published weight names of an SDAR checkpoint (Qwen3's) and their shapes."""
    d, heads, kv_heads = config["hidden_size"], config["num_attention_heads"], config["num_key_value_heads"]
    head_dim, inter, vocab = config["head_dim"], config["intermediate_size"], config["vocab_size"]
    q, kv = heads * head_dim, kv_heads * head_dim
    shapes: dict[str, tuple[int, ...]] = {"model.embed_tokens.weight": (vocab, d)}
    for i in range(config["num_hidden_layers"]):
        layer = f"model.layers.{i}"
        shapes.update(
            {
                f"{layer}.input_layernorm.weight": (d,),
                f"{layer}.self_attn.q_proj.weight": (q, d),
                f"{layer}.self_attn.k_proj.weight": (kv, d),
                f"{layer}.self_attn.v_proj.weight": (kv, d),
                f"{layer}.self_attn.o_proj.weight": (d, q),
                f"{layer}.self_attn.q_norm.weight": (head_dim,),
                f"{layer}.self_attn.k_norm.weight": (head_dim,),
                f"{layer}.post_attention_layernorm.weight": (d,),
                f"{layer}.mlp.gate_proj.weight": (inter, d),
                f"{layer}.mlp.up_proj.weight": (inter, d),
                f"{layer}.mlp.down_proj.weight": (d, inter),
            }
        )
        if config["attention_bias"]:
            for name, width in (("q_proj", q), ("k_proj", kv), ("v_proj", kv), ("o_proj", d)):
                shapes[f"{layer}.self_attn.{name}.bias"] = (width,)
    shapes["model.norm.weight"] = (d,)
    if not config["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (vocab, d)
    return shapes


def write_sdar_tokenizer(folder: Path) -> None:
    """`vocab.json` + `merges.txt` + `tokenizer_config.json` (`Qwen2Tokenizer`, remote `auto_map`, mask
    `<|MASK|>`), `special_tokens_map.json` and `added_tokens.json` as published."""
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = sorted(ByteLevel.alphabet())
    merges = ["Ġ t", "Ġt h", "Ġth e", "h e", "t he"]
    vocab = {char: i for i, char in enumerate(alphabet)}
    for merge in merges:
        vocab["".join(merge.split())] = len(vocab)
    for i in range(len(vocab), min(SDAR_SPECIALS)):
        vocab[f"<filler_{i}>"] = i
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    flags = {"lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
    decoder = {str(i): {"content": t, **flags, "special": i < _NOT_SPECIAL_FROM} for i, t in SDAR_SPECIALS.items()}
    additional = [SDAR_SPECIALS[i] for i in range(151644, 151657)] + ["<|MASK|>"]
    config = {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": decoder,
        "additional_special_tokens": additional,
        "auto_map": {"AutoTokenizer": ["tokenization_qwen2.Qwen2Tokenizer", None]},
        "bos_token": None,
        "chat_template": SDAR_CHAT_TEMPLATE,
        "clean_up_tokenization_spaces": False,
        "eos_token": "<|endoftext|>",
        "mask_token": "<|MASK|>",
        "errors": "replace",
        "model_max_length": 131072,
        "pad_token": "<|endoftext|>",
        "split_special_tokens": False,
        "tokenizer_class": "Qwen2Tokenizer",
        "unk_token": None,
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    special = {"content": "<|endoftext|>", **flags}
    specials_map = {"additional_special_tokens": additional, "eos_token": special, "pad_token": special}
    (folder / "special_tokens_map.json").write_text(json.dumps(specials_map, indent=2))
    added = {text.replace("<|MASK|>", "<MASK>"): i for i, text in SDAR_SPECIALS.items()}
    (folder / "added_tokens.json").write_text(json.dumps(added, indent=2))


def build_sdar_checkpoint(folder: Path, sharded: bool = True, with_tokenizer: bool = True, **overrides: Any) -> Path:
    """A JetLM/SDAR-4B-Chat-shaped folder with tiny random weights (`overrides` change config fields)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config = {**SDAR_CONFIG, **SDAR_TINY, **overrides}
    (folder / "config.json").write_text(json.dumps(config, indent=2))
    (folder / "generation_config.json").write_text(json.dumps(SDAR_GENERATION_CONFIG, indent=2))
    weights = random_weights(sdar_weight_shapes(config))
    if sharded:
        write_sharded_safetensors(folder, weights)
    else:
        save_file({k: v.contiguous() for k, v in weights.items()}, str(folder / "model.safetensors"), {"format": "pt"})
    for module in REMOTE_FILES:
        (folder / module).write_text(RAISING_MODULE)
    if with_tokenizer:
        write_sdar_tokenizer(folder)
    return folder


def read_sdar_checkpoint(folder: Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """`(config.json as a dict, every weight of the checkpoint in float32)`, sharded or single-file."""
    folder = Path(folder)
    index = folder / "model.safetensors.index.json"
    files = sorted(set(json.loads(index.read_text())["weight_map"].values())) if index.is_file() else None
    weights: dict[str, torch.Tensor] = {}
    for file in files or ["model.safetensors"]:
        weights.update({k: v.float() for k, v in load_file(str(folder / file)).items()})
    return json.loads((folder / "config.json").read_text()), weights


_BUILT: dict[str, Path] = {}


def sdar_checkpoint(tmp_path_factory: Any, kind: str = "sdar") -> Path:
    """The folder of the layout `kind`, built once per test session (read-only: copy it before changing it):
    "sdar" (4B-style, sharded, untied head), "sdar_tied" (one file, `tie_word_embeddings`, no `lm_head`),
    "sdar_bias" (`attention_bias`, no tokenizer)."""
    builders = {
        "sdar": lambda folder: build_sdar_checkpoint(folder),
        "sdar_tied": lambda folder: build_sdar_checkpoint(
            folder, sharded=False, with_tokenizer=False, tie_word_embeddings=True
        ),
        "sdar_bias": lambda folder: build_sdar_checkpoint(folder, with_tokenizer=False, attention_bias=True),
    }
    if kind not in _BUILT or not (_BUILT[kind] / "config.json").is_file():
        _BUILT[kind] = builders[kind](tmp_path_factory.mktemp(f"hub_{kind}"))
    return _BUILT[kind]
