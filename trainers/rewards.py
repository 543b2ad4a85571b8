"""Reward functions for GRPO training of unmasking policies, with TRL's reward signature.

Every reward here is a callable `reward(prompts, completions, **dataset_columns) -> list[float]` returning one value
in [0, 1] per completion (1.0 correct, 0.0 wrong), the signature `trl.GRPOTrainer` calls. Each carries
`required_columns` (the dataset columns it reads, checked by the trainer before any rollout, see
[`check_reward_columns`]) and a readable `__name__` (used by TRL to name the logged metrics). Rewards are
instances of module-level classes, so they pickle.

- [`TaskReward`] / [`task_reward`]: a built-in task's verifier on the `reference` column.
- [`MathReward`] / [`math_reward`]: GSM8K (`"... #### 1,234"`) and MATH (`\\boxed{...}` / LaTeX) answers in the
  `answer` column, compared with `math-verify`.
- [`CodeReward`] / [`code_reward`]: HumanEval-style unit tests (`test` + `entry_point` columns) run in a
  subprocess with a time, memory and file-size limit. Executing model-written code needs an explicit opt-in
  (`HF_ALLOW_CODE_EVAL=1` or `allow_code_execution=True`).
- [`get_reward_function`]: `"task:program_trace"`, `"math"`, `"code"` or `"package.module:function"` -> callable.
- [`check_reward_output`]: validates what a reward returned (length, numbers), for the trainer.

Example:
    ```python
    >>> from trainers.rewards import get_reward_function
    >>> reward = get_reward_function("math")
    >>> reward(["q", "q"], ["The answer is 42.", "\\\\boxed{41}"], answer=["#### 42", "#### 42"])
    [1.0, 0.0]
    >>> reward.required_columns
    ('answer',)
    ```
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import logging
import math
import numbers
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Optional, Union

logger = logging.getLogger(__name__)

#: A reward function: `reward(prompts, completions, **columns) -> list[float]`.
RewardFunction = Callable[..., list]

#: Environment variable that opts in to executing model-written code (the name `evaluate`'s `code_eval` uses).
CODE_EVAL_ENV_VAR = "HF_ALLOW_CODE_EVAL"

__all__ = [
    "CODE_EVAL_ENV_VAR",
    "CodeReward",
    "ExecutionResult",
    "MathReward",
    "TaskReward",
    "check_reward_columns",
    "check_reward_output",
    "code_reward",
    "execute_python",
    "get_reward_function",
    "get_reward_functions",
    "gsm8k_gold",
    "math_reward",
    "task_reward",
]


# ----------------------------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------------------------


def _as_text(item: Any, what: str = "completion") -> str:
    """Text of a standard (`str`) or conversational (`[{"role": ..., "content": ...}, ...]`) prompt/completion.

    For a conversation, the content of the last message is used (the assistant's answer in TRL's completions).
    """
    if isinstance(item, str):
        return item
    if isinstance(item, dict) and "content" in item:
        return _as_text(item["content"], what)
    if isinstance(item, (list, tuple)):
        if not item:
            return ""
        if all(isinstance(m, dict) and "content" in m for m in item):
            return _as_text(item[-1]["content"], what)
        if all(isinstance(part, dict) and part.get("type") == "text" for part in item):  # multimodal content parts
            return "".join(part.get("text", "") for part in item)
    raise TypeError(
        f"Expected each {what} to be a string or a list of chat messages with 'content', got {type(item).__name__}."
    )


def _column(columns: dict[str, Any], name: str, n: int, reward_name: str) -> list[Any]:
    if name not in columns:
        given = sorted(k for k in columns if k not in _TRL_EXTRA_KWARGS)
        raise KeyError(
            f"Reward '{reward_name}' needs the dataset column '{name}', which was not passed. "
            f"Columns received: {given or '(none)'}."
        )
    values = list(columns[name])
    if len(values) != n:
        raise ValueError(f"Reward '{reward_name}': column '{name}' has {len(values)} values for {n} completions.")
    return values


# Keyword arguments TRL's GRPOTrainer passes besides the dataset columns.
_TRL_EXTRA_KWARGS = frozenset({"completion_ids", "trainer_state", "log_extra", "log_metric", "environments"})


def _in_main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()


# ----------------------------------------------------------------------------------------------------------------
# 1. Built-in task verifiers
# ----------------------------------------------------------------------------------------------------------------


class TaskReward:
    """1.0 when a built-in task's verifier accepts the completion against the `reference` column, else 0.0.

    Args:
        task_name: A name in `hf_unmask.tasks.TASK_REGISTRY` (e.g. `"program_trace"`).
        reference_column: The dataset column holding the reference completion.

    Example:
        ```python
        >>> reward = TaskReward("program_trace")
        >>> ref = "y = 0 , c = 2 ; answer : 2"
        >>> reward(["trace : ..."] * 2, ["y = 0 , c = 2 ; answer : 2", "answer : 5"], reference=[ref, ref])
        [1.0, 0.0]
        >>> reward.__name__, reward.required_columns
        ('program_trace_reward', ('reference',))
        ```
    """

    def __init__(self, task_name: str, reference_column: str = "reference") -> None:
        from hf_unmask.tasks import get_task

        self.task_name = task_name
        self.task = get_task(task_name)  # clear ValueError listing the built-in tasks when unknown
        self.reference_column = reference_column
        self.required_columns: tuple[str, ...] = (reference_column,)
        self.__name__ = f"{task_name}_reward"

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        references = _column(columns, self.reference_column, len(completions), self.__name__)
        return [
            1.0 if self.task.is_correct(_as_text(c), _as_text(r, "reference")) else 0.0
            for c, r in zip(completions, references)
        ]

    def __repr__(self) -> str:
        return f"TaskReward({self.task_name!r})"


def task_reward(task_name: str, reference_column: str = "reference") -> TaskReward:
    """The reward of a built-in task's verifier: `task.is_correct(completion, reference)` as 1.0 / 0.0.

    Example:
        ```python
        >>> reward = task_reward("program_trace")
        >>> reward(["p"], ["answer : 3"], reference=["x = 3 ; answer : 3"])
        [1.0]
        ```
    """
    return TaskReward(task_name, reference_column=reference_column)


# ----------------------------------------------------------------------------------------------------------------
# 2. GSM8K / MATH answers with math-verify
# ----------------------------------------------------------------------------------------------------------------

_GSM8K_MARKER = "####"
_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(,\d{3})+(\.\d+)?$")


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
    if _GSM8K_MARKER not in answer_text:
        raise ValueError(
            f"Not a GSM8K answer: no '{_GSM8K_MARKER}' marker in {answer_text[:80]!r} "
            "(GSM8K answers end with '#### <number>')."
        )
    gold = answer_text.rsplit(_GSM8K_MARKER, 1)[1].strip()
    gold = gold.replace(",", "").replace("$", "").strip().rstrip(".")
    if not gold:
        raise ValueError(f"Empty GSM8K answer after '{_GSM8K_MARKER}' in {answer_text[-80:]!r}.")
    return gold


class MathReward:
    """1.0 when the completion's final answer is mathematically equal to the gold answer, checked by `math-verify`.

    The gold (`answer` column) may be a GSM8K answer (`"... #### 1,234"`, normalised with [`gsm8k_gold`]), a MATH
    solution containing `\\boxed{...}` or `$...$`, or a bare answer (`"42"`, `"\\frac{1}{2}"`, `"x^2+1"`, read as
    LaTeX). The gold is parsed with `math_verify.parse` (LaTeX with `\\boxed` first, then plain expressions, first
    match) and the completion with LaTeX (`\\boxed` first) and plain-expression extraction: "42", "The answer is 42.",
    "#### 42" and "\\boxed{42}" all match a gold of 42; when several answers appear, math-verify takes the boxed
    or last one. `math_verify.verify(gold, prediction)` then compares them (the order matters: gold first).

    math-verify bounds parsing/comparison with `signal.alarm`, which only works in the main thread; called from
    another thread, this reward disables those timeouts rather than failing.

    Args:
        answer_column: The dataset column holding the gold answer.
        timeout_seconds: math-verify's per-parse / per-comparison limit (main thread only).

    Example:
        ```python
        >>> reward = MathReward()
        >>> reward(["q"] * 3, ["so 40 + 2 = 42", "\\\\boxed{42}", "The answer is 41."], answer=["#### 42"] * 3)
        [1.0, 1.0, 0.0]
        >>> reward(["q"], ["$\\\\boxed{0.5}$"], answer=["\\\\frac{1}{2}"])
        [1.0]
        ```
    """

    def __init__(self, answer_column: str = "answer", timeout_seconds: int = 5) -> None:
        self.answer_column = answer_column
        self.timeout_seconds = timeout_seconds
        self.required_columns: tuple[str, ...] = (answer_column,)
        self.__name__ = "math_reward" if answer_column == "answer" else f"math_reward_{answer_column}"

    def _configs(self) -> tuple[list[Any], list[Any], list[Any]]:
        from math_verify import ExprExtractionConfig, LatexExtractionConfig

        latex_boxed_first = LatexExtractionConfig(boxed_match_priority=0)
        gold_latex = [latex_boxed_first, ExprExtractionConfig()]
        gold_number = [ExprExtractionConfig()]
        prediction = [latex_boxed_first, ExprExtractionConfig()]
        return gold_latex, gold_number, prediction

    def parse_gold(self, answer: str) -> list[Any]:
        """The parsed gold answer (a list of sympy objects and strings; empty when nothing could be parsed)."""
        from math_verify import parse

        gold_latex, gold_number, _ = self._configs()
        timeout = self._timeout()
        text = answer.strip()
        if _GSM8K_MARKER in text:
            return parse(gsm8k_gold(text), gold_number, parsing_timeout=timeout)
        if _THOUSANDS.match(text):  # a bare "1,234" is a number, not the set {1, 234}
            return parse(text.replace(",", ""), gold_number, parsing_timeout=timeout)
        if "$" not in text and "\\boxed" not in text and "\\(" not in text and "\\[" not in text:
            text = f"${text}$"  # a bare MATH answer such as \frac{1}{2} or x^2+1 is LaTeX
        return parse(text, gold_latex, extraction_mode="first_match", parsing_timeout=timeout)

    def parse_prediction(self, completion: str) -> list[Any]:
        """The parsed answer of a completion (empty when it contains none)."""
        from math_verify import parse

        _, _, prediction = self._configs()
        return parse(completion, prediction, parsing_timeout=self._timeout())

    def _timeout(self) -> Optional[int]:
        return self.timeout_seconds if _in_main_thread() else None

    def score(self, completion: str, answer: str) -> float:
        """1.0 or 0.0 for one completion against one gold answer."""
        return self._score(completion, self.parse_gold(answer), answer)

    def _score(self, completion: str, gold: list[Any], answer: str) -> float:
        from math_verify import verify

        if not gold:
            logger.warning("math_reward: could not parse the gold answer %r; scoring 0.0.", answer[-80:])
            return 0.0
        prediction = self.parse_prediction(completion)
        if not prediction:
            return 0.0
        return 1.0 if verify(gold, prediction, timeout_seconds=self._timeout()) else 0.0

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        answers = _column(columns, self.answer_column, len(completions), self.__name__)
        golds: dict[str, list[Any]] = {}  # a GRPO group repeats the same gold G times
        rewards = []
        for completion, answer in zip(completions, answers):
            answer = str(answer)
            if answer not in golds:
                golds[answer] = self.parse_gold(answer)
            rewards.append(self._score(_as_text(completion), golds[answer], answer))
        return rewards

    def __repr__(self) -> str:
        return f"MathReward(answer_column={self.answer_column!r})"


#: GSM8K / MATH reward on the `answer` column (see [`MathReward`]).
math_reward = MathReward()


# ----------------------------------------------------------------------------------------------------------------
# 3. Code by sandboxed execution
# ----------------------------------------------------------------------------------------------------------------

# Runs inside the child interpreter (`python -I -B -c _RUNNER solution.py`). It reads a random token from stdin,
# applies the resource limits, executes the program in a fresh namespace and writes the token to a duplicate of the
# original stdout only if the program finished without an exception. A program that exits early (`sys.exit(0)`,
# `os._exit(0)`) therefore never counts as passed.
_RUNNER = r"""
import os, sys

