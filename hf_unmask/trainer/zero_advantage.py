"""Optimiser steps without a learning signal are skipped.

When every advantage of an optimiser step is 0 (every group of rollouts got identical rewards, on every process),
the GRPO loss and its gradient are exactly 0, yet AdamW would still move the weights: its momentum keeps pushing in
the direction of earlier steps and weight decay shrinks them. The paper's trainer means to skip such steps. Here the
backward still runs (so DDP's gradient synchronisation sees every process), and the gradients are dropped just
before the optimiser step: AdamW leaves a parameter without a gradient, and its state, untouched. The learning-rate
schedule still advances, and the step is counted.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from transformers import TrainerCallback

__all__ = ["ZeroAdvantageSkip", "all_advantages_zero"]

#: Advantages below this in absolute value count as 0 (they are differences of equal float rewards otherwise).
ZERO_ADVANTAGE = 1e-6


def all_advantages_zero(advantages: torch.Tensor, gather: Callable[[torch.Tensor], torch.Tensor]) -> bool:
    """Whether every advantage of this micro-batch is 0 on every process (`gather` concatenates across processes,
    so every process reaches the same answer).

    Example:
        ```python
        >>> all_advantages_zero(torch.zeros(4), gather=lambda t: t)
        True
        >>> all_advantages_zero(torch.tensor([0.0, 0.5]), gather=lambda t: t)
        False
        ```
    """
    local = advantages.detach().abs().max() if advantages.numel() else advantages.new_zeros(())
    return bool(gather(local.float().reshape(1)).max() < ZERO_ADVANTAGE)


class ZeroAdvantageSkip(TrainerCallback):
    """Drops the policy's gradients before an optimiser step whose micro-batches all had zero advantages.

    The trainer calls `record(zero)` once per micro-batch (from `compute_loss`); the decision covers the whole
    gradient-accumulation window. `skipped` counts the optimiser steps skipped so far.

    Example:
        ```python
        >>> import torch
        >>> param = torch.nn.Parameter(torch.ones(2))
        >>> param.grad = torch.zeros(2)
        >>> skip = ZeroAdvantageSkip(lambda: [param])
        >>> skip.record(True)
        >>> skip.on_pre_optimizer_step(None, None, None)
        >>> param.grad is None, skip.skipped
        (True, 1)
        ```
    """

    def __init__(self, parameters: Callable[[], Any]) -> None:
        self._parameters = parameters
        self._window_zero: bool | None = None
        self.skipped = 0
        #: True for the last optimiser step when it was skipped (read by the trainer's metrics).
        self.last_skipped = False

    def record(self, zero: bool) -> None:
        """Note whether the current micro-batch had only zero advantages."""
        self._window_zero = zero if self._window_zero is None else (self._window_zero and zero)

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.last_skipped = bool(self._window_zero)
        self._window_zero = None
        if not self.last_skipped:
            return
        for param in self._parameters():
            param.grad = None
        self.skipped += 1
