"""hf_unmask.rewards.specs: reward specs, user modules, and the checks of columns and outputs."""

from __future__ import annotations

import math
import re
import sys

import pytest

from hf_unmask.rewards import (
    MathReward,
    check_reward_columns,
    check_reward_output,
    get_reward_function,
    get_reward_functions,
    math_reward,
    task_reward,
)


def test_get_reward_function_specs():
    assert get_reward_function("math") is math_reward
    assert get_reward_function("math", answer_column="gold").required_columns == ("gold",)
    assert get_reward_function("task:program_trace").__name__ == "program_trace_reward"
    assert get_reward_function("hf_unmask.rewards:math_reward") is math_reward
    assert isinstance(get_reward_function("hf_unmask.rewards:MathReward", answer_column="x"), MathReward)

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
        ("hf_unmask.rewards:no_such_reward", ValueError, "has no attribute 'no_such_reward'"),
        ("hf_unmask.rewards:CODE_EVAL_ENV_VAR", TypeError, "not callable"),
        ("hf_unmask.rewards:", ValueError, "Malformed"),
        ("a:b:c", ValueError, "Malformed"),
        ("", TypeError, "non-empty string"),
        (42, TypeError, "non-empty string"),
    ],
)
def test_get_reward_function_bad_specs(spec, error, match):
    with pytest.raises(error, match=match):
        get_reward_function(spec)


def test_user_modules_are_imported_from_the_working_directory(tmp_path, monkeypatch):
    """`--reward_funcs mod:fn` of the training script (whose sys.path[0] is scripts/, not the working directory)
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
