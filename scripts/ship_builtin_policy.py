"""Make a trained policy built-in (inside the package): copy its weights to `hf_unmask/strategies/builtin_policies/<name>/` and
write its model card from an evaluation (the table of `benchmarks/policy_vs_heuristics.py`).

    python benchmarks/policy_vs_heuristics.py --semi-ar-policies outputs/policy-bl8-alpha3 --full-policies
    python scripts/ship_builtin_policy.py outputs/policy-bl8-alpha3 --name tiny-dllm-program_trace-bl8-alpha3 \
        --initialized-from tiny-dllm-program_trace-bl8-alpha1 --evaluation outputs/policy_vs_heuristics/semi_ar

`--initialized-from` records the built-in policy a warm-started run began from (training saw a local folder).
A partial (interrupted) evaluation is refused.

Only the policy's own files are written (config.json, model.safetensors, README.md with the evaluation table; the
Pareto plot stays in the evaluation folder so the package holds no binary besides weights); the policy then loads
offline with `hf_unmask.load_builtin_policy(name)`.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from hf_unmask.strategies import UnmaskingStrategy
from hf_unmask.strategies.builtin import BUILTIN_POLICY_DIR, list_builtin_policies
from hf_unmask.strategies.card import write_model_card


def _lineage(run_dir: str, policy: UnmaskingStrategy, initialized_from: str | None) -> str | None:
    """Where the run started, as the card and config should record it: `--initialized-from` when given (checked:
    the run was warm-started, and the name is a built-in policy or a Hub repo), else what training recorded."""
    recorded = policy.trained_for.get("initialized_from")
    training_config = Path(run_dir) / "training_config.json"
    if recorded is None and training_config.is_file():
        recorded = json.loads(training_config.read_text()).get("policy_name_or_path")
    builtin = list_builtin_policies()
    if initialized_from is None:
        if recorded is not None and os.path.exists(str(recorded)):
            raise ValueError(
                f"{run_dir} was warm-started from the local folder '{recorded}', which no one else has. Name the "
                f"built-in policy (or Hub repo) it holds with --initialized-from NAME (built-in: {', '.join(builtin)})."
            )
        return recorded
    if recorded is None:
        raise ValueError(
            f"{run_dir} was trained from scratch (neither its config nor its training_config.json names a starting "
            "policy), so --initialized-from does not apply: drop it."
        )
    if initialized_from not in builtin and "/" not in initialized_from:
        raise ValueError(
            f"--initialized-from must name a built-in policy ({', '.join(builtin)}) or a Hub repo id, got "
            f"'{initialized_from}'."
        )
    return initialized_from


def _evaluation_rows(
    evaluation_dir: str, labels: list[str], name: str, command: str | None = None
) -> tuple[list[dict[str, Any]], str]:
    """The rows of this policy (the first of `labels` the table has) and the heuristics in
    `evaluation_dir/evaluation.json`, and the setting line."""
    path = Path(evaluation_dir) / "evaluation.json"
    if not path.is_file():
        raise ValueError(
            f"No evaluation.json in {evaluation_dir}: pass the folder benchmarks/policy_vs_heuristics.py wrote."
        )
    table = json.loads(path.read_text())
    meta, rows = table["meta"], table["rows"]
    if meta.get("complete") is False:
        raise ValueError(
            f"{path} is a partial evaluation (interrupted after {meta.get('settings_done')} of "
            f"{meta.get('settings_planned')} settings): run it to the end before shipping its table."
        )
    # the card shows this policy against the heuristics (the other policies of the table have their own cards)
    learned = set(meta.get("policies") or list_builtin_policies())
    label = next((lab for lab in labels if lab in {r["strategy"] for r in rows}), None)
    if label is None:
        raise ValueError(
            f"{path} has no row for {' or '.join(repr(lab) for lab in labels)} (its learned policies: "
            f"{', '.join(sorted(learned)) or 'none'}). Pass the policy's label in that table with --label."
        )
    # this policy's rows carry its built-in name, not the folder it was evaluated from
    rows = [
        dict(r, strategy=name) if r["strategy"] == label else r
        for r in rows
        if r["strategy"] not in learned or r["strategy"] == label
    ]
    model = str(meta.get("model") or "builtin:tiny-dllm").removeprefix("builtin:")
    producer = f"`{command}`" if command else "`python benchmarks/policy_vs_heuristics.py`"
    setting = (
        f"{meta['n_examples']} held-out examples of the built-in `{meta['task']}` task, built-in `{model}`, "
        f"L = {meta['gen_length']}, BL = {', '.join(str(b) for b in meta['block_lengths'])}, greedy dLLM, "
        f"seeds {meta['seeds']} (accuracy and NFE are means over seeds); produced by {producer}, which also "
        "draws the Pareto plot."
    )
    return rows, setting


def ship(
    run_dir: str,
    name: str,
    evaluation_dir: str | None = None,
    label: str | None = None,
    initialized_from: str | None = None,
    evaluation_command: str | None = None,
) -> Path:
    """Copy the policy saved in `run_dir` to the package under `name`; returns its folder. Every check (lineage,
    evaluation table) runs before anything is written."""
    policy = UnmaskingStrategy.from_pretrained(run_dir)
    start = _lineage(run_dir, policy, initialized_from)
    if start is not None:
        policy.trained_for["initialized_from"] = str(start)
    # the benchmark labels a policy folder by its name, a built-in policy by its built-in name
    labels = [label] if label else [Path(run_dir).resolve().name, name]
    rows, setting = (
        _evaluation_rows(evaluation_dir, labels, name, evaluation_command)
        if evaluation_dir is not None
        else (None, None)
    )
    target = BUILTIN_POLICY_DIR / name
    target.mkdir(parents=True, exist_ok=True)
    policy.save_pretrained(target)
    write_model_card(
        policy,
        target,
        repo_id=f"builtin:{name}",
        evaluation_results=rows,
        evaluation_setting=setting,
    )
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", help="output folder of scripts/train_unmasking_policy.py")
    parser.add_argument("--name", required=True, help="name to ship it under, <dLLM>-<task>-<bl8|full>-alpha<alpha>")
    parser.add_argument("--evaluation", default=None, help="folder with the evaluation.json of the comparison")
    parser.add_argument(
        "--evaluation-command",
        default=None,
        help="the command that wrote that evaluation, quoted on the card (default: benchmarks/policy_vs_heuristics.py)",
    )
    parser.add_argument(
        "--label",
        default=None,
        help="the policy's strategy label in that table (default: the run folder's name, else --name)",
    )
    parser.add_argument(
        "--initialized-from",
        default=None,
        help="the built-in policy (or Hub repo) a warm-started run began from; recorded in its config and card in "
        "place of the local folder training saw (required when that folder exists here)",
    )
    args = parser.parse_args()
    try:
        target = ship(
            args.run_dir, args.name, args.evaluation, args.label, args.initialized_from, args.evaluation_command
        )
    except (ValueError, OSError) as err:
        parser.exit(2, f"{parser.prog}: error: {err}\n")
    print(f"Shipped to {target}")


if __name__ == "__main__":
    main()