def _limit(name, value):
    try:
        import resource
    except ImportError:
        return
    kind = getattr(resource, name, None)
    if kind is None:
        return
    try:
        soft, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(kind, (value, value if hard == resource.RLIM_INFINITY else hard))
    except (ValueError, OSError):
        pass

def _main():
    token = sys.stdin.readline().strip()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    result_fd = os.dup(1)
    memory, cpu, fsize = (int(v) for v in sys.argv[2:5])
    if memory > 0:
        _limit("RLIMIT_AS", memory)
        _limit("RLIMIT_DATA", memory)
    _limit("RLIMIT_CPU", cpu)
    _limit("RLIMIT_FSIZE", fsize)
    _limit("RLIMIT_CORE", 0)
    path = sys.argv[1]
    del sys.argv[1:]
    with open(path, encoding="utf-8") as f:
        source = f.read()
    namespace = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
    try:
        exec(compile(source, path, "exec"), namespace)
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        import traceback
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    os.write(result_fd, ("\n" + token + "\n").encode())
    os._exit(0)

_main()
"""

_FILE_SIZE_LIMIT = 16 * 1024 * 1024  # bytes a program may write to any one file, stdout and stderr included
_KEPT_OUTPUT = 4096  # characters of stdout / stderr kept in an ExecutionResult


@dataclasses.dataclass
class ExecutionResult:
    """What running one program in the sandbox gave.

    `status` is `"passed"` (finished without an exception), `"failed"` (exception, non-zero exit, early exit or
    killed by a resource limit) or `"timed out"` (killed after `timeout` seconds). `stdout` / `stderr` keep the
    last 4,096 characters.
    """

    status: str
    returncode: Optional[int]
    stdout: str
    stderr: str
    duration: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _sandbox_env(workdir: str) -> dict[str, str]:
    """A minimal environment: nothing is inherited from the trainer's (no tokens, no credentials)."""
    env = {
        "PATH": os.defpath,
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    if os.name == "nt":  # the interpreter does not start on Windows without these
        for key in ("SYSTEMROOT", "SYSTEMDRIVE"):
            if key in os.environ:
                env[key] = os.environ[key]
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    if os.name == "posix":
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the child leads its own session: this also ends what it spawned
        except (ProcessLookupError, PermissionError):
            pass
    if proc.poll() is None:
        proc.kill()


def _read_tail(f: Any) -> str:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - 4 * _KEPT_OUTPUT))
    return f.read().decode("utf-8", errors="replace")


