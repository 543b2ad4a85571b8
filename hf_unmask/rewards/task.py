"""Rewards from the verifiers of hf_unmask's built-in tasks."""

from __future__ import annotations

from typing import Any

from ._utils import as_text, column


class TaskReward:
    """1.0 when a built-in task's verifier accepts the completion against the `reference` column, else 0.0.

    Args:
        task_name: A name in `hf_unmask.tasks.TASK_REGISTRY` (e.g. `"program_trace"`).
        reference_column: The dataset column holding the reference completion.

    Example:
        ```python
        >>> reward = TaskReward("program_trace")
        >>> ref = "y = 0 , c = 2 ; answer : 2"
        >>> reward(["trace : ..."] * 2, ["y = 0 , c = 2 ; answer : 2", "answer : 5"], reference=[ref, ref])
        [1.0, 0.0]
        >>> reward.__name__, reward.required_columns
        ('program_trace_reward', ('reference',))
        ```
    """

    def __init__(self, task_name: str, reference_column: str = "reference") -> None:
        from hf_unmask.tasks import get_task

        self.task_name = task_name
        self.task = get_task(task_name)  # clear ValueError listing the built-in tasks when unknown
        self.reference_column = reference_column
        self.required_columns: tuple[str, ...] = (reference_column,)
        self.__name__ = f"{task_name}_reward"

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        references = column(columns, self.reference_column, len(completions), self.__name__)
        return [
            1.0 if self.task.is_correct(as_text(c), as_text(r, "reference")) else 0.0
            for c, r in zip(completions, references)
        ]

    def __repr__(self) -> str:
        return f"TaskReward({self.task_name!r})"


def task_reward(task_name: str, reference_column: str = "reference") -> TaskReward:
    """The reward of a built-in task's verifier: `task.is_correct(completion, reference)` as 1.0 / 0.0.

    Example:
        ```python
        >>> reward = task_reward("program_trace")
        >>> reward(["p"], ["answer : 3"], reference=["x = 3 ; answer : 3"])
        [1.0]
        ```
    """
    return TaskReward(task_name, reference_column=reference_column)
