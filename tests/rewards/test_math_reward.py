"""hf_unmask.rewards.math: GSM8K / MATH answers with math-verify (`answers_match`, `MathReward`)."""

from __future__ import annotations

import threading

import pytest

from hf_unmask.rewards import MathReward, gsm8k_gold, math_reward

GSM8K_GOLD = "Janet has 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\nShe makes 9 * 2 = $<<9*2=18>>18.\n#### 1,234"


def test_gsm8k_gold():
    assert gsm8k_gold(GSM8K_GOLD) == "1234"
    assert gsm8k_gold("#### 42") == "42"
    assert gsm8k_gold("#### -3.5") == "-3.5"
    with pytest.raises(ValueError, match="####"):
        gsm8k_gold("The answer is 42")


@pytest.mark.parametrize(
    "prediction",
    ["42", "The answer is 42.", "\\boxed{42}", "So 40 + 2 = 42", "#### 42", "$42$", "42.0", "answer: 42 apples"],
)
def test_math_reward_gsm8k_equivalent_predictions(prediction):
    assert math_reward(["q"], [prediction], answer=["Some reasoning.\n#### 42"]) == [1.0]


@pytest.mark.parametrize("prediction", ["41", "The answer is 43.", "\\boxed{24}", "", "I don't know", "42 + 1 = 43"])
def test_math_reward_gsm8k_wrong_predictions(prediction):
    assert math_reward(["q"], [prediction], answer=["Some reasoning.\n#### 42"]) == [0.0]


def test_math_reward_gsm8k_thousands_separator():
    preds = ["The total is 1,234 dollars.", "\\boxed{1234}", "1234", "1,243"]
    assert math_reward(["q"] * 4, preds, answer=[GSM8K_GOLD] * 4) == [1.0, 1.0, 1.0, 0.0]
    # a bare gold with a thousands separator is a number too
    assert math_reward(["q"], ["1234"], answer=["1,234"]) == [1.0]


def test_math_reward_math_latex_fraction():
    solution = "We have $x = \\frac{2}{4}$, so the answer is $\\boxed{\\frac{1}{2}}$."
    preds = [
        "\\boxed{\\frac{1}{2}}",
        "\\boxed{\\dfrac12}",
        "The answer is $0.5$.",
        "\\boxed{1/2}",
        "\\boxed{\\frac{1}{3}}",
    ]
    expected = [1.0, 1.0, 1.0, 1.0, 0.0]
    assert math_reward(["q"] * 5, preds, answer=[solution] * 5) == expected
    # a bare MATH answer (MATH-500's `answer` column) is read as LaTeX
    assert math_reward(["q"] * 5, preds, answer=["\\frac{1}{2}"] * 5) == expected
    assert math_reward(["q"] * 2, ["$\\boxed{1 + x^2}$", "\\boxed{x^2 - 1}"], answer=["x^2+1"] * 2) == [1.0, 0.0]


def test_math_reward_boxed_answer_wins_over_earlier_numbers():
    assert math_reward(["q"], ["First I thought 3, but the answer is \\boxed{7}."], answer=["#### 7"]) == [1.0]


def test_math_reward_custom_column_and_threads():
    reward = MathReward(answer_column="solution")
    assert reward.required_columns == ("solution",)
    results = []
    # math-verify's timeouts use signal.alarm (main thread only): the reward must still work in a worker thread
    thread = threading.Thread(target=lambda: results.append(reward(["q"] * 2, ["7", "8"], solution=["#### 7"] * 2)))
    thread.start()
    thread.join(30)
    assert results == [[1.0, 0.0]]


def test_math_reward_unparsable_gold_scores_zero():
    assert math_reward(["q"], ["42"], answer=["no answer here"]) == [0.0]


def test_a_completion_with_the_gsm8k_marker_is_judged_by_the_line_after_it():
    from hf_unmask.rewards import answers_match

    assert answers_match("so #### 72\nWait, 5 + 3 = 8", "#### 72")  # what follows the answer line is ignored
    assert answers_match("so #### 1,234 dollars", "#### 1234")
    assert not answers_match("so #### 8\nThe answer is 72", "#### 72")
    assert not answers_match("42", "no answer here") and not answers_match("", "#### 42")
