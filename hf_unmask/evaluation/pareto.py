"""Pareto maths of the accuracy / NFE table: which points are on the front, the front's accuracy at a given NFE,
and the per-block-length `pareto` flag of the table rows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["flag_pareto_per_block_length", "front_accuracy_at", "pareto_front"]


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For `(nfe, accuracy)` points, whether each one is Pareto-optimal (no other point has lower-or-equal NFE
    and higher-or-equal accuracy with one strictly better).

    Example:
        ```python
        >>> pareto_front([(10, 0.5), (20, 0.4), (30, 0.7)])
        [True, False, True]
        ```
    """
    flags = []
    for i, (n_i, a_i) in enumerate(points):
        dominated = any(
            (n_j <= n_i and a_j >= a_i and (n_j < n_i or a_j > a_i)) for j, (n_j, a_j) in enumerate(points) if j != i
        )
        flags.append(not dominated)
    return flags


def flag_pareto_per_block_length(rows: Sequence[dict[str, Any]]) -> None:
    """Set each table row's `pareto` flag: on the accuracy/NFE front of the rows with its block length."""
    for bl in dict.fromkeys(row["block_length"] for row in rows):
        panel = [r for r in rows if r["block_length"] == bl]
        for row, flag in zip(panel, pareto_front([(r["nfe_mean"], r["accuracy_mean"]) for r in panel])):
            row["pareto"] = flag


def front_accuracy_at(points: Sequence[tuple[float, float]], nfe: float) -> float:
    """Accuracy of the Pareto front of `(nfe, accuracy)` points at a given NFE: linear between the two front points
    around it, the cheapest front point's accuracy below the front, the best accuracy above it. This is "the
    heuristics' accuracy at matched NFE" when a learned policy lands between two heuristic budgets.

    Example:
        ```python
        >>> front_accuracy_at([(2.0, 0.1), (4.0, 0.5), (5.0, 0.3), (8.0, 0.9)], 6.0)
        0.7
        ```
    """
    if not points:
        raise ValueError("front_accuracy_at needs at least one (nfe, accuracy) point.")
    front = sorted(p for p, on_front in zip(points, pareto_front(points)) if on_front)
    if nfe <= front[0][0]:
        return front[0][1]
    for (n0, a0), (n1, a1) in zip(front, front[1:]):
        if n0 <= nfe <= n1:
            return a0 if n1 == n0 else round(a0 + (a1 - a0) * (nfe - n0) / (n1 - n0), 12)
    return front[-1][1]
