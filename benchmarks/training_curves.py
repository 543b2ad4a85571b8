"""Training curves of policy runs side by side: reward, correctness, mean NFE and unmask fraction over steps.

Reads the `trainer_state.json` that training writes to its output folder (or, for a run that was killed, to its
last checkpoint). Used to show the additive-reward collapse next to a multiplicative run with the same settings:

    python -m benchmarks.training_curves outputs/policy-bl8-alpha1 outputs/policy-bl8-additive-alpha1 \
        --plot outputs/reward_forms.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

METRICS = ("reward", "correctness", "nfe/mean", "unmask_fraction", "entropy")
PLOTTED = ("reward", "correctness", "nfe/mean", "unmask_fraction")


def load_log_history(run_dir: str) -> list[dict[str, Any]]:
    """The logged training rows (those with a reward) of a run folder or of its latest checkpoint."""
    root = Path(run_dir)
    candidates = [root / "trainer_state.json"] + sorted(
        root.glob("checkpoint-*/trainer_state.json"), key=lambda p: int(p.parent.name.split("-")[1]), reverse=True
    )
    for path in candidates:
        if path.is_file():
            history = json.loads(path.read_text())["log_history"]
            rows = [row for row in history if "reward" in row]
            # TRL repeats the metrics of the last steps in the end-of-training summary row: keep it only if it is
            # the one row of its step
            logged = {row["step"] for row in rows if "train_runtime" not in row}
            return [row for row in rows if "train_runtime" not in row or row["step"] not in logged]
    raise FileNotFoundError(f"No trainer_state.json in {root} or its checkpoints: is it a training output folder?")


def summarise(history: list[dict[str, Any]], every: int) -> list[dict[str, Any]]:
    """Every `every`-th logged row plus the last one."""
    rows = [row for i, row in enumerate(history) if i % every == 0]
    if history and rows[-1] is not history[-1]:
        rows.append(history[-1])
    return rows


def curves_figure(histories: dict[str, list[dict[str, Any]]]) -> Any:
    """One panel per metric of `PLOTTED`, one line per run; a run with a single logged row is drawn as a marker."""
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4))
    for ax, metric in zip(axes.flat, PLOTTED):
        for run, history in histories.items():
            rows = [row for row in history if metric in row]
            ax.plot(
                [row["step"] for row in rows],
                [float(row[metric]) for row in rows],
                marker="o" if len(rows) < 20 else None,  # few points: show each (one alone draws no line)
                markersize=4,
                label=Path(run).name,
            )
        ax.set_title(metric)
        ax.set_xlabel("optimiser step")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(True, alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", help="training output folders")
    parser.add_argument("--every", type=int, default=4, help="print every N-th logged row (default 4)")
    parser.add_argument("--plot", default=None, help="also write the curves to this PNG")
    args = parser.parse_args()
    histories = {run: load_log_history(run) for run in args.runs}
    for run, history in histories.items():
        print(f"\n{run}")
        print(f"{'step':>6} " + " ".join(f"{m:>15}" for m in METRICS))
        for row in summarise(history, args.every):
            print(f"{row['step']:>6} " + " ".join(f"{float(row.get(m, float('nan'))):>15.3f}" for m in METRICS))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig = curves_figure(histories)
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=120)
        plt.close(fig)
        print(f"\nPlot written to {args.plot}")


if __name__ == "__main__":
    main()
