"""The diffusion generation loop shared by every model family and every strategy.

`diffusion_generate` checks every argument, builds the canvas `[prompt | L x MASK]` and hands it to a
`DenoisingLoop`, which walks the blocks and runs each denoising step as a sequence of named stages: plan the step
(rows and positions at work), forward, propose tokens, ask the strategy, choose the positions to unmask (pace and
progress fallback), write the canvas (and token edits), re-mask, count NFE and stop at EOS, record the trajectory,
report (history, streamer, callback).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional, Union

import torch
from transformers import GenerationConfig

from .adapter import DiffusionAdapter, get_adapter, unwrap_model
from .block_diffusion import apply_block_defaults
from .blocks import BlockLayout
from .cache_settings import resolve_cache_implementation
from .config import DiffusionGenerationConfig, resolve_generation_config
from .denoising import DenoisingLoop
from .outputs import DiffusionGenerateOutput, DiffusionStep
from .strategy import as_strategy
from .streamers import prepare_streamer
from .text_io import completion_eos_ids
from .validation import (
    as_token_id,
    check_callback,
    check_lengths,
    check_prompt,
    check_seed,
    check_token_ids,
    check_verification_support,
    token_type_ids_to_pass,
    vocabulary_size,
)

__all__ = ["diffusion_generate", "resolve_generation_config"]


@torch.no_grad()
def diffusion_generate(
    model: Any,
    input_ids: Optional[torch.Tensor] = None,
    attention_mask: Optional[torch.Tensor] = None,
    strategy: Any = None,
    generation_config: Optional[GenerationConfig] = None,
    logits_processor: Optional[Callable[[torch.Tensor, torch.Tensor], torch.Tensor]] = None,
    streamer: Any = None,
    generator: Optional[torch.Generator] = None,
    seed: Optional[int] = None,
    adapter: Optional[Union[type[DiffusionAdapter], DiffusionAdapter]] = None,
    inputs: Optional[torch.Tensor] = None,
    token_type_ids: Optional[torch.Tensor] = None,
    callback_on_step_end: Optional[Callable[[DiffusionStep], Any]] = None,
    tokenizer: Any = None,
    allow_mask_in_prompt: bool = False,
    **kwargs: Any,
) -> Union[torch.LongTensor, DiffusionGenerateOutput]:
    """Generate with a masked diffusion LM: start from `[prompt | L x MASK]` and let `strategy` choose which
    masked positions to fill at every step. Every argument is checked before the first forward pass. Returns the
    sequences `[B, P + L]`, or a `DiffusionGenerateOutput` with `return_dict_in_generate=True`.

    Args:
        input_ids / inputs: `[B, P]` prompt ids, left-padded; `attention_mask` `[B, P]` of 0/1.
        token_type_ids: a tokenizer's segment ids; all zeros (one text per row) is ignored, other values reach
            models with segment embeddings, generated positions taking the last prompt position's segment.
        callback_on_step_end: called after every step with a `DiffusionStep`; return True (or a `[B]` bool tensor)
            to stop (those) rows. Stopped rows keep the mask id where nothing was decided.
        tokenizer: only used for the mask id when neither the config nor the model family names one.
        allow_mask_in_prompt: accept the mask id inside the prompt (it is never filled: only the L generated
            positions are); refused by default because a literal "[MASK]" in a prompt is usually a mistake.
        streamer, logits_processor, generator / seed (an integer), strategy: see the documentation; **kwargs
            override the fields of the `DiffusionGenerationConfig`.
    """
    input_ids = _prompt_ids(input_ids=input_ids, inputs=inputs)
    check_seed(seed, generator)
    check_prompt(input_ids, attention_mask)
    config = resolve_generation_config(model, generation_config, dict(kwargs))
    strategy = as_strategy(strategy)
    adapter = get_adapter(model, adapter)
    vocab = vocabulary_size(model)
    if adapter.block_causal:
        apply_block_defaults(config, adapter)
    mask_id = _mask_token_id(model=model, adapter=adapter, config=config, tokenizer=tokenizer, vocab_size=vocab)
    # EOS: the caller's eos_token_id (argument or generation_config), else the family's and the tokenizer's (text_io)
    user_eos = kwargs.get("eos_token_id", getattr(generation_config, "eos_token_id", None))
    eos_ids = completion_eos_ids(model, tokenizer, eos_token_id=user_eos, adapter=adapter, vocab_size=vocab)
    fill_id = _eos_fill_id(config=config, eos_ids=eos_ids, vocab_size=vocab, given_pad_id=kwargs.get("pad_token_id"))
    check_token_ids(input_ids, attention_mask, vocab, mask_id, eos_ids, fill_id, allow_mask_in_prompt)
    token_types = token_type_ids_to_pass(token_type_ids, input_ids, model)
    check_lengths(model, input_ids, attention_mask, config.gen_length, vocab, adapter=adapter)
    check_callback(callback_on_step_end)
    cache_implementation = resolve_cache_implementation(
        config, adapter=adapter, strategy=strategy, token_type_ids=token_types
    )
    check_verification_support(adapter, strategy)
    streamer = prepare_streamer(streamer, input_ids, eos_ids)
    if seed is not None:
        generator = torch.Generator(device=input_ids.device).manual_seed(int(seed))
    layout, budget = _block_layout(
        adapter=adapter, strategy=strategy, config=config, input_ids=input_ids, attention_mask=attention_mask
    )
    # Normal (not inference) tensors even under the caller's torch.inference_mode: the read-only check of the state
    # handed to strategies relies on version counters, which inference tensors lack. (inference_mode(False) turns
    # grad mode back on, hence the no_grad inside it.)
    with torch.inference_mode(False), torch.no_grad():
        canvas, attn, token_types = _initial_canvas(
            input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_types,
            canvas_length=layout.canvas_length, mask_id=mask_id,
        )  # fmt: skip
        loop = DenoisingLoop(
            adapter=adapter, strategy=strategy, config=config, canvas=canvas, attention_mask=attn,
            token_type_ids=token_types, prompt_length=input_ids.shape[1], mask_id=mask_id, eos_ids=eos_ids,
            fill_id=fill_id, logits_processor=logits_processor, streamer=streamer, generator=generator,
            callback=callback_on_step_end, budget=budget, layout=layout, cache_implementation=cache_implementation,
        )  # fmt: skip
        return loop.run()


def _prompt_ids(*, input_ids: Optional[torch.Tensor], inputs: Optional[torch.Tensor]) -> Any:
    """The prompt, given as `input_ids` or (transformers' positional name) `inputs`, not both."""
    if inputs is not None and input_ids is not None:
        raise ValueError("Pass the prompt once: either `inputs` or `input_ids`, not both.")
    return inputs if input_ids is None else input_ids


def _mask_token_id(
    *, model: Any, adapter: DiffusionAdapter, config: DiffusionGenerationConfig, tokenizer: Any, vocab_size: Any
) -> int:
    """The mask id of the call: the config's, else the model family's, else the tokenizer's."""
    mask_id = config.mask_token_id if config.mask_token_id is not None else adapter.mask_token_id()
    if mask_id is None and tokenizer is not None:
        mask_id = getattr(tokenizer, "mask_token_id", None)
    if mask_id is None:
        raise ValueError(
            f"No mask token id is known for {type(unwrap_model(model)).__name__}. Pass mask_token_id=..., set "
            "model.generation_config.mask_token_id, or load the model with hf_unmask.AutoDiffusionLM / "
            "enable_diffusion_generate(model, tokenizer=...) so it is read from the tokenizer."
        )
    return as_token_id("mask_token_id", mask_id, vocab_size)


def _eos_fill_id(
    *, config: DiffusionGenerationConfig, eos_ids: list[int], vocab_size: Any, given_pad_id: Any
) -> Optional[int]:
    """What `stop_at_eos` writes after a row's EOS (the pad id, else the first EOS id); None without it.
    `given_pad_id`: the `pad_token_id` the call passed (a config's own pad id is checked only under stop_at_eos)."""
    if config.stop_at_eos and not eos_ids:
        raise ValueError(
            "stop_at_eos=True needs an EOS token id: pass eos_token_id=... or set it in the model config."
        )
    # The pad id only fills the tail under stop_at_eos: a model config's unused pad id (e.g. -1) is not an error.
    pad_id = (
        as_token_id("pad_token_id", config.pad_token_id, vocab_size)
        if config.pad_token_id is not None and (given_pad_id is not None or config.stop_at_eos)
        else None
    )
    return (pad_id if pad_id is not None else eos_ids[0]) if config.stop_at_eos else None


def _block_layout(
    *,
    adapter: DiffusionAdapter,
    strategy: Any,
    config: DiffusionGenerationConfig,
    input_ids: torch.Tensor,
    attention_mask: Optional[torch.Tensor],
) -> tuple[BlockLayout, int]:
    """The blocks (counted from the first generated position, or aligned to each row's positions for a
    block-causal family) and the step budget of each."""
    device = input_ids.device
    if adapter.block_causal:
        B, P = input_ids.shape
        prompt_lengths = attention_mask.long().sum(-1) if attention_mask is not None else torch.full((B,), P)
        layout = BlockLayout.aligned(prompt_lengths.to(device), config.gen_length, config.effective_block_length)
    else:
        layout = BlockLayout.relative(config.gen_length, config.effective_block_length, device)
    remasks = bool(getattr(strategy, "remasks_decided_tokens", False))
    return layout, layout.step_budget(config.block_step_budget(remasks), config.max_steps)


def _initial_canvas(
    *,
    input_ids: torch.Tensor,
    attention_mask: Optional[torch.Tensor],
    token_type_ids: Optional[torch.Tensor],
    canvas_length: int,
    mask_id: int,
) -> tuple[torch.Tensor, Optional[torch.Tensor], Optional[torch.Tensor]]:
    """`[prompt | canvas_length x MASK]`, its attention mask (None when nothing is padded) and segment ids."""
    B, device = input_ids.shape[0], input_ids.device
    masks = torch.full((B, canvas_length), mask_id, dtype=torch.long, device=device)
    canvas = torch.cat([input_ids.long(), masks], dim=1)
    attn = None
    if attention_mask is not None and not bool(attention_mask.bool().all()):
        ones = torch.ones(B, canvas_length, dtype=torch.long, device=device)
        attn = torch.cat([attention_mask.long(), ones], dim=1)
    if token_type_ids is not None:
        token_type_ids = torch.cat([token_type_ids, token_type_ids[:, -1:].expand(B, canvas_length)], dim=1).long()
    return canvas, attn, token_type_ids