def execute_python(program: str, timeout: float = 5.0, memory_limit_mb: Optional[int] = 1024) -> ExecutionResult:
    """Run a Python program in a separate, isolated interpreter and report whether it finished without error.

    This is the low-level runner of [`CodeReward`]: it does **not** check the opt-in, so only call it on code you
    chose to execute. The child is `sys.executable -I -B` (isolated mode: no `PYTHON*` variables, no user site, the
    working directory is not importable), started in a new session with a fresh temporary directory as its working
    directory and `HOME`/`TMPDIR`, an environment built from scratch (no variable of the parent is inherited, so
    no tokens or credentials), stdin empty, stdout/stderr captured in unlinked temporary files. Where `resource`
    exists (Linux, macOS) it gets limits on address space (`memory_limit_mb`), CPU time, file size (16 MiB, stdout
    included) and core dumps. After `timeout` wall-clock seconds the whole process group is killed (`SIGKILL`) and
    the result is `"timed out"`; the call never waits longer than that plus the clean-up.

    Not a security boundary: the program can still read files the user can read, use the network, and a process
    that starts its own session escapes the group kill. Run untrusted code inside a container or VM.

    Example:
        ```python
        >>> execute_python("assert sum([1, 2]) == 3").status
        'passed'
        >>> execute_python("while True: pass", timeout=1).status
        'timed out'
        ```
    """
    token = secrets.token_hex(16)
    cpu_limit = int(math.ceil(timeout)) + 1
    memory = int(memory_limit_mb) * 1024 * 1024 if memory_limit_mb else 0
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hf_unmask_exec_", ignore_cleanup_errors=True) as workdir:
        path = os.path.join(workdir, "solution.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(program)
        with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
            stdin.write((token + "\n").encode())
            stdin.flush()
            stdin.seek(0)
            cmd = [sys.executable, "-I", "-B", "-c", _RUNNER, path, str(memory), str(cpu_limit), str(_FILE_SIZE_LIMIT)]
            proc = subprocess.Popen(
                cmd,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                cwd=workdir,
                env=_sandbox_env(workdir),
                start_new_session=os.name == "posix",
                close_fds=True,
            )
            timed_out = False
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc)  # also reaps grandchildren left behind by a program that finished
                proc.wait()
            duration = time.monotonic() - start
            out, err = _read_tail(stdout), _read_tail(stderr)
    if timed_out:
        status = "timed out"
    elif proc.returncode == 0 and out.rstrip().endswith(token):
        status = "passed"
    else:
        status = "failed"
    out = out.replace(token, "").rstrip("\n")
    return ExecutionResult(status, proc.returncode, out[-_KEPT_OUTPUT:], err[-_KEPT_OUTPUT:], duration)


