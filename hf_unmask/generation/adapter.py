"""Model adapters: what differs between dLLM families (mask id, logit alignment, attention format, specials).

Every family is a `DiffusionAdapter` subclass registered under the `model_type`s it serves. The generation loop
only talks to an adapter, never to a family's model directly.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple, Optional

import torch

from .._warnings import warn_deprecated
from .eos import eos_id_list
from .kv_cache import DiffusionKVCache

ADAPTER_REGISTRY: dict[str, type[DiffusionAdapter]] = {}


def register_adapter(*model_types: str) -> Callable[[type[DiffusionAdapter]], type[DiffusionAdapter]]:
    """Class decorator: serve `model_types` (the `config.model_type` strings) with this adapter.

    Example:
        ```python
        >>> from hf_unmask.models import DiffusionAdapter, register_adapter
        >>> @register_adapter("my_dllm")
        ... class MyAdapter(DiffusionAdapter):
        ...     default_mask_token_id = 3
        ```
    """

    def wrap(cls: type[DiffusionAdapter]) -> type[DiffusionAdapter]:
        for model_type in model_types:
            ADAPTER_REGISTRY[model_type] = cls
        cls.model_types = tuple(model_types)
        return cls

    return wrap


class LengthLimit(NamedTuple):
    """A length the model was trained (or checked) on, and where it was read, for messages: e.g.
    `LengthLimit(4096, "config.max_sequence_length")`."""

    positions: int
    source: str


def _accepted_mask_inputs(forward: Any) -> tuple[bool, bool]:
    """Whether `forward` takes `position_ids` and `attention_mask` (by name or through **kwargs)."""
    # An adapter is built at every generate call: remember the answer for a class's own forward (inspect costs
    # ~50 us). Other callables (an instance-level wrapper such as accelerate's) are inspected each time, so the
    # cache never holds on to a model.
    function = getattr(forward, "__func__", forward)
    if inspect.isfunction(function):
        return _accepted_mask_inputs_of_function(function)
    return _inspect_mask_inputs(function)


def _inspect_mask_inputs(function: Any) -> tuple[bool, bool]:
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):
        params = {}
    accepts_kwargs = any(p.kind == inspect.Parameter.VAR_KEYWORD for p in params.values())
    return "position_ids" in params or accepts_kwargs, "attention_mask" in params or accepts_kwargs


_accepted_mask_inputs_of_function = functools.lru_cache(maxsize=256)(_inspect_mask_inputs)


def _takes_cache_keyword(forward: Any) -> bool:
    """Whether `forward` takes the diffusion cache as `cache=` and not as transformers' `past_key_values=`."""
    function = getattr(forward, "__func__", forward)
    if inspect.isfunction(function):
        return _takes_cache_keyword_of_function(function)
    return _inspect_cache_keyword(function)


def _inspect_cache_keyword(function: Any) -> bool:
    try:
        params = inspect.signature(function).parameters
    except (TypeError, ValueError):
        return False
    return "cache" in params and "past_key_values" not in params


_takes_cache_keyword_of_function = functools.lru_cache(maxsize=256)(_inspect_cache_keyword)


