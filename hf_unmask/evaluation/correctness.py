"""Correctness functions: is a completion right, given the reference? Selectable by name (`--correctness NAME`) or
as `module:function`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Union

__all__ = [
    "CORRECTNESS_FUNCTIONS",
    "CorrectnessFn",
    "code_passes_tests",
    "exact_match",
    "math_verify_correct",
    "resolve_correctness",
]

CorrectnessFn = Callable[[str, str], bool]


def math_verify_correct(completion: str, reference: str) -> bool:
    r"""GSM8K / MATH correctness: the training reward's verifier, `hf_unmask.rewards.answers_match` (math-verify on
    the final answers; a GSM8K `#### 72` reference or completion is read after its marker), so a policy is reported
    on the metric it was trained on.

    Example:
        ```python
        >>> math_verify_correct("48 / 2 = 24, 48 + 24 = 72. The answer is 72.", "48/2 = 24 ... #### 72")
        True
        >>> math_verify_correct("so the answer is $\\boxed{\\frac{1}{2}}$", "\\frac12")
        True
        ```
    """
    from ..rewards.math import answers_match

    return answers_match(completion, reference)


def code_passes_tests(completion: str, reference: str) -> bool:
    """Code correctness: the training reward's sandbox, `hf_unmask.rewards.passes_tests`. The completion (or its
    first Markdown code fence) is run followed by the reference, test code with `assert` lines (MBPP style), in a
    separate process with a time limit; it is correct when the program runs to the end. Executing model-written code
    needs the opt-in `HF_ALLOW_CODE_EVAL=1` (a `PermissionError` says so otherwise).

    Example (not run in tests: it executes code; tests/evaluation/test_eval_correctness.py opts in):
        ```python
        >>> code_passes_tests("def add(a, b):\\n    return a + b", "assert add(2, 3) == 5")  # doctest: +SKIP
        True
        ```
    """
    from ..rewards.code import passes_tests

    return passes_tests(completion, reference)


def exact_match(completion: str, reference: str) -> bool:
    """True when the completion equals the reference after stripping whitespace at both ends.

    Example:
        ```python
        >>> exact_match(" 42\\n", "42")
        True
        ```
    """
    return completion.strip() == reference.strip()


#: Correctness functions selectable by name (`--correctness NAME`); any `module:function` works too.
CORRECTNESS_FUNCTIONS: dict[str, CorrectnessFn] = {
    "math_verify": math_verify_correct,
    "code": code_passes_tests,
    "exact_match": exact_match,
}


def _require_code_opt_in_before_generation() -> None:
    """`code` executes model-written code: refuse it by name, before any completion is generated, unless opted in."""
    from ..rewards.sandbox import CODE_EVAL_ENV_VAR, code_execution_allowed

    if not code_execution_allowed():
        raise PermissionError(
            "Correctness 'code' executes model-generated code in a separate, resource-limited process (not a security "
            "sandbox: it can read your files and use the network). Run it inside a container or VM and opt in "
            f"before generating: set the environment variable {CODE_EVAL_ENV_VAR}=1, e.g. "
            f"`{CODE_EVAL_ENV_VAR}=1 hf-unmask evaluate ... --correctness code`."
        )


def resolve_correctness(spec: Union[str, CorrectnessFn]) -> CorrectnessFn:
    """Turn a correctness spec into a function `(completion, reference) -> bool`.

    `spec` is a callable, a name in `CORRECTNESS_FUNCTIONS` (`math_verify`, `code`, `exact_match`) or `module:function`
    naming an importable Python function (e.g. `my_rewards:is_correct`; the current directory is importable).
    `code` needs the opt-in `HF_ALLOW_CODE_EVAL=1` already here, so an evaluation refuses it before generating.
    The same `module:function` trains a policy as it is: `hf-unmask train --reward_funcs module:function` (the
    reference is then the dataset's `reference` column; see `hf_unmask.rewards.forms`).

    Example:
        ```python
        >>> resolve_correctness("exact_match")("a", " a")
        True
        ```
    """
    if callable(spec):
        return spec
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"correctness must be a function or a name, got {spec!r}.")
    if spec == "code":
        _require_code_opt_in_before_generation()
    if spec in CORRECTNESS_FUNCTIONS:
        return CORRECTNESS_FUNCTIONS[spec]
    if ":" not in spec:
        raise ValueError(
            f"Unknown correctness function '{spec}'. Use one of {', '.join(sorted(CORRECTNESS_FUNCTIONS))}, or "
            "'module:function' naming your own function (completion: str, reference: str) -> bool."
        )
    from .._importing import import_object

    func = import_object(spec, "correctness function")
    if not callable(func):
        raise ValueError(f"Correctness function '{spec}' is a {type(func).__name__}, not a function.")
    return func
