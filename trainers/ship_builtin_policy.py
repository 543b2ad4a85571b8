"""Ship a trained policy inside the package: copy its weights to `hf_unmask/strategies/pretrained/<name>/` and
write its model card from an evaluation (the table of `benchmarks/policy_vs_heuristics.py`).

    python trainers/ship_builtin_policy.py outputs/policy-bl8-alpha1 --name tiny-dllm-program_trace-bl8-alpha1 \
        --evaluation outputs/policy_vs_heuristics/semi_ar

Only the policy's own files are written (config.json, model.safetensors, README.md with the evaluation table; the
Pareto plot stays in the evaluation folder so the package holds no binary besides weights); the policy then loads
offline with `hf_unmask.load_builtin_policy(name)`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from hf_unmask.model_card import write_model_card
from hf_unmask.strategies import UnmaskingStrategy
from hf_unmask.strategies.builtin import PRETRAINED_POLICY_DIR, list_builtin_policies


def ship(
    run_dir: str,
    name: str,
    evaluation_dir: str | None = None,
    label: str | None = None,
    initialized_from: str | None = None,
) -> Path:
    """Copy the policy saved in `run_dir` to the package under `name`; returns its folder."""
    policy = UnmaskingStrategy.from_pretrained(run_dir)
    training_config = Path(run_dir) / "training_config.json"
    if training_config.is_file() and "initialized_from" not in policy.trained_for:
        start = json.loads(training_config.read_text()).get("policy_name_or_path")
        if start:  # warm-started runs name their starting policy (as shipped, not as a local path)
            policy.trained_for["initialized_from"] = initialized_from or str(start)
    target = PRETRAINED_POLICY_DIR / name
    target.mkdir(parents=True, exist_ok=True)
    policy.save_pretrained(target)
    rows, setting = None, None
    if evaluation_dir is not None:
        table = json.loads((Path(evaluation_dir) / "evaluation.json").read_text())
        meta, rows = table["meta"], table["rows"]
        label = label or name
        # the card shows this policy against the heuristics (the other shipped policies have their own cards)
        others = set(list_builtin_policies()) - {label}
        rows = [r for r in rows if r["strategy"] not in others]
        setting = (
            f"{meta['n_examples']} held-out examples of the built-in `{meta['task']}` task, built-in `tiny-dllm`, "
            f"L = {meta['gen_length']}, BL = {', '.join(str(b) for b in meta['block_lengths'])}, greedy dLLM, "
            f"seeds {meta['seeds']} (accuracy and NFE are means over seeds); produced by "
            "`python benchmarks/policy_vs_heuristics.py`, which also draws the Pareto plot."
        )
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
    parser.add_argument("run_dir", help="output folder of trainers/train_unmasking_policy.py")
    parser.add_argument("--name", required=True, help="name to ship it under, <dLLM>-<task>-<bl8|full>-alpha<alpha>")
    parser.add_argument("--evaluation", default=None, help="folder with the evaluation.json of the comparison")
    parser.add_argument("--label", default=None, help="the policy's strategy label in that table (default: name)")
    parser.add_argument(
        "--initialized-from", default=None, help="name of the shipped policy a warm-started run began from"
    )
    args = parser.parse_args()
    print(f"Shipped to {ship(args.run_dir, args.name, args.evaluation, args.label, args.initialized_from)}")


if __name__ == "__main__":
    main()
