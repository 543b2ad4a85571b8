"""The benchmark scripts' baselines compute what the library computes: their loops give the same tokens."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

import hf_unmask
from hf_unmask.strategies import TopKConfidence

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name: str):
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec = importlib.util.spec_from_file_location(name, BENCHMARKS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCHMARKS))


@pytest.mark.parametrize("block_length", [4, 16])
def test_benchmark_loops_match_generate(block_length):
    overhead, breakdown = _load("generation_overhead"), _load("loop_cost_breakdown")
    model, _ = hf_unmask.load_builtin_model("tiny-dllm")
    mask_id = model.generation_config.mask_token_id
    prompt = torch.randint(8, model.config.vocab_size, (2, 6), generator=torch.Generator().manual_seed(0))
    L, steps = 16, 8
    ours = model.generate(prompt, max_new_tokens=L, block_length=block_length, strategy=TopKConfidence(steps=steps))
    for loop in (
        overhead.naive_llada_generate,
        breakdown.inline_with_guarantees,
        breakdown.inline_without_guarantees,
    ):
        assert torch.equal(loop(model, prompt, mask_id, L, block_length, steps), ours), loop.__name__
