"""The accuracy-vs-NFE Pareto plot of an evaluation (`EvaluationResult.plot`, `hf-unmask evaluate`, the demo).

One panel per block length (semi-AR first, full diffusion last), one curve per strategy family. Learned policies
(`highlight`) are drawn above the heuristics with large, black-edged markers, each with its own marker shape; a
family whose markers would land on an earlier family's is shifted sideways by a few points; budget labels are placed
where they overlap no other label (a label that fits nowhere near its point is left out); the legend is sized to the
figure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, Union

from .specs import short_value

__all__ = ["pareto_figure", "plot_pareto"]

_HEURISTIC_MARKERS = "osD^v<>ph"
_POLICY_MARKERS = "*PXd"
# Candidate label offsets (points) around a marker, tried in order: right-up, right-down, left-up, left-down, above,
# below, further right, further left.
_LABEL_OFFSETS = ((4, 3), (4, -9), (-4, 3), (-4, -9), (0, 7), (0, -14), (9, -3), (-9, -3))
# Sideways shifts (points) of families whose markers would land on an earlier family's, in order.
_OVERLAP_SHIFTS = (7.0, -7.0, 14.0, -14.0)


def _varying_knobs(rows: Sequence[dict[str, Any]]) -> list[str]:
    keys = list(dict.fromkeys(k for r in rows for k in r["params"]))
    return [k for k in keys if len({json.dumps(r["params"].get(k)) for r in rows}) > 1]


def _use_agg_without_display() -> None:
    import matplotlib

    if matplotlib.get_backend().lower() not in ("agg", "pdf", "svg", "ps", "cairo") and not os.environ.get("DISPLAY"):
        matplotlib.use("Agg")


def pareto_figure(rows: Sequence[dict[str, Any]], title: Optional[str] = None, highlight: Sequence[str] = ()) -> Any:
    """The Pareto figure of evaluation rows (see `plot_pareto`); the caller saves and closes it."""
    _use_agg_without_display()
    import matplotlib.pyplot as plt

    panels = sorted({(r["mode"] == "full_diffusion", r["block_length"]) for r in rows})
    families = list(dict.fromkeys(r["strategy"] for r in rows))
    policies = [f for f in families if f in set(highlight)]
    cmap = plt.get_cmap("tab10" if len(families) <= 10 else "tab20")
    colors = {fam: cmap(i % cmap.N) for i, fam in enumerate(families)}
    n = max(1, len(panels))
    fig, axes = plt.subplots(1, n, figsize=(5.6 * n, 4.4), squeeze=False, sharey=True)
    renderer = fig.canvas.get_renderer()
    to_label: list[tuple[Any, list, list]] = []
    legend_rank: dict[str, int] = {}
    for ax, (full, bl) in zip(axes[0], panels):
        panel_rows = [r for r in rows if r["block_length"] == bl and (r["mode"] == "full_diffusion") == full]
        labels, marks = _draw_panel(ax, panel_rows, rows, families, policies, colors, legend_rank)
        ax.set_title(f"full diffusion (BL = L = {bl})" if full else f"semi-AR (BL = {bl})")
        # policies' labels first: they are the ones a reader looks for
        to_label.append((ax, sorted(labels, key=lambda item: not item[4]), marks))
    axes[0][0].set_ylabel("accuracy")
    handles, names = [], []
    for ax in axes[0]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in names:
                handles.append(h)
                names.append(lab)
    # learned policies first, then the heuristics, the front last
    order = sorted(range(len(names)), key=lambda i: (legend_rank.get(names[i], 2), i))
    handles, names = [handles[i] for i in order], [names[i] for i in order]
    if title:
        fig.suptitle(title, fontsize=10)
    _legend_below(fig, handles, names, renderer, has_title=bool(title))
    for ax, labels, marks in to_label:  # once the layout is final: overlaps are checked in display space
        ax.autoscale_view()
        _place_labels(ax, labels, renderer, marks)
    return fig


def _family_style(fam: str, index: int, policies: Sequence[str]) -> dict[str, Any]:
    """Learned policies: large black-edged markers drawn on top; heuristics: small markers below them."""
    if fam in policies:
        return dict(marker=_POLICY_MARKERS[policies.index(fam) % len(_POLICY_MARKERS)], markersize=12,
                    markeredgecolor="black", markeredgewidth=0.8, linewidth=2.0, zorder=5)  # fmt: skip
    return dict(marker=_HEURISTIC_MARKERS[index % len(_HEURISTIC_MARKERS)], markersize=5, linewidth=1.4, alpha=0.85,
                zorder=2)  # fmt: skip


def _draw_panel(
    ax: Any,
    panel_rows: Sequence[dict[str, Any]],
    rows: Sequence[dict[str, Any]],
    families: Sequence[str],
    policies: Sequence[str],
    colors: dict[str, Any],
    legend_rank: dict[str, int],
) -> tuple[list[tuple], list[tuple]]:
    """One panel's curves and Pareto front; returns its budget labels and the markers labels must not cover.

    A family with a point on top of an earlier family's point (e.g. learned policies that decode alike) is drawn
    shifted sideways by a few points (`_OVERLAP_SHIFTS`), so that every marker stays visible."""
    from matplotlib.transforms import offset_copy

    labels: list[tuple] = []
    marks: list[tuple] = []
    drawn: list[tuple[float, float]] = []
    span = max((r["nfe_mean"] for r in panel_rows), default=1.0) - min((r["nfe_mean"] for r in panel_rows), default=0)
    shifted = 0
    for i, fam in enumerate(families):
        pts = sorted((r for r in panel_rows if r["strategy"] == fam), key=lambda r: r["nfe_mean"])
        if not pts:
            continue
        is_policy = fam in policies
        knobs = _varying_knobs([r for r in rows if r["strategy"] == fam])
        x = [r["nfe_mean"] for r in pts]
        y = [r["accuracy_mean"] for r in pts]
        shift = 0.0
        if any(_coincide(p, q, span) for p in zip(x, y) for q in drawn):
            shift = _OVERLAP_SHIFTS[shifted % len(_OVERLAP_SHIFTS)]
            shifted += 1
        drawn.extend(zip(x, y))
        label = f"{fam} ({', '.join(knobs)})" if knobs else fam
        legend_rank[label] = 0 if is_policy else 1
        transform = offset_copy(ax.transData, fig=ax.figure, x=shift, y=0, units="points")
        ax.errorbar(x, y, xerr=[r["nfe_std"] for r in pts], yerr=[r["accuracy_std"] for r in pts], color=colors[fam],
                    capsize=2, label=label, transform=transform, **_family_style(fam, i, policies))  # fmt: skip
        for r, xi, yi in zip(pts, x, y):
            marks.append((xi, yi, 6.0 if is_policy else 2.5, shift))
            note = "/".join(short_value(r["params"].get(k)) for k in knobs)
            if note:
                labels.append((note, xi, yi, colors[fam], is_policy, shift))
    front = sorted((r["nfe_mean"], r["accuracy_mean"]) for r in panel_rows if r["pareto"])
    if len(front) > 1:
        ax.step([p[0] for p in front], [p[1] for p in front], where="post", color="grey", linestyle="--",
                linewidth=1, alpha=0.7, label="Pareto front", zorder=1)  # fmt: skip
    ax.set_xlabel("mean NFE (forward passes)")
    ax.grid(True, alpha=0.3)
    ax.set_ylim(-0.03, 1.05)
    return labels, marks


def _coincide(p: tuple[float, float], q: tuple[float, float], nfe_span: float) -> bool:
    """Whether two points would draw on top of each other: within 1% of the panel's NFE range and 0.01 accuracy."""
    return abs(p[0] - q[0]) <= 0.01 * max(nfe_span, 1.0) and abs(p[1] - q[1]) <= 0.01


