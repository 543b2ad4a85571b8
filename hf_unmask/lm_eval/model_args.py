"""The `--model_args` of the `hf_unmask` lm-eval model: the accepted keys, their types, and the checks that run
before any model is loaded or any request generated.

lm-eval hands model arguments over as `key=value` pairs split at commas (`--model_args a=1,b=2`) and converts each
value itself (`true` -> True, `16` -> 16, `0.9` -> 0.9, anything else a string). A comma therefore always ends a
value, so a strategy spec goes in with one value per knob and `:` between knobs:
`strategy=confidence_threshold:threshold=0.9` or `strategy=top_k_confidence:steps=16`.
"""

from __future__ import annotations

import numbers
import os
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch

from .._warnings import warn_at_caller, warn_deprecated
from ..evaluation.distributed import DistributedContext
from ..generation.cache_settings import check_cache_implementation

__all__ = ["MODEL_ARGS", "ModelArgumentError", "ModelSettings", "parse_model_args", "parse_strategy"]


class ModelArgumentError(ValueError):
    """A model argument (or a request's generation setting) the `hf_unmask` lm-eval model cannot run with; the
    message names the problem and the fix. Raised before anything is generated."""


#: Every model argument, with what it sets.
MODEL_ARGS: dict[str, str] = {
    "pretrained": "the dLLM: a Hub id, a local folder, or a built-in name (tiny-dllm, builtin, builtin:NAME)",
    "tokenizer": "tokenizer folder or Hub id (default: the model's own)",
    "peft_adapter": "folder or Hub id of a PEFT adapter put on top of the dLLM",
    "dtype": "float32, bfloat16, float16 or auto (as saved)",
    "device": "cuda, cuda:N, cpu (default: cuda when available; one device per process under a launcher)",
    "trust_remote_code": "run modeling code the checkpoint ships (never needed for LLaDA, Dream, the built-in)",
    "strategy": "unmasking strategy spec with one value per knob, e.g. confidence_threshold:threshold=0.9 or a "
    "learned policy name / folder / Hub id (default: the model's default strategy)",
    "max_new_tokens": "L, generated positions per prompt (default: each request's max_gen_toks, rounded up to a "
    "multiple of block_length)",
    "block_length": "BL, semi-autoregressive block length (default: the model's generation config's; none: L)",
    "steps": "total denoising steps of fixed-count strategies (generation config)",
    "max_steps": "cap on forward passes per row (generation config)",
    "use_cache": "reuse keys and values across the steps of a block (Fast-dLLM cache)",
    "cache_implementation": "prefix or dual (Fast-dLLM's two caches); given without use_cache it turns caching on",
    "cache_mode": "deprecated name of cache_implementation (with use_cache)",
    "temperature": "token temperature for every request (default: the request's own; 0: greedy)",
    "top_k": "restrict the token choice to the k most likely",
    "top_p": "restrict the token choice to the nucleus p",
    "stop_at_eos": "a row whose first EOS has nothing masked before it stops taking forward passes",
    "batch_size": "prompts per generate call (also --batch_size; this one wins)",
    "max_batch_size": "accepted for lm-eval's --max_batch_size (no automatic batch size: give batch_size)",
    "mc_num": "Monte-Carlo samples per loglikelihood request (default 128)",
    "mc_batch_size": "Monte-Carlo samples per forward pass (default min(32, mc_num); must divide mc_num)",
    "check_greedy": "loglikelihood's is_greedy: decode the continuation greedily, one most-confident token per "
    "step (default false: is_greedy is always False)",
    "seed": "generation seed and loglikelihood mask seed (default 0)",
}


@dataclass
class ModelSettings:
    """The checked model arguments (see `MODEL_ARGS`).

    Example:
        ```python
        >>> settings = parse_model_args({"pretrained": "tiny-dllm", "max_new_tokens": "16", "use_cache": "true"})
        >>> settings.max_new_tokens, settings.use_cache, settings.batch_size
        (16, True, 1)
        ```
    """

    pretrained: Any
    tokenizer: Any = None
    peft_adapter: Optional[str] = None
    dtype: Optional[str] = None
    device: Optional[str] = None
    trust_remote_code: bool = False
    strategy: Any = None
    max_new_tokens: Optional[int] = None
    block_length: Optional[int] = None
    steps: Optional[int] = None
    max_steps: Optional[int] = None
    use_cache: Optional[bool] = None
    cache_implementation: Optional[str] = None
    temperature: Optional[float] = None
    top_k: Optional[int] = None
    top_p: Optional[float] = None
    stop_at_eos: Optional[bool] = None
    batch_size: int = 1
    max_batch_size: Optional[int] = None
    mc_num: int = 128
    mc_batch_size: Optional[int] = None
    check_greedy: bool = False
    seed: int = 0

    def generate_options(self) -> dict[str, Any]:
        """The `generate` keyword arguments these settings fix for every request (only those given)."""
        names = ("steps", "max_steps", "use_cache", "cache_implementation", "top_k", "top_p", "stop_at_eos")
        return {name: getattr(self, name) for name in names if getattr(self, name) is not None}


