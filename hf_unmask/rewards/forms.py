"""The two forms of a reward function: TRL's batch form and the per-example form of a correctness function.

- batch (TRL's): `reward(prompts, completions, **columns) -> list[float | None]`, one value per completion; the
  dataset columns arrive as keyword arguments of the same length (`answer=[...]`), with TRL's extra keywords
  (`completion_ids`, `trainer_state`, `log_extra`, `log_metric`), so it must take `**kwargs`.
- per example: `is_correct(completion, reference) -> bool | float | None`, the function `--correctness` of
  `hf-unmask evaluate` takes. As a reward it is wrapped in `PerExampleReward`, which reads the reference from the
  `reference` column and calls it once per completion, with the completion's text.

`as_reward_function` tells them apart by the signature; `per_example_reward(f)` wraps explicitly.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, Optional

from ._utils import as_text, column

__all__ = ["PerExampleReward", "as_reward_function", "per_example_reward", "reward_form"]

#: Parameter names that mark TRL's batch form.
_BATCH_NAMES = frozenset({"prompts", "completions", "completion_ids"})
_FORMS_HELP = (
    "A reward is either TRL's batch form `reward(prompts, completions, **columns) -> list[float]` (one value per "
    "completion, dataset columns as keyword lists) or the per-example form of `hf-unmask evaluate --correctness`, "
    "`is_correct(completion, reference) -> bool | float` (two positional parameters; the reference is read from the "
    "`reference` column). Rename the batch form's parameters to `prompts, completions, **kwargs`, or wrap a "
    "per-example function with `hf_unmask.rewards.per_example_reward(f, reference_column=...)`."
)


def _name(func: Any) -> str:
    return getattr(func, "__name__", None) or type(func).__name__


def reward_form(func: Callable[..., Any]) -> str:
    """`"batch"` (TRL's form) or `"per_example"` (`(completion, reference)`), read from the signature of `func`.

    A reward that declares `required_columns`, names `prompts` / `completions` / `completion_ids`, or takes only
    `**kwargs` (and optional parameters) is batch; one with exactly two required positional parameters (others
    optional) is per example. Anything else is ambiguous: `ValueError` naming both forms. A callable without a
    readable signature (a C function) is taken as batch.

    Example:
        ```python
        >>> reward_form(lambda prompts, completions, **kwargs: [1.0] * len(completions))
        'batch'
        >>> reward_form(lambda completion, reference: completion.strip() == reference.strip())
        'per_example'
        ```
    """
    if isinstance(func, PerExampleReward) or hasattr(func, "required_columns"):
        return "batch"
    try:
        params = list(inspect.signature(func).parameters.values())
    except (TypeError, ValueError):  # no signature to read: TRL's convention
        return "batch"
    if any(p.name in _BATCH_NAMES for p in params):
        return "batch"
    positional = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    required = [p for p in params if p.default is inspect.Parameter.empty and p.kind in positional]
    required_kw = [p for p in params if p.default is inspect.Parameter.empty and p.kind is p.KEYWORD_ONLY]
    if len(required) == 2 and not required_kw:
        return "per_example"
    if not required and not required_kw and any(p.kind is p.VAR_KEYWORD for p in params):
        return "batch"
    shown = ", ".join(str(p) for p in params) or "no parameters"
    raise ValueError(f"Cannot tell which form the reward '{_name(func)}' ({shown}) has. {_FORMS_HELP}")


class PerExampleReward:
    """A per-example function `f(completion, reference) -> bool | float | None` as a TRL batch reward.

    Each completion's text (the assistant message's content for conversational prompts) is passed with the
    `reference_column` value of its row, as a string (as `hf-unmask evaluate` passes references); `True`/`False`
    become 1.0/0.0 and `None` stays `None` (TRL's "not applicable"). `function` is the wrapped function.

    Example:
        ```python
        >>> reward = PerExampleReward(lambda completion, reference: completion == reference)
        >>> reward(["q", "q"], ["4", "5"], reference=["4", "4"]), reward.required_columns
        ([1.0, 0.0], ('reference',))
        ```
    """

    def __init__(
        self, function: Callable[[str, str], Any], reference_column: str = "reference", name: Optional[str] = None
    ) -> None:
        if not callable(function):
            raise TypeError(f"PerExampleReward needs a function (completion, reference) -> bool, got {function!r}.")
        self.function = function
        self.reference_column = reference_column
        self.required_columns: tuple[str, ...] = (reference_column,)
        self.__name__ = name or _name(function)

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[Optional[float]]:
        references = column(columns, self.reference_column, len(completions), self.__name__)
        out: list[Optional[float]] = []
        for completion, reference in zip(completions, references):
            value = self.function(as_text(completion), str(reference))
            if value is not None and hasattr(value, "item"):  # a 0-d tensor / numpy scalar
                value = value.item()
            if value is not None and not isinstance(value, (bool, int, float)):
                raise TypeError(
                    f"Reward '{self.__name__}' returned {type(value).__name__} {value!r:.60}; a per-example reward "
                    "returns a bool or a number (or None)."
                )
            out.append(None if value is None else float(value))
        return out

    def __repr__(self) -> str:
        return f"PerExampleReward({self.__name__}, reference_column={self.reference_column!r})"


def per_example_reward(
    function: Callable[[str, str], Any], reference_column: str = "reference", name: Optional[str] = None
) -> PerExampleReward:
    """Wrap `function(completion, reference) -> bool | float` as a reward reading `reference_column` (see
    [`PerExampleReward`]); usable as a decorator.

    Example:
        ```python
        >>> @per_example_reward
        ... def same(completion, reference):
        ...     return completion == reference
        >>> same(["q"], ["4"], reference=["4"])
        [1.0]
        ```
    """
    return PerExampleReward(function, reference_column=reference_column, name=name)


def as_reward_function(func: Any) -> Any:
    """`func` as a TRL batch reward: unchanged when it has the batch form (or is a `torch.nn.Module` reward model),
    wrapped in `PerExampleReward` when it has the per-example form; `ValueError` naming both when unclear."""
    if hasattr(func, "forward") and hasattr(func, "parameters"):  # a reward model: TRL calls it on token ids
        return func
    return func if reward_form(func) == "batch" else PerExampleReward(func)
