"""hf_unmask.evaluation.correctness: math-verify answers, exact match, and correctness functions by name."""

from __future__ import annotations

import pytest

from hf_unmask.evaluation import code_passes_tests, exact_match, math_verify_correct, resolve_correctness


def test_math_verify_correctness():
    gsm8k_reference = (
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nShe sold 48+24 = <<48+24=72>>72 clips.\n#### 72"
    )
    assert math_verify_correct("She sold 24 in May, so 48 + 24 = 72 in total. The answer is 72.", gsm8k_reference)
    assert math_verify_correct("so \\boxed{72}", gsm8k_reference)
    assert math_verify_correct("... #### 72", gsm8k_reference)
    assert not math_verify_correct("The answer is 71.", gsm8k_reference)
    assert not math_verify_correct("", gsm8k_reference)
    assert math_verify_correct("x = 0.5", "1/2")


def test_resolve_correctness(tmp_path, monkeypatch):
    assert resolve_correctness("math_verify") is math_verify_correct
    assert resolve_correctness(exact_match) is exact_match
    (tmp_path / "resolve_checks_mod.py").write_text("def first_char(c, r):\n    return c[:1] == r[:1]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fn = resolve_correctness("resolve_checks_mod:first_char")
    assert fn("abc", "axe") and not fn("b", "a")
    with pytest.raises(ValueError, match="Unknown correctness function 'nope'"):
        resolve_correctness("nope")
    with pytest.raises(ValueError, match="Cannot import module 'no_such_module_xyz'"):
        resolve_correctness("no_such_module_xyz:f")
    with pytest.raises(ValueError, match="has no attribute 'missing'"):
        resolve_correctness("resolve_checks_mod:missing")


def test_code_correctness_is_the_training_sandbox(monkeypatch):
    from hf_unmask.rewards import CodeReward

    tests = "assert add(2, 3) == 5\nassert add(-1, 1) == 0"
    right, wrong = "def add(a, b):\n    return a + b", "def add(a, b):\n    return a - b"
    monkeypatch.delenv("HF_ALLOW_CODE_EVAL", raising=False)
    with pytest.raises(PermissionError, match="HF_ALLOW_CODE_EVAL"):
        code_passes_tests(right, tests)
    # by name (as --correctness code) it is refused when resolved, before anything is generated
    with pytest.raises(PermissionError, match="HF_ALLOW_CODE_EVAL=1 hf-unmask evaluate"):
        resolve_correctness("code")
    monkeypatch.setenv("HF_ALLOW_CODE_EVAL", "1")
    assert resolve_correctness("code") is code_passes_tests
    assert code_passes_tests(right, tests) and not code_passes_tests(wrong, tests)
    assert code_passes_tests("Here:\n```python\n" + right + "\n```", tests)  # the first fence is the program
    # training (chat prompts: the completion is the whole function) scores the same completions the same way
    reward = CodeReward(include_prompt=False, entry_point_column=None)
    scores = reward(["q"] * 2, [right, wrong], test=[tests, tests])
    assert scores == [1.0, 0.0]


def test_evaluate_refuses_code_correctness_before_generating(tmp_path, monkeypatch, capsys):
    from hf_unmask import cli

    monkeypatch.delenv("HF_ALLOW_CODE_EVAL", raising=False)
    data = tmp_path / "code.jsonl"
    data.write_text('{"prompt": "sort : 3 1 2", "reference": "assert True"}\n')
    generated = []

    def generate(*args, **kwargs):
        generated.append(1)
        raise RuntimeError("generated")

    monkeypatch.setattr("hf_unmask.evaluation.sweep.Sweep.run_seed", generate)
    code = cli.main(["evaluate", "--model", "builtin", "--dataset", str(data), "--correctness", "code",
                     "--strategy", "top_k_confidence:steps=16", "--output-dir", str(tmp_path / "out")])  # fmt: skip
    assert code != 0 and not generated and not (tmp_path / "out").exists()
    assert "HF_ALLOW_CODE_EVAL=1" in capsys.readouterr().err
