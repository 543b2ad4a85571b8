"""The accuracy / NFE table of an evaluation (`EvaluationResult`): merging, the terminal table, and saving it as
CSV, JSON and the Pareto plot."""

from __future__ import annotations

import csv
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from .pareto import flag_pareto_per_block_length
from .plot import plot_pareto

__all__ = ["TABLE_COLUMNS", "EvaluationResult"]

TABLE_COLUMNS = [
    "strategy",
    "budget",
    "block_length",
    "mode",
    "gen_length",
    "accuracy_mean",
    "accuracy_std",
    "nfe_mean",
    "nfe_std",
    "nfe_example_std",
    "wall_time_s",
    "n_examples",
    "seeds",
    "accuracy_per_seed",
    "nfe_per_seed",
    "pareto",
    "params",
]


@dataclass
class EvaluationResult:
    """The accuracy/NFE table: one row per strategy x budget x block length, aggregated over seeds.

    Row fields: `strategy` (family label), `budget` (e.g. `"steps=16"`), `params` (the knob values),
    `block_length`, `mode` (`semi_ar` or `full_diffusion`), `gen_length` (L), `accuracy_mean` / `accuracy_std`
    (over seeds, population std: 0 with one seed), `nfe_mean` / `nfe_std` (mean NFE per example; std over seeds),
    `nfe_example_std` (spread of NFE over examples, pooled over seeds), `wall_time_s` (generation time summed
    over seeds), `n_examples`, `seeds`, `accuracy_per_seed`, `nfe_per_seed`, `pareto` (on the accuracy/NFE
    Pareto front of its block length). `meta` records the setting, which labels are learned `policies`, and
    `complete` (False, with `settings_done` of `settings_planned`, for an interrupted evaluation).

    Example:
        ```python
        >>> import tempfile
        >>> from hf_unmask.evaluation import evaluate_strategies
        >>> from hf_unmask.models import load_dllm
        >>> model, tokenizer = load_dllm("builtin")
        >>> result = evaluate_strategies(model, tokenizer, "program_trace", ["top_k_confidence:steps=2,16"],
        ...                              block_lengths=[8], n_examples=16, progress=False)
        >>> [(row["budget"], row["accuracy_mean"], row["nfe_mean"]) for row in result.rows]
        [('steps=2', 0.0625, 2.0), ('steps=16', 1.0, 16.0)]
        >>> sorted(result.save(tempfile.mkdtemp()))
        ['csv', 'json', 'png']
        ```
    """

    rows: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, path: Union[str, os.PathLike]) -> Path:
        """Write `{"meta": ..., "rows": [...]}`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"meta": self.meta, "rows": self.rows}, indent=2) + "\n")
        return path

    def to_csv(self, path: Union[str, os.PathLike]) -> Path:
        """Write one CSV line per row (lists space-separated, params as JSON)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=TABLE_COLUMNS)
            writer.writeheader()
            for row in self.rows:
                out = dict(row)
                for key in ("seeds", "accuracy_per_seed", "nfe_per_seed"):
                    out[key] = " ".join(str(v) for v in row[key])
                out["params"] = json.dumps(row["params"], sort_keys=True)
                writer.writerow({k: out.get(k) for k in TABLE_COLUMNS})
        return path

    def merged_with(self, *others: EvaluationResult) -> EvaluationResult:
        """One table from several evaluations of the same task, model and L, e.g. one per block length with the
        strategies that suit it (a policy trained for BL 8 in the semi-AR panel only). Pareto flags are recomputed
        per block length.

        Example:
            ```python
            >>> from hf_unmask.evaluation import evaluate_strategies
            >>> from hf_unmask.models import load_dllm
            >>> model, tokenizer = load_dllm("builtin")
            >>> def run(strategies, block_length):
            ...     return evaluate_strategies(model, tokenizer, "program_trace", strategies,
            ...                                block_lengths=[block_length], n_examples=8, progress=False)
            >>> semi_ar = run(["tiny-dllm-program_trace-bl8-alpha1", "top_k_confidence:steps=16"], 8)
            >>> full = run(["top_k_confidence:steps=16"], None)
            >>> both = semi_ar.merged_with(full)
            >>> [(row["strategy"], row["block_length"]) for row in both.rows]
            [('tiny-dllm-program_trace-bl8-alpha1', 8), ('top_k_confidence', 8), ('top_k_confidence', 16)]
            ```
        """
        for other in others:
            for key in ("task", "model", "gen_length"):
                if other.meta.get(key) != self.meta.get(key):
                    raise ValueError(
                        f"Cannot merge evaluations with different {key}: {self.meta.get(key)!r} vs "
                        f"{other.meta.get(key)!r}. Merge only tables of the same task, model and generation length."
                    )
        results = (self, *others)
        rows = [dict(row) for result in results for row in result.rows]
        block_lengths = list(dict.fromkeys(row["block_length"] for row in rows))
        flag_pareto_per_block_length(rows)
        meta = dict(self.meta)
        meta["block_lengths"] = block_lengths
        for key in ("strategies", "policies"):
            meta[key] = list(dict.fromkeys(s for result in results for s in result.meta.get(key, [])))
        meta["complete"] = all(result.meta.get("complete", True) for result in results)
        for key in ("settings_done", "settings_planned"):
            meta[key] = sum(result.meta.get(key, len(result.rows)) for result in results)
        return EvaluationResult(rows=rows, meta=meta, samples=[s for result in results for s in result.samples])

    @property
    def complete(self) -> bool:
        """False for the partial table of an interrupted evaluation (`EvaluationInterrupted`)."""
        return bool(self.meta.get("complete", True))

    def plot(self, path: Union[str, os.PathLike], title: Optional[str] = None) -> Path:
        """Draw the Pareto plot (accuracy vs mean NFE; one panel per block length, one curve per family; learned
        policies drawn on top)."""
        return plot_pareto(self.rows, path, title=title or self._title(), highlight=self.meta.get("policies", ()))

    def _title(self) -> str:
        meta = self.meta
        parts = [str(meta.get("task", "")), str(meta.get("model", ""))]
        n_seeds = len(meta.get("seeds", []))
        seeds = f", seeds={n_seeds}" if n_seeds > 1 else ""  # one seed is the default: not worth a label
        parts.append(f"L={meta.get('gen_length')}, n={meta.get('n_examples')}{seeds}")
        if not self.complete:
            parts.append(f"PARTIAL: {meta.get('settings_done')} of {meta.get('settings_planned')} settings")
        return " | ".join(p for p in parts if p)

    def save(self, output_dir: Union[str, os.PathLike], prefix: str = "evaluation") -> dict[str, Path]:
        """Write `<prefix>.csv`, `<prefix>.json`, `pareto.png` (and `samples.jsonl` when samples were kept)."""
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        paths = {
            "csv": self.to_csv(output_dir / f"{prefix}.csv"),
            "json": self.to_json(output_dir / f"{prefix}.json"),
            "png": self.plot(output_dir / "pareto.png"),
        }
        if self.samples:
            paths["samples"] = output_dir / "samples.jsonl"
            with paths["samples"].open("w") as f:
                for sample in self.samples:
                    f.write(json.dumps(sample) + "\n")
        return paths

    def format_table(self) -> str:
        """A fixed-width text table for the terminal."""
        header = ["strategy", "budget", "BL", "accuracy", "NFE", "time (s)", "pareto"]
        lines = []
        for row in self.rows:
            acc = f"{100 * row['accuracy_mean']:.1f}%"
            if len(row["seeds"]) > 1:
                acc += f" ±{100 * row['accuracy_std']:.1f}"
            nfe = f"{row['nfe_mean']:.1f}"
            if len(row["seeds"]) > 1:
                nfe += f" ±{row['nfe_std']:.1f}"
            bl = f"{row['block_length']}" + (" (full)" if row["mode"] == "full_diffusion" else "")
            lines.append(
                [
                    row["strategy"],
                    row["budget"] or "-",
                    bl,
                    acc,
                    nfe,
                    f"{row['wall_time_s']:.2f}" if row["wall_time_s"] < 10 else f"{row['wall_time_s']:.0f}",
                    "*" if row["pareto"] else "",
                ]
            )
        widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
        fmt = "  ".join(f"{{:{'>' if i >= 2 else '<'}{w}}}" for i, w in enumerate(widths))
        out = [fmt.format(*header), fmt.format(*["-" * w for w in widths])]
        out += [fmt.format(*line) for line in lines]
        return "\n".join(out)

    def __len__(self) -> int:
        return len(self.rows)
