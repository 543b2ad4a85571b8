"""Checks of everything `generate` is given, run before any forward pass, with errors that name the fix.

What is checked where: the prompt and its mask (`check_prompt`), the special token ids against the vocabulary
(`check_token_ids`), the canvas length against the model's positions and the machine's memory (`check_lengths`),
and the callback. What comes back at every step (logits, the strategy's selection, the callback's answer) is checked
in `step_checks`.
"""

from __future__ import annotations

import inspect
import numbers
import os
import warnings
import weakref
from collections.abc import Sequence
from typing import Any, Optional

import torch

from .adapter import unwrap_model

#: The longest canvas (prompt + L positions per row) generate accepts. Far beyond any dLLM's context (LLaDA 4,096,
#: Dream 131,072 positions) and a safety net for models that state no length at all: a canvas of 10**7 positions
#: would take hours per forward pass long before memory runs out.
MAX_CANVAS_POSITIONS = 1 << 20
# Below this size the logits surely fit in memory; above it, free memory is read (costs ~50 us on Linux).
_MEMORY_CHECK_FROM_BYTES = 1 << 30
# Config fields that state the longest sequence a model was trained on (LLaDA: max_sequence_length; GPT-2: n_positions).
_LENGTH_FIELDS = ("max_position_embeddings", "max_sequence_length", "n_positions", "max_seq_len")
# Name of the learned absolute position table in transformers' encoders (BERT, RoBERTa, ALBERT, ELECTRA, ...).
_POSITION_TABLE_NAMES = ("position_embeddings",)
_position_tables: weakref.WeakKeyDictionary[torch.nn.Module, Optional[int]] = weakref.WeakKeyDictionary()


# ---------------------------------------------------------------------------------------------- the prompt
def check_prompt(input_ids: Any, attention_mask: Any) -> None:
    """Type, shape and padding of the prompt: an integer `[B, P]` tensor, an optional 0/1 mask of the same shape
    with left padding only."""
    if not isinstance(input_ids, torch.Tensor) or input_ids.dtype not in (torch.long, torch.int, torch.int32):
        raise TypeError(
            f"input_ids must be an integer torch.Tensor of shape [batch, prompt_length], got {type(input_ids).__name__}"
            f"{'' if not isinstance(input_ids, torch.Tensor) else ' of dtype ' + str(input_ids.dtype)}. "
            "Use tokenizer(..., return_tensors='pt')."
        )
    if input_ids.dim() != 2:
        raise ValueError(
            f"input_ids must have shape [batch, prompt_length], got {tuple(input_ids.shape)}. "
            "Add a batch axis with input_ids.unsqueeze(0)."
        )
    if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
        raise ValueError(
            f"Empty prompt (input_ids of shape {tuple(input_ids.shape)}). Diffusion generation conditions on a prompt: "
            "give at least one token per row (e.g. the BOS token or a chat template)."
        )
    if attention_mask is None:
        return
    if not isinstance(attention_mask, torch.Tensor) or attention_mask.shape != input_ids.shape:
        shape = (
            tuple(attention_mask.shape) if isinstance(attention_mask, torch.Tensor) else type(attention_mask).__name__
        )
        raise ValueError(
            f"attention_mask must be a tensor of the same shape as input_ids {tuple(input_ids.shape)}, got {shape}. "
            "Pass the attention_mask returned by the tokenizer with the same input_ids."
        )
    if attention_mask.dtype != torch.bool and not bool(((attention_mask == 0) | (attention_mask == 1)).all()):
        values = sorted({float(v) for v in attention_mask.unique().tolist()} - {0.0, 1.0})[:5]
        raise ValueError(
            f"attention_mask must hold only 0 (padding) and 1 (real token), got also {values}. Pass the "
            "attention_mask the tokenizer returns (a 4-D or additive mask is built from it by the model adapter)."
        )
    am = attention_mask.bool()
    if not am.any(dim=-1).all():
        raise ValueError(
            "A row of attention_mask is all zeros: that row has an empty prompt. Remove it from the batch."
        )
    # left padding: once a row's mask turns on it stays on
    if (am[:, :-1] & ~am[:, 1:]).any():
        raise ValueError(
            "attention_mask has padding after real tokens (right padding). Diffusion generation appends the canvas "
            "after the prompt, so pad on the left: tokenizer.padding_side = 'left'."
        )


