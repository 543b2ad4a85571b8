"""benchmarks.paper_claims: its bookkeeping on hand-made rows, its training commands (every one parses with the
training script's parser), the reuse of finished runs and evaluations, and one claim end to end on a few examples."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


claims = importlib.import_module("benchmarks.paper_claims")


def _row(nfe: float, acc: float, n: int = 100, name: str = "h") -> dict:
    return {"strategy": name, "budget": "-", "nfe_mean": nfe, "accuracy_mean": acc, "n_examples": n}


def test_margin_interpolates_the_front_and_combines_the_errors():
    heuristics = [_row(4.0, 0.5), _row(8.0, 0.9), _row(6.0, 0.4)]  # the NFE-6 point is dominated
    m = claims.margin_over_front(heuristics, _row(6.0, 0.8, name="policy"))
    assert m["front"] == pytest.approx(0.7)
    assert m["margin"] == pytest.approx(0.1)
    front_se = math.hypot(0.5 * claims.binomial_se(0.5, 100), 0.5 * claims.binomial_se(0.9, 100))
    assert m["margin_se"] == pytest.approx(math.hypot(claims.binomial_se(0.8, 100), front_se), abs=1e-3)
    # cheaper than every heuristic: compared with the cheapest point, nothing extrapolated
    cheap = claims.margin_over_front(heuristics, _row(2.0, 0.6, name="policy"))
    assert cheap["front"] == pytest.approx(0.5) and cheap["margin"] == pytest.approx(0.1)
    # above the front's most expensive point: its accuracy
    assert claims.margin_over_front(heuristics, _row(20.0, 0.9))["margin"] == pytest.approx(0.0)


def test_best_heuristic_respects_the_budget():
    rows = [_row(4.0, 0.5, name="a"), _row(8.0, 0.9, name="b")]
    assert claims.best_heuristic(rows)["strategy"] == "b"
    assert claims.best_heuristic(rows, max_nfe=5.0)["strategy"] == "a"
    assert claims.best_heuristic(rows, max_nfe=3.0) is None


def test_training_complete_only_for_a_finished_run(tmp_path):
    folder = tmp_path / "run"
    assert not claims.training_complete(folder)
    folder.mkdir()
    (folder / "model.safetensors").write_bytes(b"x")
    (folder / "config.json").write_text("{}")
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 120, "max_steps": 600}))
    assert not claims.training_complete(folder)  # interrupted (Ctrl-C saves a policy at step 120)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 600, "max_steps": 600}))
    assert claims.training_complete(folder)


@pytest.mark.parametrize("name", sorted(claims.TRAINING))
def test_every_training_run_parses_with_the_training_script(name, tmp_path, monkeypatch):
    from hf_unmask.trainer.script import make_parser

    monkeypatch.chdir(BENCHMARKS.parent)
    cmd = claims.training_command(name, 3, tmp_path / "out")
    assert cmd[1] == "scripts/train_unmasking_policy.py"
    script_args, training_args = make_parser().parse_args_and_config(args=cmd[2:])
    assert training_args.seed == 3 and training_args.output_dir == str(tmp_path / "out")
    assert script_args.eval_num_examples == 0
    # each run ends with the policy the claims read (no best-checkpoint selection)
    assert training_args.eval_strategy == "no" and not training_args.load_best_model_at_end


def test_claim_settings_use_the_sweeps_of_the_other_benchmarks():
    semi = claims.Setting("tiny-dllm", "program_trace", 16, 8, 500)
    assert semi.heuristics() == claims.SEMI_AR_HEURISTICS and semi.key == "tiny-dllm-program_trace-L16-bl8-n500"
    full = claims.Setting("tiny-dllm-long", "trace_until", 64, 64, 500)
    assert full.heuristics() == claims.heuristic_specs(64, 64) and full.key.endswith("-L64-full-n500")


def test_claim_g_end_to_end_and_reused(tmp_path, monkeypatch):
    out = tmp_path / "claims"
    argv = ["--claims", "g", "--n", "4", "--seeds", "0", "--threads", "1", "--output-dir", str(out)]
    assert claims.main(argv) == 0
    report = json.loads((out / "claims.json").read_text())
    assert report["complete"] and set(report["claims"]) == {"g"}
    g = report["claims"]["g"]
    assert g["verdict"].startswith(("holds", "does not hold")) and len(g["margins"]) == 3
    table = (out / "claims.md").read_text()
    assert "| (g) out-of-domain task degrades |" in table and "--claims g" in table

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished evaluation was run again")

    monkeypatch.setattr(claims, "evaluate_strategies", must_not_run)
    assert claims.main(argv) == 0  # every evaluation is reused from evals/
    assert json.loads((out / "claims.json").read_text())["claims"]["g"] == g


def test_collapse_note_names_the_two_degenerate_policies():
    semi = claims.Setting("tiny-dllm", "program_trace", 16, 8, 500)
    assert "never unmask" in claims.collapse_note({"nfe": 16.0}, semi)
    assert "everything at once" in claims.collapse_note({"nfe": 2.0}, semi)
    assert claims.collapse_note({"nfe": 6.0}, semi) == ""


def test_each_claim_trains_what_it_reads():
    for name, (used, flags) in claims.TRAINING.items():
        assert set(used) <= set(claims.CLAIMS) and flags[:2] == ["--config", flags[1]], name
    # (c), (d) and (f) compare policies of one recipe: the multiplicative run serves all three
    assert claims.TRAINING["reward-multiplicative"][0] == "cdf"
    for name in ("input-hidden-states", "input-confidence-d32", "small-dllm", "reward-additive"):
        assert claims.TRAINING[name][1][: len(claims.SHARED_RECIPE)] == claims.SHARED_RECIPE
