r"""GSM8K / MATH answers compared with `math-verify`: the one math verifier of hf_unmask.

Training (the `math` reward, [`MathReward`]) and evaluation (`--correctness math_verify`) judge a completion with the
same function, [`answers_match`], so a policy is reported on the metric it was trained on.

The reference may be a GSM8K answer (`"... #### 1,234"`: the number after the last `####`, thousands separators and
`$` removed), a MATH solution holding `\boxed{...}` or `$...$` (the first boxed answer), or a bare answer (`"42"`,
`"\frac12"`, `"x^2+1"`, `"1, 2"`, read as LaTeX; a bare `"1,234"` is a number). The completion's answer is the last
line after its last `####` when it uses GSM8K's marker, else what math-verify extracts from the whole text (a boxed
answer first, then the last expression). `math_verify.verify(reference, answer)` compares them symbolically:
`\frac{1}{2}`, `\frac12`, `1/2`, `0.5` and `50\%` are equal, units and `^\circ` are ignored, `\{1, 2\}` equals
`\{2, 1\}` but `(1, 2)` does not equal `(2, 1)`.

math-verify bounds parsing and comparison with `signal.alarm`, which only works in the main thread; called from
another thread (a reward run by a thread pool), the timeouts are disabled rather than failing.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Optional

from ._utils import as_text, column, in_main_thread

logger = logging.getLogger(__name__)

GSM8K_MARKER = "####"
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")
_THOUSANDS_SEPARATOR = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_TIMEOUT_SECONDS = 5

__all__ = [
    "GSM8K_MARKER",
    "MathReward",
    "answers_match",
    "gsm8k_gold",
    "math_reward",
    "parse_answer",
    "parse_reference",
]


def _math_verify() -> Any:
    try:
        import math_verify
    except ImportError as err:  # pragma: no cover - math-verify is in the [train] extra
        raise ImportError(
            "Math answers are compared with the math-verify package: pip install 'hf_unmask[train]' (or pip install "
            "math-verify)."
        ) from err
    return math_verify


def _timeout(seconds: Optional[int]) -> Optional[int]:
    return seconds if in_main_thread() else None


def gsm8k_gold(answer_text: str) -> str:
    """The final number of a GSM8K `answer` field (the text after the last `####`), without thousands separators.

    Example:
        ```python
        >>> gsm8k_gold("Natalia sold 48/2 = <<48/2=24>>24 clips in May.\\n#### 1,234")
        '1234'
        >>> gsm8k_gold("#### $-5.50")
        '-5.50'
        ```
    """
    if GSM8K_MARKER not in answer_text:
        raise ValueError(
            f"Not a GSM8K answer: no '{GSM8K_MARKER}' marker in {answer_text[:80]!r} "
            "(GSM8K answers end with '#### <number>')."
        )
    gold = answer_text.rsplit(GSM8K_MARKER, 1)[1].strip()
    gold = gold.replace(",", "").replace("$", "").strip().rstrip(".")
    if not gold:
        raise ValueError(f"Empty GSM8K answer after '{GSM8K_MARKER}' in {answer_text[-80:]!r}.")
    return gold


def _configs() -> tuple[list[Any], list[Any]]:
    """(LaTeX with `\\boxed` first then plain expressions, plain expressions only)."""
    mv = _math_verify()
    return [mv.LatexExtractionConfig(boxed_match_priority=0), mv.ExprExtractionConfig()], [mv.ExprExtractionConfig()]


def parse_reference(reference: str, timeout_seconds: Optional[int] = _TIMEOUT_SECONDS) -> list[Any]:
    r"""The parsed reference answer (math-verify's list of sympy objects and strings; empty if nothing parses).

    Example:
        ```python
        >>> parse_reference("#### 1,234")[0]
        1234
        >>> parse_reference("\\frac12")[0]
        1/2
        ```
    """
    mv = _math_verify()
    latex, number = _configs()
    timeout = _timeout(timeout_seconds)
    text = reference.strip()
    if GSM8K_MARKER in text:
        try:
            return mv.parse(gsm8k_gold(text), number, parsing_timeout=timeout)
        except ValueError:  # an empty answer after the marker
            return []
    if _THOUSANDS.match(text):  # a bare "1,234" is a number, not the set {1, 234}
        return mv.parse(text.replace(",", ""), number, parsing_timeout=timeout)
    if "$" not in text and "\\boxed" not in text and "\\(" not in text and "\\[" not in text:
        text = f"${text}$"  # a bare MATH answer such as \frac{1}{2} or x^2+1 is LaTeX
    return mv.parse(text, latex, extraction_mode="first_match", parsing_timeout=timeout)


def parse_answer(completion: str, timeout_seconds: Optional[int] = _TIMEOUT_SECONDS) -> list[Any]:
    """The parsed final answer of a completion (empty when it holds none): the line after its last `####` when it
    has one (thousands separators removed), else the boxed answer or the last expression of the whole text.

    Example:
        ```python
        >>> parse_answer("#### 72\\nWait, 5 + 3 = 8")[0]
        72
        >>> parse_answer("So 40 + 2 = 42")[0]
        42
        ```
    """
    mv = _math_verify()
    latex, _ = _configs()
    text = completion
    if GSM8K_MARKER in text:
        lines = text.rsplit(GSM8K_MARKER, 1)[1].strip().splitlines()
        text = _THOUSANDS_SEPARATOR.sub("", lines[0]) if lines else ""
    return mv.parse(text, latex, parsing_timeout=_timeout(timeout_seconds))


def _verify(reference: list[Any], completion: str, timeout_seconds: Optional[int]) -> bool:
    if not reference:
        return False
    answer = parse_answer(completion, timeout_seconds)
    if not answer:
        return False
    return bool(_math_verify().verify(reference, answer, timeout_seconds=_timeout(timeout_seconds)))


def answers_match(completion: str, reference: str, timeout_seconds: Optional[int] = _TIMEOUT_SECONDS) -> bool:
    r"""True when the completion's final answer equals the reference answer (GSM8K or MATH), by math-verify.

    The correctness function of both training (`MathReward`) and evaluation (`--correctness math_verify`); see the
    module docstring for how each side is read. An unparsable reference or completion is False.

    Example:
        ```python
        >>> answers_match("48 / 2 = 24, 48 + 24 = 72. The answer is 72.", "48/2 = 24 ... #### 72")
        True
        >>> answers_match("\\boxed{\\frac{1}{2}}", "\\frac12"), answers_match("\\boxed{(1, 2)}", "(2, 1)")
        (True, False)
        ```
    """
    return _verify(parse_reference(reference, timeout_seconds), completion, timeout_seconds)


class MathReward:
    r"""1.0 when the completion's final answer is mathematically equal to the gold answer ([`answers_match`]), else
    0.0: the GSM8K / MATH reward. A reference that does not parse scores 0.0 with a warning.

    Args:
        answer_column: The dataset column holding the gold answer.
        timeout_seconds: math-verify's per-parse / per-comparison limit (main thread only).

    Example:
        ```python
        >>> reward = MathReward()
        >>> reward(["q"] * 3, ["so 40 + 2 = 42", "\\boxed{42}", "The answer is 41."], answer=["#### 42"] * 3)
        [1.0, 1.0, 0.0]
        >>> reward(["q"], ["$\\boxed{0.5}$"], answer=["\\frac{1}{2}"])
        [1.0]
        ```
    """

    def __init__(self, answer_column: str = "answer", timeout_seconds: int = _TIMEOUT_SECONDS) -> None:
        self.answer_column = answer_column
        self.timeout_seconds = timeout_seconds
        self.required_columns: tuple[str, ...] = (answer_column,)
        self.__name__ = "math_reward" if answer_column == "answer" else f"math_reward_{answer_column}"

    def score(self, completion: str, answer: str) -> float:
        """1.0 or 0.0 for one completion against one gold answer."""
        return self._score(completion, parse_reference(answer, self.timeout_seconds), answer)

    def _score(self, completion: str, gold: list[Any], answer: str) -> float:
        if not gold:
            logger.warning("math_reward: could not parse the gold answer %r; scoring 0.0.", answer[-80:])
            return 0.0
        return 1.0 if _verify(gold, completion, self.timeout_seconds) else 0.0

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        answers = column(columns, self.answer_column, len(completions), self.__name__)
        golds: dict[str, list[Any]] = {}  # a GRPO group repeats the same gold G times
        rewards = []
        for completion, answer in zip(completions, answers):
            answer = str(answer)
            if answer not in golds:
                golds[answer] = parse_reference(answer, self.timeout_seconds)
            rewards.append(self._score(as_text(completion), golds[answer], answer))
        return rewards

    def __repr__(self) -> str:
        return f"MathReward(answer_column={self.answer_column!r})"


#: GSM8K / MATH reward on the `answer` column (see [`MathReward`]).
math_reward = MathReward()
