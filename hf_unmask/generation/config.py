"""`DiffusionGenerationConfig`: the knobs of diffusion generation, saved as `generation_config.json`."""

from __future__ import annotations

import copy
import functools
import math
import numbers
from typing import Any, Optional

from transformers import GenerationConfig

from .._warnings import warn_at_caller, warn_deprecated
from .adapter import unwrap_model
from .cache_settings import CACHE_IMPLEMENTATIONS, check_cache_implementation

# Fields this subclass adds to `transformers.GenerationConfig`, with their defaults.
DIFFUSION_DEFAULTS: dict[str, Any] = {
    "block_length": None,
    "steps": None,
    "max_steps": None,
    "mask_token_id": None,
    "stop_at_eos": False,
    "progress_fallback": True,
    "finish_blocks": True,
    "output_trajectory": False,
    "output_history": False,
    "drop_finished_rows": True,
}
#: How generation caches when `use_cache` is on and no `cache_implementation` is given (see `cache_settings.py`).
DEFAULT_CACHE_IMPLEMENTATION = CACHE_IMPLEMENTATIONS[0]
# The key a saved file holds `cache_implementation` under: transformers' GenerationConfig refuses, when it loads a
# generation_config.json, any `cache_implementation` outside its own (autoregressive) caches, so ours travels under
# its own key and the file stays loadable by plain transformers. Files saved before held `cache_mode`.
SAVED_CACHE_KEY = "diffusion_cache_implementation"
_LEGACY_CACHE_KEY = "cache_mode"
# The fields every file saved from a DiffusionGenerationConfig holds (files saved before `drop_finished_rows` and
# `finish_blocks` existed lack those): their presence tells our files from other projects' generation_config.json.
_SAVED_BY_US_MARKERS = (
    "block_length",
    "steps",
    "max_steps",
    "mask_token_id",
    "stop_at_eos",
    "progress_fallback",
    "output_trajectory",
    "output_history",
)

# Integer fields checked by `validate`, with an example value for the error message.
_INTEGER_FIELDS: dict[str, int] = {"max_new_tokens": 64, "block_length": 16, "steps": 32, "max_steps": 32, "top_k": 50}


def check_temperature(value: Any) -> None:
    """`None`, 0 (greedy) or a finite positive number; `TypeError` / `ValueError` naming the fix otherwise.

    Example:
        ```python
        >>> from hf_unmask.generation.config import check_temperature
        >>> check_temperature(0.7)
        >>> check_temperature(float("inf"))
        Traceback (most recent call last):
        ...
        ValueError: temperature must be a finite number >= 0 (0 or None: greedy), got inf. Pass e.g. temperature=0.7.
        ```
    """
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"temperature must be a number (0 or None: greedy), got {value!r} ({type(value).__name__}). "
            "Pass e.g. temperature=0.7."
        )
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"temperature must be a finite number >= 0 (0 or None: greedy), got {value!r}. Pass e.g. temperature=0.7."
        )


def _check_types(values: dict[str, Any]) -> None:
    """`TypeError` naming the fix for a field of the wrong type among `values` (checked before transformers'
    own validation, which fails on them with a bare comparison error)."""
    for name, example in _INTEGER_FIELDS.items():
        value = values.get(name)
        if value is None and name != "max_new_tokens":
            continue
        if name not in values:
            continue
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(
                f"{name} must be an integer, got {value!r} ({type(value).__name__}). Pass e.g. {name}={example}"
                + (" or None." if name != "max_new_tokens" else ".")
            )
    top_p = values.get("top_p")
    if top_p is not None and (isinstance(top_p, bool) or not isinstance(top_p, numbers.Real)):
        raise TypeError(f"top_p must be a number in (0, 1] or None, got {top_p!r}. Pass e.g. top_p=0.9.")
    check_temperature(values.get("temperature"))


