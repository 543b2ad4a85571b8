"""Reward functions for training unmasking policies, and the correctness functions evaluation shares with them.

One kind a file, each with plain functions usable anywhere and TRL-signature reward classes built on them
(`reward(prompts, completions, **dataset_columns) -> list[float]`, with `required_columns` and a `__name__`):

- `efficiency`: the paper's efficiency term, `efficiency_reward(r, nfe, L, alpha, form)`.
- `task`: built-in task verifiers, `TaskReward` (`"task:<name>"`).
- `math`: GSM8K / MATH answers with math-verify, `answers_match(completion, reference)` and `MathReward` (`"math"`).
- `code`: unit tests run in the sandbox (`sandbox`), `passes_tests(...)` and `CodeReward` (`"code"`, opt-in with
  `HF_ALLOW_CODE_EVAL=1`).
- `forms`: the two forms of a user reward, TRL's batch form and the per-example `(completion, reference) -> bool |
  float` of `hf-unmask evaluate --correctness` (`PerExampleReward`, `per_example_reward`, read from the signature).
- `specs`: `get_reward_function("task:program_trace" | "math" | "code" | "module:function")` and the checks the
  trainer runs on rewards.

What a reward receives from `UnmaskingGRPOTrainer` (TRL's calling convention, keyword arguments only, one entry per
rollout: each prompt's row repeated for its G rollouts, plus one for the expert rollout with expert steering):

- `prompts`: the dataset's `prompt` values as given (after `--prompt_template`), or the list of chat messages for a
  conversational prompt;
- `completions`: the generated text, decoded with `skip_special_tokens=True`, cut before the first EOS token and
  stripped of surrounding whitespace; for a conversational prompt, `[{"role": "assistant", "content": text}]`. Mask
  tokens still in the canvas at the end of a rollout are special tokens for the built-in tokenizer and BERT-style
  tokenizers, so they decode as nothing (the text is shorter, never `[MASK]`);
- `completion_ids`: the generated token ids, cut before the first EOS (masks left in place are kept here);
- every other dataset column under its own name (the answer column renamed to what the reward declares in
  `required_columns`, see `--answer_column`), and `trainer_state`, `log_extra`, `log_metric`.

A reward is only called on generated completions: the trainer checks its signature and the dataset's columns before
training without calling it. The final evaluation of `hf-unmask train` scores with the first reward, one completion at a
time, given only its reference column (a `PerExampleReward`'s own function is used as it is).

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
from .forms import PerExampleReward, as_reward_function, per_example_reward, reward_form
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
    "PerExampleReward",
    "RewardFunction",
    "TaskReward",
    "answers_match",
    "as_reward_function",
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
    "per_example_reward",
    "required_columns",
    "reward_form",
    "task_reward",
]
