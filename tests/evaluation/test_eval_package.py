"""hf_unmask.evaluation as a package: every name it exported as one module still imports from it, and each of its
modules does one job in at most ~400 lines."""

from __future__ import annotations

from pathlib import Path

import hf_unmask.evaluation as evaluation

# `hf_unmask.evaluation.__all__` when it was one module (before it was split).
EXPORTED_BEFORE_THE_SPLIT = [
    "CORRECTNESS_FUNCTIONS",
    "EvaluationData",
    "EvaluationInterrupted",
    "EvaluationResult",
    "StrategySpec",
    "decode_completions",
    "default_budget_knob",
    "default_strategy_specs",
    "evaluate_strategies",
    "exact_match",
    "front_accuracy_at",
    "load_model_and_tokenizer",
    "math_verify_correct",
    "pareto_front",
    "plan_sweep",
    "plot_pareto",
    "resolve_correctness",
]


def test_every_name_exported_before_the_split_still_is():
    assert set(EXPORTED_BEFORE_THE_SPLIT) <= set(evaluation.__all__)
    for name in evaluation.__all__:
        assert getattr(evaluation, name) is not None, name


def test_no_module_over_about_400_lines():
    for path in Path(evaluation.__file__).parent.glob("*.py"):
        assert len(path.read_text().splitlines()) <= 400, path.name
