"""Tiny random-weight stand-ins for checkpoints that ship their own modeling code (no downloads: tests run offline).

The published LLaDA and Dream layouts are built in `hub_layouts.py` and load with hf_unmask's native classes.
The stand-ins here are *remote-code* checkpoints: `config.json` with an `auto_map` into `configuration_*.py` /
`modeling_*.py` written next to it, and `model.safetensors`. Their configs ask for a variant the native classes do
not implement (LLaDA `block_type="sequential"`, Dream `use_sliding_window=True`), so `AutoDiffusionLM` loads their
own code only with `trust_remote_code=True`; transformers' `AutoModel(..., trust_remote_code=True)` always runs it.
The modeling code is our own minimal bidirectional transformer (2 layers, d = 32) with each family's *interface*:

* LLaDA: `LLaDAModelLM.forward(input_ids, inputs_embeds, attention_mask, attention_bias, ...)`, no `position_ids`
  (RoPE over the absolute index), a 2-D padding mask turned into an additive key bias, aligned logits.
* Dream: `DreamModel.forward(input_ids, attention_mask, position_ids, ...)` taking `None`, "full", a 2-D or a
  4-D boolean mask, RoPE over the given position ids, and output `i` predicting token `i + 1` (the head reads the
  hidden state of the next position), so an adapter must shift by one. Inherits transformers' `GenerationMixin`.

The vocabulary is small (48), so the configs name a small `mask_token_id`; the real default ids are tested on the
adapters directly.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import torch

VOCAB_SIZE = 48
MASK_ID = 47
EOS_ID = 2
PAD_ID = 0
SEED = 1234

_COMMON_CODE = '''
import math

import torch
from torch import nn


def apply_rope(x, positions, base=10000.0):
    """x: [B, H, T, D]; positions: [B or 1, T]."""
    d = x.shape[-1]
    inv_freq = 1.0 / (base ** (torch.arange(0, d, 2, device=x.device, dtype=torch.float32) / d))
    angles = positions.to(torch.float32)[..., None] * inv_freq
    cos, sin = angles.cos()[:, None], angles.sin()[:, None]
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class Block(nn.Module):
    def __init__(self, d, n_heads, d_ff):
        super().__init__()
        self.n_heads = n_heads
        self.attn_norm = nn.LayerNorm(d)
        self.q_proj = nn.Linear(d, d)
        self.k_proj = nn.Linear(d, d)
        self.v_proj = nn.Linear(d, d)
        self.attn_out = nn.Linear(d, d)
        self.ff_norm = nn.LayerNorm(d)
        self.ff_proj = nn.Linear(d, d_ff)
        self.ff_out = nn.Linear(d_ff, d)

    def forward(self, x, positions, keep=None, bias=None):
        B, T, C = x.shape
        h = self.attn_norm(x)
        q, k, v = (p(h).view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for p in (self.q_proj, self.k_proj, self.v_proj))
        q, k = apply_rope(q, positions), apply_rope(k, positions)
        scores = q @ k.transpose(-1, -2) / math.sqrt(C // self.n_heads)
        if bias is not None:
            scores = scores + bias
        if keep is not None:
            scores = scores.masked_fill(~keep, torch.finfo(scores.dtype).min)
        att = (scores.softmax(-1) @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.attn_out(att)
        return x + self.ff_out(torch.nn.functional.gelu(self.ff_proj(self.ff_norm(x))))
'''

_LLADA_CONFIG = """
from transformers import PretrainedConfig


class LLaDAConfig(PretrainedConfig):
    model_type = "llada"

    def __init__(self, vocab_size=48, d_model=32, n_heads=4, n_layers=2, mlp_hidden_size=64, mask_token_id=47,
                 eos_token_id=2, pad_token_id=2, **kwargs):
        self.vocab_size = vocab_size
        self.d_model = d_model
        self.n_heads = n_heads
        self.n_layers = n_layers
        self.mlp_hidden_size = mlp_hidden_size
        self.mask_token_id = mask_token_id
        super().__init__(eos_token_id=eos_token_id, pad_token_id=pad_token_id, **kwargs)
