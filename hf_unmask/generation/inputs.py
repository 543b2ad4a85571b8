"""The arguments of `generate` as transformers users pass them, mapped onto `diffusion_generate`.

Every way in (the mixin of our own models, `enable_diffusion_generate` / `AutoDiffusionLM`, transformers'
`custom_generate` hook) goes through `normalize_generate_arguments`, so they accept the same calls:
`generate(ids)`, `generate(inputs=ids)`, `generate(input_ids=ids, attention_mask=...)`, `generate(**tokenizer(...))`
(its `token_type_ids` included) and `generate(**tokenizer.apply_chat_template(..., return_dict=True))`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: `transformers.GenerationMixin.generate`'s parameters after `self`, in positional order.
GENERATE_POSITIONAL = (
    "inputs",
    "generation_config",
    "logits_processor",
    "stopping_criteria",
    "prefix_allowed_tokens_fn",
    "synced_gpus",
    "assistant_model",
    "streamer",
    "negative_prompt_ids",
    "negative_prompt_attention_mask",
)

# Autoregressive features of transformers' generate (transformers' custom_generate hook always forwards them, as
# None); a real value is an error rather than silently ignored.
_AUTOREGRESSIVE_FEATURES = (
    "stopping_criteria",
    "prefix_allowed_tokens_fn",
    "assistant_model",
    "assistant_tokenizer",
    "negative_prompt_ids",
    "negative_prompt_attention_mask",
    "synced_gpus",
)
# Arguments that only steer how transformers dispatches the call.
_DISPATCH_ONLY = ("trust_remote_code", "use_model_defaults")


def _is_unset(value: Any) -> bool:
    return value is None or value is False or (isinstance(value, (list, tuple)) and len(value) == 0)


def normalize_generate_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for `diffusion_generate` from a `generate(*args, **kwargs)` call made the transformers way.

    Positional arguments follow transformers' order (`inputs`, `generation_config`, `logits_processor`, ...);
    `inputs` becomes `input_ids`; transformers' autoregressive-only features must be unset; `trust_remote_code` is
    dropped. Raises `TypeError` / `ValueError` naming the fix for anything else.

    Example:
        ```python
        >>> import torch
        >>> from hf_unmask.generation.inputs import normalize_generate_arguments
        >>> sorted(normalize_generate_arguments((torch.tensor([[5, 6]]),), {"max_new_tokens": 8}))
        ['input_ids', 'max_new_tokens']
        ```
    """
    kwargs = dict(kwargs)
    if len(args) > len(GENERATE_POSITIONAL):
        raise TypeError(
            f"generate() takes at most {len(GENERATE_POSITIONAL)} positional arguments ({', '.join(GENERATE_POSITIONAL)}), "
            f"got {len(args)}. Pass the rest by keyword, e.g. strategy=..., max_new_tokens=..."
        )
    for name, value in zip(GENERATE_POSITIONAL, args):
        if name in kwargs:
            raise TypeError(f"generate() got multiple values for argument '{name}'.")
        kwargs[name] = value
    if kwargs.get("custom_generate") is not None:
        raise ValueError(
            "This model already generates by diffusion (hf_unmask); drop custom_generate=... (it is for models whose "
            "generate is transformers' own)."
        )
    kwargs.pop("custom_generate", None)
    for name in _AUTOREGRESSIVE_FEATURES:
        value = kwargs.pop(name, None)
        if not _is_unset(value):
            raise ValueError(
                f"`{name}` is an autoregressive generation feature that diffusion generation does not support; "
                "drop it (stopping is controlled by max_new_tokens, stop_at_eos, the strategy and "
                "callback_on_step_end)."
            )
    for name in _DISPATCH_ONLY:
        kwargs.pop(name, None)
    if _is_unset(kwargs.get("logits_processor")):
        kwargs.pop("logits_processor", None)

    inputs = kwargs.pop("inputs", None)
    for name, value in (("inputs", inputs), ("input_ids", kwargs.get("input_ids"))):
        if isinstance(value, Mapping):
            raise TypeError(
                f"`{name}` is a {type(value).__name__} (the whole tokenizer output); generate takes its tensors as "
                "keyword arguments: model.generate(**batch, ...), or model.generate(batch['input_ids'], "
                "attention_mask=batch['attention_mask'], ...)."
            )
    if inputs is not None:
        if kwargs.get("input_ids") is not None:
            raise ValueError("Pass the prompt once: either `inputs` (or positionally) or `input_ids`, not both.")
        kwargs["input_ids"] = inputs
    if kwargs.get("inputs_embeds") is not None:
        raise ValueError(
            "inputs_embeds is not supported: diffusion generation writes token ids into a canvas of [MASK] ids after "
            "the prompt. Pass the prompt's input_ids instead."
        )
    kwargs.pop("inputs_embeds", None)
    return kwargs
