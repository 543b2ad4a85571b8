"""The benchmark scripts' baselines compute what the library computes (their loops give the same tokens), and the
training curves show every promised panel and a single logged point."""

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


def _training_curves():
    spec = importlib.util.spec_from_file_location("training_curves", BENCHMARKS / "training_curves.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("training_curves", module)
    spec.loader.exec_module(module)
    return module


def test_training_curves_show_every_panel_and_a_single_logged_point():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = _training_curves()
    one_row = [{"step": 1, "reward": 0.1, "correctness": 0.2, "nfe/mean": 15.0, "unmask_fraction": 0.12}]
    many = [dict(one_row[0], step=s, reward=0.01 * s) for s in range(1, 41)]
    fig = curves.curves_figure({"outputs/interrupted": one_row, "outputs/long": many})
    try:
        assert [ax.get_title() for ax in fig.axes] == ["reward", "correctness", "nfe/mean", "unmask_fraction"]
        for ax in fig.axes:
            single, long = ax.get_lines()
            assert len(single.get_xdata()) == 1 and single.get_marker() not in (None, "None", "", " ")
            assert single.get_markersize() > 0 and len(long.get_xdata()) == 40
    finally:
        plt.close(fig)
