"""hf_unmask.evaluation.plot: the Pareto plot (legend inside the figure, policies drawn above the heuristics, budget
labels that do not overlap)."""

from __future__ import annotations

import itertools

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from hf_unmask.evaluation import pareto_front  # noqa: E402
from hf_unmask.evaluation.plot import pareto_figure, plot_pareto  # noqa: E402

POLICIES = ["tiny-dllm-program_trace-bl8-alpha0.3", "tiny-dllm-program_trace-bl8-alpha3"]
HEURISTICS = {  # family: (knob, values): a crowded panel like the benchmark's
    "top_k_confidence": ("steps", [2, 4, 6, 8, 10, 12, 16]),
    "top_k_margin": ("steps", [2, 4, 6, 8, 10, 12, 16]),
    "random": ("steps", [2, 4, 8, 16]),
    "confidence_threshold": ("threshold", [0.99, 0.95, 0.9, 0.8, 0.7, 0.5, 0.3]),
    "confidence_factor": ("factor", [0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 4.0]),
    "eb_sampler": ("gamma", [0.001, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0]),
}


def _row(strategy, nfe, accuracy, params=None, bl=8):
    return {"strategy": strategy, "budget": "", "block_length": bl, "mode": "semi_ar" if bl < 16 else "full_diffusion",
            "nfe_mean": nfe, "nfe_std": 0.1, "accuracy_mean": accuracy, "accuracy_std": 0.01, "params": params or {},
            "pareto": False}  # fmt: skip


@pytest.fixture(scope="module")
def rows():
    out = []
    for bl in (8, 16):
        for i, (family, (knob, values)) in enumerate(HEURISTICS.items()):
            for j, value in enumerate(values):
                nfe = 2 + 14 * j / (len(values) - 1)
                out.append(
                    _row(family, nfe, min(1.0, 0.1 + 0.9 * (j / len(values)) ** (0.5 + 0.2 * i)), {knob: value}, bl)
                )
        out += [_row(POLICIES[0], 6.04, 0.87, bl=bl), _row(POLICIES[1], 5.72, 0.795, bl=bl)]
    for bl in (8, 16):
        panel = [r for r in out if r["block_length"] == bl]
        for r, flag in zip(panel, pareto_front([(r["nfe_mean"], r["accuracy_mean"]) for r in panel])):
            r["pareto"] = flag
    return out


@pytest.fixture(params=[(8,), (8, 16)], ids=["one panel", "two panels"])
def figure(rows, request):
    panels = [r for r in rows if r["block_length"] in request.param]
    fig = pareto_figure(panels, title="program_trace | tiny-dllm | L=16, n=500, seeds=3", highlight=POLICIES)
    fig.canvas.draw()
    yield fig
    plt.close(fig)


def test_the_legend_is_inside_the_figure_and_complete(figure, rows):
    legend = figure.legends[0]
    box, page = legend.get_window_extent(), figure.bbox
    assert page.x0 <= box.x0 and box.x1 <= page.x1 and page.y0 <= box.y0 and box.y1 <= page.y1, (box, page)
    texts = [t.get_text() for t in legend.get_texts()]
    assert texts[: len(POLICIES)] == POLICIES  # whole names, not cut
    assert "confidence_threshold (threshold)" in texts and texts[-1] == "Pareto front"
    for ax in figure.axes:  # nothing of the panels is under the legend
        assert not ax.get_window_extent().overlaps(box)


def test_policies_are_drawn_above_the_heuristics_with_their_own_markers(figure):
    for ax in figure.axes:
        lines = {bars.get_label(): bars.lines[0] for bars in ax.containers}  # errorbar: the data line
        policy_lines = [line for label, line in lines.items() if label in POLICIES]
        heuristic_lines = [line for label, line in lines.items() if label not in POLICIES]
        assert len(policy_lines) == 2 and heuristic_lines
        assert min(p.get_zorder() for p in policy_lines) > max(h.get_zorder() for h in heuristic_lines)
        assert min(p.get_markersize() for p in policy_lines) > max(h.get_markersize() for h in heuristic_lines)
        policy_markers = {p.get_marker() for p in policy_lines}
        assert len(policy_markers) == 2 and not policy_markers & {h.get_marker() for h in heuristic_lines}


def test_budget_labels_do_not_overlap(figure):
    for ax in figure.axes:
        boxes = [text.get_window_extent() for text in ax.texts]
        assert len(boxes) >= 20  # most budgets still get a label
        for a, b in itertools.combinations(boxes, 2):
            assert not a.overlaps(b)
        inside = ax.get_window_extent()
        assert all(inside.x0 <= b.x0 and b.x1 <= inside.x1 and inside.y0 <= b.y0 and b.y1 <= inside.y1 for b in boxes)


def test_plot_pareto_writes_a_png(rows, tmp_path):
    path = plot_pareto(rows, tmp_path / "sub" / "pareto.png", highlight=POLICIES)
    image = matplotlib.image.imread(path)
    assert image.shape[1] > image.shape[0] > 400  # two panels side by side, legend below


def test_coinciding_policy_markers_are_shifted_apart():
    """Three policies at the same point (they decode alike): each marker is drawn at its own place on screen."""
    policies = ["policy-a", "policy-b", "policy-c"]
    rows = [_row(p, 8.0, 0.75) for p in policies] + [_row("top_k_confidence", 8.0, 0.75), _row("random", 4.0, 0.2)]
    fig = pareto_figure(rows, highlight=policies)
    try:
        ax = fig.axes[0]
        centres = {}
        for container in ax.containers:  # one errorbar container per family; lines[0] holds its markers
            line = container.lines[0]
            if container.get_label() in (*policies, "top_k_confidence"):
                xy = (line.get_xdata()[0], line.get_ydata()[0])
                centres[container.get_label()] = tuple(line.get_transform().transform(xy).round(1))
        assert set(centres) == {*policies, "top_k_confidence"}
        assert len(set(centres.values())) == 4, centres
    finally:
        plt.close(fig)


def test_the_title_names_seeds_only_when_there_are_several():
    from hf_unmask.evaluation import EvaluationResult

    meta = {"task": "toy", "model": "m", "gen_length": 8, "n_examples": 4}
    assert "seeds" not in EvaluationResult(rows=[], meta={**meta, "seeds": [0]})._title()
    assert "seeds=3" in EvaluationResult(rows=[], meta={**meta, "seeds": [0, 1, 2]})._title()