def _place_labels(
    ax: Any, labels: Sequence[tuple[str, float, float, Any, bool, float]], renderer: Any, keep_clear: Sequence[tuple]
) -> None:
    """Annotate each point with its budget at the first offset where the text overlaps no earlier label and no
    marker (`keep_clear`: `(x, y, radius in points, sideways shift in points)`) and stays inside the axes; a label
    with no such place is dropped (its value is in the table). Labels follow their marker's sideways shift."""
    from matplotlib.transforms import Bbox

    pad = 1.5  # pixels kept free around each label
    scale = ax.figure.dpi / 72
    placed = []
    for x, y, radius, shift in keep_clear:
        px, py = ax.transData.transform((x, y))
        px += shift * scale
        placed.append(
            Bbox.from_extents(px - radius * scale, py - radius * scale, px + radius * scale, py + radius * scale)
        )
    inside = ax.get_window_extent(renderer)
    for text, x, y, color, bold, shift in labels:
        for dx, dy in _LABEL_OFFSETS:
            ann = ax.annotate(
                text,
                (x, y),
                textcoords="offset points",
                xytext=(dx + shift, dy),
                ha="left" if dx > 0 else "right" if dx < 0 else "center",
                fontsize=7,
                fontweight="bold" if bold else "normal",
                color=color,
                zorder=6,
            )
            box = ann.get_window_extent(renderer).padded(pad)
            fits = inside.x0 <= box.x0 and box.x1 <= inside.x1 and inside.y0 <= box.y0 and box.y1 <= inside.y1
            if fits and not any(box.overlaps(other) for other in placed):
                placed.append(box)
                break
            ann.remove()


def _legend_below(fig: Any, handles: list, names: list[str], renderer: Any, has_title: bool) -> None:
    """A legend under the panels with as many columns as fit the figure's width, and the figure made taller by the
    legend's height so nothing is cut off."""
    width = fig.get_figwidth() * fig.dpi
    legend = None
    for ncol in range(min(4, max(1, len(names))), 0, -1):
        if legend is not None:
            legend.remove()
        legend = fig.legend(handles, names, loc="lower center", ncol=ncol, fontsize=8, frameon=False)
        if legend.get_window_extent(renderer).width <= 0.98 * width:
            break
    legend_height = legend.get_window_extent(renderer).height / fig.dpi + 0.15
    base_height = fig.get_figheight()
    fig.set_figheight(base_height + legend_height)
    top = 1.0 - (0.1 if has_title else 0.0) / fig.get_figheight()
    fig.tight_layout(rect=(0, legend_height / fig.get_figheight(), 1, top))


def plot_pareto(
    rows: Sequence[dict[str, Any]],
    path: Union[str, os.PathLike],
    title: Optional[str] = None,
    highlight: Sequence[str] = (),
) -> Path:
    """Accuracy vs mean NFE, one panel per block length (semi-AR first, full diffusion last), one curve per family,
    written to `path` (PNG).

    Error bars show the std over seeds; the dashed grey line is the Pareto front of each panel. Families named in
    `highlight` (learned policies) are drawn above the others with large markers.
    """
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig = pareto_figure(rows, title=title, highlight=highlight)
    try:
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return path
