"""The long-buffer regime benchmark's bookkeeping (benchmarks.regime) on hand-made rows, and its docstring examples."""

from __future__ import annotations

import math

import pytest
import torch

from benchmarks.regime import (
    DecodeRecord,
    binomial_se,
    decision_steps_recorder,
    front_at,
    front_gaps,
    interpolate_front,
    rank_correlation,
    summarize_records,
)


def record(correct, completion_length, reference_length, steps, first_eos, nfe=4):
    return DecodeRecord(correct, nfe, completion_length, reference_length, steps, first_eos)


def test_truncated_means_wrong_and_shorter_than_the_reference():
    assert record(False, 2, 5, [1, 2, 3], 2).truncated
    assert not record(True, 2, 5, [1, 2, 3], 2).truncated  # right answers are never "cut short"
    assert not record(False, 5, 5, [1, 2, 3], 2).truncated  # wrong, but not because it stopped early
    assert not record(False, 7, 5, [1, 2, 3], 2).truncated


def test_right_to_left_and_end_first_follow_the_decision_order():
    left_to_right = record(True, 3, 3, [1, 2, 3, 4, 4, 4], 3)
    assert not left_to_right.right_to_left and not left_to_right.end_first
    tail_first = record(False, 3, 5, [4, 5, 6, 1, 1, 1], 3)  # the EOS tail (positions 3-5) was decided first
    assert tail_first.right_to_left and tail_first.end_first
    # the end decided after half of the answer but before its last token: not "end first"
    late_end = record(True, 4, 4, [1, 2, 5, 6, 3, 7], 4)
    assert not late_end.end_first
    assert not record(True, 0, 0, [1, 1], 0).end_first  # nothing before the EOS
    assert not record(True, 2, 2, [1, 2], None).end_first  # no EOS at all
    assert rank_correlation([0, 1, 2, 3], [1, 1, 2, 2]) == pytest.approx(2 / math.sqrt(5), rel=1e-3)


def test_summary_counts_shares_among_the_right_population_and_binomial_se():
    rows = [
        record(True, 3, 3, [1, 2, 3, 4], 3, nfe=4),
        record(False, 1, 3, [3, 2, 1, 1], 1, nfe=2),  # truncated, right to left
        record(False, 3, 3, [1, 2, 3, 3], 3, nfe=3),  # wrong at full length
        record(True, 3, 3, [1, 2, 3, 4], 3, nfe=3),
    ]
    s = summarize_records(rows)
    assert s["n"] == 4 and s["accuracy"] == 0.5 and s["nfe_mean"] == 3.0
    assert s["accuracy_se"] == pytest.approx(math.sqrt(0.25 / 4))
    assert s["truncated_share_of_wrong"] == 0.5  # one of the two wrong answers
    assert s["right_to_left_share"] == 0.25 and s["end_first_share"] == 0.25
    assert summarize_records(rows[:1])["truncated_share_of_wrong"] is None
    with pytest.raises(ValueError, match="at least one record"):
        summarize_records([])


def test_front_interpolation_uses_only_the_front_and_never_extrapolates_below_it():
    points = [(2.0, 0.2, 0.02), (4.0, 0.1, 0.01), (6.0, 0.6, 0.04)]  # (4, 0.1) is dominated
    acc, se = interpolate_front(points, 4.0)
    assert acc == pytest.approx(0.4) and se == pytest.approx(math.hypot(0.5 * 0.02, 0.5 * 0.04), abs=1e-3)
    assert interpolate_front(points, 6.0) == (0.6, 0.04)
    assert interpolate_front(points, 9.0) == (0.6, 0.04)  # above the front: its best point
    assert interpolate_front(points, 1.9) is None


def test_front_at_compares_a_policy_cheaper_than_every_heuristic_with_the_cheapest_point():
    points = [(2.0, 0.2, 0.02), (2.0, 0.3, 0.03), (6.0, 0.6, 0.04)]  # two points at 2 NFE: the better one counts
    assert front_at(points, 1.0) == (0.3, 0.03)
    assert front_at(points, 4.0) == interpolate_front(points, 4.0)
    assert binomial_se(0.9, 400) == pytest.approx(0.015) and binomial_se(1.0, 500) == 0.0
    assert binomial_se(0.5, 100) == pytest.approx(0.05)


def test_gaps_at_matched_nfe_skip_unmeasured_budgets_and_combine_errors():
    semi = [(4.0, 0.5, 0.03), (8.0, 0.9, 0.04)]
    full = [(2.0, 0.3, 0.02), (8.0, 0.6, 0.02)]
    gaps = front_gaps(semi, full, [2.0, 6.0, 8.0])
    assert [g["nfe"] for g in gaps] == [6.0, 8.0]  # semi-AR has no point at or below 2 NFE
    assert gaps[0]["better"] == pytest.approx(0.7) and gaps[0]["worse"] == pytest.approx(0.5)
    assert gaps[0]["gap"] == pytest.approx(0.2)
    assert gaps[1]["gap_se"] == pytest.approx(math.hypot(0.04, 0.02), abs=1e-3)


def test_decision_step_recorder_matches_the_generation_order():
    import hf_unmask
    from hf_unmask.strategies import TopKConfidence

    model, tokenizer = hf_unmask.load_builtin_model("tiny-dllm")
    ids = tokenizer(["sort : 3 1 2", "sort : 9 8 7 6 5"], return_tensors="pt", padding=True)
    steps, callback = decision_steps_recorder(2, 16)
    out = model.generate(
        ids.input_ids,
        attention_mask=ids.attention_mask,
        max_new_tokens=16,
        block_length=8,
        strategy=TopKConfidence(steps=8),
        callback_on_step_end=callback,
        return_dict_in_generate=True,
    )
    assert out.nfe.tolist() == [8, 8]
    for row in steps:
        # two positions per step, block 1 (positions 0-7) in steps 1-4, block 2 in steps 5-8
        assert sorted(row.tolist()) == [s for s in range(1, 9) for _ in range(2)]
        assert row[:8].max() <= 4 < row[8:].min()
    assert steps.dtype == torch.long


def test_docstring_examples_run():
    """The examples of benchmarks/regime.py, written in Markdown code fences as the package's are."""
    import doctest
    import re

    import benchmarks.regime

    class FencedParser(doctest.DocTestParser):
        def parse(self, string, name="<string>"):
            return super().parse(re.sub(r"^[ \t]*```[\w-]*[ \t]*$", "", string, flags=re.MULTILINE), name)

    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    report: list[str] = []
    for test in doctest.DocTestFinder(parser=FencedParser()).find(benchmarks.regime):
        runner.run(test, out=report.append)
    assert runner.tries >= 8 and runner.failures == 0, "".join(report)
