"""Why a decoding regime fails: per-example decode records (was the answer cut short by an early EOS, was it
decoded right to left), their summary with standard errors, and the gap between two accuracy/NFE fronts at
matched NFE. Used by `benchmarks.long_buffer_regime` and `benchmarks.paper_claims`; every number they print
about fronts and failures comes from here.

Definitions (per example, over the L generated positions):
- *truncated*: the answer is wrong and, cut at its first EOS, shorter than the reference: an early EOS cut it.
- *right to left*: the order in which positions were decided runs against the reading order (the Spearman rank
  correlation between position and decision step is negative), as when the EOS tail is filled first.
- *end first*: the answer's end (its first EOS) was decided before half of the tokens in front of it existed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional

import torch

from hf_unmask.evaluation.pareto import pareto_front

__all__ = [
    "DecodeRecord",
    "binomial_se",
    "decision_steps_recorder",
    "front_at",
    "front_gaps",
    "interpolate_front",
    "rank_correlation",
    "summarize_records",
]


@dataclass
class DecodeRecord:
    """One generated answer and how it was decoded.

    Attributes:
        correct: the verifier accepted it.
        nfe: forward passes it used.
        completion_length: its tokens before the first EOS.
        reference_length: the reference answer's tokens.
        decision_step: for each generated position, the forward pass (1-based) in which it was unmasked.
        first_eos: index of its first EOS among the generated positions (`None`: no EOS).

    Example:
        ```python
        >>> r = DecodeRecord(False, 3, 2, 4, decision_step=[2, 3, 1, 1], first_eos=2)
        >>> r.truncated, r.right_to_left, r.end_first
        (True, True, True)
        ```
    """

    correct: bool
    nfe: int
    completion_length: int
    reference_length: int
    decision_step: Sequence[int]
    first_eos: Optional[int]

    @property
    def truncated(self) -> bool:
        return not self.correct and self.completion_length < self.reference_length

    @property
    def right_to_left(self) -> bool:
        return rank_correlation(range(len(self.decision_step)), self.decision_step) < 0

    @property
    def end_first(self) -> bool:
        if self.first_eos is None or self.first_eos == 0:
            return False
        before = sorted(self.decision_step[: self.first_eos])
        median = before[(len(before) - 1) // 2]
        return self.decision_step[self.first_eos] < median


def rank_correlation(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rank correlation (average ranks for ties); 0 when either side is constant.

    Example:
        ```python
        >>> rank_correlation([0, 1, 2, 3], [4, 3, 2, 1]), rank_correlation([0, 1, 2], [1, 1, 1])
        (-1.0, 0.0)
        ```
    """
    rx, ry = _ranks(list(xs)), _ranks(list(ys))
    n = len(rx)
    if n < 2:
        return 0.0
    mx, my = sum(rx) / n, sum(ry) / n
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    return 0.0 if vx == 0 or vy == 0 else cov / math.sqrt(vx * vy)


