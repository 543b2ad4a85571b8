"""The shipped long-buffer policy: loads offline by name, runs on tiny-dllm-long at L = 32, 64 and 128 in full
diffusion, and at its training L it repairs what the threshold heuristic gets wrong (early EOS)."""

from __future__ import annotations

import warnings

import pytest
import torch

import hf_unmask
from hf_unmask.strategies import ConfidencePolicy, ConfidenceThreshold, RemaskingPolicy, load_builtin_policy
from hf_unmask.tasks import get_task
from hf_unmask.tasks.evaluate import generate_completions

NAME = "tiny-dllm-long-trace_until-full-alpha1"


@pytest.fixture(scope="module")
def long_model():
    return hf_unmask.load_builtin_model("tiny-dllm-long")


@pytest.fixture(scope="module")
def rows():
    return list(get_task("trace_until").dataset(n_train=0, n_test=48, seed=0)["test"])


def accuracy(long_model, rows, strategy, gen_length):
    model, tokenizer = long_model
    torch.manual_seed(0)
    completions = generate_completions(
        model, tokenizer, [r["prompt"] for r in rows], strategy=strategy, max_new_tokens=gen_length,
        block_length=gen_length,
    )  # fmt: skip
    task = get_task("trace_until")
    return sum(task.is_correct(c, r["reference"]) for c, r in zip(completions, rows)) / len(rows)


def test_loads_offline_by_name_with_its_training_record(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    policy = load_builtin_policy(NAME)
    assert isinstance(policy, ConfidencePolicy) and policy.confidence_feature == "log_odds"
    record = policy.trained_for
    assert record["base_model"] == "builtin:tiny-dllm-long" and record["task"] == "trace_until"
    assert (record["gen_length"], record["block_length"], record["alpha"]) == (64, 64, 1.0)


def test_beats_the_threshold_heuristic_in_full_diffusion_at_its_training_length(long_model, rows):
    policy = load_builtin_policy(NAME)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # its own setting: no "trained for" warning
        learned = accuracy(long_model, rows, policy, 64)
    heuristic = accuracy(long_model, rows, ConfidenceThreshold(0.99), 64)
    assert learned >= 0.95 and learned >= heuristic + 0.05, (learned, heuristic)


@pytest.mark.parametrize("gen_length", [32, 128])
def test_runs_at_half_and_twice_its_training_length(long_model, rows, gen_length):
    policy = load_builtin_policy(NAME)
    with pytest.warns(UserWarning, match="gen_length"):
        value = accuracy(long_model, rows[:16], policy, gen_length)
    assert 0.0 <= value <= 1.0


def test_the_semi_ar_policy_loads_and_matches_the_best_semi_ar_heuristic(long_model, rows):
    policy = load_builtin_policy("tiny-dllm-long-trace_until-bl8-alpha1")
    assert (policy.trained_for["block_length"], policy.temperature) == (8, 0.5)
    model, tokenizer = long_model
    task = get_task("trace_until")
    scores = []
    for strategy in (policy, ConfidenceThreshold(0.99)):
        torch.manual_seed(0)
        completions = generate_completions(
            model, tokenizer, [r["prompt"] for r in rows], strategy=strategy, max_new_tokens=64, block_length=8
        )
        scores.append(sum(task.is_correct(c, r["reference"]) for c, r in zip(completions, rows)) / len(rows))
    assert scores[0] >= 0.95 and scores[0] >= scores[1] - 0.03, scores


REMASK = "tiny-dllm-long-trace_until-full-remask"


def test_the_remasking_policy_loads_offline_by_name_and_re_masks(long_model, rows, monkeypatch):
    """The shipped re-masking policy: a RemaskingPolicy warm-started from the commit-only one, which re-masks on this
    task and stays as accurate as the threshold heuristic cannot (48 test examples, full diffusion, L = 64)."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    policy = load_builtin_policy(REMASK)
    assert isinstance(policy, RemaskingPolicy) and policy.remasks_decided_tokens
    assert policy.trained_for["initialized_from"] == NAME and policy.trained_for["block_length"] == 64
    model, tokenizer = long_model
    ids = tokenizer([r["prompt"] for r in rows[:16]], return_tensors="pt", padding=True, padding_side="left")
    out = model.generate(**ids, strategy=policy, max_new_tokens=64, seed=0, output_trajectory=True,
                         return_dict_in_generate=True)  # fmt: skip
    assert bool(out.trajectory.remasked.any())  # it does take tokens back
    learned = accuracy(long_model, rows, policy, 64)
    heuristic = accuracy(long_model, rows, ConfidenceThreshold(0.99), 64)
    assert learned >= 0.9 and learned >= heuristic + 0.03, (learned, heuristic)
