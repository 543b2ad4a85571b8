"""The benchmarks are one package, each module run as `python -m benchmarks.<name>` from the repository root; their
baselines compute what the library computes (their loops give the same tokens), and the training curves show every
promised panel and a single logged point."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import hf_unmask
from hf_unmask.strategies import TopKConfidence


def _load(name: str):
    """The module `benchmarks.<name>`, as `python -m benchmarks.<name>` runs it from the repository root."""
    return importlib.import_module(f"benchmarks.{name}")


REPO = Path(__file__).resolve().parents[1]
BENCHMARK_NAMES = sorted(p.stem for p in (REPO / "benchmarks").glob("*.py") if not p.stem.startswith("_"))


@pytest.mark.parametrize("name", BENCHMARK_NAMES)
def test_every_benchmark_is_a_module_of_the_package(name):
    module = _load(name)
    assert module.__name__ == f"benchmarks.{name}" and module.__package__ == "benchmarks"
    if name != "regime":  # the shared bookkeeping; every other module is a command
        assert callable(module.main) and f"python -m benchmarks.{name}" in (module.__doc__ or ""), name


def test_a_benchmark_with_shared_helpers_runs_with_python_dash_m(tmp_path):
    """paper_claims imports two other benchmarks and benchmarks.regime: it runs from the repository root as is."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, "-m", "benchmarks.paper_claims", "--help"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "--claims" in done.stdout


@pytest.mark.parametrize("block_length", [4, 16])
def test_benchmark_loops_match_generate(block_length):
    overhead, breakdown = _load("generation_overhead"), _load("loop_cost_breakdown")
    model, _ = hf_unmask.load_builtin_model("tiny-dllm")
    mask_id = model.generation_config.mask_token_id
    prompt = torch.randint(8, model.config.vocab_size, (2, 6), generator=torch.Generator().manual_seed(0))
    L, steps = 16, 8
    ours = model.generate(prompt, max_new_tokens=L, block_length=block_length, strategy=TopKConfidence(steps=steps))
    for loop in (
        overhead.naive_llada_generate,
        breakdown.inline_with_guarantees,
        breakdown.inline_without_guarantees,
    ):
        assert torch.equal(loop(model, prompt, mask_id, L, block_length, steps), ours), loop.__name__


def test_training_curves_show_every_panel_and_a_single_logged_point():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curves = _load("training_curves")
    one_row = [{"step": 1, "reward": 0.1, "correctness": 0.2, "nfe/mean": 15.0, "unmask_fraction": 0.12}]
    many = [dict(one_row[0], step=s, reward=0.01 * s) for s in range(1, 41)]
    fig = curves.curves_figure({"outputs/interrupted": one_row, "outputs/long": many})
    try:
        assert [ax.get_title() for ax in fig.axes] == ["reward", "correctness", "nfe/mean", "unmask_fraction"]
        for ax in fig.axes:
            single, long = ax.get_lines()
            assert len(single.get_xdata()) == 1 and single.get_marker() not in (None, "None", "", " ")
            assert single.get_markersize() > 0 and len(long.get_xdata()) == 40
    finally:
        plt.close(fig)


def test_kv_cache_speed_benchmark_counts_the_positions_each_mode_runs(tmp_path, monkeypatch):
    """A small run of `benchmarks/kv_cache_speed.py`: every setting is timed against the same baseline, and the
    positions run through the model follow from the modes (the timings themselves are not asserted)."""
    speed = _load("kv_cache_speed")
    out = tmp_path / "speed.json"
    argv = ["kv_cache_speed.py", "--batch-sizes", "2", "--gen-length", "16", "--block-length", "8"]
    argv += ["--prompt-length", "4", "--d-model", "32", "--layers", "1", "--heads", "2", "--mlp", "64"]
    monkeypatch.setattr(sys, "argv", argv + ["--vocab", "64", "--threads", "1", "--output", str(out)])
    speed.main()
    report = json.loads(out.read_text())
    rows = {row["setting"]: row for row in report["rows"]}
    assert list(rows) == [label for label, _, _ in speed.SETTINGS]
    assert rows["top-k, no cache"]["speedup"] == 1.0
    assert rows["top-k, no cache"]["nfe"] == rows["top-k, dual cache"]["nfe"] == 16  # one token per step
    assert rows["top-k, no cache"]["forward_positions"] == 16 * (4 + 16)  # every step runs prompt + canvas
    # prefix: a refresh per block (20 positions), then the block and what follows; dual: the block only
    assert rows["top-k, prefix cache"]["forward_positions"] == 2 * 20 + 7 * 16 + 7 * 8
    assert rows["top-k, dual cache"]["forward_positions"] == 2 * 20 + 14 * 8
    assert set(report["acceptance"]) == {f"batch 2: {name} >= {x}x" for name, x in speed.TARGETS.items()}


