"""The long-buffer built-in dLLM `tiny-dllm-long`: loads offline by name, generates at twice its longest training L,
and shows the failure the learned policies are for (full diffusion decodes the EOS tail first and cuts answers
short, where semi-AR decoding does not)."""

from __future__ import annotations

import warnings

import pytest
import torch

import hf_unmask
from benchmarks.regime import decision_steps_recorder
from hf_unmask.models.tiny import builtin_model_path
from hf_unmask.strategies import ConfidenceThreshold
from hf_unmask.tasks import get_task
from hf_unmask.tasks.evaluate import generate_completions

NAME = "tiny-dllm-long"


@pytest.fixture(scope="module")
def long_model():
    return hf_unmask.load_builtin_model(NAME)


@pytest.fixture(scope="module")
def rows():
    return list(get_task("trace_until").dataset(n_train=0, n_test=16, seed=0)["test"])


def test_loads_offline_by_name_with_its_long_buffer_settings(long_model, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model, tokenizer = long_model
    assert NAME in hf_unmask.list_builtin_models()
    config = model.config
    assert config.trained_gen_length == 64 and config.max_gen_length == 128
    assert config.max_position_embeddings >= 29 + 128  # the longest prompt plus twice the training L
    assert model.generation_config.max_new_tokens == 64 and model.generation_config.block_length == 8
    assert tokenizer.convert_tokens_to_ids("until") != tokenizer.unk_token_id
    folder = builtin_model_path(NAME)
    assert (folder / "README.md").is_file()
    assert (folder / "model.safetensors").stat().st_size <= 10 * 2**20


@pytest.mark.parametrize("gen_length", [64, 128])
def test_generates_correct_answers_up_to_twice_its_training_length(long_model, rows, gen_length):
    model, tokenizer = long_model
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "beyond its training length" warning up to max_gen_length
        completions = generate_completions(
            model, tokenizer, [r["prompt"] for r in rows], strategy=ConfidenceThreshold(0.99),
            max_new_tokens=gen_length, block_length=8,
        )  # fmt: skip
    task = get_task("trace_until")
    accuracy = sum(task.is_correct(c, r["reference"]) for c, r in zip(completions, rows)) / len(rows)
    assert accuracy >= 0.8, (gen_length, accuracy, completions[:3])
    with pytest.warns(UserWarning, match="max_gen_length"):
        model.generate(tokenizer(rows[0]["prompt"], return_tensors="pt").input_ids, max_new_tokens=136,
                       block_length=8, steps=17)  # fmt: skip


def test_full_diffusion_fills_the_eos_tail_first(long_model, rows):
    """The long-buffer regime: with the whole buffer open, confidence decodes right to left (the EOS tail first)."""
    model, tokenizer = long_model
    batch = tokenizer([r["prompt"] for r in rows], return_tensors="pt", padding=True)
    steps, callback = decision_steps_recorder(len(rows), 64)
    model.generate(**batch, max_new_tokens=64, block_length=64, strategy=ConfidenceThreshold(0.9),
                   callback_on_step_end=callback)  # fmt: skip
    first_step = steps == steps.min(dim=1, keepdim=True).values
    # the first step decides tail positions (past the longest possible answer, 28 tokens) in every row, and most
    # of what it decides lies there
    assert bool(first_step[:, 28:].any(dim=1).all())
    tail_share = first_step[:, 28:].sum() / first_step.sum()
    assert tail_share > 0.6, tail_share


def test_its_length_prior_makes_full_diffusion_cut_answers_short_where_semi_ar_does_not(long_model):
    """Trained on short-skewed runs, tested on uniform ones: threshold 0.99 commits an early EOS in full diffusion
    (the wrong answers are shorter than the reference), not in semi-AR blocks of 8 (500-example numbers:
    docs/results/long_buffers.md)."""
    model, tokenizer = long_model
    rows = list(get_task("trace_until").dataset(n_train=0, n_test=64, seed=0)["test"])
    task = get_task("trace_until")
    results = {}
    for block_length in (8, 64):
        completions = generate_completions(
            model, tokenizer, [r["prompt"] for r in rows], strategy=ConfidenceThreshold(0.99),
            max_new_tokens=64, block_length=block_length,
        )  # fmt: skip
        wrong = [(c, r["reference"]) for c, r in zip(completions, rows) if not task.is_correct(c, r["reference"])]
        results[block_length] = (1 - len(wrong) / len(rows), wrong)
    semi, full = results[8][0], results[64][0]
    assert semi >= 0.95 and semi - full >= 0.05, (semi, full)
    assert all(len(c.split()) < len(ref.split()) for c, ref in results[64][1]), results[64][1]
