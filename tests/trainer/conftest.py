"""Fixtures of the trainer tests."""

from __future__ import annotations

import pytest
from grpo_toys import tiny_dllm

from hf_unmask.trainer import rollouts as rollouts_module


@pytest.fixture
def dllm():
    """A seeded random tiny dLLM and the built-in tokenizer (see tests/grpo_toys.py)."""
    return tiny_dllm()


@pytest.fixture
def generate_calls(monkeypatch):
    """The keyword arguments of every rollout generate call (the calls still run)."""
    calls = []
    real = rollouts_module.diffusion_generate

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(rollouts_module, "diffusion_generate", recording)
    return calls
