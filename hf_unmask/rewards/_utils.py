"""Helpers shared by the reward functions: reading TRL's completions and the dataset columns it passes."""

from __future__ import annotations

import threading
from typing import Any

# Keyword arguments TRL's GRPOTrainer passes to reward functions besides the dataset columns.
TRL_EXTRA_KWARGS = frozenset({"completion_ids", "trainer_state", "log_extra", "log_metric", "environments"})


def as_text(item: Any, what: str = "completion") -> str:
    """Text of a standard (`str`) or conversational (`[{"role": ..., "content": ...}, ...]`) prompt/completion.

    For a conversation, the content of the last message is used (the assistant's answer in TRL's completions).

    Example:
        ```python
        >>> as_text([{"role": "user", "content": "q"}, {"role": "assistant", "content": "42"}])
        '42'
        ```
    """
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and "content" in item:
        return as_text(item["content"], what)
    if isinstance(item, (list, tuple)):
        if not item:
            return ""
        if all(isinstance(m, dict) and "content" in m for m in item):
            return as_text(item[-1]["content"], what)
        if all(isinstance(part, dict) and part.get("type") == "text" for part in item):  # multimodal content parts
            return "".join(part.get("text", "") for part in item)
    raise TypeError(
        f"Expected each {what} to be a string or a list of chat messages with 'content', got {type(item).__name__}."
    )


def column(columns: dict[str, Any], name: str, n: int, reward_name: str) -> list[Any]:
    """The `n` values of dataset column `name` that TRL passed to a reward; `KeyError` naming the column if absent."""
    if name not in columns:
        given = sorted(k for k in columns if k not in TRL_EXTRA_KWARGS)
        raise KeyError(
            f"Reward '{reward_name}' needs the dataset column '{name}', which was not passed. "
            f"Columns received: {given or '(none)'}."
        )
    values = list(columns[name])
    if len(values) != n:
        raise ValueError(f"Reward '{reward_name}': column '{name}' has {len(values)} values for {n} completions.")
    return values


def in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
