"""Code correctness by running unit tests in the sandbox: [`passes_tests`] (one completion) and [`CodeReward`] (TRL's
reward signature, completions run in parallel). Both need the opt-in to execute model-written code
(`HF_ALLOW_CODE_EVAL=1` or `allow_code_execution=True`).

The program run for a completion is `prompt + completion + "\\n" + test + "\\n" + f"check({entry_point})"`, the
HumanEval convention (`prompt` is the function signature and docstring, `test` defines `check(candidate)`); without an
entry point it is `prompt + completion + "\\n" + test` (MBPP-style `assert` lines). A completion inside a Markdown
code fence is taken from the first fence.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
from collections.abc import Sequence
from typing import Any, Optional

from ._utils import as_text, column
from .sandbox import ExecutionResult, execute_python, require_code_opt_in

__all__ = ["CodeReward", "build_program", "code_reward", "extract_code", "passes_tests"]

_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def extract_code(completion: str) -> str:
    """The first fenced code block of a completion, or the completion itself when it has no fence.

    Example:
        ```python
        >>> extract_code("Here:\\n```python\\nx = 1\\n```\\nDone.")
        'x = 1\\n'
        ```
    """
    if "```" not in completion:
        return completion
    match = _FENCE.search(completion)
    return match.group(1) if match else completion


def build_program(completion: Any, test: str, prompt: Optional[str] = None, entry_point: Optional[str] = None) -> str:
    """The program run for one completion (see the module docstring); `prompt=None` when the completion is the
    whole program.

    Example:
        ```python
        >>> print(build_program("    return a + b\\n", "def check(f):\\n    assert f(1, 2) == 3", "def add(a, b):\\n", "add"))
        def add(a, b):
            return a + b
        <BLANKLINE>
        <BLANKLINE>
        def check(f):
            assert f(1, 2) == 3
        <BLANKLINE>
        check(add)
        <BLANKLINE>
        ```
    """
    code = extract_code(as_text(completion))
    if prompt is not None:
        code = prompt + code
    program = f"{code}\n\n{test}\n"
    if entry_point is not None:
        program += f"\ncheck({entry_point})\n"
    return program


def passes_tests(
    completion: Any,
    test: str,
    *,
    prompt: Optional[str] = None,
    entry_point: Optional[str] = None,
    timeout: float = 5.0,
    memory_limit_mb: Optional[int] = 1024,
    allow_code_execution: Optional[bool] = None,
) -> bool:
    """True when the program built from the completion (see [`build_program`]) runs to the end in the sandbox
    within `timeout` seconds; a crash, an exception, an early `sys.exit` or a timeout is False.

    The code correctness function of training ([`CodeReward`]) and evaluation. Raises `PermissionError` unless
    executing model-written code was opted in to.

    Example:
        ```python
        >>> test = "def check(f):\\n    assert f(2, 3) == 5\\n"
        >>> passes_tests("    return a + b\\n", test, prompt="def add(a, b):\\n", entry_point="add",
        ...              allow_code_execution=True)
        True
        ```
    """
    require_code_opt_in(allow_code_execution)
    return execute_python(build_program(completion, test, prompt, entry_point), timeout, memory_limit_mb).passed


class CodeReward:
    """1.0 when the completion passes the problem's unit tests, run in a separate process ([`passes_tests`]'s
    program and sandbox); 0.0 otherwise.

    Completions are run in parallel by a thread pool of `max_workers` subprocesses, each through
    [`hf_unmask.rewards.sandbox.execute_python`] (isolated interpreter, fresh temp directory, empty environment,
    memory / CPU / file-size limits, whole process group killed after `timeout` seconds). A timeout, a crash, an
    exception or an early `sys.exit` all count as 0.0, so an infinite loop never hangs the trainer.

    `evaluate`'s `code_eval` metric is a Hub module: it cannot be loaded offline from the installed `evaluate`
    package, and it runs the code with `exec` in a forked process that inherits the trainer's environment, so it
    is not used here.

    Executing model-written code needs an opt-in: `allow_code_execution=True`, or the environment variable
    `HF_ALLOW_CODE_EVAL=1` (as for `evaluate`'s `code_eval`) when `allow_code_execution` is left at `None`.
    Without it, calling the reward raises `PermissionError` (and so does `get_reward_function("code")`).

    Args:
        timeout: Wall-clock seconds per completion (interpreter start-up included).
        memory_limit_mb: Address-space limit of each run (`None` or 0: no limit); ignored where `resource` is
            missing (Windows).
        max_workers: Completions run at once (default: `min(4, os.cpu_count())`).
        include_prompt: Prepend the prompt to the completion (HumanEval: the prompt is the code to complete). Use
            `False` when the completion is a whole program, e.g. with a chat prompt.
        test_column, entry_point_column: Dataset columns with the test code and the name of the tested function.
        allow_code_execution: The opt-in (see above).

    Example:
        ```python
        >>> reward = CodeReward(allow_code_execution=True, timeout=2)
        >>> prompt = "def add(a, b):\\n"
        >>> test = "def check(f):\\n    assert f(2, 3) == 5\\n"
        >>> reward([prompt] * 2, ["    return a + b\\n", "    return a - b\\n"], test=[test] * 2, entry_point=["add"] * 2)
        [1.0, 0.0]
        ```
    """

    def __init__(
        self,
        timeout: float = 5.0,
        memory_limit_mb: Optional[int] = 1024,
        max_workers: Optional[int] = None,
        include_prompt: bool = True,
        test_column: str = "test",
        entry_point_column: Optional[str] = "entry_point",
        allow_code_execution: Optional[bool] = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError(f"timeout must be positive, got {timeout}.")
        self.timeout = float(timeout)
        self.memory_limit_mb = memory_limit_mb
        self.max_workers = max_workers or min(4, os.cpu_count() or 1)
        self.include_prompt = include_prompt
        self.test_column = test_column
        self.entry_point_column = entry_point_column
        self.allow_code_execution = allow_code_execution
        self.required_columns: tuple[str, ...] = (test_column,) + ((entry_point_column,) if entry_point_column else ())
        self.__name__ = "code_reward"
        #: The `ExecutionResult`s of the last call, in completion order (for debugging a reward).
        self.last_results: list[ExecutionResult] = []

    def build_program(self, prompt: Any, completion: Any, test: str, entry_point: Optional[str]) -> str:
        """The program run for one completion."""
        if not self.include_prompt:
            return build_program(completion, test, None, entry_point)
        if not isinstance(prompt, str):
            raise TypeError(
                "CodeReward(include_prompt=True) needs text prompts holding the code to complete; with chat "
                "prompts, use include_prompt=False and let the completion be the whole function."
            )
        return build_program(completion, test, prompt, entry_point)

    def run(self, programs: Sequence[str]) -> list[ExecutionResult]:
        """Execute programs in parallel (order kept). Checks the opt-in."""
        require_code_opt_in(self.allow_code_execution)
        if not programs:
            return []
        workers = max(1, min(self.max_workers, len(programs)))
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="code_reward") as pool:
            return list(pool.map(lambda p: execute_python(p, self.timeout, self.memory_limit_mb), programs))

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        require_code_opt_in(self.allow_code_execution)
        n = len(completions)
        if len(prompts) != n:
            raise ValueError(f"{self.__name__}: {len(prompts)} prompts for {n} completions.")
        tests = column(columns, self.test_column, n, self.__name__)
        if self.entry_point_column:
            entry_points = column(columns, self.entry_point_column, n, self.__name__)
        else:
            entry_points = [None] * n
        programs = [self.build_program(p, c, t, e) for p, c, t, e in zip(prompts, completions, tests, entry_points)]
        self.last_results = self.run(programs)
        return [1.0 if r.passed else 0.0 for r in self.last_results]

    def __repr__(self) -> str:
        return f"CodeReward(timeout={self.timeout}, memory_limit_mb={self.memory_limit_mb}, max_workers={self.max_workers})"


#: HumanEval-style code reward with the default limits; the opt-in is read from `HF_ALLOW_CODE_EVAL` at each call.
code_reward = CodeReward()