def _take_cache_arguments(kwargs: dict[str, Any]) -> None:
    """Bring the cache arguments among `kwargs` (a constructor's or `update`'s, changed in place) to
    `cache_implementation`: `cache_mode` is its deprecated name (a `FutureWarning`; it keeps its old meaning and does
    not turn caching on); `cache_implementation` given without `use_cache` turns caching on, as in transformers, and
    with `use_cache=False` is an error naming both; a saved file's `diffusion_cache_implementation` is taken as it
    is."""
    saved = kwargs.pop(SAVED_CACHE_KEY, None)
    given = kwargs.get("cache_implementation")
    if kwargs.get(_LEGACY_CACHE_KEY) is not None:
        warn_deprecated("cache_mode", "cache_implementation")
        legacy = check_cache_implementation(kwargs.pop(_LEGACY_CACHE_KEY), name="cache_mode")
        if given is not None and given != legacy:
            raise ValueError(
                f"Conflicting arguments: cache_implementation={given!r} and cache_mode={legacy!r} (its deprecated "
                "name). Pass cache_implementation only."
            )
        kwargs["cache_implementation"] = legacy
    elif given is not None:
        check_cache_implementation(given)
        if "use_cache" not in kwargs:
            kwargs["use_cache"] = True
        elif kwargs["use_cache"] is False:
            raise ValueError(
                f"Conflicting arguments: use_cache=False with cache_implementation={given!r}. Drop use_cache=False to "
                f"cache with {given!r}, or drop cache_implementation to generate without a cache."
            )
    kwargs.pop(_LEGACY_CACHE_KEY, None)
    if kwargs.get("cache_implementation") is None:
        kwargs.pop("cache_implementation", None)
        if saved is not None:
            kwargs["cache_implementation"] = saved


