"""Training code for hf_unmask: the GRPO trainer for unmasking policies, rewards, and TRL-style scripts.

`UnmaskingGRPOConfig` / `UnmaskingGRPOTrainer` are imported lazily (they import TRL), so `trainers.rewards` and
`trainers.train_tiny_dllm` stay light.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "UnmaskingGRPOConfig": "trainers.grpo_config",
    "UnmaskingGRPOTrainer": "trainers.grpo_trainer",
    "efficiency_reward": "trainers.grpo_trainer",
    "load_dllm": "trainers.grpo_trainer",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainers' has no attribute {name!r}")
