"""The efficiency term of the paper's reward: the task reward combined with the NFE of the rollout."""

from __future__ import annotations

import torch

#: The two ways the task reward and the NFE are combined.
REWARD_FORMS = ("multiplicative", "additive")


def efficiency_reward(
    task_reward: torch.Tensor, nfe: torch.Tensor, gen_length: int, alpha: float, form: str = "multiplicative"
) -> torch.Tensor:
    """Combine the task reward `r` with the number of forward passes NFE of each rollout.

    `multiplicative`: `r * ((L - NFE + 1) / L) ** alpha` (the paper's reward); `additive`: `r - alpha * NFE / L`
    (reward-hacks early in training: the fastest of a group of wrong rollouts gets a positive advantage).

    Example:
        ```python
        >>> import torch
        >>> efficiency_reward(torch.tensor([1.0, 1.0, 0.0]), torch.tensor([4, 8, 4]), 8, alpha=1.0)
        tensor([0.6250, 0.1250, 0.0000])
        >>> efficiency_reward(torch.tensor([1.0, 0.0]), torch.tensor([4, 4]), 8, alpha=1.0, form="additive")
        tensor([ 0.5000, -0.5000])
        ```
    """
    nfe = nfe.to(task_reward.dtype)
    if form == "multiplicative":
        return task_reward * ((gen_length - nfe + 1) / gen_length) ** alpha
    if form == "additive":
        return task_reward - alpha * nfe / gen_length
    raise ValueError(f"Unknown reward form {form!r}; use one of {REWARD_FORMS}.")