def _as_int(name: str, value: Any, minimum: int = 1, allow_none: bool = True) -> Optional[int]:
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
        if allow_none:
            return None
        raise ModelArgumentError(f"{name} must be an integer >= {minimum}, got None.")
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ModelArgumentError(f"{name} must be an integer >= {minimum}, got {value!r}. Pass e.g. {name}={minimum}.")
    return int(value)


def _as_float(name: str, value: Any) -> Optional[float]:
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    except (TypeError, ValueError):
        raise ModelArgumentError(f"{name} must be a number, got {value!r}.") from None


def _as_bool(name: str, value: Any) -> Optional[bool]:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ModelArgumentError(f"{name} must be true or false, got {value!r}.")


def _unknown_keys_error(unknown: list[str]) -> ModelArgumentError:
    valid = ", ".join(MODEL_ARGS)
    hint = ""
    if any("=" not in key and (key.replace(".", "").isdigit() or key == "") for key in unknown):
        hint = (
            " A comma in --model_args separates arguments, so a strategy spec with several values "
            "(top_k_confidence:steps=8,16) was cut at its comma: pass one value per knob, e.g. "
            "strategy=top_k_confidence:steps=16 (sweeps: hf-unmask evaluate)."
        )
    return ModelArgumentError(
        f"Unknown model argument(s) {', '.join(repr(k) for k in unknown)} for the hf_unmask lm-eval model. Valid "
        f"ones: {valid}.{hint}"
    )


def parse_strategy(value: Any) -> tuple[Any, Optional[str]]:
    """`(strategy object or None, its spec text)` from a spec with one value per knob, a learned policy's name /
    folder / Hub id, or a strategy object; `ModelArgumentError` for a spec that does not parse or sweeps.

    Example:
        ```python
        >>> parse_strategy("confidence_threshold:threshold=0.9")
        (ConfidenceThreshold(threshold=0.9), 'confidence_threshold:threshold=0.9')
        ```
    """
    from ..evaluation.specs import as_spec
    from ..strategies import UnmaskingStrategy

    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "default")):
        return None, None
    if isinstance(value, UnmaskingStrategy):
        return value, repr(value)
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if not isinstance(value, str):
        raise ModelArgumentError(
            f"strategy={value!r} is a {type(value).__name__}; give a spec such as "
            "strategy=confidence_threshold:threshold=0.9 (one value per knob)."
        )
    try:
        spec = as_spec(value)
        budgets = spec.budgets()
        if len(budgets) != 1:
            raise ModelArgumentError(
                f"strategy={value!r} sweeps {len(budgets)} settings, but an lm-eval run evaluates one. Pass one value "
                f"per knob, e.g. strategy={spec.strategy}:"
                + ":".join(f"{k}={v[0]}" for k, v in spec.grid.items())
                + " (run one lm-eval per value, or use `hf-unmask evaluate` for sweeps)."
            )
        return spec.build(budgets[0]), str(spec)
    except ModelArgumentError:
        raise
    except (ValueError, TypeError, OSError) as err:
        raise ModelArgumentError(
            f"strategy={value!r} cannot be used: {err} In --model_args, write NAME or NAME:KNOB=VALUE[:KNOB=VALUE] "
            "with one value per knob (a comma ends the value), e.g. strategy=confidence_threshold:threshold=0.9; "
            "`hf-unmask list` shows the names and their knobs."
        ) from err


def _cache_implementation(kwargs: dict[str, Any]) -> Optional[str]:
    """`cache_implementation` (or its deprecated name `cache_mode`, a `FutureWarning`), checked as generate checks
    it; None when neither is given."""
    value, name = kwargs.get("cache_implementation"), "cache_implementation"
    legacy = kwargs.get("cache_mode")
    if legacy is not None:
        warn_deprecated("The model argument cache_mode", "cache_implementation")
        if value is not None and value != legacy:
            raise ModelArgumentError(
                f"cache_implementation={value} and cache_mode={legacy} (its deprecated name) disagree: give "
                "cache_implementation only."
            )
        value, name = legacy, "cache_mode"
        if _as_bool("use_cache", kwargs.get("use_cache")) is not True:
            return None  # as before: cache_mode alone does not turn caching on
    if value is None:
        return None
    try:
        return check_cache_implementation(value, name=name, spell=lambda v: f"cache_implementation={v}")
    except ValueError as err:
        raise ModelArgumentError(str(err)) from None