class DiffusionGenerationConfig(GenerationConfig):
    """Generation settings for masked diffusion LMs.

    It is a `transformers.GenerationConfig`, so it saves to and loads from `generation_config.json`
    and any field can be overridden by a keyword argument of `generate`.

    Args:
        max_new_tokens (`int`): L, the number of generated positions (all `[MASK]` at the start).
        block_length (`int`, *optional*): BL, tokens per semi-autoregressive block, decoded left to right.
            Must divide `max_new_tokens`. `None` (default) or `max_new_tokens` means full diffusion (one block); on a
            block-diffusion model (LLaDA2.x, SDAR) `None` means the block size it was trained with.
        steps (`int`, *optional*): total number of denoising steps for fixed-count strategies
            (top-k confidence, random...), split evenly over the blocks as LLaDA does. Defaults to L
            (one token per step). Adaptive strategies (thresholds, learned policies) ignore it.
        max_steps (`int`, *optional*): hard cap on forward passes per row. The loop unmasks extra
            (most confident) positions when needed so that generation always ends within it.
            Defaults to L. Must be a multiple of the number of blocks. A block gets at most BL of them, except with
            a strategy that re-masks decided tokens (WINO, ReMDM, a re-masking policy): it may spend up to
            `max_steps` / number of blocks forward passes per block, so `max_steps` > L buys re-masking time.
        temperature (`float`, *optional*): 0 or `None` is greedy (argmax) token choice; > 0 draws tokens by
            Gumbel-max in float64 as LLaDA does (`do_sample` is then set for you). Negative, NaN and inf are refused.
        do_sample (`bool`, *optional*): as in transformers: `True` samples tokens at `temperature` (1.0 when
            unset); `False` is greedy even when a temperature is set (with a warning).
        top_k, top_p: restrict the token choice, as in transformers.
        mask_token_id (`int`, *optional*): id of `[MASK]`; taken from the model adapter when unset.
        stop_at_eos (`bool`): a row whose first decided EOS has nothing masked before it is finished: its
            still-masked positions after that EOS (later blocks too) get `pad_token_id` (else EOS) in the same step
            and it takes no more forward passes. Tokens already decided after the EOS are kept.
        progress_fallback (`bool`): when a live row's strategy selects nothing, unmask its most confident
            eligible position (default). Trainers turn it off so an empty action costs a step.
        finish_blocks (`bool`): every block is decided within its step budget (`max_steps` / number of blocks, BL by
            default): a row that falls behind gets its most confident eligible positions unmasked so that it
            finishes in time (default). `False` is the paper's training environment: a block simply ends after its
            budget of steps, and what is still `[MASK]` stays `[MASK]` in the output (an incomplete answer).
        output_trajectory (`bool`): record per step what a learned policy is trained on.
        output_history (`bool`): record the canvas after every step.
        use_cache (`bool`): reuse keys and values across the steps of a block (Fast-dLLM's KV cache; off by
            default). Needs a model that supports it (the native LLaDA, LLaDA-MoE, LLaDA2.x, Dream and SDAR, the
            built-in tiny dLLM).
        cache_implementation (`str`): how `use_cache` caches, `"prefix"` (default: each step feeds the current block
            and everything after it; the prompt and finished blocks are cached) or `"dual"` (each step feeds the
            current block only; the positions after it are cached too). The cache is refreshed by a full forward at
            every block start. Given without `use_cache`, it turns caching on (as in transformers); with
            `use_cache=False` it is an error. `cache_mode` is its deprecated name (which does not turn caching on).
            Saved as `diffusion_cache_implementation` (transformers' own loader refuses other values of
            `cache_implementation` than its autoregressive caches).
        drop_finished_rows (`bool`): a row with nothing left to decide in the current block (done early, stopped at
            EOS or by the callback) leaves the model's forward batch until the next block (default). Results are the
            same either way; `False` feeds every row at every step (a fixed batch shape, e.g. for CUDA graphs).
        return_dict_in_generate (`bool`): return a `DiffusionGenerateOutput` instead of a tensor.

    Example:
        ```python
        >>> from hf_unmask import DiffusionGenerationConfig
        >>> config = DiffusionGenerationConfig(max_new_tokens=64, block_length=16, steps=32)
        >>> config.num_blocks
        4
        ```
    """

    def __init__(self, **kwargs: Any) -> None:
        _check_types(kwargs)
        if kwargs.get("temperature") not in (None, 0):  # a positive temperature asks for sampling
            kwargs.setdefault("do_sample", True)
        for name, default in DIFFUSION_DEFAULTS.items():
            setattr(self, name, kwargs.pop(name, default))
        _take_cache_arguments(kwargs)
        kwargs["cache_implementation"] = kwargs.get("cache_implementation") or DEFAULT_CACHE_IMPLEMENTATION
        kwargs.setdefault("max_new_tokens", 128)
        kwargs.setdefault("use_cache", False)  # transformers' default (True in some versions) is autoregressive
        super().__init__(**kwargs)
        self._sync_sampling_flags()

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], **kwargs: Any) -> Any:
        """transformers' `from_dict`; a file saved before `cache_implementation` holds `cache_mode`, read with the
        same meaning (saved data, so no deprecation warning)."""
        if _LEGACY_CACHE_KEY in config_dict:
            config_dict = dict(config_dict)
            config_dict.setdefault(SAVED_CACHE_KEY, config_dict.pop(_LEGACY_CACHE_KEY))
        return super().from_dict(config_dict, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """transformers' `to_dict`, with `cache_implementation` under `diffusion_cache_implementation` (the key
        transformers' own `GenerationConfig` loads without refusing it)."""
        output = super().to_dict()
        implementation = output.pop("cache_implementation", None)
        if implementation is not None:
            output[SAVED_CACHE_KEY] = implementation
        return output

    @property
    def cache_mode(self) -> Optional[str]:
        """Deprecated name of `cache_implementation`."""
        warn_deprecated("DiffusionGenerationConfig.cache_mode", "cache_implementation")
        return self.cache_implementation

    @cache_mode.setter
    def cache_mode(self, value: str) -> None:
        warn_deprecated("DiffusionGenerationConfig.cache_mode", "cache_implementation")
        self.cache_implementation = check_cache_implementation(value, name="cache_mode")

    def _sync_sampling_flags(self) -> None:
        # transformers only validates temperature/top-k/top-p together with `do_sample`; for diffusion a
        # positive temperature is what asks for sampling, so derive the flag instead of making users set both. An
        # explicit do_sample=False keeps greedy decoding, as in transformers.
        if self.temperature is not None and self.temperature == 0:
            self.temperature = None
        if self.temperature is not None and self.do_sample is None:
            self.do_sample = True

    def update(self, defaults_only: bool = False, allow_custom_entries: bool = False, **kwargs: Any) -> dict:
        _check_types(kwargs)
        _take_cache_arguments(kwargs)
        if "temperature" in kwargs:
            if kwargs["temperature"] is None or kwargs["temperature"] == 0:
                kwargs["temperature"] = None
                kwargs.setdefault("do_sample", False)
            else:
                kwargs.setdefault("do_sample", True)
        unused = super().update(defaults_only=defaults_only, allow_custom_entries=allow_custom_entries, **kwargs)
        self._sync_sampling_flags()
        return unused

    @property
    def sampling_temperature(self) -> Optional[float]:
        """The temperature tokens are drawn at, or None for greedy token choice. As in transformers, `do_sample`
        decides: True samples at `temperature` (1.0 when unset), False is greedy whatever the temperature.

        Example:
            ```python
            >>> from hf_unmask import DiffusionGenerationConfig
            >>> DiffusionGenerationConfig(temperature=0.7).sampling_temperature  # a temperature turns sampling on
            0.7
            >>> DiffusionGenerationConfig(do_sample=True).sampling_temperature
            1.0
            >>> DiffusionGenerationConfig().sampling_temperature is None  # greedy
            True
            ```
        """
        if not self.do_sample:
            return None
        return self.temperature if self.temperature is not None else 1.0

    @property
    def gen_length(self) -> int:
        return int(self.max_new_tokens)

    @property
    def effective_block_length(self) -> int:
        return int(self.block_length) if self.block_length is not None else int(self.max_new_tokens)

    @property
    def num_blocks(self) -> int:
        return self.gen_length // self.effective_block_length

    def validate(self, strict: bool = False, user_set_attributes: Optional[set[str]] = None) -> None:
        """transformers' checks of the standard fields, then the diffusion fields: `TypeError` for a value of the
        wrong type (`max_new_tokens="16"`, `block_length=2.5`), `ValueError` for a wrong value (`block_length` not
        dividing `max_new_tokens`, ...); both name the problem and the fix. Runs at construction, on `update` and
        before `save_pretrained` writes a file, so an invalid configuration is never saved.

        Example:
            ```python
            >>> from hf_unmask import DiffusionGenerationConfig
            >>> DiffusionGenerationConfig(max_new_tokens=16, block_length=5)
            Traceback (most recent call last):
            ...
            ValueError: block_length=5 does not divide max_new_tokens=16: ...
            ```
        """
        # transformers checks `cache_implementation` against its own autoregressive caches: ours are checked below
        implementation = getattr(self, "cache_implementation", None)
        self.cache_implementation = None
        try:
            super().validate(strict=strict, user_set_attributes=user_set_attributes)
        finally:
            self.cache_implementation = implementation
        _check_types(vars(self))
        for name in _INTEGER_FIELDS:
            if getattr(self, name) is not None:
                setattr(self, name, int(getattr(self, name)))  # numpy / torch integers become plain ints
        L = self.max_new_tokens
        if L <= 0:
            raise ValueError(f"max_new_tokens (L) must be a positive integer, got {L!r}. Pass e.g. max_new_tokens=64.")
        BL = check_block_length(self.block_length, L)
        nb = L // BL
        if self.steps is not None:
            if self.steps <= 0:
                raise ValueError(f"steps must be a positive integer, got {self.steps!r}.")
            if self.steps % nb != 0:
                raise ValueError(
                    f"steps={self.steps} is not a multiple of the number of blocks ({nb} = {L} / {BL}); "
                    f"LLaDA's schedule splits steps evenly over blocks. Use e.g. steps={max(nb, self.steps // nb * nb)}."
                )
            if self.steps > L:
                raise ValueError(
                    f"steps={self.steps} exceeds max_new_tokens={L}; at most one step per token. Use steps <= {L}."
                )
        if self.max_steps is not None:
            if self.max_steps < nb:
                raise ValueError(
                    f"max_steps must be an integer >= the number of blocks ({nb}), got {self.max_steps!r}."
                )
            if self.max_steps % nb != 0:
                raise ValueError(
                    f"max_steps={self.max_steps} must be a multiple of the number of blocks ({nb}) so each block gets "
                    f"the same step budget. Use e.g. max_steps={self.max_steps // nb * nb}."
                )
        if self.top_k is not None and self.top_k <= 0:
            raise ValueError(f"top_k must be a positive integer or None, got {self.top_k!r}.")
        if not isinstance(self.use_cache, (bool, type(None))):
            raise TypeError(f"use_cache must be True or False, got {self.use_cache!r}. Pass use_cache=True.")
        if not isinstance(self.drop_finished_rows, bool):
            raise TypeError(
                f"drop_finished_rows must be True or False, got {self.drop_finished_rows!r}. Pass "
                "drop_finished_rows=False to feed every row at every step."
            )
        for name in ("progress_fallback", "finish_blocks"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}.")
        check_cache_implementation(self.cache_implementation)
        if self.top_p is not None and not (0.0 < float(self.top_p) <= 1.0):
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}.")

    def block_step_budget(self, remasks: bool = False) -> int:
        """Forward passes a row may spend in one block: BL, or `max_steps` / num_blocks, at most BL unless the
        strategy re-masks decided tokens (`remasks`): a re-masked token has to be decided again."""
        BL = self.effective_block_length
        if self.max_steps is None:
            return BL
        per_block = self.max_steps // self.num_blocks
        return per_block if remasks else min(BL, per_block)


