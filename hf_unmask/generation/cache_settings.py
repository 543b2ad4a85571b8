"""Whether and how generation caches keys and values: the one place that resolves and checks the cache settings.

Diffusion generation follows transformers' pattern: `use_cache` says whether to cache, `cache_implementation` how
(`CACHE_IMPLEMENTATIONS`, Fast-dLLM's two caches: `"prefix"` feeds the current block and everything after it at
each step, `"dual"` the current block only). `resolve_cache_implementation` turns a generation config into the
implementation to run (None: no cache) and checks that the model, the strategy and the inputs can use it; `generate`
calls it once per call, and the trainer calls the same checks on its rollout settings (`check_cache_implementation`,
`check_cache_support`) with its own flag names in the messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

from .adapter import unwrap_model

#: The values of `cache_implementation` (Fast-dLLM's prefix and dual caches).
CACHE_IMPLEMENTATIONS = ("prefix", "dual")
_WHAT_THEY_FEED = "'prefix' feeds the current block and what follows it at every step, 'dual' the current block only"


def check_cache_implementation(
    value: Any, name: str = "cache_implementation", spell: Optional[Callable[[str], str]] = None
) -> str:
    """`value` if it is one of `CACHE_IMPLEMENTATIONS`, else a `ValueError` naming `name` and the fix (`spell(v)` is
    how the caller's users write the setting `v`, by default `cache_implementation='v'`).

    Example:
        ```python
        >>> check_cache_implementation("dual")
        'dual'
        >>> check_cache_implementation("static")
        Traceback (most recent call last):
        ...
        ValueError: cache_implementation must be 'prefix' or 'dual', got 'static' (transformers' autoregressive ...
        ```
    """
    if isinstance(value, str) and value in CACHE_IMPLEMENTATIONS:
        return value
    spell = spell or (lambda v: f"cache_implementation={v!r}")
    choices = " or ".join(repr(v) for v in CACHE_IMPLEMENTATIONS)
    uses = " or ".join(spell(v) for v in CACHE_IMPLEMENTATIONS)
    hint = ""
    if isinstance(value, str):
        hint = " (transformers' autoregressive caches such as 'dynamic' or 'static' append keys; a diffusion cache "
        hint += "rewrites a window of the sequence)"
    raise ValueError(f"{name} must be {choices}, got {value!r}{hint}. Use {uses}: {_WHAT_THEY_FEED}.")


def check_cache_support(
    *,
    adapter: Any = None,
    strategy: Any = None,
    token_type_ids: Any = None,
    flag: str = "use_cache=True",
    drop: str = "use_cache=True",
) -> None:
    """A `ValueError` naming the fix when caching cannot run with what is given (each check runs when its argument
    is): a strategy that verifies decided tokens in a shadow block (WINO) or reads the dLLM's hidden states (class
    or instance), a model family without a diffusion cache (`adapter`), segment ids. `flag` and `drop` are how the
    caller's users turn caching on and off (`generate`: `use_cache=True`; the trainer: `--rollout_use_cache`)."""
    name = getattr(strategy, "__name__", None) or type(strategy).__name__
    if getattr(strategy, "requires_verification", False):
        raise ValueError(
            f"{flag} with {name}, which verifies decided tokens in a shadow block run in the same full forward as the "
            f"canvas (as the published algorithm, which has no cache). Drop {drop}."
        )
    if adapter is not None and not adapter.supports_cache:
        raise ValueError(
            f"{flag}, but {type(unwrap_model(adapter.model)).__name__} has no diffusion KV cache. The families that "
            "have one: LLaDA (hf_unmask.LLaDAModelLM), LLaDA-MoE, LLaDA2.x, Dream (hf_unmask.DreamModel), SDAR and "
            f"the built-in tiny dLLM, loaded with hf_unmask.AutoDiffusionLM. Drop {drop} for this model."
        )
    if getattr(strategy, "requires_hidden_states", False):
        raise ValueError(
            f"{flag} with {name}, which reads the dLLM's hidden states: generate cannot give the hidden states of a "
            f"cached forward pass (a cached step computes them for the fed window only). Drop {drop}, or use a "
            "strategy that reads confidences."
        )
    if token_type_ids is not None:
        raise ValueError(f"{flag} with token_type_ids: no cached family takes segment ids. Drop one of them.")


def resolve_cache_implementation(
    config: Any, *, adapter: Any = None, strategy: Any = None, token_type_ids: Any = None
) -> Optional[str]:
    """The cache implementation a generation `config` asks for (`config.cache_implementation` when
    `config.use_cache`), or None when it does not cache; checked against the model (`adapter`), the `strategy` and
    the `token_type_ids` when given (`check_cache_support`).

    Example:
        ```python
        >>> from hf_unmask import DiffusionGenerationConfig
        >>> resolve_cache_implementation(DiffusionGenerationConfig(cache_implementation="dual"))
        'dual'
        >>> print(resolve_cache_implementation(DiffusionGenerationConfig()))
        None
        ```
    """
    if not getattr(config, "use_cache", False):
        return None
    implementation = check_cache_implementation(getattr(config, "cache_implementation", None))
    check_cache_support(adapter=adapter, strategy=strategy, token_type_ids=token_type_ids)
    return implementation