def parse_model_args(kwargs: dict[str, Any]) -> ModelSettings:
    """Check every model argument and convert it to its type; `ModelArgumentError` names the first problem."""
    unknown = [key for key in kwargs if key not in MODEL_ARGS]
    if unknown:
        raise _unknown_keys_error(unknown)
    if kwargs.get("pretrained") in (None, ""):
        raise ModelArgumentError(
            "pretrained is required: --model_args pretrained=NAME with NAME a Hub id (GSAI-ML/LLaDA-8B-Instruct), a "
            "local folder, or a built-in dLLM (tiny-dllm)."
        )
    batch_size = kwargs.get("batch_size", 1)
    if isinstance(batch_size, str) and batch_size.lower().startswith("auto"):
        raise ModelArgumentError(
            f"batch_size={batch_size!r}: the hf_unmask model has no automatic batch size. Pass an integer, e.g. "
            "--batch_size 8."
        )
    settings = ModelSettings(
        pretrained=kwargs["pretrained"],
        tokenizer=kwargs.get("tokenizer"),
        peft_adapter=kwargs.get("peft_adapter"),
        dtype=kwargs.get("dtype"),
        device=kwargs.get("device"),
        trust_remote_code=bool(_as_bool("trust_remote_code", kwargs.get("trust_remote_code", False))),
        strategy=kwargs.get("strategy"),
        max_new_tokens=_as_int("max_new_tokens", kwargs.get("max_new_tokens")),
        block_length=_as_int("block_length", kwargs.get("block_length")),
        steps=_as_int("steps", kwargs.get("steps")),
        max_steps=_as_int("max_steps", kwargs.get("max_steps")),
        use_cache=_as_bool("use_cache", kwargs.get("use_cache")),
        cache_implementation=_cache_implementation(kwargs),
        temperature=_as_float("temperature", kwargs.get("temperature")),
        top_k=_as_int("top_k", kwargs.get("top_k")),
        top_p=_as_float("top_p", kwargs.get("top_p")),
        stop_at_eos=_as_bool("stop_at_eos", kwargs.get("stop_at_eos")),
        batch_size=_as_int("batch_size", batch_size, allow_none=False),  # type: ignore[arg-type]
        max_batch_size=_as_int("max_batch_size", kwargs.get("max_batch_size")),
        mc_num=_as_int("mc_num", kwargs.get("mc_num", 128), allow_none=False),  # type: ignore[arg-type]
        mc_batch_size=_as_int("mc_batch_size", kwargs.get("mc_batch_size")),
        check_greedy=bool(_as_bool("check_greedy", kwargs.get("check_greedy", False))),
        seed=_as_int("seed", kwargs.get("seed", 0), minimum=0, allow_none=False),  # type: ignore[arg-type]
    )
    if settings.mc_batch_size is None:
        settings.mc_batch_size = min(32, settings.mc_num)
    if settings.mc_num % settings.mc_batch_size != 0:
        raise ModelArgumentError(
            f"mc_batch_size={settings.mc_batch_size} does not divide mc_num={settings.mc_num}: each forward pass "
            f"holds mc_batch_size Monte-Carlo samples. Use e.g. mc_num={settings.mc_num // settings.mc_batch_size * settings.mc_batch_size or settings.mc_batch_size}."
        )
    if settings.use_cache is False and settings.cache_implementation is not None:
        raise ModelArgumentError(
            f"use_cache=false with cache_implementation={settings.cache_implementation}: drop use_cache=false to cache, "
            "or drop cache_implementation."
        )
    if settings.temperature is not None and settings.temperature < 0:
        raise ModelArgumentError(f"temperature must be >= 0 (0: greedy), got {settings.temperature}.")
    return settings


def resolve_pretrained(pretrained: Union[str, os.PathLike]) -> str:
    """The name `load_dllm` takes: a bare built-in name (`tiny-dllm`) becomes `builtin:tiny-dllm` unless a local
    folder of that name exists.

    Example:
        ```python
        >>> resolve_pretrained("tiny-dllm"), resolve_pretrained("builtin"), resolve_pretrained("org/model")
        ('builtin:tiny-dllm', 'builtin', 'org/model')
        ```
    """
    from ..models.tiny import list_builtin_models

    name = os.fspath(pretrained)
    if name in list_builtin_models() and not os.path.isdir(name):
        return f"builtin:{name}"
    return name


def resolve_device(device: Optional[str], distributed: DistributedContext) -> torch.device:
    """This process's device: under a launcher the rank's own (`cuda:LOCAL_RANK`, or the CPU without CUDA); else
    `device` as given (`None` / `"auto"`: CUDA when available). lm-eval's command line asks for `cuda:0` unless
    told otherwise: without CUDA that falls back to the CPU with a warning."""
    if distributed.world_size > 1:
        return distributed.device
    if device in (None, "auto"):
        device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        warn_at_caller(f"device {device!r} asked for, but CUDA is not available: running on the CPU.")
        resolved = torch.device("cpu")
    return resolved
