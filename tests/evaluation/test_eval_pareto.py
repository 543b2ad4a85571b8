"""hf_unmask.evaluation.pareto: the Pareto front of (NFE, accuracy) points and its accuracy at a given NFE."""

from __future__ import annotations

import math

import pytest

from hf_unmask.evaluation import front_accuracy_at, pareto_front


def test_pareto_front():
    assert pareto_front([(10, 0.5), (20, 0.4), (30, 0.7), (30, 0.6), (10, 0.5)]) == [True, False, True, False, True]
    assert pareto_front([]) == []
    # equal accuracy at a higher NFE is dominated; equal NFE with lower accuracy too
    assert pareto_front([(10, 0.5), (20, 0.5)]) == [True, False]
    assert pareto_front([(20, 0.5), (10, 0.5)]) == [False, True]
    assert pareto_front([(10, 0.5), (10, 0.4)]) == [True, False]
    assert math.isclose(sum(pareto_front([(1, 0.1)])), 1)


def test_front_accuracy_at_interpolates_the_pareto_front():
    points = [(2.0, 0.1), (4.0, 0.5), (5.0, 0.3), (8.0, 0.9), (9.0, 0.9)]
    assert front_accuracy_at(points, 1.0) == 0.1  # below the front: its cheapest point
    assert front_accuracy_at(points, 4.0) == 0.5
    assert front_accuracy_at(points, 6.0) == pytest.approx(0.7)  # (5, 0.3) is dominated, so 4 -> 8 is the segment
    assert front_accuracy_at(points, 20.0) == 0.9
    with pytest.raises(ValueError, match="at least one"):
        front_accuracy_at([], 3.0)