def check_block_length(
    block_length: Any,
    gen_length: int,
    name: str = "block_length",
    length_name: str = "max_new_tokens",
    full: str = "None",
) -> int:
    """The block length BL that `block_length` stands for (`None` = full diffusion, BL = L = `gen_length`), or a
    `ValueError` naming the problem and a block length that fits: BL must be a positive integer dividing L.

    `name`, `length_name` and `full` are how the caller's users spell the block length, L and full diffusion in
    their error message (e.g. `"--block-length"`, `"the generation length L"`, `"'full'"`).

    Example:
        ```python
        >>> check_block_length(8, 32), check_block_length(None, 32)
        (8, 32)
        >>> check_block_length(12, 32)
        Traceback (most recent call last):
        ...
        ValueError: block_length=12 does not divide max_new_tokens=32: blocks must tile the L generated positions.
        Use a divisor of 32 such as 8 (divisors: 1, 2, 4, 8, 16, 32), or None for full diffusion.
        ```
    """
    if block_length is None:
        return int(gen_length)
    if isinstance(block_length, bool) or not isinstance(block_length, numbers.Integral) or block_length <= 0:
        raise ValueError(f"{name} must be a positive integer or {full} (full diffusion), got {block_length!r}.")
    if gen_length % block_length != 0:
        divisors = [d for d in range(1, gen_length + 1) if gen_length % d == 0]
        closest = min(divisors, key=lambda d: (abs(d - block_length), d))
        raise ValueError(
            f"{name}={block_length} does not divide {length_name}={gen_length}: blocks must tile the L generated "
            f"positions. Use a divisor of {gen_length} such as {closest} (divisors: {', '.join(map(str, divisors))}), "
            f"or {full} for full diffusion."
        )
    return int(block_length)