def test_kv_cache_quality_benchmark_pairs_each_cached_run_with_the_uncached_one(tmp_path, monkeypatch):
    quality = _load("kv_cache_quality")
    out = tmp_path / "quality.json"
    argv = ["kv_cache_quality.py", "--tasks", "program_trace", "--n", "6", "--batch-size", "6", "--threads", "1"]
    monkeypatch.setattr(sys, "argv", argv + ["--output", str(out)])
    quality.main()
    report = json.loads(out.read_text())
    rows = report["rows"]
    assert len(rows) == 2 * 3 * 3  # panels x strategies x modes
    for row in rows:
        if row["mode"] == "no cache":
            assert row["difference"] == row["difference_se"] == row["answers_changed"] == 0
        # the accuracy difference is made of the answers that changed
        assert round(abs(row["difference"]) * 6) <= row["answers_changed"] <= 6
    assert report["pass"] == all(abs(r["difference"]) <= 0.01 + 1e-9 for r in rows)


def test_long_buffer_regime_benchmark_reports_fronts_gaps_and_policy_margins(tmp_path, capsys):
    regime = _load("long_buffer_regime")
    assert regime.heuristic_specs(64, 8)[0] == "top_k_confidence:steps=8,16,24,32"
    assert regime.heuristic_specs(32, 8)[0] == "top_k_confidence:steps=4,8,12,16"
    policy = "tiny-dllm-program_trace-full-alpha1"
    code = regime.main(
        ["--model", "tiny-dllm", "--task", "program_trace", "--lengths", "16", "--n", "6", "--threads", "1",
         "--strategies", "top_k_confidence:steps=2,8,16", "confidence_threshold:threshold=0.9",
         "--policies", policy, "--policy-seeds", "0", "1", "--output-dir", str(tmp_path)]
    )  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "regime.json").read_text())
    rows = report["rows"]
    assert {(r["mode"], r["block_length"]) for r in rows} == {("semi", 8), ("full", 16)}
    assert len(rows) == 2 * (3 + 1 + 1)
    for row in rows:
        assert row["n"] == 6 * len(row["seeds"]) and 0 <= row["accuracy"] <= 1
        assert row["seeds"] == ([0, 1] if row["policy"] else [0])
        assert row["front"] is False or not row["policy"]  # policies are never part of the heuristics' front
    top_k = {r["budget"]: r for r in rows if r["mode"] == "full" and r["strategy"] == "top_k_confidence"}
    assert [top_k[b]["nfe_mean"] for b in ("steps=2", "steps=8", "steps=16")] == [2.0, 8.0, 16.0]
    margins = report["policy_margins"]
    assert {m["mode"] for m in margins} == {"semi", "full"} and all(m["policy"] == policy for m in margins)
    for m in margins:
        assert m["margin"] == pytest.approx(m["accuracy"] - m["front_accuracy"]) and m["margin_se"] >= 0
    assert report["acceptance"] is None  # L = 16 < 64: the criterion is not checked (neither PASS nor FAIL)
    out = capsys.readouterr().out
    assert "semi-AR front minus full-diffusion front" in out and "not checked" in out