class DiffusionAdapter:
    """Default behaviour: a bidirectional model called as `model(input_ids, attention_mask, position_ids)`
    whose `logits[:, i]` predict token i.

    Subclasses override class attributes or `model_inputs` / `align_logits`.
    """

    model_types: ClassVar[tuple[str, ...]] = ()
    #: Mask id used when neither the generation config, the model config nor the tokenizer names one.
    default_mask_token_id: ClassVar[Optional[int]] = None
    default_eos_token_ids: ClassVar[tuple[int, ...]] = ()
    #: Pad id used when no config names one (None: the generation loop then fills with the first EOS id).
    default_pad_token_id: ClassVar[Optional[int]] = None
    #: Ids that end an assistant turn in the family's chat template (LLaDA's `<|eot_id|>`, Dream's `<|im_end|>`):
    #: they count as EOS whenever the family's own EOS does, even when a config names only the latter.
    end_of_turn_token_ids: ClassVar[tuple[int, ...]] = ()
    #: Dream-style models predict token i from position i-1.
    shift_logits: ClassVar[bool] = False
    #: Block-diffusion families (LLaDA2.x, SDAR): attention is causal across blocks and bidirectional inside one,
    #: blocks are aligned to each row's positions, and the model's forward takes `block_length=`.
    block_causal: ClassVar[bool] = False
    #: The block size a block-causal family was trained with (the default `block_length` of `generate`).
    trained_block_length: ClassVar[Optional[int]] = None
    #: The family's model runs the verification forward of strategies with `requires_verification` (WINO): it
    #: honours a 4-D boolean attention mask and explicit position ids (see `generation/shadow_block.py`).
    supports_shadow_block: ClassVar[bool] = False
    #: Config fields that state the longest sequence (prompt + generated positions) the model was trained on, the
    #: first one set wins (transformers' max_position_embeddings, LLaDA's max_sequence_length, GPT-2's n_positions).
    sequence_length_fields: ClassVar[tuple[str, ...]] = (
        "max_position_embeddings",
        "max_sequence_length",
        "n_positions",
        "max_seq_len",
    )

    def __init__(self, model: Any) -> None:
        self.model = model
        # A PEFT wrapper's forward is `(*args, **kwargs)`: inspect the model it wraps.
        base = unwrap_model(model)
        forward = getattr(base, "forward", base)
        self._accepts_position_ids, self._accepts_attention_mask = _accepted_mask_inputs(forward)

    # ---- special tokens --------------------------------------------------------------------------------
    def _config_value(self, name: str) -> Any:
        for source in (getattr(self.model, "generation_config", None), getattr(self.model, "config", None)):
            value = getattr(source, name, None) if source is not None else None
            if value is not None:
                return value
        return None

    def mask_token_id(self) -> Optional[int]:
        value = self._config_value("mask_token_id")
        return int(value) if value is not None else self.default_mask_token_id

    def eos_token_ids(self) -> list[int]:
        value = self._config_value("eos_token_id")
        ids = list(self.default_eos_token_ids) if value is None else [int(v) for v in eos_id_list(value)]
        if any(e in ids for e in self.default_eos_token_ids):
            ids += [e for e in self.end_of_turn_token_ids if e not in ids]
        return ids

    def pad_token_id(self) -> Optional[int]:
        value = self._config_value("pad_token_id")
        return int(value) if value is not None else self.default_pad_token_id

    # ---- lengths the model was trained on -----------------------------------------------------------------
    def _config_length(self, name: str) -> Optional[LengthLimit]:
        """The model config's positive integer `name`, or None."""
        value = getattr(getattr(unwrap_model(self.model), "config", None), name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return LengthLimit(value, f"config.{name}")
        return None

    def trained_sequence_length(self) -> Optional[LengthLimit]:
        """The longest sequence (prompt + generated positions) the model was trained on, from the first of
        `sequence_length_fields` its config sets; None when unknown. `generate` warns beyond it."""
        for name in self.sequence_length_fields:
            limit = self._config_length(name)
            if limit is not None:
                return limit
        return None

    def trained_generation_length(self) -> Optional[LengthLimit]:
        """The longest L (generated positions) the model was trained to generate; None (the default) when the
        family does not say. `generate` warns beyond it unless `max_generation_length` allows more."""
        return None

    def max_generation_length(self) -> Optional[LengthLimit]:
        """The longest L the checkpoint was checked to generate correctly at (None: not stated, the default);
        when stated, `generate` warns only beyond it."""
        return None

    # ---- forward ---------------------------------------------------------------------------------------
    def model_inputs(self, input_ids: torch.Tensor, attention_mask: Optional[torch.Tensor]) -> dict[str, Any]:
        """Keyword arguments of the model call. Padded batches get an attention mask and position ids counted
        from each row's first real token, so a row gives the same result as when run alone."""
        inputs: dict[str, Any] = {"input_ids": input_ids}
        if attention_mask is not None:
            if self._accepts_attention_mask:
                inputs["attention_mask"] = attention_mask
            if self._accepts_position_ids:
                inputs["position_ids"] = (attention_mask.long().cumsum(-1) - 1).clamp_min(0)
        return inputs

    def align_logits(self, logits: torch.Tensor) -> torch.Tensor:
        if self.shift_logits:
            return torch.cat([logits[:, :1], logits[:, :-1]], dim=1)
        return logits

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        output_hidden_states: bool = False,
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Return `(logits [B, T, V] aligned so logits[:, i] predicts token i, last hidden states or None)`."""
        return self.forward_inputs(self.model_inputs(input_ids, attention_mask), output_hidden_states)

    def forward_inputs(
        self, inputs: dict[str, Any], output_hidden_states: bool = False
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """`forward` on keyword arguments already built by `model_inputs` (left unchanged, so the generation loop
        builds them once per call: the canvas is written in place and the mask and positions never change)."""
        out = self.model(**inputs, output_hidden_states=True) if output_hidden_states else self.model(**inputs)
        logits = out.logits if hasattr(out, "logits") else out[0]
        hidden = None
        if output_hidden_states:
            states = getattr(out, "hidden_states", None)
            if states is None:
                raise ValueError(
                    f"{type(self.model).__name__} returned no hidden_states; this strategy needs them. Use a model "
                    "whose forward supports output_hidden_states=True."
                )
            hidden = self.align_logits(states[-1])
        return self.align_logits(logits), hidden

    # ---- verification forward (shadow block) -------------------------------------------------------------
    @property
    def supports_verification(self) -> bool:
        """Whether this model can run the verification forward: its family declares `supports_shadow_block` and
        its forward takes `attention_mask` and `position_ids` (a model loaded from remote code may take neither)."""
        return self.supports_shadow_block and self._accepts_position_ids and self._accepts_attention_mask

    def verification_inputs(self, inputs: dict[str, Any], real: torch.Tensor, shadow_length: int) -> dict[str, Any]:
        """Family-specific keyword arguments of the verification forward, added to `inputs` (the `[canvas | shadow]`
        ids, positions and 4-D mask; `real` `[B, T]` bool marks the canvas's non-padding positions, the last
        `shadow_length` positions are the shadow block). Default: none."""
        return inputs

    def forward_verification(
        self, inputs: dict[str, Any], shadow_length: int, output_hidden_states: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, Optional[torch.Tensor]]:
        """One forward over `[canvas | shadow]`: `(aligned logits of the canvas [B, T, V], raw logits of the shadow
        block [B, shadow_length, V], aligned last hidden states of the canvas or None)`. The shadow logits are not
        shifted: the shadow block's positions already follow the family's alignment."""
        out = self.model(**inputs, output_hidden_states=True) if output_hidden_states else self.model(**inputs)
        logits = out.logits if hasattr(out, "logits") else out[0]
        length = logits.shape[1] - shadow_length
        hidden = None
        if output_hidden_states:
            states = getattr(out, "hidden_states", None)
            if states is None:
                raise ValueError(f"{type(self.model).__name__} returned no hidden_states; this strategy needs them.")
            hidden = self.align_logits(states[-1][:, :length])
        return self.align_logits(logits[:, :length]), logits[:, length:], hidden

    # ---- key/value cache ------------------------------------------------------------------------------------
    @property
    def supports_cache(self) -> bool:
        """Whether the model takes a `DiffusionKVCache` as `past_key_values` (its class sets
        `supports_diffusion_cache = True`: the native LLaDA, LLaDA-MoE, LLaDA2.x, Dream and SDAR and the built-in
        tiny dLLM)."""
        return bool(getattr(unwrap_model(self.model), "supports_diffusion_cache", False))

    @property
    def cache_margin(self) -> int:
        """Positions on each side of a cached step's window that are recomputed too, because the model mixes
        neighbouring positions before attention (the model's `diffusion_cache_margin`; 0 for pure attention)."""
        return int(getattr(unwrap_model(self.model), "diffusion_cache_margin", 0))

    def new_cache(self) -> Any:
        """A fresh `DiffusionKVCache` for one generate call."""
        return DiffusionKVCache()

    def forward_refresh(self, inputs: dict[str, Any], cache: Any) -> torch.Tensor:
        """A full forward that refreshes `cache` (passed as `past_key_values`, no `cache_position`); returns the
        aligned logits of every position."""
        out = self._cached_forward(inputs, cache, None)
        return self.align_logits(out.logits if hasattr(out, "logits") else out[0])

    def forward_window(
        self, inputs: dict[str, Any], cache: Any, start: int, end: int, rows: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Raw (unaligned) logits `[B, end - start, V]` of the canvas positions `[start, end)` fed against `cache`
        (`inputs` are the whole canvas's, as built by `model_inputs`; the mask keeps covering every position). The
        model gets `past_key_values=cache` and `cache_position=torch.arange(start, end)`. With `rows` (a sorted long
        tensor), `inputs` hold only those rows of the cached batch: the others' cached states are left as they are."""
        window = dict(inputs)
        for key in ("input_ids", "position_ids", "token_type_ids"):
            value = inputs.get(key)
            if isinstance(value, torch.Tensor) and value.dim() == 2:
                window[key] = value[:, start:end]
        out = self._cached_forward(window, cache.select_rows(rows), (start, end))
        return out.logits if hasattr(out, "logits") else out[0]

    def _cached_forward(self, inputs: dict[str, Any], cache: Any, window: Optional[tuple[int, int]]) -> Any:
        """The model call against `cache`: a refresh (`window` None) or the positions `window` fed. A model whose
        forward still takes the cache as `cache=` (the convention before transformers' names) reads the window from
        the cache, set here; deprecated."""
        if not _takes_cache_keyword(getattr(unwrap_model(self.model), "forward", None)):
            positions = None if window is None else torch.arange(*window)
            return self.model(**inputs, past_key_values=cache, cache_position=positions)
        if window is None:
            warn_deprecated(
                f"{type(unwrap_model(self.model)).__name__}.forward taking the diffusion cache as cache=",
                "past_key_values= and cache_position= (the positions fed), transformers' names",
            )
        cache._legacy_window = window
        return self.model(**inputs, cache=cache)


@register_adapter("masked_lm")
class MaskedLMAdapter(DiffusionAdapter):
    """Any transformers masked LM (BERT, RoBERTa, ModernBERT, ...): the mask id comes from the config, the
    generation config, or the tokenizer given to `enable_diffusion_generate` / `AutoDiffusionLM`."""


def resolve_adapter_class(model: Any) -> type[DiffusionAdapter]:
    """Pick the adapter class for `model` from `config.model_type` (unwrapping PEFT models first)."""
    base = unwrap_model(model)
    explicit = getattr(base, "diffusion_adapter_class", None)
    if explicit is not None:
        return explicit
    model_type = getattr(getattr(base, "config", None), "model_type", None)
    if model_type in ADAPTER_REGISTRY:
        return ADAPTER_REGISTRY[model_type]
    if type(base).__name__.endswith("ForMaskedLM"):
        return MaskedLMAdapter
    supported = ", ".join(sorted(ADAPTER_REGISTRY))
    raise ValueError(
        f"Unsupported model type {model_type!r} ({type(base).__name__}). Supported model types: {supported}, and any "
        "*ForMaskedLM model. To add a family, subclass hf_unmask.models.DiffusionAdapter and decorate it with "
        f"@register_adapter({model_type!r}), or pass adapter=YourAdapter to generate / enable_diffusion_generate."
    )


def unwrap_model(model: Any) -> Any:
    """The underlying transformers model of a PEFT wrapper (or the model itself)."""
    get_base = getattr(model, "get_base_model", None)
    return get_base() if callable(get_base) else model


def model_device(model: Any) -> torch.device:
    """The device of the model's parameters (of the model a PEFT wrapper holds; CPU for a model without any)."""
    device = getattr(model, "device", None)
    if isinstance(device, torch.device):
        return device
    try:
        return next(unwrap_model(model).parameters()).device
    except (StopIteration, AttributeError, TypeError):
        return torch.device("cpu")


def get_adapter(model: Any, adapter: Optional[type[DiffusionAdapter] | DiffusionAdapter] = None) -> DiffusionAdapter:
    """Instantiate the adapter for `model` (the PEFT wrapper is kept, so LoRA layers run)."""
    if isinstance(adapter, DiffusionAdapter):
        return adapter
    cls = adapter if adapter is not None else resolve_adapter_class(model)
    if not (isinstance(cls, type) and issubclass(cls, DiffusionAdapter)):
        raise TypeError(f"adapter must be a DiffusionAdapter subclass or instance, got {cls!r}.")
    return cls(model)
