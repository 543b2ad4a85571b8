"""hf_unmask.rewards.forms: `--reward_funcs` takes TRL's batch form and the per-example form of `--correctness`."""

from __future__ import annotations

import sys

import pytest

from hf_unmask.rewards import PerExampleReward, get_reward_function, per_example_reward, reward_form


def test_the_form_is_read_from_the_signature():
    def batch(prompts, completions, answer, **kwargs):
        return [1.0] * len(completions)

    def columns_only(completions, solution, **kwargs):  # TRL's own rewards look like this
        return [1.0] * len(completions)

    def correctness(completion, reference):
        return completion == reference

    def with_options(pred, gold, timeout=3, **kwargs):
        return pred == gold

    assert [reward_form(f) for f in (batch, columns_only, lambda **kw: [])] == ["batch"] * 3
    assert [reward_form(f) for f in (correctness, with_options)] == ["per_example"] * 2
    assert get_reward_function(batch) is batch
    wrapped = get_reward_function(correctness)
    assert isinstance(wrapped, PerExampleReward) and wrapped.required_columns == ("reference",)
    chat = [[{"role": "assistant", "content": "4"}], [{"role": "assistant", "content": "5"}]]
    assert wrapped(prompts=["q", "q"], completions=chat, reference=[4, 4], trainer_state=None) == [1.0, 0.0]


@pytest.mark.parametrize("func", [lambda x: [0.0], lambda a, b, c: [0.0], lambda *args: [0.0]])
def test_an_unclear_form_is_an_error_naming_both(func):
    with pytest.raises(
        ValueError,
        match=r"batch form `reward\(prompts, completions, \*\*columns\).*"
        r"per-example form .*is_correct\(completion, reference\).*per_example_reward",
    ):
        get_reward_function(func)


def test_the_explicit_wrapper_names_the_reference_column_and_checks_what_it_returns():
    reward = per_example_reward(lambda c, r: {"score": 1}, reference_column="gold", name="scored")
    assert reward.required_columns == ("gold",) and reward.__name__ == "scored"
    with pytest.raises(TypeError, match="'scored' returned dict"):
        reward(["q"], ["a"], gold=["a"])
    with pytest.raises(KeyError, match="needs the dataset column 'gold'"):
        reward(["q"], ["a"], reference=["a"])
    assert per_example_reward(lambda c, r: None)(["q"], ["a"], reference=["a"]) == [None]  # TRL's "not applicable"


def test_the_same_user_module_serves_evaluate_and_train(tmp_path, monkeypatch):
    from hf_unmask.evaluation import resolve_correctness

    (tmp_path / "checks_for_both.py").write_text(
        "def is_correct(completion, reference):\n    return completion == reference\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        reward = get_reward_function("checks_for_both:is_correct")
        assert reward(["q", "q"], ["7", "8"], reference=["7", "7"]) == [1.0, 0.0]
        assert resolve_correctness("checks_for_both:is_correct")("7", "7") is True
    finally:
        sys.modules.pop("checks_for_both", None)
