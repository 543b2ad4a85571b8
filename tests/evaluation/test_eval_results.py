"""hf_unmask.evaluation.results: the table saved as CSV, JSON and a valid PNG, and merged tables."""

from __future__ import annotations

import csv
import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.image  # noqa: E402
import pytest  # noqa: E402
from tiny_eval import L  # noqa: E402

from hf_unmask.evaluation import EvaluationResult  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_save_writes_csv_json_and_a_valid_png(sampled_result, tmp_path):
    paths = sampled_result.save(tmp_path / "out")
    with paths["csv"].open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(sampled_result.rows)
    assert {"strategy", "budget", "block_length", "accuracy_mean", "accuracy_std", "nfe_mean", "nfe_std"} <= set(
        table[0]
    )
    assert {"wall_time_s", "seeds", "n_examples"} <= set(table[0])
    assert float(table[0]["accuracy_mean"]) == pytest.approx(sampled_result.rows[0]["accuracy_mean"])
    assert table[0]["seeds"] == "0 1"
    data = json.loads(paths["json"].read_text())
    assert data["rows"] == json.loads(json.dumps(sampled_result.rows))
    assert data["meta"]["gen_length"] == L and data["meta"]["seeds"] == [0, 1]
    png = paths["png"].read_bytes()
    assert png[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(paths["png"])
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 2 * image.shape[0]  # two panels side by side
    text = sampled_result.format_table()
    assert "top_k_confidence" in text and "steps=4" in text and "(full)" in text


def _row(strategy, bl, nfe, acc):
    return {
        "strategy": strategy,
        "budget": "-",
        "block_length": bl,
        "nfe_mean": nfe,
        "accuracy_mean": acc,
        "pareto": False,
    }


def test_merged_results_recompute_the_front_per_block_length():
    meta = {"task": "t", "model": "m", "gen_length": 16, "strategies": ["a"]}
    semi = EvaluationResult(rows=[_row("a", 8, 4.0, 0.5), _row("b", 8, 6.0, 0.4)], meta={**meta, "block_lengths": [8]})
    full = EvaluationResult(rows=[_row("a", 16, 5.0, 0.2)], meta={**meta, "block_lengths": [16], "strategies": ["c"]})
    both = semi.merged_with(full)
    assert [r["pareto"] for r in both.rows] == [True, False, True]
    assert both.meta["block_lengths"] == [8, 16] and both.meta["strategies"] == ["a", "c"]
    assert not semi.rows[0]["pareto"]  # the inputs are left as they were
    with pytest.raises(ValueError, match="different gen_length"):
        semi.merged_with(EvaluationResult(rows=[], meta={**meta, "gen_length": 32}))
