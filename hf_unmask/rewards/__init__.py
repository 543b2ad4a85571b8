"""Reward functions for training unmasking policies, and the correctness functions evaluation shares with them.

One kind a file, each with plain functions usable anywhere and TRL-signature reward classes built on them
(`reward(prompts, completions, **dataset_columns) -> list[float]`, with `required_columns` and a `__name__`):

- `efficiency`: the paper's efficiency term, `efficiency_reward(r, nfe, L, alpha, form)`.
- `task`: built-in task verifiers, `TaskReward` (`"task:<name>"`).
- `math`: GSM8K / MATH answers with math-verify, `answers_match(completion, reference)` and `MathReward` (`"math"`).
- `code`: unit tests run in the sandbox (`sandbox`), `passes_tests(...)` and `CodeReward` (`"code"`, opt-in with
  `HF_ALLOW_CODE_EVAL=1`).
- `specs`: `get_reward_function("task:program_trace" | "math" | "code" | "module:function")` and the checks the
  trainer runs on rewards.

Importing this package imports neither TRL nor math-verify (math-verify is loaded on the first math comparison).

Example:
    ```python
    >>> from hf_unmask.rewards import answers_match, get_reward_function
    >>> answers_match("\\\\boxed{\\\\frac{1}{2}}", "\\\\frac12")
    True
    >>> reward = get_reward_function("math")
    >>> reward(["q", "q"], ["The answer is 42.", "\\\\boxed{41}"], answer=["#### 42", "#### 42"])
    [1.0, 0.0]
    ```
"""

from .code import CodeReward, build_program, code_reward, extract_code, passes_tests
from .efficiency import REWARD_FORMS, efficiency_reward
from .math import MathReward, answers_match, gsm8k_gold, math_reward
from .sandbox import CODE_EVAL_ENV_VAR, ExecutionResult, execute_python
from .specs import (
    RewardFunction,
    check_reward_columns,
    check_reward_output,
    get_reward_function,
    get_reward_functions,
    required_columns,
)
from .task import TaskReward, task_reward

__all__ = [
    "CODE_EVAL_ENV_VAR",
    "REWARD_FORMS",
    "CodeReward",
    "ExecutionResult",
    "MathReward",
    "RewardFunction",
    "TaskReward",
    "answers_match",
    "build_program",
    "check_reward_columns",
    "check_reward_output",
    "code_reward",
    "efficiency_reward",
    "execute_python",
    "extract_code",
    "get_reward_function",
    "get_reward_functions",
    "gsm8k_gold",
    "math_reward",
    "passes_tests",
    "required_columns",
    "task_reward",
]