def token_type_ids_to_pass(token_type_ids: Any, input_ids: torch.Tensor, model: Any) -> Optional[torch.Tensor]:
    """The prompt's segment ids, or None when they need not reach the model.

    All zeros (what a tokenizer returns for one text per row) is every segment-aware model's default: dropped. Other
    values (a sentence pair) go to a model whose forward takes `token_type_ids`; generated positions continue the
    last prompt position's segment, as transformers' generate extends them.
    """
    if token_type_ids is None:
        return None
    if not isinstance(token_type_ids, torch.Tensor) or token_type_ids.shape != input_ids.shape:
        shape = tuple(token_type_ids.shape) if isinstance(token_type_ids, torch.Tensor) else type(token_type_ids)
        raise ValueError(
            f"token_type_ids must be a tensor of the same shape as input_ids {tuple(input_ids.shape)}, got {shape}. "
            "Pass the token_type_ids the tokenizer returned with these input_ids (or drop them)."
        )
    if not bool(token_type_ids.any()):
        return None
    forward = getattr(unwrap_model(model), "forward", None)
    try:
        takes_segments = forward is not None and "token_type_ids" in inspect.signature(forward).parameters
    except (TypeError, ValueError):
        takes_segments = False
    if not takes_segments:
        raise ValueError(
            f"token_type_ids holds non-zero segment ids but {type(unwrap_model(model)).__name__} has no segment "
            "embeddings (its forward takes no token_type_ids). Encode one text per row, or drop token_type_ids."
        )
    return token_type_ids


