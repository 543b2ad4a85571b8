"""Do the shipped learned policies beat the heuristics at matched NFE?

Evaluates, on the held-out test split of a built-in task with the built-in dLLM, every heuristic over a budget
sweep and the given policies (semi-autoregressive and full diffusion), over several seeds, then compares each
policy with the heuristics' accuracy/NFE Pareto front at the policy's own mean NFE (linear interpolation between
the two front points around it; below the front's lowest NFE the front is the accuracy of its cheapest point).

Acceptance, printed at the end:
  semi-AR:        the best policy's accuracy is >= the front's at matched NFE, and higher at the lowest NFE budget
                  (the policy with the fewest NFE beats the front at its NFE)
  full diffusion: the policy beats every heuristic at matched NFE (accuracy > front at its NFE)

Usage:
    python -m benchmarks.policy_vs_heuristics                         # shipped policies, n = 500, seeds 0 1 2
    python -m benchmarks.policy_vs_heuristics --n 200 --output-dir outputs/policy_vs_heuristics
    python -m benchmarks.policy_vs_heuristics --semi-ar-policies outputs/my-policy --full-policies outputs/full
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Optional

import torch

import hf_unmask
from hf_unmask.evaluation import EvaluationInterrupted, evaluate_strategies, front_accuracy_at
from hf_unmask.strategies import list_builtin_policies

# Budget sweeps wide enough to cover the policies' NFE range on L = 16 (semi-AR: 2 blocks of 8).
SEMI_AR_HEURISTICS = [
    "top_k_confidence:steps=2,4,6,8,10,12,16",
    "top_k_margin:steps=2,4,6,8,10,12,16",
    "top_k_entropy:steps=2,4,6,8,10,12,16",
    "random:steps=2,4,8,16",
    "confidence_threshold:threshold=0.99,0.95,0.9,0.8,0.7,0.5,0.3",
    "confidence_factor:factor=0.05,0.1,0.25,0.5,1,2,4",
    "eb_sampler:gamma=0.001,0.01,0.03,0.1,0.3,1,3",
]
FULL_HEURISTICS = [spec.replace("steps=2,4,6,8,10,12,16", "steps=1,2,4,6,8,10,12,16") for spec in SEMI_AR_HEURISTICS]
FULL_HEURISTICS = [spec.replace("steps=2,4,8,16", "steps=1,2,4,8,16") for spec in FULL_HEURISTICS]


def compare(rows: list[dict[str, Any]], policy_labels: set[str], mode: str) -> list[dict[str, Any]]:
    """One line per policy point of `mode`: its accuracy, NFE and the heuristic front's accuracy there."""
    mode_rows = [r for r in rows if r["mode"] == mode]
    heuristics = [r for r in mode_rows if r["strategy"] not in policy_labels]
    points = [(r["nfe_mean"], r["accuracy_mean"]) for r in heuristics]
    out = []
    for r in mode_rows:
        if r["strategy"] not in policy_labels:
            continue
        matched = front_accuracy_at(points, r["nfe_mean"])
        # the best single heuristic point at or below the policy's NFE (no interpolation), for reference
        cheaper = [h for h in heuristics if h["nfe_mean"] <= r["nfe_mean"] + 1e-9]
        best_cheaper = max(cheaper, key=lambda h: h["accuracy_mean"]) if cheaper else None
        out.append(
            {
                "policy": r["strategy"],
                "budget": r["budget"],
                "nfe": r["nfe_mean"],
                "accuracy": r["accuracy_mean"],
                "accuracy_std": r["accuracy_std"],
                "front_accuracy_at_nfe": matched,
                "margin": r["accuracy_mean"] - matched,
                "best_heuristic_at_or_below_nfe": None
                if best_cheaper is None
                else f"{best_cheaper['strategy']} {best_cheaper['budget']}: "
                f"{100 * best_cheaper['accuracy_mean']:.1f}% @ {best_cheaper['nfe_mean']:.2f}",
            }
        )
    return sorted(out, key=lambda c: c["nfe"])


def print_comparison(title: str, lines: list[dict[str, Any]]) -> None:
    print(f"\n{title}")
    print(f"{'policy':<40} {'NFE':>6} {'accuracy':>9} {'front@NFE':>9} {'margin':>7}  best heuristic at <= NFE")
    for c in lines:
        print(
            f"{c['policy'] + (' ' + c['budget'] if c['budget'] not in ('', '-') else ''):<40} {c['nfe']:>6.2f} "
            f"{100 * c['accuracy']:>8.1f}% {100 * c['front_accuracy_at_nfe']:>8.1f}% "
            f"{100 * c['margin']:>+6.1f}  {c['best_heuristic_at_or_below_nfe']}"
        )