# transformers arguments that make no sense for diffusion; passing one is an error rather than silently ignored.
_AUTOREGRESSIVE_ONLY = ("max_length", "min_length", "min_new_tokens", "num_beams", "num_return_sequences")
# Fields of a plain GenerationConfig that describe autoregressive decoding (a KV cache that appends); a
# checkpoint's generation_config.json does not switch diffusion caching on.
_NOT_FROM_PLAIN = ("transformers_version", "use_cache", "cache_implementation", "cache_config")
# transformers outputs that diffusion generation does not produce: asking for one is an error, not silently ignored.
_UNSUPPORTED_OUTPUTS = ("output_scores", "output_logits", "output_attentions", "output_hidden_states")


@functools.cache
def _plain_generation_defaults() -> dict[str, Any]:
    """The attributes of a default `transformers.GenerationConfig` (built once: it costs ~60 us, as much as a few
    steps of the loop on a small model)."""
    return dict(vars(GenerationConfig()))


def _from_plain_generation_config(generation_config: GenerationConfig) -> DiffusionGenerationConfig:
    """A `DiffusionGenerationConfig` from a plain one, e.g. a checkpoint's generation_config.json as transformers
    loads it. A file saved from a `DiffusionGenerationConfig` holds every diffusion field and is taken whole;
    any other may carry another project's diffusion keys with other meanings (Dream's `steps`, `alg`, `eps`...),
    so only transformers' standard fields and the mask id are kept."""
    defaults = _plain_generation_defaults()
    saved_by_us = all(hasattr(generation_config, name) for name in _SAVED_BY_US_MARKERS)
    values = {}
    for name, value in vars(generation_config).items():
        if name in DIFFUSION_DEFAULTS:
            if saved_by_us or (name == "mask_token_id" and value is not None):
                values[name] = value
        elif name == "use_cache" and saved_by_us:
            values[name] = value
        elif name in (SAVED_CACHE_KEY, _LEGACY_CACHE_KEY) and saved_by_us:
            values.setdefault(SAVED_CACHE_KEY, value)
        elif name in defaults and name not in _NOT_FROM_PLAIN and value != defaults[name]:
            values[name] = copy.deepcopy(value)
    if generation_config.max_new_tokens is None:
        values.pop("max_new_tokens", None)
    return DiffusionGenerationConfig(**values)


