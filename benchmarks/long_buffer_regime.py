"""Where do the heuristics fail? Semi-AR vs full diffusion over a budget sweep at several buffer lengths L.

For each L (default 32, 64, 128) every heuristic runs over a budget sweep in semi-AR (block length 8) and in full
diffusion (block length L) on the held-out test split of a built-in task. Each row reports accuracy with its
binomial standard error, mean NFE, and why answers fail: the share of wrong answers cut short by an early EOS
(`trunc`), the share of answers decoded right to left (`r2l`: position and decision order anti-correlated) and the
share whose end (first EOS) was decided before half of the answer in front of it (`end1st`). Then, per L, the
semi-AR front minus the full-diffusion front at matched NFE over 0.1L-0.5L (definitions: benchmarks/
regime.py).

Acceptance, printed at the end: at some L >= 64 the full-diffusion front lies >= 10 points below the
semi-AR front at matched NFE somewhere in 0.1L-0.5L.

Usage:
    python -m benchmarks.long_buffer_regime                                   # tiny-dllm-long, trace_until, n=500
    python -m benchmarks.long_buffer_regime --lengths 64 --n 200 --output-dir outputs/regime
    python -m benchmarks.long_buffer_regime --policies tiny-dllm-long-trace_until-full-alpha1   # add policies
    python -m benchmarks.long_buffer_regime --lengths 64 --modes full --policies wino:threshold=0.5,0.7 \
        --reference-policy tiny-dllm-long-trace_until-full-alpha1:unmask_beta=0.75,1,2,4   # and a policy's unmask_beta curve

`--policies` takes any strategy spec to compare against the heuristics' front (learned policies, the re-masking
decoders WINO and ReMDM): each runs with every `--policy-seeds` seed and is never part of that front.
`--front-from regime.json` takes the heuristics' rows of an earlier run as the front instead of running them again.
`--reference-policy` adds a policy's sweep (e.g. the commit-only policy's `unmask_beta` dial) as a second curve: every
`--policies` row is then also compared with it, by accuracy at the row's NFE and by NFE at the row's accuracy.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import torch

from hf_unmask.evaluation import StrategySpec
from hf_unmask.evaluation.model_io import tokenize_batches
from hf_unmask.evaluation.pareto import pareto_front
from hf_unmask.generation import completion_eos_ids, completion_texts
from hf_unmask.models import load_dllm
from hf_unmask.tasks import get_task

from .regime import (
    DecodeRecord,
    decision_steps_recorder,
    front_at,
    front_gaps,
    summarize_records,
)

THRESHOLDS = "confidence_threshold:threshold=0.99,0.9,0.7,0.5,0.3,0.1"
FACTORS = "confidence_factor:factor=0.25,0.5,1,2,4"
EB = "eb_sampler:gamma=0.01,0.1,0.3,1,3"
#: top-k families sweep steps as these fractions of L (multiples of the 8 blocks of L = 64 with BL = 8); one token
#: per step (fraction 1) is left out: it costs L forward passes per example, far above the 0.1L-0.5L compared here
STEP_FRACTIONS = (0.125, 0.25, 0.375, 0.5)


def heuristic_specs(gen_length: int, block_length: int) -> list[str]:
    """Every heuristic with its budget sweep, the top-k steps scaled to L and valid for the block length."""
    blocks = gen_length // block_length
    steps = sorted({max(blocks, round(f * gen_length / blocks) * blocks) for f in STEP_FRACTIONS})
    listed = ",".join(map(str, steps))
    return [f"top_k_confidence:steps={listed}", f"top_k_margin:steps={listed}", THRESHOLDS, FACTORS, EB]


def run_setting(
    model: Any,
    tokenizer: Any,
    task: Any,
    rows: list[dict[str, str]],
    strategy: Any,
    gen_length: int,
    block_length: int,
    seed: int,
    batch_size: int,
) -> list[DecodeRecord]:
    """Generate every row once and return its decode record (correctness, NFE, lengths, decision order)."""
    eos_ids = completion_eos_ids(model, tokenizer)
    eos_tensor = torch.tensor(sorted(eos_ids))
    records = []
    for start, input_ids, attention_mask in tokenize_batches(tokenizer, [r["prompt"] for r in rows], batch_size):
        steps, callback = decision_steps_recorder(input_ids.shape[0], gen_length)
        out = model.generate(
            input_ids,
            attention_mask=attention_mask,
            strategy=strategy,
            max_new_tokens=gen_length,
            block_length=block_length,
            seed=seed,
            return_dict_in_generate=True,
            callback_on_step_end=callback,
        )
        P = input_ids.shape[1]
        texts = completion_texts(tokenizer, out.sequences, P, eos_ids)
        is_eos = torch.isin(out.sequences[:, P:], eos_tensor)
        for j, text in enumerate(texts):
            reference = rows[start + j]["reference"]
            first_eos = int(is_eos[j].nonzero()[0]) if bool(is_eos[j].any()) else None
            records.append(
                DecodeRecord(
                    correct=bool(task.is_correct(text, reference)),
                    nfe=int(out.nfe[j]),
                    completion_length=len(text.split()),
                    reference_length=len(reference.split()),
                    decision_step=steps[j].tolist(),
                    first_eos=first_eos,
                )
            )
    return records


def _pct(value: Any) -> str:
    return "   -" if value is None else f"{100 * value:4.0f}"


def print_rows(rows: list[dict[str, Any]]) -> None:
    print(
        f"{'L':>4} {'mode':<6} {'strategy':<22} {'budget':<16} {'acc':>6} {'se':>4} {'NFE':>6} {'trunc':>5} "
        f"{'r2l':>4} {'end1st':>6} front"
    )
    for r in rows:
        print(
            f"{r['gen_length']:>4} {r['mode']:<6} {r['strategy']:<22} {r['budget']:<16} {100 * r['accuracy']:5.1f}% "
            f"{100 * r['accuracy_se']:4.1f} {r['nfe_mean']:6.1f} {_pct(r['truncated_share_of_wrong']):>5} "
            f"{_pct(r['right_to_left_share']):>4} {_pct(r['end_first_share']):>6} {'*' if r['front'] else ''}"
        )


def matched_nfe_gaps(rows: list[dict[str, Any]], gen_length: int) -> list[dict[str, float]]:
    """Semi-AR front minus full-diffusion front at NFE 0.1L, 0.15L, ..., 0.5L (where both are measured)."""
    points = {
        mode: [(r["nfe_mean"], r["accuracy"], r["accuracy_se"]) for r in rows if r["mode"] == mode]
        for mode in ("semi", "full")
    }
    if not points["semi"] or not points["full"]:
        return []
    grid = [round(gen_length * k / 20, 2) for k in range(2, 11)]
    return front_gaps(points["semi"], points["full"], grid)


def nfe_at_accuracy(points: list[tuple[float, float, float]], accuracy: float) -> float | None:
    """The NFE at which the Pareto front of `(nfe, accuracy, se)` points first reaches `accuracy` (linear between
    front points; None when it never does).

    Example:
        ```python
        >>> nfe_at_accuracy([(10.0, 0.8, 0.0), (20.0, 1.0, 0.0)], 0.9), nfe_at_accuracy([(10.0, 0.8, 0.0)], 0.9)
        (15.0, None)
        ```
    """
    flags = pareto_front([(p[0], p[1]) for p in points])
    front = sorted(p for p, on in zip(points, flags) if on)
    if front and front[0][1] >= accuracy:
        return front[0][0]
    for (n0, a0, _), (n1, a1, _) in zip(front, front[1:]):
        if a0 < accuracy <= a1:
            return n0 + (accuracy - a0) / (a1 - a0) * (n1 - n0)
    return None


def _points(rows: list[dict[str, Any]]) -> list[tuple[float, float, float]]:
    return [(r["nfe_mean"], r["accuracy"], r["accuracy_se"]) for r in rows]


def policy_margins(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each policy row against the heuristics' front of its L and mode at the policy's NFE (margin and its SE), and,
    when a reference policy ran (`reference` rows), against the reference's front: accuracy margin at the row's NFE
    and the NFE ratio at the row's accuracy (row NFE / the NFE the reference needs for it)."""
    out = []
    for r in rows:
        if not r["policy"] or r.get("reference"):
            continue
        same = [h for h in rows if h["gen_length"] == r["gen_length"] and h["mode"] == r["mode"]]
        panel = [h for h in same if not h["policy"]]
        front = front_at(_points(panel), r["nfe_mean"])
        versus: dict[str, Any] = {}
        reference = [h for h in same if h.get("reference")]
        if reference:
            ref_front = front_at(_points(reference), r["nfe_mean"])
            ref_nfe = nfe_at_accuracy(_points(reference), r["accuracy"])
            versus = {
                "reference_accuracy": ref_front[0],
                "reference_margin": r["accuracy"] - ref_front[0],
                "reference_margin_se": math.hypot(r["accuracy_se"], ref_front[1]),
                "reference_nfe_at_accuracy": ref_nfe,
                "nfe_ratio": None if ref_nfe is None else r["nfe_mean"] / ref_nfe,
            }
        out.append(
            {
                "gen_length": r["gen_length"],
                "mode": r["mode"],
                "policy": r["strategy"] + ("" if r["budget"] == "-" else f" {r['budget']}"),
                "nfe": r["nfe_mean"],
                "accuracy": r["accuracy"],
                "accuracy_per_seed": r.get("accuracy_per_seed"),
                "front_accuracy": front[0],
                "margin": r["accuracy"] - front[0],
                "margin_se": math.hypot(r["accuracy_se"], front[1]),
                **versus,
            }
        )
    return out