def _code_execution_allowed(allow_code_execution: Optional[bool]) -> bool:
    if allow_code_execution is not None:
        return bool(allow_code_execution)
    return os.environ.get(CODE_EVAL_ENV_VAR, "0") == "1"


def _require_code_opt_in(allow_code_execution: Optional[bool]) -> None:
    if _code_execution_allowed(allow_code_execution):
        return
    how = (
        "it was disabled with allow_code_execution=False"
        if allow_code_execution is False
        else f"set the environment variable {CODE_EVAL_ENV_VAR}=1 or pass allow_code_execution=True"
    )
    raise PermissionError(
        "The code reward executes model-generated code, which may be harmful even though it runs in a separate, "
        "resource-limited process (not a security sandbox: it can read your files and use the network). Run it "
        f"inside a container or VM, and opt in explicitly: {how}."
    )


_FENCE = re.compile(r"```[ \t]*(?:python|py|python3)?[ \t]*\n(.*?)(?:```|\Z)", re.DOTALL)


def _extract_code(completion: str) -> str:
    """The first fenced code block of a completion, or the completion itself when it has no fence."""
    if "```" not in completion:
        return completion
    match = _FENCE.search(completion)
    return match.group(1) if match else completion


class CodeReward:
    """1.0 when the completion passes the problem's unit tests, run in a separate process; 0.0 otherwise.

    The program run per completion is `prompt + completion + "\\n" + test + "\\n" + f"check({entry_point})"`, the
    HumanEval convention (`prompt` is the function signature and docstring, `test` defines `check(candidate)`).
    With `entry_point_column=None` the program is `prompt + completion + "\\n" + test` (MBPP-style `assert` lines).
    A completion inside a Markdown code fence is taken from the first fence. Completions are run in parallel by a
    thread pool of `max_workers` subprocesses, each through [`execute_python`] (isolated interpreter, fresh temp
    directory, empty environment, memory / CPU / file-size limits, whole process group killed after `timeout`
    seconds). A timeout, a crash, an exception or an early `sys.exit` all count as 0.0, so an infinite loop
    never hangs the trainer.

    `evaluate`'s `code_eval` metric is a Hub module: it cannot be loaded offline from the installed `evaluate`
    package, and it runs the code with `exec` in a forked process that inherits the trainer's environment, so it
    is not used here.

    Executing model-written code needs an opt-in: `allow_code_execution=True`, or the environment variable
    `HF_ALLOW_CODE_EVAL=1` (as for `evaluate`'s `code_eval`) when `allow_code_execution` is left at `None`.
    Without it, calling the reward raises `PermissionError` (and so does [`get_reward_function`]`("code")`).

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
        code = _extract_code(_as_text(completion))
        if self.include_prompt:
            if not isinstance(prompt, str):
                raise TypeError(
                    "CodeReward(include_prompt=True) needs text prompts holding the code to complete; with chat "
                    "prompts, use include_prompt=False and let the completion be the whole function."
                )
            code = prompt + code
        program = f"{code}\n\n{test}\n"
        if entry_point is not None:
            program += f"\ncheck({entry_point})\n"
        return program

    def run(self, programs: Sequence[str]) -> list[ExecutionResult]:
        """Execute programs in parallel (order kept). Checks the opt-in."""
        _require_code_opt_in(self.allow_code_execution)
        if not programs:
            return []
        workers = max(1, min(self.max_workers, len(programs)))
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="code_reward") as pool:
            return list(pool.map(lambda p: execute_python(p, self.timeout, self.memory_limit_mb), programs))

    def __call__(self, prompts: list[Any], completions: list[Any], **columns: Any) -> list[float]:
        _require_code_opt_in(self.allow_code_execution)
        n = len(completions)
        if len(prompts) != n:
            raise ValueError(f"{self.__name__}: {len(prompts)} prompts for {n} completions.")
        tests = _column(columns, self.test_column, n, self.__name__)
        if self.entry_point_column:
            entry_points = _column(columns, self.entry_point_column, n, self.__name__)
        else:
            entry_points = [None] * n
        programs = [self.build_program(p, c, t, e) for p, c, t, e in zip(prompts, completions, tests, entry_points)]
        self.last_results = self.run(programs)
        return [1.0 if r.passed else 0.0 for r in self.last_results]

    def __repr__(self) -> str:
        return f"CodeReward(timeout={self.timeout}, memory_limit_mb={self.memory_limit_mb}, max_workers={self.max_workers})"


#: HumanEval-style code reward with the default limits; the opt-in is read from `HF_ALLOW_CODE_EVAL` at each call.
code_reward = CodeReward()


# ----------------------------------------------------------------------------------------------------------------
# 4. Resolving reward specs, checking outputs
# ----------------------------------------------------------------------------------------------------------------

_BUILTIN_HELP = '"math", "code", "task:<name>" or "package.module:function"'


def _task_names() -> str:
    from hf_unmask.tasks import TASK_REGISTRY

    return ", ".join(sorted(TASK_REGISTRY)) or "(none registered)"


def get_reward_function(spec: Union[str, RewardFunction], **kwargs: Any) -> RewardFunction:
    """Resolve a reward spec to a reward callable.

    - `"task:<name>"`: [`TaskReward`] of a built-in task (`"task:program_trace"`);
    - `"math"`: [`MathReward`] on the `answer` column;
    - `"code"`: [`CodeReward`]; raises `PermissionError` right away unless code execution was opted in to;
    - `"package.module:attribute"`: a user reward function imported from a module; a class found there is
      instantiated with `kwargs`;
    - a callable is returned unchanged.

    `kwargs` go to the reward's constructor (e.g. `get_reward_function("code", timeout=3)`).

    Example:
        ```python
        >>> get_reward_function("task:program_trace").__name__
        'program_trace_reward'
        >>> get_reward_function("trainers.rewards:math_reward").required_columns
        ('answer',)
        ```
    """
    if callable(spec) and not isinstance(spec, str):
        if kwargs:
            raise TypeError(f"Options {sorted(kwargs)} cannot be applied to an existing callable reward {spec!r}.")
        return spec
    if not isinstance(spec, str) or not spec.strip():
        raise TypeError(f"A reward spec must be a non-empty string ({_BUILTIN_HELP}) or a callable, got {spec!r}.")
    spec = spec.strip()
    if spec == "math":
        return MathReward(**kwargs) if kwargs else math_reward
    if spec == "code":
        reward = CodeReward(**kwargs)
        _require_code_opt_in(reward.allow_code_execution)  # fail before any rollout, not after the first one
        return reward
    if spec.startswith("task:"):
        name = spec[len("task:") :].strip()
        if not name:
            raise ValueError(f"Reward spec {spec!r} names no task. Built-in tasks: {_task_names()}.")
        from hf_unmask.tasks import TASK_REGISTRY

        if name not in TASK_REGISTRY:
            raise ValueError(f"Reward spec {spec!r}: unknown task {name!r}. Built-in tasks: {_task_names()}.")
        return TaskReward(name, **kwargs)
    if ":" not in spec:
        raise ValueError(
            f"Unknown reward {spec!r}. Use {_BUILTIN_HELP}; built-in tasks: {_task_names()}. "
            "Rewards are named 'module:function', e.g. 'my_project.rewards:format_reward'."
        )
    return _import_reward(spec, **kwargs)


def _import_reward(spec: str, **kwargs: Any) -> RewardFunction:
    from hf_unmask._importing import import_object

    obj = import_object(spec, "reward")  # the current directory is importable, as for `hf-unmask evaluate`
    if isinstance(obj, type):
        obj = obj(**kwargs)
    elif kwargs:
        raise TypeError(f"Reward spec {spec!r} is a function; options {sorted(kwargs)} only apply to reward classes.")
    if not callable(obj):
        raise TypeError(f"Reward spec {spec!r} resolved to a {type(obj).__name__}, which is not callable.")
    return obj


def get_reward_functions(specs: Union[str, RewardFunction, Sequence[Union[str, RewardFunction]]]) -> list:
    """Resolve one spec, a comma-separated string of specs, or a list of specs (see [`get_reward_function`]).

    Example:
        ```python
        >>> [f.__name__ for f in get_reward_functions("math,task:program_trace")]
        ['math_reward', 'program_trace_reward']
        ```
    """
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    elif callable(specs):
        specs = [specs]
    return [get_reward_function(s) for s in specs]


def required_columns(reward: RewardFunction) -> tuple[str, ...]:
    """The dataset columns a reward declares it needs (`()` when it declares none)."""
    while hasattr(reward, "func") and not hasattr(reward, "required_columns"):  # functools.partial
        reward = reward.func
    return tuple(getattr(reward, "required_columns", ()))


def check_reward_columns(rewards: Sequence[RewardFunction], columns: Sequence[str]) -> None:
    """Raise a clear `ValueError` when a dataset lacks a column that one of the rewards needs.

    TRL passes every dataset column except `prompt` (given as `prompts`) to the reward functions.

    Example:
        ```python
        >>> check_reward_columns([math_reward], ["prompt", "answer"])
        >>> check_reward_columns([math_reward], ["prompt", "solution"])
        Traceback (most recent call last):
        ...
        ValueError: Reward 'math_reward' needs the dataset column(s) ['answer'], missing from the dataset (columns: ['prompt', 'solution']).
        ```
    """
    available = set(columns)
    for reward in rewards:
        missing = [c for c in required_columns(reward) if c not in available]
        if missing:
            name = getattr(reward, "__name__", type(reward).__name__)
            raise ValueError(
                f"Reward '{name}' needs the dataset column(s) {missing}, missing from the dataset "
                f"(columns: {sorted(available)})."
            )


def check_reward_output(
    values: Any,
    n: int,
    name: str = "reward",
    allow_none: bool = False,
    bounds: Optional[tuple[float, float]] = None,
) -> list[float]:
    """Validate what a reward function returned and convert it to a list of `n` floats.

    Raises `TypeError` when `values` is not a sequence or holds a non-number, and `ValueError` when it has the wrong
    length, a non-finite value, or (with `bounds=(low, high)`) a value outside the bounds. `None` entries (TRL's "not
    applicable") become NaN when `allow_none` (which also lets NaN through), and are an error otherwise. Tensors and arrays are accepted.

    Example:
        ```python
        >>> check_reward_output([1, 0.5, True], 3)
        [1.0, 0.5, 1.0]
        >>> check_reward_output([1.0], 2, name="math_reward")
        Traceback (most recent call last):
        ...
        ValueError: Reward 'math_reward' returned 1 value(s) for 2 completions; it must return exactly one number per completion.
        ```
    """
    if hasattr(values, "tolist") and not isinstance(values, (list, tuple)):
        values = values.tolist()
    if isinstance(values, (str, bytes, dict)) or not isinstance(values, Sequence):
        raise TypeError(
            f"Reward '{name}' must return a list of {n} numbers (one per completion), got {type(values).__name__}."
        )
    if len(values) != n:
        raise ValueError(
            f"Reward '{name}' returned {len(values)} value(s) for {n} completions; it must return exactly one number "
            "per completion."
        )
    out: list[float] = []
    for i, value in enumerate(values):
        if value is None:
            if allow_none:
                out.append(math.nan)
                continue
            raise TypeError(
                f"Reward '{name}' returned None at index {i}; it must return a number for every completion."
            )
        if not isinstance(value, numbers.Real) and hasattr(value, "item"):  # 0-d tensor / numpy scalar
            try:
                value = value.item()
            except (ValueError, RuntimeError):
                pass
        if not isinstance(value, numbers.Real):
            shown = repr(value)
            shown = shown if len(shown) <= 60 else shown[:57] + "..."
            raise TypeError(
                f"Reward '{name}' returned a non-number at index {i}: {shown} ({type(value).__name__}); "
                "rewards must be floats."
            )
        value = float(value)
        if math.isnan(value) and allow_none:
            out.append(value)
            continue
        if not math.isfinite(value):
            raise ValueError(f"Reward '{name}' returned a non-finite value at index {i}: {value}.")
        if bounds is not None and not bounds[0] <= value <= bounds[1]:
            raise ValueError(f"Reward '{name}' returned {value} at index {i}, outside [{bounds[0]}, {bounds[1]}].")
        out.append(value)
    return out