def resolve_generation_config(
    model: Any, generation_config: Optional[GenerationConfig], kwargs: dict[str, Any]
) -> DiffusionGenerationConfig:
    """Copy the given (or the model's) generation config as a `DiffusionGenerationConfig`, then apply kwargs."""
    check_temperature(kwargs.get("temperature"))
    for name in _AUTOREGRESSIVE_ONLY:
        if kwargs.get(name) is not None:
            raise ValueError(
                f"`{name}` is an autoregressive generation argument that diffusion generation does not use. "
                "Use max_new_tokens (L), block_length, steps or max_steps instead."
            )
        kwargs.pop(name, None)
    if generation_config is None:
        generation_config = getattr(unwrap_model(model), "generation_config", None)
    if generation_config is None:
        config = DiffusionGenerationConfig()
    elif isinstance(generation_config, DiffusionGenerationConfig):
        config = copy.deepcopy(generation_config)
    elif isinstance(generation_config, GenerationConfig):
        config = _from_plain_generation_config(generation_config)
    else:
        raise TypeError(f"generation_config must be a GenerationConfig, got {type(generation_config).__name__}.")
    unused = config.update(**kwargs)
    if unused:
        raise TypeError(
            f"generate() got unexpected arguments {sorted(unused)}. Valid ones are the fields of "
            "DiffusionGenerationConfig (max_new_tokens, block_length, steps, max_steps, temperature, top_k, top_p, "
            "mask_token_id, stop_at_eos, progress_fallback, finish_blocks, output_trajectory, output_history, "
            "use_cache, cache_implementation, drop_finished_rows, return_dict_in_generate, ...) plus strategy, "
            "streamer, logits_processor, generator and seed."
        )
    for name in _UNSUPPORTED_OUTPUTS:
        if getattr(config, name, None):
            raise ValueError(
                f"`{name}=True` is not supported by diffusion generation (transformers' per-token scores do not exist "
                "when many positions are decided per step). Read per-step logits, probabilities and confidences in "
                "callback_on_step_end (step.state.logits / .probs / .confidence), or record them with "
                "output_trajectory=True, return_dict_in_generate=True."
            )
    config.validate()
    if config.do_sample is False and config.temperature is not None:
        warn_at_caller(
            f"do_sample=False with temperature={config.temperature}: tokens are chosen greedily and the temperature "
            "is ignored (as in transformers). Pass do_sample=True to sample, or drop the temperature."
        )
    if (config.output_trajectory or config.output_history) and not config.return_dict_in_generate:
        raise ValueError(
            "output_trajectory/output_history need return_dict_in_generate=True (a bare tensor cannot carry them). "
            "Pass return_dict_in_generate=True."
        )
    return config