def finish_length(rows: list[dict[str, Any]], modes: list[str]) -> None:
    """Flag, per mode, the heuristic rows of one L on their accuracy/NFE Pareto front (policies never are)."""
    for mode in modes:
        panel = [r for r in rows if r["mode"] == mode and not r["policy"]]
        for r, flag in zip(panel, pareto_front([(r["nfe_mean"], r["accuracy"]) for r in panel])):
            r["front"] = flag
    for r in rows:
        r.setdefault("front", False)


def write_report(
    out_dir: Path, rows: list[dict[str, Any]], gaps: dict[int, Any], args: Any, complete: bool, verdict: Any = None
) -> Path:
    """`regime.json`: the rows, the matched-NFE gaps per L, the policy margins, the verdict and the arguments."""
    payload = {
        "complete": complete,
        "rows": rows,
        "gaps": {str(k): v for k, v in gaps.items()},
        "policy_margins": policy_margins(rows),
        "acceptance": verdict,
        "args": vars(args),
    }
    path = out_dir / "regime.json"
    path.write_text(json.dumps(payload, indent=2))
    return path


def evaluate_setting(
    model: Any,
    tokenizer: Any,
    task: Any,
    rows: list[dict[str, str]],
    strategy: Any,
    L: int,
    bl: int,
    seeds: list[int],
    batch_size: int,
) -> dict[str, Any]:
    """Every seed of one setting, pooled: the summary of all records plus the accuracy of each seed."""
    records, per_seed = [], []
    for seed in seeds:
        seed_records = run_setting(model, tokenizer, task, rows, strategy, L, bl, seed, batch_size)
        per_seed.append(sum(r.correct for r in seed_records) / len(seed_records))
        records += seed_records
    return {**summarize_records(records), "accuracy_per_seed": per_seed, "seeds": list(seeds)}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="tiny-dllm-long", help="a built-in model name or a model folder")
    parser.add_argument("--task", default="trace_until")
    parser.add_argument("--lengths", type=int, nargs="+", default=[32, 64, 128], help="buffer lengths L")
    parser.add_argument("--modes", nargs="+", choices=["semi", "full"], default=["semi", "full"])
    parser.add_argument("--block-length", type=int, default=8, help="block length of the semi-AR runs")
    parser.add_argument("--n", type=int, default=500, help="test examples (first n of the task's test split)")
    parser.add_argument("--strategies", nargs="*", default=None, help="strategy specs (default: the heuristics)")
    parser.add_argument(
        "--policies", nargs="*", default=[], help="strategies compared with the front: learned policies, WINO, ReMDM"
    )
    parser.add_argument(
        "--reference-policy", default=None, help="a policy sweep (spec) every --policies row is also compared with"
    )
    parser.add_argument("--policy-seeds", type=int, nargs="+", default=[0, 1, 2], help="sampling seeds of policies")
    parser.add_argument(
        "--front-from",
        default=None,
        help="a regime.json of an earlier run: its heuristic rows (same L and mode) are the front, not re-run",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the heuristic runs (greedy: seed-free)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output-dir", default="outputs/long_buffer_regime")
    return parser


def run_length(
    rows: list[dict[str, Any]], L: int, args: argparse.Namespace, setup: tuple, front_rows: list[dict[str, Any]]
) -> None:
    """Every setting of buffer length `L` (each mode, each strategy and budget), appended to `rows` as it finishes,
    so that an interrupted run keeps what it did. `setup`: (model, tokenizer, task, test rows, start time)."""
    model, tokenizer, task, test_rows, t0 = setup
    for mode in args.modes:
        bl = args.block_length if mode == "semi" else L
        earlier = [r for r in front_rows if r["gen_length"] == L and r["mode"] == mode]
        rows += [{**r, "reference": False} for r in earlier]
        specs = [] if earlier else [(text, False) for text in (args.strategies or heuristic_specs(L, bl))]
        specs += [(text, True) for text in args.policies]
        if args.reference_policy:
            specs.append((args.reference_policy, "reference"))
        for text, is_policy in specs:
            spec = StrategySpec.parse(text)
            for budget, strategy in spec.instances():
                seeds = args.policy_seeds if is_policy else [args.seed]
                if getattr(strategy, "deterministic", False):  # greedy and no draw: every seed is the same
                    seeds = seeds[:1]
                summary = evaluate_setting(model, tokenizer, task, test_rows, strategy, L, bl, seeds, args.batch_size)
                row = {
                    "gen_length": L,
                    "mode": mode,
                    "block_length": bl,
                    "strategy": spec.label,
                    "budget": ",".join(f"{k}={v}" for k, v in budget.items()) or "-",
                    "policy": bool(is_policy),
                    "reference": is_policy == "reference",
                    **summary,
                }
                rows.append(row)
                print(
                    f"  [{time.perf_counter() - t0:6.0f}s] L={L} {mode} {row['strategy']} {row['budget']}: "
                    f"{100 * row['accuracy']:.1f}% @ {row['nfe_mean']:.1f} NFE",
                    file=sys.stderr,
                )


def print_gaps(gaps: dict[int, list[dict[str, float]]]) -> bool:
    """Print the semi-AR minus full-diffusion gaps per L; True when some L >= 64 has a gap of 10 points or more."""
    verdict = False
    for L, lines in gaps.items():
        if not lines:
            continue
        print(f"\nL = {L}: semi-AR front minus full-diffusion front at matched NFE (0.1L-0.5L)")
        for g in lines:
            print(
                f"  NFE {g['nfe']:6.1f}: semi {100 * g['better']:5.1f}%  full {100 * g['worse']:5.1f}%  "
                f"gap {100 * g['gap']:+5.1f} +- {100 * g['gap_se']:.1f}"
            )
        if L >= 64 and any(g["gap"] >= 0.10 for g in lines):
            verdict = True
    return verdict


def print_margins(margins: list[dict[str, Any]], policy_seeds: list[int]) -> None:
    """Print each policy's margin over the heuristics' front (and over the reference policy, if any)."""
    if not margins:
        return
    print(f"\nPolicies vs the heuristics' front at matched NFE (seeds {policy_seeds}, SE of the margin)")
    for m in margins:
        print(
            f"  L={m['gen_length']:<4} {m['mode']:<5} {m['policy']:<48} {100 * m['accuracy']:5.1f}% @ "
            f"{m['nfe']:5.1f} NFE  front {100 * m['front_accuracy']:5.1f}%  margin "
            f"{100 * m['margin']:+5.1f} +- {100 * m['margin_se']:.1f}"
        )
        if "reference_margin" in m:
            ratio = "never reached" if m["nfe_ratio"] is None else f"{m['nfe_ratio']:.2f}x its NFE"
            print(
                f"  {'':<11}{'vs the reference policy':<48} {100 * m['reference_accuracy']:5.1f}% at that NFE, "
                f"margin {100 * m['reference_margin']:+5.1f} +- {100 * m['reference_margin_se']:.1f}; "
                f"same accuracy at {ratio}"
            )


def print_acceptance(args: argparse.Namespace, verdict: bool, margins: list[dict[str, Any]]) -> bool | None:
    """Print the acceptance lines; returns the front verdict (None: not checked, the run lacks a mode or L >= 64)."""
    print("\nAcceptance:")
    checked: bool | None = verdict
    if {"semi", "full"} <= set(args.modes) and any(L >= 64 for L in args.lengths):
        print(
            f"  {'PASS' if verdict else 'FAIL'}  at some L >= 64 the full-diffusion front is >= 10 points below "
            "semi-AR at matched NFE in 0.1L-0.5L"
        )
    else:
        checked = None
        print("  not checked: it needs both modes (--modes semi full) and some L >= 64")
    for m in margins:
        if m["mode"] == "full" and m["gen_length"] >= 64:
            print(
                f"  {'PASS' if m['margin'] >= 0.10 else 'FAIL'}  {m['policy']} beats the full-diffusion front by >= 10 "
                f"points at matched NFE (L = {m['gen_length']}: {100 * m['margin']:+.1f} +- {100 * m['margin_se']:.1f})"
            )
    for m in margins:
        if "reference_margin" in m:
            above = m["reference_margin"] > 0 or (m["nfe_ratio"] is not None and m["nfe_ratio"] <= 0.8)
            print(
                f"  {'PASS' if above else 'FAIL'}  {m['policy']} ({m['mode']}, L = {m['gen_length']}) is above the "
                "reference policy at matched NFE, or as accurate at <= 0.8x its NFE"
            )
    return checked


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    model, tokenizer = load_dllm(args.model if Path(args.model).is_dir() else f"builtin:{args.model}")
    task = get_task(args.task)
    test_rows = list(task.dataset(n_train=0, n_test=args.n, seed=0)["test"])
    out_dir = Path(args.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)

    front_rows: list[dict[str, Any]] = []
    if args.front_from:
        front_rows = [r for r in json.loads(Path(args.front_from).read_text())["rows"] if not r["policy"]]
    all_rows: list[dict[str, Any]] = []
    gaps: dict[int, list[dict[str, float]]] = {}
    setup = (model, tokenizer, task, test_rows, time.perf_counter())
    interrupted = False
    rows_l: list[dict[str, Any]] = []
    try:
        for L in args.lengths:
            rows_l = []
            run_length(rows_l, L, args, setup, front_rows)
            finish_length(rows_l, args.modes)
            all_rows += rows_l
            rows_l = []
            gaps[L] = matched_nfe_gaps([r for r in all_rows if r["gen_length"] == L and not r["policy"]], L)
            write_report(out_dir, all_rows, gaps, args, complete=False)  # each finished L is kept
    except KeyboardInterrupt:  # Ctrl-C: keep every finished setting (the current L's fronts are partial)
        interrupted = True
        finish_length(rows_l, args.modes)
        all_rows += rows_l

    print(f"\n=== {args.task}, {args.n} test examples, model {args.model}, semi-AR BL = {args.block_length}")
    print_rows(all_rows)
    verdict = print_gaps(gaps)
    margins = policy_margins(all_rows)
    print_margins(margins, args.policy_seeds)
    verdict = print_acceptance(args, verdict, margins)
    path = write_report(out_dir, all_rows, gaps, args, complete=not interrupted, verdict=verdict)
    print(f"\nWritten to {path}")
    if interrupted:
        print(
            f"long_buffer_regime.py: interrupted; the {len(all_rows)} finished settings are in {path}", file=sys.stderr
        )
        return 130
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # before the first setting started: nothing to keep
        print("long_buffer_regime.py: interrupted before any result was written", file=sys.stderr)
        sys.exit(130)