def policy_spec(source: str, betas: Optional[list[float]]) -> str:
    return f"{source}:unmask_beta={','.join(str(b) for b in betas)}" if betas else source


def write_summary(
    output_dir: str, results: dict[str, Any], verdicts: dict[str, bool], args: Any, complete: bool
) -> Path:
    """`comparison.json`: the comparisons per mode, the acceptance verdicts and the arguments."""
    summary = Path(output_dir) / "comparison.json"
    summary.parent.mkdir(parents=True, exist_ok=True)
    payload = {"complete": complete, "comparisons": results, "acceptance": verdicts, "args": vars(args)}
    summary.write_text(json.dumps(payload, indent=2))
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    shipped = list_builtin_policies()
    parser.add_argument("--model", default="tiny-dllm")
    parser.add_argument("--task", default="program_trace")
    parser.add_argument("--n", type=int, default=500, help="test examples (first n of the task's test split)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--semi-ar-policies", nargs="*", default=[p for p in shipped if "-bl8-" in p and "additive" not in p]
    )
    parser.add_argument("--full-policies", nargs="*", default=[p for p in shipped if "-full-" in p])
    parser.add_argument(
        "--betas", type=float, nargs="*", default=None, help="also sweep the test-time unmask_beta scaling"
    )
    parser.add_argument("--block-length", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output-dir", default="outputs/policy_vs_heuristics")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model, tokenizer = hf_unmask.load_builtin_model(args.model)
    L = model.generation_config.max_new_tokens
    results = {}
    runs = (
        ("semi_ar", args.block_length, SEMI_AR_HEURISTICS, args.semi_ar_policies),
        ("full_diffusion", L, FULL_HEURISTICS, args.full_policies),
    )
    all_rows, policy_labels = [], set()
    for mode, block_length, heuristics, policies in runs:
        if not policies:
            print(f"(no {mode} policies given: skipped)")
            continue
        specs = [policy_spec(p, args.betas) for p in policies] + heuristics
        out_dir = Path(args.output_dir) / mode
        try:
            result = evaluate_strategies(
                model,
                tokenizer,
                args.task,
                specs,
                block_lengths=[block_length],
                seeds=args.seeds,
                n_examples=args.n,
                batch_size=args.batch_size,
                model_name=args.model,
            )
        except EvaluationInterrupted as stop:  # Ctrl-C: keep the finished rows of this mode and the earlier modes
            stop.save(out_dir)
            summary = write_summary(args.output_dir, results, {}, args, complete=False)
            print(f"policy_vs_heuristics.py: interrupted: {stop}; finished modes in {summary}", file=sys.stderr)
            return 130
        result.save(out_dir)
        print(f"\n=== {mode} (BL = {block_length}, L = {L}), {args.n} test examples, seeds {args.seeds}")
        print(result.format_table())
        print(f"(table and Pareto plot in {out_dir})")
        labels = {Path(p).name if Path(p).is_dir() else p for p in policies}
        policy_labels |= labels
        all_rows += result.rows
        results[mode] = compare(result.rows, labels, mode)
        print_comparison(f"{mode}: policies vs the heuristics' Pareto front at matched NFE", results[mode])

    verdicts = {}
    if "semi_ar" in results:
        lines = results["semi_ar"]
        best = max(lines, key=lambda c: c["margin"])
        cheapest = min(lines, key=lambda c: c["nfe"])
        verdicts["semi_ar: best policy >= heuristics at matched NFE"] = best["margin"] >= 0
        verdicts["semi_ar: policy higher at the lowest NFE budget"] = cheapest["margin"] > 0
    if "full_diffusion" in results:
        verdicts["full_diffusion: policy beats every heuristic at matched NFE"] = all(
            c["margin"] > 0 for c in results["full_diffusion"]
        )
    print("\nAcceptance:")
    for claim, ok in verdicts.items():
        print(f"  {'PASS' if ok else 'FAIL'}  {claim}")
    summary = write_summary(args.output_dir, results, verdicts, args, complete=True)
    print(f"\nComparison written to {summary}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C before any evaluation started: nothing to keep
        print("policy_vs_heuristics.py: interrupted before any result was written", file=sys.stderr)
        sys.exit(130)
