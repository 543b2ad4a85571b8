"""Reward specs (`"task:<name>"`, `"math"`, `"code"`, `"module:function"`) -> callables, and the checks the trainer
runs on rewards: the dataset columns they read and what they return."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

from .code import CodeReward
from .forms import as_reward_function
from .math import MathReward, math_reward
from .sandbox import require_code_opt_in
from .task import TaskReward

#: A reward function in TRL's form: `reward(prompts, completions, **columns) -> list[float]`.
RewardFunction = Callable[..., list]

__all__ = [
    "RewardFunction",
    "check_reward_columns",
    "check_reward_output",
    "get_reward_function",
    "get_reward_functions",
    "required_columns",
]

_BUILTIN_HELP = '"math", "code", "task:<name>" or "package.module:function"'


def _task_names() -> str:
    from hf_unmask.tasks import TASK_REGISTRY

    return ", ".join(sorted(TASK_REGISTRY)) or "(none registered)"


def get_reward_function(spec: Union[str, RewardFunction], **kwargs: Any) -> RewardFunction:
    """Resolve a reward spec to a reward callable.

    - `"task:<name>"`: [`TaskReward`] of a built-in task (`"task:program_trace"`);
    - `"math"`: [`MathReward`] on the `answer` column;
    - `"code"`: [`CodeReward`]; raises `PermissionError` right away unless code execution was opted in to;
    - `"package.module:attribute"`: a user reward function imported from a module; a class found there is
      instantiated with `kwargs`;
    - a callable.

    A user function (imported or given) may have TRL's batch form, `reward(prompts, completions, **columns) ->
    list[float]`, returned unchanged, or the per-example form `--correctness` of `hf-unmask evaluate` takes,
    `is_correct(completion, reference) -> bool | float`, wrapped in a `PerExampleReward` that reads the `reference`
    column (`hf_unmask.rewards.forms`: the form is read from the signature; an unclear one is a `ValueError`).

    `kwargs` go to the reward's constructor (e.g. `get_reward_function("code", timeout=3)`).

    Example:
        ```python
        >>> get_reward_function("task:program_trace").__name__
        'program_trace_reward'
        >>> get_reward_function("hf_unmask.rewards:math_reward").required_columns
        ('answer',)
        >>> get_reward_function("hf_unmask.rewards:answers_match")  # (completion, reference) -> bool
        PerExampleReward(answers_match, reference_column='reference')
        ```
    """
    if callable(spec) and not isinstance(spec, str):
        if kwargs:
            raise TypeError(f"Options {sorted(kwargs)} cannot be applied to an existing callable reward {spec!r}.")
        return as_reward_function(spec)
    if not isinstance(spec, str) or not spec.strip():
        raise TypeError(f"A reward spec must be a non-empty string ({_BUILTIN_HELP}) or a callable, got {spec!r}.")
    spec = spec.strip()
    if spec == "math":
        return MathReward(**kwargs) if kwargs else math_reward
    if spec == "code":
        reward = CodeReward(**kwargs)
        require_code_opt_in(reward.allow_code_execution)  # fail before any rollout, not after the first one
        return reward
    if spec.startswith("task:"):
        name = spec[len("task:") :].strip()
        if not name:
            raise ValueError(f"Reward spec {spec!r} names no task. Built-in tasks: {_task_names()}.")
        from hf_unmask.tasks import TASK_REGISTRY

        if name not in TASK_REGISTRY:
            raise ValueError(f"Reward spec {spec!r}: unknown task {name!r}. Built-in tasks: {_task_names()}.")
        return TaskReward(name, **kwargs)
    if ":" not in spec:
        raise ValueError(
            f"Unknown reward {spec!r}. Use {_BUILTIN_HELP}; built-in tasks: {_task_names()}. "
            "Rewards are named 'module:function', e.g. 'my_project.rewards:format_reward'."
        )
    return _import_reward(spec, **kwargs)


def _import_reward(spec: str, **kwargs: Any) -> RewardFunction:
    from hf_unmask._importing import import_object

    obj = import_object(spec, "reward")  # the current directory is importable, as for `hf-unmask evaluate`
    if isinstance(obj, type):
        obj = obj(**kwargs)
    elif kwargs:
        raise TypeError(f"Reward spec {spec!r} is a function; options {sorted(kwargs)} only apply to reward classes.")
    if not callable(obj):
        raise TypeError(f"Reward spec {spec!r} resolved to a {type(obj).__name__}, which is not callable.")
    return as_reward_function(obj)


def get_reward_functions(specs: Union[str, RewardFunction, Sequence[Union[str, RewardFunction]]]) -> list:
    """Resolve one spec, a comma-separated string of specs, or a list of specs (see [`get_reward_function`]).

    Example:
        ```python
        >>> [f.__name__ for f in get_reward_functions("math,task:program_trace")]
        ['math_reward', 'program_trace_reward']
        ```
    """
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    elif callable(specs):
        specs = [specs]
    return [get_reward_function(s) for s in specs]


def required_columns(reward: RewardFunction) -> tuple[str, ...]:
    """The dataset columns a reward declares it needs (`()` when it declares none)."""
    while hasattr(reward, "func") and not hasattr(reward, "required_columns"):  # functools.partial
        reward = reward.func
    return tuple(getattr(reward, "required_columns", ()))


def check_reward_columns(rewards: Sequence[RewardFunction], columns: Sequence[str]) -> None:
    """Raise a clear `ValueError` when a dataset lacks a column that one of the rewards needs.

    TRL passes every dataset column except `prompt` (given as `prompts`) to the reward functions.

    Example:
        ```python
        >>> check_reward_columns([math_reward], ["prompt", "answer"])
        >>> check_reward_columns([math_reward], ["prompt", "solution"])
        Traceback (most recent call last):
        ...
        ValueError: Reward 'math_reward' needs the dataset column(s) ['answer'], missing from the dataset (columns: ['prompt', 'solution']).
        ```
    """
    available = set(columns)
    for reward in rewards:
        missing = [c for c in required_columns(reward) if c not in available]
        if missing:
            name = getattr(reward, "__name__", type(reward).__name__)
            raise ValueError(
                f"Reward '{name}' needs the dataset column(s) {missing}, missing from the dataset "
                f"(columns: {sorted(available)})."
            )


def check_reward_output(
    values: Any,
    n: int,
    name: str = "reward",
    allow_none: bool = False,
    bounds: Optional[tuple[float, float]] = None,
) -> list[float]:
    """Validate what a reward function returned and convert it to a list of `n` floats.

    Raises `TypeError` when `values` is not a sequence or holds a non-number, and `ValueError` when it has the wrong
    length, a non-finite value, or (with `bounds=(low, high)`) a value outside the bounds. `None` entries (TRL's "not
    applicable") become NaN when `allow_none` (which also lets NaN through), and are an error otherwise. Tensors and arrays are accepted.

    Example:
        ```python
        >>> check_reward_output([1, 0.5, True], 3)
        [1.0, 0.5, 1.0]
        >>> check_reward_output([1.0], 2, name="math_reward")
        Traceback (most recent call last):
        ...
        ValueError: Reward 'math_reward' returned 1 value(s) for 2 completions; it must return exactly one number per completion.
        ```
    """
    if hasattr(values, "tolist") and not isinstance(values, (list, tuple)):
        values = values.tolist()
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, Sequence):
        raise TypeError(
            f"Reward '{name}' must return a list of {n} numbers (one per completion), got {type(values).__name__}."
        )
    if len(values) != n:
        raise ValueError(
            f"Reward '{name}' returned {len(values)} value(s) for {n} completions; it must return exactly one number "
            "per completion."
        )
    out: list[float] = []
    for i, value in enumerate(values):
        if value is None:
            if allow_none:
                out.append(math.nan)
                continue
            raise TypeError(
                f"Reward '{name}' returned None at index {i}; it must return a number for every completion."
            )
        if not isinstance(value, numbers.Real) and hasattr(value, "item"):  # 0-d tensor / numpy scalar
            try:
                value = value.item()
            except (ValueError, RuntimeError):
                pass
        if not isinstance(value, numbers.Real):
            shown = repr(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise TypeError(
                f"Reward '{name}' returned a non-number at index {i}: {shown} ({type(value).__name__}); "
                "rewards must be floats."
            )
        value = float(value)
        if math.isnan(value) and allow_none:
            out.append(value)
            continue
        if not math.isfinite(value):
            raise ValueError(f"Reward '{name}' returned a non-finite value at index {i}: {value}.")
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            raise ValueError(f"Reward '{name}' returned {value} at index {i}, outside [{bounds[0]}, {bounds[1]}].")
        out.append(value)
    return out
