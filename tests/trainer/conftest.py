"""Fixtures of the trainer tests."""

from __future__ import annotations

import pytest
from grpo_toys import tiny_dllm


@pytest.fixture
def dllm():
    """A seeded random tiny dLLM and the built-in tokenizer (see tests/grpo_toys.py)."""
    return tiny_dllm()