def test_long_buffer_regime_compares_policies_with_a_reference_policy_curve(tmp_path, capsys):
    regime = _load("long_buffer_regime")
    assert regime.nfe_at_accuracy([(4.0, 0.5, 0.1), (8.0, 0.9, 0.1), (6.0, 0.4, 0.1)], 0.7) == pytest.approx(6.0)
    policy = "tiny-dllm-program_trace-full-alpha1"
    code = regime.main(
        ["--model", "tiny-dllm", "--task", "program_trace", "--lengths", "16", "--modes", "full", "--n", "6",
         "--threads", "1", "--strategies", "confidence_threshold:threshold=0.9", "--policies", "top_k_confidence:steps=4",
         "--reference-policy", f"{policy}:unmask_beta=0.5,2", "--policy-seeds", "0", "--output-dir", str(tmp_path)]
    )  # fmt: skip
    assert code == 0
    report = json.loads((tmp_path / "regime.json").read_text())
    reference = [r for r in report["rows"] if r["reference"]]
    assert len(reference) == 2 and all(r["policy"] and not r["front"] for r in reference)
    (margin,) = report["policy_margins"]  # the reference rows get no margin of their own
    assert margin["policy"] == "top_k_confidence steps=4"
    assert margin["reference_margin"] == pytest.approx(margin["accuracy"] - margin["reference_accuracy"])
    if margin["reference_nfe_at_accuracy"] is not None:
        assert margin["nfe_ratio"] == pytest.approx(margin["nfe"] / margin["reference_nfe_at_accuracy"])
    assert "vs the reference policy" in capsys.readouterr().out
    # the front of that run, reused: no heuristic runs again, the margins stay the same
    again = tmp_path / "again"
    code = regime.main(
        ["--model", "tiny-dllm", "--task", "program_trace", "--lengths", "16", "--modes", "full", "--n", "6",
         "--threads", "1", "--front-from", str(tmp_path / "regime.json"), "--policies", "top_k_confidence:steps=4",
         "--policy-seeds", "0", "--output-dir", str(again)]
    )  # fmt: skip
    rows = json.loads((again / "regime.json").read_text())["rows"]
    assert [r["strategy"] for r in rows if not r["policy"]] == ["confidence_threshold"]
    (reused,) = json.loads((again / "regime.json").read_text())["policy_margins"]
    assert reused["front_accuracy"] == margin["front_accuracy"]


def test_finished_rows_speed_benchmark_runs_both_paths_on_the_same_inputs(tmp_path):
    """A small run of `benchmarks/finished_rows_speed.py`: both paths give the same tokens and NFE, the new one feeds
    exactly the forward passes the rows count (the timings themselves are not asserted)."""
    bench = _load("finished_rows_speed")
    out = tmp_path / "rows.json"
    argv = ["--batch-sizes", "3", "--gen-length", "16", "--block-length", "8", "--prompt-length", "4"]
    argv += ["--d-model", "32", "--layers", "1", "--heads", "2", "--mlp", "64", "--vocab", "64", "--head-std", "3"]
    argv += ["--policy-gen-length", "16", "--threads", "1", "--output", str(out)]
    bench.main(argv)
    report = json.loads(out.read_text())
    rows = {row["setting"]: row for row in report["rows"]}
    assert list(rows) == [label for label, _ in bench.LLADA_SETTINGS] + [bench.POLICY_SETTING]
    for row in rows.values():
        assert row["same_output"] and row["new_row_forwards"] == row["needed_row_forwards"]
        assert row["needed_row_forwards"] == round(3 * row["nfe_mean"])
        assert row["old_row_forwards"] >= row["new_row_forwards"] and row["ideal_speedup"] >= 1.0
    assert report["acceptance"]["every setting gives the same tokens and NFE both ways"] is True
    bench.main([*argv, "--only", "dual cache"])
    assert [row["setting"] for row in json.loads(out.read_text())["rows"]] == ["threshold 0.9, dual cache"]


def test_block_cache_speed_benchmark_gives_the_same_sequences_with_fewer_positions(tmp_path, capsys):
    """A small run of `benchmarks/block_cache_speed.py` on the tiny LLaDA2 preset: each strategy runs without and
    with the block cache, both give the same sequences, and the cached run feeds fewer positions (the timings
    themselves are not asserted)."""
    bench = _load("block_cache_speed")
    out = tmp_path / "block.json"
    argv = ["--model", "tiny", "--batch-sizes", "2", "--gen-length", "64", "--block-length", "32"]
    assert bench.main([*argv, "--prompt-length", "16", "--repeats", "1", "--threads", "1", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    labels = [label for label, _ in bench.strategies(64)]
    table = [line[len(label) :].split() for line in printed.splitlines() for label in labels if line.startswith(label)]
    assert [cells[0] for cells in table] == ["none", "block"] * len(labels)  # a row per strategy and cache
    assert printed.count("cached and uncached sequences: identical") == len(labels)
    assert "Same sequences with and without the cache in every setting: yes" in printed
    report = json.loads(out.read_text())
    assert report["preset"] == "tiny" and all(report["same_sequences"].values())
    rows = {(row["strategy"], row["cache"]): row for row in report["rows"]}
    assert set(rows) == {(label, cached) for label in labels for cached in (False, True)}
    for label in labels:
        uncached, cached = rows[label, False], rows[label, True]
        assert uncached["speedup"] == 1.0 and cached["nfe"] == uncached["nfe"]
        assert cached["forward_positions"] < uncached["forward_positions"]
