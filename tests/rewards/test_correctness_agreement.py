r"""Evaluation and training judge a math answer with one verifier: every correctness function below gives the
expected verdict on every row of a table of tricky answers (boxed, fractions, units, `####` suffixes, sets, ...).

To check another correctness function `f(completion, reference) -> bool` (e.g. evaluation's `math_verify`), add it
to `SCORERS`: one line.
"""

from __future__ import annotations

import pytest

from hf_unmask.evaluation import resolve_correctness
from hf_unmask.rewards import MathReward, answers_match, get_reward_function, math_reward


def as_correctness(reward, column="answer"):
    """A TRL-signature reward as a correctness function: the completion is correct when it scores 1.0."""
    return lambda completion, reference: reward(["q"], [completion], **{column: [reference]}) == [1.0]


def as_chat_correctness(reward):
    """The same reward given a conversational completion (TRL's chat format)."""
    return lambda completion, reference: (
        reward(
            [[{"role": "user", "content": "q"}]], [[{"role": "assistant", "content": completion}]], answer=[reference]
        )
        == [1.0]
    )


#: name -> correctness function (completion, reference) -> bool. Every one must agree with the table.
SCORERS = {
    "rewards.answers_match": answers_match,
    "evaluation --correctness math_verify": resolve_correctness("math_verify"),
    "rewards.math_reward (training)": as_correctness(math_reward),
    "get_reward_function('math')": as_correctness(get_reward_function("math")),
    "MathReward(answer_column='solution')": as_correctness(MathReward(answer_column="solution"), "solution"),
    "math_reward on chat completions": as_chat_correctness(math_reward),
}

MATH_SOLUTION = r"We have $x = \frac{2}{4}$, so the answer is $\boxed{\frac{1}{2}}$."
GSM8K_ANSWER = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nShe sold 48+24 = <<48+24=72>>72 clips.\n#### 72"

# (completion, reference, expected)
TABLE = [
    # fractions: every spelling of one half
    (r"\boxed{\frac{1}{2}}", r"\frac12", True),  # evaluation said False, the reward 1.0, before the two were one
    (r"\boxed{\frac12}", r"\frac{1}{2}", True),
    (r"\boxed{\dfrac{1}{2}}", r"\frac{1}{2}", True),
    (r"\boxed{1/2}", r"$\frac{1}{2}$", True),
    (r"The answer is $0.5$.", MATH_SOLUTION, True),
    (r"\boxed{\frac{\sqrt{2}}{2}}", r"\frac{1}{\sqrt{2}}", True),
    (r"\boxed{\frac{1}{3}}", r"\frac12", False),
    # GSM8K: `####` suffixes, thousands separators, the last number
    ("48 / 2 = 24, 48 + 24 = 72. The answer is 72.", GSM8K_ANSWER, True),
    ("#### 72", GSM8K_ANSWER, True),
    ("I first thought 5.\n#### 72", "#### 72", True),
    ("#### 72\nWait, 5 + 3 = 8", "#### 72", True),  # the answer line counts, not what follows it
    ("#### 72 but maybe 73", "#### 72", False),  # a hedged answer line: math-verify takes its last number
    ("so #### 1,234", "#### 1234", True),
    ("The total is 1,234 dollars.", "#### 1,234", True),
    ("1234", "1,234", True),  # a bare reference with a thousands separator is a number
    (r"\boxed{1{,}000}", "#### 1000", True),
    (r"\boxed{-5}", "#### -5", True),
    ("42 + 1 = 43", "#### 42", False),
    # units, degrees, percent, dollars: ignored around the number
    (r"\boxed{5\text{ cm}}", "5", True),
    ("The answer is 18 dollars.", "#### 18", True),
    (r"\boxed{\$18}", "#### 18", True),
    (r"\boxed{90^\circ}", "90", True),
    (r"\boxed{50\%}", "50", True),
    (r"\boxed{0.5}", r"50\%", True),  # 50% is one half to math-verify
    # sets, lists, tuples, intervals
    (r"\boxed{\{1, 2\}}", r"\{2, 1\}", True),
    (r"\boxed{2, 1}", "1, 2", True),  # MATH lists solutions without an order
    (r"\boxed{(1, 2)}", "(1, 2)", True),
    (r"\boxed{(1, 2)}", "(2, 1)", False),  # a tuple is ordered
    (r"\boxed{[1, 2)}", "[1,2)", True),
    (r"\boxed{[1, 2]}", "[1,2)", False),
    # expressions, equations, choices
    (r"\boxed{x^2+1}", "1+x^2", True),
    (r"$\boxed{1 + x^2}$", "x^2+1", True),
    (r"\boxed{x^2 - 1}", "x^2+1", False),
    (r"\boxed{x=3}", "3", True),
    (r"The answer is \boxed{\text{(B)}}", r"\text{(B)}", True),
    (r"First 3, but the answer is \boxed{7}.", "#### 7", True),  # a boxed answer wins over earlier numbers
    # nothing to compare
    ("I don't know", "#### 42", False),
    ("", "#### 42", False),
    ("42", "no answer here", False),
]


@pytest.mark.parametrize("completion, reference, expected", TABLE)
def test_every_correctness_function_gives_the_same_verdict(completion, reference, expected):
    verdicts = {name: bool(score(completion, reference)) for name, score in SCORERS.items()}
    wrong = {name: v for name, v in verdicts.items() if v != expected}
    assert not wrong, f"{completion!r} vs {reference!r}: expected {expected}, got {wrong}"