def _ranks(values: list[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2
        i = j + 1
    return ranks


def _share(flags: Sequence[bool]) -> Optional[float]:
    return sum(flags) / len(flags) if flags else None


def binomial_se(accuracy: float, n: int) -> float:
    """Standard error of an accuracy measured on `n` examples: sqrt(p (1 - p) / n).

    Example:
        ```python
        >>> binomial_se(0.5, 100)
        0.05
        ```
    """
    return math.sqrt(accuracy * (1 - accuracy) / n)


def summarize_records(records: Sequence[DecodeRecord]) -> dict[str, Any]:
    """Accuracy with its binomial standard error, mean NFE, and the failure shares of a set of decode records.

    `truncated_share_of_wrong` is among the wrong answers (`None` when none is wrong); `right_to_left_share` and
    `end_first_share` are among all answers.

    Example:
        ```python
        >>> rows = [DecodeRecord(True, 4, 3, 3, [1, 2, 3, 4], 3), DecodeRecord(False, 2, 1, 3, [2, 1, 1, 1], 1)]
        >>> s = summarize_records(rows)
        >>> s["accuracy"], round(s["accuracy_se"], 3), s["nfe_mean"], s["truncated_share_of_wrong"]
        (0.5, 0.354, 3.0, 1.0)
        ```
    """
    if not records:
        raise ValueError("summarize_records needs at least one record.")
    n = len(records)
    accuracy = sum(r.correct for r in records) / n
    wrong = [r for r in records if not r.correct]
    return {
        "n": n,
        "accuracy": accuracy,
        "accuracy_se": binomial_se(accuracy, n),
        "nfe_mean": sum(r.nfe for r in records) / n,
        "truncated_share_of_wrong": _share([r.truncated for r in wrong]),
        "right_to_left_share": _share([r.right_to_left for r in records]),
        "end_first_share": _share([r.end_first for r in records]),
    }


def interpolate_front(points: Sequence[tuple[float, float, float]], nfe: float) -> Optional[tuple[float, float]]:
    """`(accuracy, standard error)` of the Pareto front of `(nfe, accuracy, se)` points at `nfe`: linear between the
    two front points around it (the standard errors combined with the same weights), the best accuracy above the
    front, and `None` below its cheapest point (no measurement there: nothing is extrapolated).

    Example:
        ```python
        >>> interpolate_front([(2.0, 0.2, 0.02), (6.0, 0.6, 0.04), (5.0, 0.1, 0.01)], 4.0)
        (0.4, 0.022)
        >>> interpolate_front([(2.0, 0.2, 0.02)], 1.0) is None
        True
        ```
    """
    if not points:
        raise ValueError("interpolate_front needs at least one (nfe, accuracy, se) point.")
    flags = pareto_front([(p[0], p[1]) for p in points])
    front = sorted(p for p, on in zip(points, flags) if on)
    if nfe < front[0][0]:
        return None
    for (n0, a0, s0), (n1, a1, s1) in zip(front, front[1:]):
        if n0 <= nfe <= n1:
            w = 0.0 if n1 == n0 else (nfe - n0) / (n1 - n0)
            return round(a0 + w * (a1 - a0), 12), round(math.sqrt(((1 - w) * s0) ** 2 + (w * s1) ** 2), 3)
    return front[-1][1], front[-1][2]


def front_at(points: Sequence[tuple[float, float, float]], nfe: float) -> tuple[float, float]:
    """`(accuracy, standard error)` of the front of `(nfe, accuracy, se)` points to compare a policy at `nfe` with:
    `interpolate_front`, or below the front's cheapest point that point itself (nothing is extrapolated).

    Example:
        ```python
        >>> front_at([(2.0, 0.2, 0.02), (6.0, 0.6, 0.04)], 4.0), front_at([(2.0, 0.2, 0.02)], 1.0)
        ((0.4, 0.022), (0.2, 0.02))
        ```
    """
    front = interpolate_front(points, nfe)
    if front is None:
        cheapest = min(points, key=lambda p: (p[0], -p[1]))
        front = (cheapest[1], cheapest[2])
    return front


def front_gaps(
    better: Sequence[tuple[float, float, float]], worse: Sequence[tuple[float, float, float]], nfes: Sequence[float]
) -> list[dict[str, float]]:
    """At each NFE of `nfes` where both fronts are measured, `better`'s front accuracy minus `worse`'s, with the
    standard error of the difference (the two fronts' errors combined as independent).

    Example:
        ```python
        >>> semi = [(4.0, 0.5, 0.03), (8.0, 0.9, 0.01)]
        >>> full = [(2.0, 0.3, 0.02), (8.0, 0.6, 0.02)]
        >>> [(g["nfe"], round(g["gap"], 2)) for g in front_gaps(semi, full, [2.0, 4.0, 8.0])]
        [(4.0, 0.1), (8.0, 0.3)]
        ```
    """
    out = []
    for nfe in nfes:
        a, b = interpolate_front(better, nfe), interpolate_front(worse, nfe)
        if a is None or b is None:
            continue
        out.append({"nfe": nfe, "better": a[0], "worse": b[0], "gap": a[0] - b[0], "gap_se": math.hypot(a[1], b[1])})
    return out


def decision_steps_recorder(batch_size: int, gen_length: int) -> tuple[torch.Tensor, Callable[[Any], None]]:
    """A `callback_on_step_end` that writes, for every generated position, the forward pass (the row's NFE so far)
    in which it was unmasked, into the returned `[batch, L]` tensor (0: never unmasked by a step).

    Example:
        ```python
        >>> import hf_unmask
        >>> model, tokenizer = hf_unmask.load_builtin_model("tiny-dllm")
        >>> ids = tokenizer("sort : 3 1 2", return_tensors="pt").input_ids
        >>> steps, callback = decision_steps_recorder(1, 16)
        >>> _ = model.generate(ids, max_new_tokens=16, block_length=16, steps=16, callback_on_step_end=callback)
        >>> sorted(steps[0].tolist()) == list(range(1, 17))
        True
        ```
    """
    steps = torch.zeros(batch_size, gen_length, dtype=torch.long)

    def record(step: Any) -> None:
        unmasked = step.unmasked.cpu()
        nfe = step.nfe.cpu().unsqueeze(1).expand_as(unmasked)
        steps[unmasked] = nfe[unmasked]

    return steps, record
