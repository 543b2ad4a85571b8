"""Ctrl-C keeps the work done: SIGINT to a running evaluation writes the finished rows, marked partial, and exits
with 130 and one line naming the file (no traceback)."""

from __future__ import annotations

import csv
import json
import sys

from interrupting import interrupt_when, progress_at_least, subprocess_env

from hf_unmask import demo

# 64 examples in batches of 2: 32 generate calls per setting, so a bar at 33 or more has finished one setting (and
# the ~8 settings take long enough that the interrupt arrives before the end).
BATCHES_PER_SETTING = 32
SMALL_EVAL = ["--n-examples", "64", "--batch-size", "2", "--seeds", "0"]


def _partial_table(folder):
    table = json.loads((folder / "evaluation.json").read_text())
    with (folder / "evaluation.csv").open() as f:
        csv_rows = list(csv.DictReader(f))
    meta = table["meta"]
    assert meta["complete"] is False
    assert 1 <= meta["settings_done"] == len(table["rows"]) == len(csv_rows) < meta["settings_planned"]
    assert (folder / "pareto.png").is_file()
    return table


def test_ctrl_c_in_evaluate_writes_the_finished_rows(tmp_path):
    out = tmp_path / "eval"
    command = [
        sys.executable, "-m", "hf_unmask.cli", "evaluate", "--task", "program_trace", *SMALL_EVAL,
        "--strategy", "top_k_confidence:steps=2,4,8,16", "--strategy", "random:steps=2,4,8,16",
        "--block-length", "8", "--output-dir", str(out),
    ]  # fmt: skip
    done = interrupt_when(
        command, progress_at_least(BATCHES_PER_SETTING + 1), cwd=tmp_path, env=subprocess_env(), timeout=120
    )
    assert done.interrupted, "the evaluation finished before it could be interrupted:\n" + done.describe()
    assert done.returncode == 130, done.describe()
    assert "Traceback" not in done.stderr, done.describe()
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("hf-unmask evaluate: interrupted") and str(out / "evaluation.json") in last, last
    table = _partial_table(out)
    assert table["meta"]["settings_planned"] == 8
    assert table["rows"][0]["strategy"] == "top_k_confidence" and table["rows"][0]["budget"] == "steps=2"


def test_ctrl_c_in_the_policy_benchmark_keeps_the_finished_rows(tmp_path):
    out = tmp_path / "bench"
    command = [
        sys.executable, "-m", "benchmarks.policy_vs_heuristics", "--n", "64", "--batch-size", "2",
        "--seeds", "0", "--threads", "1", "--output-dir", str(out),
    ]  # fmt: skip
    done = interrupt_when(
        command, progress_at_least(BATCHES_PER_SETTING + 1), cwd=tmp_path, env=subprocess_env(), timeout=120
    )
    assert done.interrupted and done.returncode == 130, done.describe()
    assert "Traceback" not in done.stderr and str(out / "semi_ar" / "evaluation.json") in done.stderr
    _partial_table(out / "semi_ar")
    summary = json.loads((out / "comparison.json").read_text())
    assert summary["complete"] is False and summary["comparisons"] == {}


def test_ctrl_c_in_the_demo_counts_the_panels_not_started(tmp_path):
    out = tmp_path / "demo"
    command = [
        sys.executable, "-m", "hf_unmask.demo", *SMALL_EVAL[:4], "--no-stream", "--output-dir", str(out),
    ]  # fmt: skip
    done = interrupt_when(
        command, progress_at_least(BATCHES_PER_SETTING + 1), cwd=tmp_path, env=subprocess_env(), timeout=120
    )
    assert done.interrupted and done.returncode == 130, done.describe()
    assert "hf-unmask demo: interrupted" in done.stderr and "Traceback" not in done.stderr, done.describe()
    table = _partial_table(out)
    # both panels (semi-AR BL 8 and full diffusion) are planned although only the first one had started
    assert {r["mode"] for r in table["rows"]} == {"semi_ar"}
    heuristics = sum(len(spec.budgets()) for spec in demo.demo_strategies(16, 8))
    policies = demo.demo_policies("tiny-dllm", "program_trace", 16, 8)
    assert table["meta"]["settings_planned"] == 2 * heuristics + len(policies[8]) + len(policies[16])


def test_ctrl_c_as_the_progress_bar_appears_still_gives_a_partial_result(monkeypatch):
    """Ctrl-C lands as soon as "evaluate:" is printed, before the first setting starts: callers (the CLI, the
    benchmarks) still get an `EvaluationInterrupted` with an empty, saveable result, not a bare KeyboardInterrupt."""
    from hf_unmask import load_builtin_model
    from hf_unmask.evaluation import EvaluationInterrupted, evaluate_strategies, runner

    def interrupted_setup(*args, **kwargs):
        raise KeyboardInterrupt

    model, tokenizer = load_builtin_model()
    monkeypatch.setattr(runner, "Sweep", interrupted_setup)
    try:
        evaluate_strategies(model, tokenizer, "program_trace", ["top_k_confidence:steps=16"], n_examples=2)
    except EvaluationInterrupted as stop:
        assert stop.result.rows == [] and stop.result.meta["complete"] is False
        assert stop.result.meta["settings_done"] == 0
    except KeyboardInterrupt:  # not an EvaluationInterrupted: the caller has nothing to save
        raise AssertionError("a bare KeyboardInterrupt escaped evaluate_strategies") from None
    else:
        raise AssertionError("no EvaluationInterrupted")
