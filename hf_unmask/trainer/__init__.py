"""Training learned unmasking policies with GRPO on TRL (needs the `[train]` extra).

`UnmaskingGRPOConfig(GRPOConfig)` and `UnmaskingGRPOTrainer(GRPOTrainer)` train a policy, the dLLM being a frozen
environment; `hf_unmask.trainer.script` is the TRL-style entry point of `hf-unmask train` and
`scripts/train_unmasking_policy.py`. Every name is imported on first use, so `import hf_unmask` (and this package)
loads no TRL.

Example:
    ```python
    >>> from hf_unmask.trainer import UnmaskingGRPOConfig
    >>> UnmaskingGRPOConfig(output_dir="out", gen_length=64, block_length=16).num_generations
    8
    ```
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "UnmaskingGRPOConfig": "config",
    "UnmaskingGRPOTrainer": "trainer",
    "load_environment_dllm": "setup",
    "load_dllm": "setup",  # deprecated: hf_unmask.models.load_dllm
    "StopOnInterrupt": "interrupt",
    "TrainingInterrupted": "interrupt",
    "DatasetSource": "data",
    "UnmaskingScriptArguments": "data",
    "load_prompts": "data",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
