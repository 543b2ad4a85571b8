"""Fixtures of the evaluation tests: the tiny random masked LM and tokenizer of `tiny_eval`, and one sampled
evaluation that several tests read."""

from __future__ import annotations

import pytest
from tiny_eval import L, ToyTask, make_model, make_tokenizer

from hf_unmask.evaluation import evaluate_strategies


@pytest.fixture(scope="module")
def model():
    return make_model()


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="module")
def sampled_result(model, tokenizer):
    """Temperature 1 so that seeds change the outcome; one batch so a hand computation can repeat it exactly."""
    return evaluate_strategies(
        model,
        tokenizer,
        ToyTask(),
        strategies=["top_k_confidence:steps=4,8", "confidence_threshold:threshold=0.5"],
        block_lengths=[4, None],
        seeds=[0, 1],
        n_examples=6,
        max_new_tokens=L,
        batch_size=6,
        temperature=1.0,
        progress=False,
    )
