"""scripts/ship_builtin_policy.py: the lineage it records (`--initialized-from`), the evaluation table it puts on
the card (this policy and the heuristics only; never a partial table), and what it refuses."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
from interrupting import REPO, subprocess_env
from script_loading import load_script

from hf_unmask.strategies import ConfidencePolicy, UnmaskingStrategy

ship_builtin_policy = load_script("ship_builtin_policy")

START = "tiny-dllm-program_trace-bl8-alpha1"  # a shipped policy


def _row(strategy: str, accuracy: float, nfe: float) -> dict:
    return {"strategy": strategy, "budget": "", "block_length": 8, "mode": "semi_ar", "accuracy_mean": accuracy,
            "accuracy_std": 0.0, "nfe_mean": nfe, "nfe_std": 0.0, "n_examples": 10, "pareto": True}  # fmt: skip


@pytest.fixture
def package(tmp_path, monkeypatch):
    """Ship into a temporary folder instead of the package."""
    target = tmp_path / "builtin_policies"
    monkeypatch.setattr(ship_builtin_policy, "BUILTIN_POLICY_DIR", target)
    return target


@pytest.fixture
def warm_run(tmp_path, monkeypatch):
    """A run warm-started from a local folder, as training records it, and an evaluation of it and a sibling run."""
    monkeypatch.chdir(tmp_path)
    start = tmp_path / "outputs" / "policy-bl8-alpha1"
    ConfidencePolicy(hidden_size=16, num_heads=2, ffn_size=32).save_pretrained(start)
    run = tmp_path / "outputs" / "policy-bl8-alpha3"
    trained_for = {"base_model": "builtin:tiny-dllm", "gen_length": 16, "block_length": 8, "alpha": 3.0,
                   "task": "program_trace", "initialized_from": "outputs/policy-bl8-alpha1"}  # fmt: skip
    ConfidencePolicy(hidden_size=16, num_heads=2, ffn_size=32, trained_for=trained_for).save_pretrained(run)
    (run / "training_config.json").write_text(json.dumps({"policy_name_or_path": "outputs/policy-bl8-alpha1"}))
    evaluation = tmp_path / "outputs" / "eval"
    evaluation.mkdir()
    meta = {"task": "program_trace", "gen_length": 16, "block_lengths": [8], "seeds": [0], "n_examples": 10,
            "policies": ["policy-bl8-alpha3", "policy-bl8-alpha0.3"], "complete": True}  # fmt: skip
    rows = [_row("policy-bl8-alpha3", 0.8, 5.7), _row("policy-bl8-alpha0.3", 0.87, 6.0),
            _row("confidence_threshold", 0.75, 5.6)]  # fmt: skip
    (evaluation / "evaluation.json").write_text(json.dumps({"meta": meta, "rows": rows}))
    return run, evaluation


def test_initialized_from_is_recorded_in_the_config_and_the_card(package, warm_run):
    run, evaluation = warm_run
    target = ship_builtin_policy.ship(str(run), "tiny-test-alpha3", str(evaluation), initialized_from=START)
    assert target == package / "tiny-test-alpha3"
    shipped = UnmaskingStrategy.from_pretrained(target)
    assert shipped.trained_for["initialized_from"] == START  # not the local folder training saw
    card = (target / "README.md").read_text()
    assert f"| initialized from | {START} |" in card
    assert 'load_builtin_policy("tiny-test-alpha3")' in card  # the snippet loads it by its shipped name
    # this policy (found by its run folder's name) and the heuristics; the sibling run has its own card
    # (its rows are relabelled with the shipped name)
    assert "| tiny-test-alpha3" in card and "confidence_threshold" in card and "policy-bl8-alpha0.3" not in card
    assert "| policy-bl8-alpha3" not in card


def test_what_ship_refuses(package, warm_run, tmp_path):
    run, evaluation = warm_run
    with pytest.raises(ValueError, match="local folder 'outputs/policy-bl8-alpha1'.*--initialized-from"):
        ship_builtin_policy.ship(str(run), "x", str(evaluation))
    with pytest.raises(ValueError, match="must name a built-in policy"):
        ship_builtin_policy.ship(str(run), "x", str(evaluation), initialized_from="my-old-policy")
    scratch = tmp_path / "scratch"
    ConfidencePolicy(hidden_size=16, num_heads=2, ffn_size=32).save_pretrained(scratch)
    with pytest.raises(ValueError, match="trained from scratch.*drop it"):
        ship_builtin_policy.ship(str(scratch), "x", initialized_from=START)
    with pytest.raises(ValueError, match="no row for 'nope'"):
        ship_builtin_policy.ship(str(run), "x", str(evaluation), label="nope", initialized_from=START)
    table = json.loads((evaluation / "evaluation.json").read_text())
    table["meta"].update(complete=False, settings_done=2, settings_planned=9)
    (evaluation / "evaluation.json").write_text(json.dumps(table))
    with pytest.raises(ValueError, match=r"partial evaluation \(interrupted after 2 of 9 settings\)"):
        ship_builtin_policy.ship(str(run), "x", str(evaluation), initialized_from=START)
    assert not package.exists()  # nothing was written by a refused call


def test_ship_errors_are_one_line_on_the_command_line(warm_run):
    run, evaluation = warm_run
    done = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "ship_builtin_policy.py"), str(run), "--name", "x",
         "--evaluation", str(evaluation)],
        cwd=run.parent.parent, env=subprocess_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert re.search(r"error: .*--initialized-from NAME", done.stderr), done.stderr