"""

_LLADA_MODELING = (
    _COMMON_CODE
    + '''
from transformers import PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

from .configuration_llada import LLaDAConfig


class LLaDAModelLM(PreTrainedModel):
    """Stand-in with the interface of GSAI-ML/LLaDA's `LLaDAModelLM` (no position_ids argument)."""

    config_class = LLaDAConfig
    base_model_prefix = "model"

    def __init__(self, config):
        super().__init__(config)
        self.model = nn.ModuleDict(
            dict(
                wte=nn.Embedding(config.vocab_size, config.d_model),
                blocks=nn.ModuleList(Block(config.d_model, config.n_heads, config.mlp_hidden_size) for _ in range(config.n_layers)),
                ln_f=nn.LayerNorm(config.d_model),
                ff_out=nn.Linear(config.d_model, config.vocab_size),
            )
        )
        self.post_init()

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, attention_bias=None,
                past_key_values=None, labels=None, use_cache=None, output_attentions=None,
                output_hidden_states=None, return_dict=None):
        x = self.model.wte(input_ids) if inputs_embeds is None else inputs_embeds
        T = x.shape[1]
        positions = torch.arange(T, device=x.device)[None]
        bias = None
        if attention_mask is not None and bool((attention_mask == 0).any()):
            # shape (B, 1, 1, T): an additive bias on the keys, as LLaDA builds it
            bias = (1.0 - attention_mask.to(torch.float32))[:, None, None, :] * torch.finfo(torch.float32).min
        hidden = []
        for block in self.model.blocks:
            hidden.append(x)
            x = block(x, positions, bias=bias)
        x = self.model.ln_f(x)
        hidden.append(x)
        logits = self.model.ff_out(x)
        return CausalLMOutputWithPast(logits=logits, hidden_states=tuple(hidden) if output_hidden_states else None)
'''
)

_DREAM_CONFIG = """
from transformers import PretrainedConfig


class DreamConfig(PretrainedConfig):
    model_type = "Dream"

    def __init__(self, vocab_size=48, hidden_size=32, num_attention_heads=4, num_hidden_layers=2,
                 intermediate_size=64, mask_token_id=47, eos_token_id=2, pad_token_id=2, bos_token_id=2, **kwargs):
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_attention_heads = num_attention_heads
        self.num_hidden_layers = num_hidden_layers
        self.intermediate_size = intermediate_size
        self.mask_token_id = mask_token_id
        super().__init__(eos_token_id=eos_token_id, pad_token_id=pad_token_id, bos_token_id=bos_token_id, **kwargs)
"""

_DREAM_MODELING = (
    _COMMON_CODE
    + '''
from transformers import GenerationMixin, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

from .configuration_dream import DreamConfig


class DreamModel(PreTrainedModel, GenerationMixin):
    """Stand-in with the interface of Dream-org's `DreamModel`: output i predicts token i + 1."""

    config_class = DreamConfig
    base_model_prefix = "model"

    def __init__(self, config):
        super().__init__(config)
        self.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(
            Block(config.hidden_size, config.num_attention_heads, config.intermediate_size)
            for _ in range(config.num_hidden_layers)
        )
        self.norm = nn.LayerNorm(config.hidden_size)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size)
        self.post_init()

    def _hidden(self, input_ids, attention_mask, position_ids):
        x = self.embed_tokens(input_ids)
        B, T = input_ids.shape
        if position_ids is None:
            position_ids = torch.arange(T, device=x.device)[None]
        keep = None
        if isinstance(attention_mask, torch.Tensor) and attention_mask.dim() == 2:
            # as the later Dream revisions do: a 2-D padding mask becomes the 4-D boolean one
            attention_mask = attention_mask.bool()[:, None, None, :] & attention_mask.bool()[:, None, :, None]
        if isinstance(attention_mask, torch.Tensor):
            if attention_mask.dim() != 4 or attention_mask.dtype != torch.bool:
                raise ValueError(
                    f"Dream takes a 2-D or 4-D boolean attention mask, got {attention_mask.dtype} "
                    f"{tuple(attention_mask.shape)}"
                )
            keep = attention_mask
        hidden = []
        for layer in self.layers:
            hidden.append(x)
            x = layer(x, position_ids, keep=keep)
        x = self.norm(x)
        hidden.append(x)
        return hidden

    def position_logits(self, input_ids, attention_mask=None, position_ids=None):
        """What the network predicts for the token *at* each position (before Dream's next-position layout)."""
        return self.lm_head(self._hidden(input_ids, attention_mask, position_ids)[-1])

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, past_key_values=None,
                inputs_embeds=None, labels=None, use_cache=None, output_attentions=None,
                output_hidden_states=None, return_dict=None, **kwargs):
        hidden = self._hidden(input_ids, attention_mask, position_ids)
        # Dream's layout: the state read out at index i is that of position i + 1 (the last one repeats).
        hidden = [torch.cat([h[:, 1:], h[:, -1:]], dim=1) for h in hidden]
        logits = self.lm_head(hidden[-1])
        return MaskedLMOutput(logits=logits, hidden_states=tuple(hidden) if output_hidden_states else None)
