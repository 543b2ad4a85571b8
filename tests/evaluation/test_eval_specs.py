"""hf_unmask.evaluation.specs: the strategy spec mini-language, saved strategy folders, default sweeps."""

from __future__ import annotations

import pytest

from hf_unmask.evaluation import StrategySpec, default_strategy_specs
from hf_unmask.strategies import TopKConfidence


def test_spec_parsing():
    spec = StrategySpec.parse("top_k_confidence:steps=16,32,64")
    assert spec.grid == {"steps": [16, 32, 64]} and spec.label == "top_k_confidence"
    assert [s for _, s in spec.instances()] == [TopKConfidence(steps=s) for s in (16, 32, 64)]
    bare = StrategySpec.parse("confidence_threshold:0.9,0.7")
    assert bare.budgets() == [{"threshold": 0.9}, {"threshold": 0.7}]
    assert StrategySpec.parse("top_k_margin:32").budgets() == [{"steps": 32}]
    assert StrategySpec.parse("eb_sampler").budgets() == [{}]
    crossed = StrategySpec.parse("random_time_grid:steps=8,16:eps=0.01")
    assert crossed.budgets() == [{"steps": 8, "eps": 0.01}, {"steps": 16, "eps": 0.01}]
    assert str(crossed) == "random_time_grid:steps=8,16:eps=0.01"


def test_saved_strategy_folder_with_budgets(tmp_path):
    TopKConfidence(steps=8).save_pretrained(tmp_path / "my_strategy")
    spec = StrategySpec.parse(f"{tmp_path / 'my_strategy'}:steps=4,8")
    assert spec.label == "my_strategy"
    assert [s for _, s in spec.instances()] == [TopKConfidence(steps=4), TopKConfidence(steps=8)]
    as_saved = StrategySpec.parse(str(tmp_path / "my_strategy"))
    assert [s for _, s in as_saved.instances()] == [TopKConfidence(steps=8)]


@pytest.mark.parametrize(
    "text, message",
    [
        ("no_such_strategy:steps=8", "Unknown strategy 'no_such_strategy'"),
        ("./missing/folder", "no such folder"),
        ("top_k_confidence:steps=", "Empty budget list"),
        ("confidence_threshold:threshold=", "Empty budget list"),
        ("top_k_confidence:", "Empty budget list"),
        ("top_k_confidence:steps=8,,16", "Empty value"),
        ("top_k_confidence:threshold=0.9", "has no knob 'threshold'"),
        ("top_k_confidence:steps=8:steps=16", "given twice"),
        (":steps=8", "no strategy name"),
        ("", "Empty strategy spec"),
    ],
)
def test_bad_specs_raise_clear_errors(text, message):
    with pytest.raises(ValueError, match=message):
        StrategySpec.parse(text)


def test_unknown_strategy_error_lists_the_names():
    with pytest.raises(ValueError) as info:
        StrategySpec.parse("top_k_confidance")
    assert "top_k_confidence" in str(info.value) and "hf-unmask list" in str(info.value)


def test_empty_grid_in_python_api():
    with pytest.raises(ValueError, match="Empty budget list for 'steps'"):
        StrategySpec("top_k_confidence", {"steps": []})


def test_default_specs_cover_the_registered_heuristics():
    specs = default_strategy_specs(64, [8, 64])
    names = {s.strategy for s in specs}
    assert {"top_k_confidence", "confidence_threshold"} <= names
    for spec in specs:
        for budget in spec.budgets():
            if "steps" in budget:
                assert budget["steps"] % 8 == 0 and budget["steps"] <= 64