# ---------------------------------------------------------------------------------------------- token ids
def vocabulary_size(model: Any) -> Optional[int]:
    """Rows of the model's output (and input) embedding, the smaller of the two; else `config.vocab_size`; None
    when neither is known. (LLaDA's embedding table is padded beyond `vocab_size`: the tables are what matters.)"""
    base = unwrap_model(model)
    sizes = []
    for getter in ("get_output_embeddings", "get_input_embeddings"):
        method = getattr(base, getter, None)
        if not callable(method):
            continue
        try:
            module = method()
        except Exception:  # remote-code models implement these (or not) in their own ways: the size is unknown
            continue
        weight = getattr(module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.dim() == 2:
            # nn.Linear(d, V).weight and nn.Embedding(V, d).weight both have V rows
            sizes.append(int(weight.shape[0]))
    if sizes:
        return min(sizes)
    vocab = getattr(getattr(base, "config", None), "vocab_size", None)
    return int(vocab) if isinstance(vocab, int) and not isinstance(vocab, bool) and vocab > 0 else None


def as_token_id(name: str, value: Any, vocab_size: Optional[int]) -> int:
    """`value` as an int after checking it is an integer id inside the vocabulary (when its size is known)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer token id, got {value!r}. Pass e.g. {name}=tokenizer.{name}.")
    value = int(value)
    if value < 0 or (vocab_size is not None and value >= vocab_size):
        bound = f"[0, {vocab_size})" if vocab_size is not None else ">= 0"
        raise ValueError(
            f"{name}={value} is not a token of this model: ids must be in {bound} (the size of its embedding). "
            f"Pass the id the model's tokenizer uses, e.g. {name}=tokenizer.{name}."
        )
    return value


def check_token_ids(
    input_ids: torch.Tensor,
    attention_mask: Optional[torch.Tensor],
    vocab_size: Optional[int],
    mask_id: int,
    eos_ids: Sequence[int],
    fill_id: Optional[int],
    allow_mask_in_prompt: bool,
) -> None:
    """Prompt ids inside the vocabulary; the mask id neither an EOS id nor the stop_at_eos fill id; no `[MASK]` in
    the prompt unless `allow_mask_in_prompt`. (Each special id was checked with `as_token_id`.)"""
    if mask_id in eos_ids:
        raise ValueError(
            f"mask_token_id={mask_id} is also an EOS id ({list(eos_ids)}): a generated EOS could not be told from a "
            "position still to fill. Pass the model's real mask id (tokenizer.mask_token_id) or fix eos_token_id."
        )
    if fill_id is not None and fill_id == mask_id:
        raise ValueError(
            f"stop_at_eos fills the positions after EOS with pad_token_id={fill_id}, which is the mask id: they would "
            "stay masked. Pass a pad_token_id that is not the mask id (e.g. the EOS id)."
        )
    low, high = int(input_ids.min()), int(input_ids.max())
    if low < 0 or (vocab_size is not None and high >= vocab_size):
        bad = low if low < 0 else high
        bound = f"[0, {vocab_size})" if vocab_size is not None else ">= 0"
        raise ValueError(
            f"input_ids holds the id {bad}, outside this model's vocabulary {bound}. Encode the prompt with the "
            "model's own tokenizer (and pad with its pad_token_id)."
        )
    if allow_mask_in_prompt:
        return
    in_prompt = input_ids == mask_id
    if attention_mask is not None:
        in_prompt &= attention_mask.bool()
    if bool(in_prompt.any()):
        row, col = (int(i) for i in in_prompt.nonzero()[0])
        raise ValueError(
            f"The prompt holds the mask id {mask_id} (row {row}, position {col}). generate never fills the prompt: "
            "only the L positions after it are generated, so a [MASK] there stays masked (it is not infilling). "
            "Remove it from the prompt text (a literal '[MASK]' is encoded as the mask token), or pass "
            "allow_mask_in_prompt=True if the model should read a masked prompt position as such."
        )


# ---------------------------------------------------------------------------------------------- lengths
def position_table_size(model: Any) -> Optional[int]:
    """How many positions the model's learned absolute position table covers (BERT 512; RoBERTa's 514 rows minus
    its offset of 2), or None for models without one (RoPE: LLaDA, Dream, ModernBERT, the built-in dLLM)."""
    base = unwrap_model(model)
    if not isinstance(base, torch.nn.Module):
        return None
    if base in _position_tables:
        return _position_tables[base]
    size = None
    for name, module in base.named_modules():
        if isinstance(module, torch.nn.Embedding) and name.rsplit(".", 1)[-1] in _POSITION_TABLE_NAMES:
            # RoBERTa-style tables number positions from padding_idx + 1
            offset = module.padding_idx + 1 if module.padding_idx is not None else 0
            size = module.num_embeddings - offset
            break
    _position_tables[base] = size
    return size


def _available_memory(device: torch.device) -> Optional[int]:
    """Free bytes on `device` (CUDA: free device memory plus what PyTorch's caching allocator holds unused; CPU: the
    host's MemAvailable), None when unknown."""
    if device.type == "cuda":
        try:
            cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
            return int(torch.cuda.mem_get_info(device)[0]) + int(cached)
        except (RuntimeError, AssertionError):
            return None
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _model_name(model: Any) -> str:
    base = unwrap_model(model)
    name = getattr(getattr(base, "config", None), "name_or_path", None) or ""
    return f"{type(base).__name__}" + (f" ('{name}')" if name else "")


def check_lengths(
    model: Any,
    input_ids: torch.Tensor,
    attention_mask: Optional[torch.Tensor],
    gen_length: int,
    vocab_size: Optional[int],
) -> None:
    """Refuse a canvas the model cannot run (beyond a learned position table, beyond `MAX_CANVAS_POSITIONS`, or
    logits that cannot fit in free memory); warn beyond the length the model was trained on."""
    B, P = input_ids.shape
    total = P + gen_length
    if total > MAX_CANVAS_POSITIONS:
        raise ValueError(
            f"max_new_tokens={gen_length} after a prompt of {P} tokens makes a canvas of {total:,} positions per row, "
            f"more than generate accepts ({MAX_CANVAS_POSITIONS:,}; no dLLM runs that long a context, and each of up "
            f"to {gen_length:,} forward passes would process all of it). Use a smaller max_new_tokens."
        )
    # Positions as the model sees them: counted from each row's first real token when the batch is padded.
    used = int(attention_mask.sum(-1).max()) + gen_length if attention_mask is not None else total
    table = position_table_size(model)
    config = getattr(unwrap_model(model), "config", None)
    if table is not None and used > table:
        raise ValueError(
            f"{_model_name(model)} has a learned table of {table} positions, but the prompt ({used - gen_length} "
            f"tokens) plus max_new_tokens={gen_length} needs {used}. Use max_new_tokens <= {max(table - used + gen_length, 0)} "
            "or a shorter prompt."
        )
    if vocab_size is not None:
        dtype = getattr(unwrap_model(model), "dtype", None)
        itemsize = dtype.itemsize if isinstance(dtype, torch.dtype) else 4
        logits_bytes = B * total * vocab_size * itemsize
        if logits_bytes >= _MEMORY_CHECK_FROM_BYTES:
            free = _available_memory(input_ids.device)
            if free is not None and logits_bytes > free:
                raise ValueError(
                    f"The logits of one forward pass alone (batch {B} x {total:,} positions x vocabulary {vocab_size:,} "
                    f"x {itemsize} bytes = {logits_bytes / 2**30:.1f} GiB) exceed the free memory of {input_ids.device} "
                    f"({free / 2**30:.1f} GiB). Use a smaller max_new_tokens or batch."
                )
    if table is None and config is not None:
        for field in _LENGTH_FIELDS:
            trained = getattr(config, field, None)
            if isinstance(trained, int) and not isinstance(trained, bool) and 0 < trained < used:
                warnings.warn(
                    f"{_model_name(model)} was trained on sequences of at most {trained} positions "
                    f"(config.{field}); the prompt plus max_new_tokens={gen_length} needs {used}. Its rotary "
                    "positions run further, but expect degraded output beyond that length.",
                    UserWarning,
                    stacklevel=2,
                )
                break
    trained_l = getattr(config, "trained_gen_length", None) if config is not None else None
    checked_l = getattr(config, "max_gen_length", None) if config is not None else None
    if isinstance(checked_l, int) and not isinstance(checked_l, bool) and checked_l > 0:
        if checked_l < gen_length:
            warnings.warn(
                f"{_model_name(model)} was checked to generate at most L = {checked_l} positions "
                f"(config.max_gen_length; trained at L <= {trained_l}); max_new_tokens={gen_length} asks for more, so "
                f"expect degraded output. Use max_new_tokens <= {checked_l}.",
                UserWarning,
                stacklevel=2,
            )
    elif isinstance(trained_l, int) and not isinstance(trained_l, bool) and 0 < trained_l < gen_length:
        warnings.warn(
            f"{_model_name(model)} was trained to generate L = {trained_l} positions (config.trained_gen_length); "
            f"max_new_tokens={gen_length} asks for more, so expect what it writes beyond position {trained_l} to be "
            f"meaningless. Use max_new_tokens <= {trained_l}.",
            UserWarning,
            stacklevel=2,
        )


# ---------------------------------------------------------------------------------------------- hooks
def check_callback(callback: Any) -> None:
    """`callback_on_step_end` must be callable with one argument (a `DiffusionStep`)."""
    if callback is None:
        return
    if not callable(callback):
        raise TypeError(
            f"callback_on_step_end must be callable, got {type(callback).__name__}. Pass a function "
            "step -> None | bool | BoolTensor[batch] (True stops generation)."
        )
    try:
        signature = inspect.signature(callback)
    except (TypeError, ValueError):
        return
    try:
        signature.bind(None)
    except TypeError as err:
        raise TypeError(
            f"callback_on_step_end is called with one argument, a hf_unmask.DiffusionStep (step, block, sequences, "
            f"unmasked, nfe, state...), but {getattr(callback, '__name__', callback)!r} has the signature "
            f"{signature} ({err}). Write it as def callback(step): ... (diffusers' (pipe, step, timestep, kwargs) "
            "form does not apply)."
        ) from None


def check_cache_support(adapter: Any, strategy: Any, token_types: Optional[torch.Tensor]) -> None:
    """`use_cache=True` needs a model family with a diffusion cache and a strategy that reads no hidden states."""
    if not adapter.supports_cache:
        raise ValueError(
            f"use_cache=True: {type(unwrap_model(adapter.model)).__name__} has no diffusion key/value cache. The "
            "families that have one: LLaDA (hf_unmask.LLaDAModelLM), Dream (hf_unmask.DreamModel) and the built-in "
            "tiny dLLM, loaded with hf_unmask.AutoDiffusionLM. Drop use_cache=True for this model."
        )
    if getattr(strategy, "requires_hidden_states", False):
        raise ValueError(
            f"use_cache=True with {type(strategy).__name__}, which reads the dLLM's hidden states: a cached step "
            "computes them for the fed window only. Drop use_cache=True, or use a strategy that reads confidences."
        )
    if token_types is not None:
        raise ValueError("use_cache=True with token_type_ids: no cached family takes segment ids. Drop one of them.")


def check_verification_support(adapter: Any, strategy: Any, use_cache: bool) -> None:
    """A strategy with `requires_verification` (WINO) needs a model that runs the shadow-block forward, and no
    cache (the published WINO has none: every step is a full forward over the canvas and the shadow block)."""
    if not getattr(strategy, "requires_verification", False):
        return
    name = type(strategy).__name__
    if use_cache:
        raise ValueError(
            f"use_cache=True with {name}, which verifies decided tokens in a shadow block run in the same full "
            "forward as the canvas (as the published algorithm, which has no cache). Drop use_cache=True."
        )
    if not adapter.supports_verification:
        model = type(unwrap_model(adapter.model)).__name__
        raise ValueError(
            f"{name} needs a verification forward (the canvas plus a shadow block under a 4-D attention mask with "
            f"explicit position ids), which {model} ({type(adapter).__name__}) does not support. Use a model family "
            "that does (LLaDA, LLaDA-MoE, Dream, LLaDA2.x, SDAR or the built-in tiny dLLM, loaded with "
            "hf_unmask.AutoDiffusionLM), or a strategy without verification, e.g. strategy='confidence_threshold' "
            "or 'top_k_confidence'."
        )