'''
)


def _write_remote_code(
    folder: Path, config_name: str, config_code: str, modeling_name: str, modeling_code: str
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{config_name}.py").write_text(textwrap.dedent(config_code))
    (folder / f"{modeling_name}.py").write_text(textwrap.dedent(modeling_code))


def _randomise(model: torch.nn.Module, seed: int = SEED) -> None:
    """Peaked random weights (std well above the usual 0.02) so argmax choices are far from ties."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            lowered = name.lower()
            if "norm" in lowered or "ln_f" in lowered:
                continue
            if param.dim() == 1:
                std = 0.1
            elif "embed" in lowered or "wte" in lowered:
                std = 1.0
            else:
                std = 0.3
            param.copy_(torch.randn(param.shape, generator=gen) * std)


def remote_class(folder: Path, auto_class: str = "AutoModel") -> Any:
    """The class a stand-in's `auto_map` names, imported from its folder. (transformers' Auto classes prefer
    hf_unmask's native LLaDA / Dream classes over a checkpoint's code once hf_unmask is imported, even with
    trust_remote_code=True.)"""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    auto_map = json.loads((Path(folder) / "config.json").read_text())["auto_map"]
    return get_class_from_dynamic_module(auto_map[auto_class], str(folder))


def load_remote(folder: Path) -> Any:
    """A stand-in loaded with its own modeling code, in eval mode."""
    return remote_class(folder).from_pretrained(folder, trust_remote_code=True).eval()


def _build_remote(folder: Path, config_json: dict[str, Any]) -> Path:
    (folder / "config.json").write_text(json.dumps(config_json, indent=2))
    config = remote_class(folder, "AutoConfig").from_pretrained(folder)
    model = remote_class(folder)(config)
    _randomise(model)
    model.save_pretrained(folder)
    return folder


def build_llada(folder: Path) -> Path:
    """A folder that looks like GSAI-ML/LLaDA-8B-Instruct to transformers (tiny random weights)."""
    folder = Path(folder)
    _write_remote_code(folder, "configuration_llada", _LLADA_CONFIG, "modeling_llada", _LLADA_MODELING)
    return _build_remote(
        folder,
        {
            "model_type": "llada",
            "architectures": ["LLaDAModelLM"],
            "auto_map": {
                "AutoConfig": "configuration_llada.LLaDAConfig",
                "AutoModel": "modeling_llada.LLaDAModelLM",
                "AutoModelForCausalLM": "modeling_llada.LLaDAModelLM",
            },
            "vocab_size": VOCAB_SIZE,
            "mask_token_id": MASK_ID,
            "eos_token_id": EOS_ID,
            "pad_token_id": EOS_ID,
            "block_type": "sequential",
        },
    )


def build_dream(folder: Path) -> Path:
    """A folder that looks like Dream-org/Dream-v0-Instruct-7B to transformers (tiny random weights)."""
    folder = Path(folder)
    _write_remote_code(folder, "configuration_dream", _DREAM_CONFIG, "modeling_dream", _DREAM_MODELING)
    return _build_remote(
        folder,
        {
            "model_type": "Dream",
            "architectures": ["DreamModel"],
            "auto_map": {"AutoConfig": "configuration_dream.DreamConfig", "AutoModel": "modeling_dream.DreamModel"},
            "vocab_size": VOCAB_SIZE,
            "mask_token_id": MASK_ID,
            "eos_token_id": EOS_ID,
            "pad_token_id": EOS_ID,
            "bos_token_id": EOS_ID,
            "use_sliding_window": True,
        },
    )


BERT_SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def tiny_bert_config(**overrides: Any) -> Any:
    from transformers import BertConfig

    values = dict(
        vocab_size=VOCAB_SIZE,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=64,
        pad_token_id=0,
        initializer_range=0.3,
    )
    values.update(overrides)
    return BertConfig(**values)


def build_bert(folder: Path, with_tokenizer: bool = True) -> Path:
    """A tiny `BertForMaskedLM` folder; with a `BertTokenizerFast` (mask id 4) unless `with_tokenizer=False`."""
    from transformers import BertForMaskedLM, BertTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(SEED)
    model = BertForMaskedLM(tiny_bert_config())
    _randomise(model)
    model.save_pretrained(folder)
    if with_tokenizer:
        words = BERT_SPECIALS + [chr(ord("a") + i) for i in range(26)]
        words += [f"w{i}" for i in range(VOCAB_SIZE - len(words))]
        vocab = folder / "vocab.txt"
        vocab.write_text("\n".join(words) + "\n")
        BertTokenizerFast(vocab_file=str(vocab)).save_pretrained(folder)
    return folder


_BUILDERS = {"llada": build_llada, "dream": build_dream, "bert": build_bert}
_BUILT: dict[str, Path] = {}


def standin(tmp_path_factory: Any, kind: str) -> Path:
    """The folder of stand-in `kind` ("llada", "dream", "bert"), built once per test session. Read-only: copy it
    before changing anything inside."""
    if kind not in _BUILT or not (_BUILT[kind] / "config.json").is_file():
        _BUILT[kind] = _BUILDERS[kind](tmp_path_factory.mktemp(f"standin_{kind}"))
    return _BUILT[kind]


def prompts(
    batch_lengths: tuple[int, ...] = (5, 3), pad_id: int = PAD_ID, seed: int = SEED
) -> tuple[torch.Tensor, torch.Tensor]:
    """A left-padded batch of random prompts (ids 5..39) of the given lengths, with its attention mask."""
    gen = torch.Generator().manual_seed(seed)
    P = max(batch_lengths)
    ids = torch.full((len(batch_lengths), P), pad_id, dtype=torch.long)
    mask = torch.zeros((len(batch_lengths), P), dtype=torch.long)
    for row, n in enumerate(batch_lengths):
        ids[row, P - n :] = torch.randint(5, 40, (n,), generator=gen)
        mask[row, P - n :] = 1
    return ids, mask


def hf_unmask_is_installed() -> bool:
    import importlib.metadata

    try:
        importlib.metadata.version("hf_unmask")
    except importlib.metadata.PackageNotFoundError:
        return False
    return True


def copy_custom_generate_repo(dest: Path) -> Path:
    """A copy of `hf_unmask.CUSTOM_GENERATE_DIR` at `dest`.

    transformers checks `custom_generate/requirements.txt` against installed *distributions*; when the tests run
    from a source checkout that was not pip-installed, the `hf_unmask` line is dropped from the copy (the import
    itself still works from the checkout).
    """
    import shutil

    import hf_unmask

    dest = Path(dest)
    shutil.copytree(hf_unmask.CUSTOM_GENERATE_DIR, dest, ignore=shutil.ignore_patterns("__pycache__"))
    if not hf_unmask_is_installed():
        requirements = dest / "custom_generate" / "requirements.txt"
        kept = [line for line in requirements.read_text().splitlines() if line.strip() != "hf_unmask"]
        requirements.write_text("\n".join(kept) + "\n")
    return dest


def one_torch_thread() -> Any:
    """Generator for a fixture: run with one intra-op thread, then restore. The stand-ins are so small that
    thread hand-offs dominate, and on a busy machine two threads made each forward ~50x slower."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)
