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
import weakref
from collections.abc import Sequence
from typing import Any, Optional

import torch

from .._warnings import warn_at_caller
from .adapter import DiffusionAdapter, unwrap_model

#: The longest canvas (prompt + L positions per row) generate accepts. Far beyond any dLLM's context (LLaDA 4,096,
#: Dream 131,072 positions) and a safety net for models that state no length at all: a canvas of 10**7 positions
#: would take hours per forward pass long before memory runs out.
MAX_CANVAS_POSITIONS = 1 << 20
# Below this size the logits surely fit in memory; above it, free memory is read (costs ~50 us on Linux).
_MEMORY_CHECK_FROM_BYTES = 1 << 30
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
    adapter: Optional[DiffusionAdapter] = None,
) -> None:
    """Refuse a canvas the model cannot run (beyond a learned position table, beyond `MAX_CANVAS_POSITIONS`, or
    logits that cannot fit in free memory); warn beyond the lengths the model family says it was trained on
    (`adapter`'s; the generic adapter's when None)."""
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
    if table is not None and used > table:
        _refuse_beyond_position_table(model, table, used - gen_length, gen_length)
    if vocab_size is not None:
        _check_logits_memory(model, input_ids, total, vocab_size)
    adapter = adapter if adapter is not None else DiffusionAdapter(model)
    trained = adapter.trained_sequence_length() if table is None else None
    if trained is not None and trained.positions < used:
        warn_at_caller(
            f"{_model_name(model)} was trained on sequences of at most {trained.positions} positions "
            f"({trained.source}); the prompt plus max_new_tokens={gen_length} needs {used}. Its rotary "
            "positions run further, but expect degraded output beyond that length."
        )
    _check_generation_length(model, adapter, gen_length)


def _refuse_beyond_position_table(model: Any, table: int, prompt_length: int, gen_length: int) -> None:
    """The error for a canvas beyond a learned position table: a prompt that leaves no room at all is too long
    (shorten or truncate it); otherwise L is too large for this prompt."""
    needed = prompt_length + gen_length
    if prompt_length >= table:
        keep = table - gen_length
        fix = (
            f"tokenizer(..., truncation=True, max_length={keep})"
            if keep > 0
            else f"a prompt of at most {table} - max_new_tokens tokens and max_new_tokens < {table}"
        )
        raise ValueError(
            f"The prompt ({prompt_length} tokens) is too long for {_model_name(model)}, which has a learned table "
            f"of {table} positions: with max_new_tokens={gen_length} it needs {needed}. Shorten the prompt, e.g. "
            f"truncate it through the tokenizer: {fix} (tokenizer.truncation_side = 'left' keeps its end)."
        )
    raise ValueError(
        f"{_model_name(model)} has a learned table of {table} positions, but the prompt ({prompt_length} tokens) "
        f"plus max_new_tokens={gen_length} needs {needed}. Use max_new_tokens <= {table - prompt_length} or a "
        "shorter prompt."
    )


def _check_logits_memory(model: Any, input_ids: torch.Tensor, total: int, vocab_size: int) -> None:
    """Refuse a forward pass whose logits alone exceed the free memory of the prompt's device."""
    B = input_ids.shape[0]
    dtype = getattr(unwrap_model(model), "dtype", None)
    itemsize = dtype.itemsize if isinstance(dtype, torch.dtype) else 4
    logits_bytes = B * total * vocab_size * itemsize
    if logits_bytes < _MEMORY_CHECK_FROM_BYTES:
        return
    free = _available_memory(input_ids.device)
    if free is not None and logits_bytes > free:
        raise ValueError(
            f"The logits of one forward pass alone (batch {B} x {total:,} positions x vocabulary {vocab_size:,} "
            f"x {itemsize} bytes = {logits_bytes / 2**30:.1f} GiB) exceed the free memory of {input_ids.device} "
            f"({free / 2**30:.1f} GiB). Use a smaller max_new_tokens or batch."
        )


def _check_generation_length(model: Any, adapter: DiffusionAdapter, gen_length: int) -> None:
    """Warn when L exceeds what the family says the checkpoint was checked at (else trained at)."""
    trained, checked = adapter.trained_generation_length(), adapter.max_generation_length()
    if checked is not None:
        if checked.positions < gen_length:
            trained_at = trained.positions if trained is not None else None
            warn_at_caller(
                f"{_model_name(model)} was checked to generate at most L = {checked.positions} positions "
                f"({checked.source}; trained at L <= {trained_at}); max_new_tokens={gen_length} asks for more, so "
                f"expect degraded output. Use max_new_tokens <= {checked.positions}."
            )
    elif trained is not None and trained.positions < gen_length:
        warn_at_caller(
            f"{_model_name(model)} was trained to generate L = {trained.positions} positions ({trained.source}); "
            f"max_new_tokens={gen_length} asks for more, so expect what it writes beyond position "
            f"{trained.positions} to be meaningless. Use max_new_tokens <= {trained.positions}."
        )


# ---------------------------------------------------------------------------------------------- hooks
def check_seed(seed: Any, generator: Any) -> None:
    """`seed` is None or an integer torch accepts as a seed, and is not given together with `generator`."""
    if seed is None:
        return
    if generator is not None:
        raise ValueError("Pass either `generator` or `seed`, not both (seed builds a generator for you).")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(
            f"seed must be an integer, got {seed!r} ({type(seed).__name__}). Pass e.g. seed=0, or a seeded "
            "torch.Generator as generator=..."
        )
    if not -(2**63) <= int(seed) < 2**64:
        raise ValueError(f"seed={seed} is out of range: torch seeds are 64-bit integers. Pass e.g. seed=0.")


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


def check_verification_support(adapter: Any, strategy: Any) -> None:
    """A strategy with `requires_verification` (WINO) needs a model that runs the shadow-block forward (that it
    runs without a cache is checked with the other cache settings, `cache_settings.check_cache_support`)."""
    if not getattr(strategy, "requires_verification", False):
        return
    name = type(strategy).__name__
    if not adapter.supports_verification:
        model = type(unwrap_model(adapter.model)).__name__
        raise ValueError(
            f"{name} needs a verification forward (the canvas plus a shadow block under a 4-D attention mask with "
            f"explicit position ids), which {model} ({type(adapter).__name__}) does not support. Use a model family "
            "that does (LLaDA, LLaDA-MoE, Dream, LLaDA2.x, SDAR or the built-in tiny dLLM, loaded with "
            "hf_unmask.AutoDiffusionLM), or a strategy without verification, e.g. strategy='confidence_threshold' "
            "or 'top_k_confidence'."
        )
