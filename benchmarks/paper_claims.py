"""The paper's claims, side by side with ours, in one command.

"Learning Unmasking Policies for Diffusion Language Models" (arXiv 2512.09106) makes seven claims that the built-in
dLLMs can test on CPU. For each, this script trains what the claim needs (the training script with a recipe, into
`--output-dir`/policies; a finished run is reused) and evaluates every policy against the heuristics' Pareto front
of the same model, task, L and block length on held-out test examples:

  (a) semi-AR: the policy is >= the heuristics at matched NFE       shipped tiny-dllm policies, L = 16, BL 8
  (b) full diffusion: the policy beats the heuristics               shipped tiny-dllm-long policy, L = BL = 64
  (c) the additive reward hacks (collapses), the multiplicative does not   two policies of the L = 16 recipe
  (d) confidence input >= hidden-state input, at far fewer parameters       a d = 32 confidence policy vs a
                                                                            hidden-state policy as wide as the dLLM
  (e) length transfer: trained at L = 32, run at L = 64 and 128     tiny-dllm-long, full diffusion
  (f) model transfer: a policy trained on tiny-dllm runs on tiny-dllm-small about as well as one trained there
  (g) out-of-domain task: a program_trace policy on sort_digits degrades (its margin over the front falls)

(c), (d) and (f) share one recipe (SHARED_RECIPE: the L = 16 CPU recipe, 600 steps), so the multiplicative policy of
(c) is also the paper-size confidence policy of (d) and the transferred policy of (f).

Margins are the policy's accuracy minus the heuristics' front interpolated at the policy's mean NFE
(benchmarks.regime.front_at; below the front's cheapest point: that point). Standard errors are
binomial over the test examples, sqrt(p (1 - p) / n), combined as independent for a difference; policies are
averaged over the sampling seeds `--seeds` (heuristics are greedy and deterministic: one run). Training seeds:
`--train-seeds`, each a separate line. Results: `claims.md` (the table of docs/results/paper_claims.md) and
`claims.json` in --output-dir; every evaluation is kept in `evals/` and reused when its settings and policy weights
are unchanged.

Usage:
    python -m benchmarks.paper_claims                                   # every claim (about 1.5 h on 2 CPU cores)
    python -m benchmarks.paper_claims --claims a b g --n 200            # some claims, fewer examples
    python -m benchmarks.paper_claims --train-seeds 0 1 2 --train-jobs 2   # three training seeds, two runs at once
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch

from hf_unmask.evaluation import EvaluationInterrupted, evaluate_strategies

from .long_buffer_regime import heuristic_specs
from .policy_vs_heuristics import FULL_HEURISTICS, SEMI_AR_HEURISTICS
from .regime import binomial_se, front_at

REPO = Path(__file__).resolve().parents[1]

CLAIMS = "abcdefg"
CPU_RECIPE = "scripts/recipes/builtin_cpu.yaml"
LONG_RECIPE = "scripts/recipes/builtin_long_cpu.yaml"

#: The recipe of claims (c), (d) and (f): the L = 16 recipe (the paper's environment and network, unmask probability
#: starting near 0.12), 600 steps. In the paper's environment the slow start trains well; a fast start (unmask
#: probability 0.5) collapsed to everything-at-once within 100 steps with either reward form. (Before the
#: environment was the paper's, the reverse held: from the slow start the d = 32 policy and the policy on
#: tiny-dllm-small settled on "never unmask", so these claims used the fast start.)
SHARED_RECIPE = ["--config", CPU_RECIPE, "--max_steps", "600"]

#: The runs the claims train: name -> (the claims that read it, training-script flags). Every run adds --seed,
#: --output_dir and --eval_num_examples 0 (this script evaluates).
TRAINING: dict[str, tuple[str, list[str]]] = {
    "reward-additive": ("c", [*SHARED_RECIPE, "--reward_form", "additive"]),
    "reward-multiplicative": ("cdf", [*SHARED_RECIPE, "--reward_form", "multiplicative"]),
    "input-hidden-states": ("d", [*SHARED_RECIPE, "--policy_type", "hidden_states"]),
    "input-confidence-d32": ("d", [*SHARED_RECIPE, "--policy_hidden_size", "32", "--policy_num_heads", "2",
                                   "--policy_ffn_size", "128"]),
    "long-L32": ("e", ["--config", LONG_RECIPE, "--gen_length", "32", "--block_length", "32"]),
    "small-dllm": ("f", [*SHARED_RECIPE, "--dllm_name_or_path", "builtin:tiny-dllm-small"]),
}  # fmt: skip

PAPER = {
    "a": "GSM8K, BL 32: 35.2% @ 10.3 NFE vs Fast-dLLM 17.5% @ 10.6 at the lowest budget; 75.5% @ 46.2 vs 74.2% @ 46.9",
    "b": "GSM8K, BL = L = 256: 48.3% @ 13.0 NFE (56.1% @ 50.5); heuristics ~34% or worse at any NFE",
    "c": "additive: early groups are all wrong, the fastest wrong rollout is favoured, collapse to unmask-everything; "
    "multiplicative: no collapse",
    "d": "hidden-state policy (~300M parameters) is worse and unstable; the 331K confidence policy is the method",
    "e": "trained at L = 256, the policy runs unchanged at L = 512 while the heuristics degrade",
    "f": "LLaDA-trained policies work on Dream about as well as Dream-trained ones (except alpha = 10)",
    "g": "math-trained policies transfer poorly to code (HumanEval)",
}
TITLES = {
    "a": "policy >= heuristics, semi-AR",
    "b": "policy > heuristics, full diffusion",
    "c": "additive reward hacks, multiplicative does not",
    "d": "confidence input >= hidden-state input, far fewer parameters",
    "e": "length transfer (trained at L = 32)",
    "f": "model transfer (trained on another dLLM)",
    "g": "out-of-domain task degrades",
}
SEMI_AR_POLICIES = ["tiny-dllm-program_trace-bl8-alpha0.3", "tiny-dllm-program_trace-bl8-alpha1",
                    "tiny-dllm-program_trace-bl8-alpha3"]  # fmt: skip
FULL_LONG_POLICY = "tiny-dllm-long-trace_until-full-alpha1"
OOD_POLICY = "tiny-dllm-program_trace-bl8-alpha1"  # shipped, trained on program_trace


@dataclass(frozen=True)
class Setting:
    """Where policies and heuristics are compared: model, task, L, block length and number of test examples."""

    model: str
    task: str
    gen_length: int
    block_length: int
    n: int

    @property
    def key(self) -> str:
        mode = "full" if self.block_length == self.gen_length else f"bl{self.block_length}"
        return f"{self.model}-{self.task}-L{self.gen_length}-{mode}-n{self.n}"

    def heuristics(self) -> list[str]:
        """The heuristic sweep: the L = 16 sweep of policy_vs_heuristics.py, or the long-buffer regime's (top-k steps
        scaled to L)."""
        if self.gen_length == 16:
            return SEMI_AR_HEURISTICS if self.block_length < 16 else FULL_HEURISTICS
        return heuristic_specs(self.gen_length, self.block_length)


def margin_over_front(heuristic_rows: Sequence[dict[str, Any]], policy_row: dict[str, Any]) -> dict[str, Any]:
    """The policy row against the heuristics' front at its mean NFE: accuracy, front, margin and their SEs.

    Example:
        ```python
        >>> rows = [{"nfe_mean": 4.0, "accuracy_mean": 0.5, "n_examples": 100},
        ...         {"nfe_mean": 8.0, "accuracy_mean": 0.9, "n_examples": 100}]
        >>> m = margin_over_front(rows, {"strategy": "p", "nfe_mean": 6.0, "accuracy_mean": 0.8, "n_examples": 100})
        >>> round(m["front"], 2), round(m["margin"], 2)
        (0.7, 0.1)
        ```
    """
    points = [
        (r["nfe_mean"], r["accuracy_mean"], binomial_se(r["accuracy_mean"], r["n_examples"])) for r in heuristic_rows
    ]
    front = front_at(points, policy_row["nfe_mean"])
    acc = policy_row["accuracy_mean"]
    se = binomial_se(acc, policy_row["n_examples"])
    return {
        "policy": policy_row["strategy"],
        "accuracy": acc,
        "accuracy_se": se,
        "accuracy_seed_std": policy_row.get("accuracy_std", 0.0),
        "nfe": policy_row["nfe_mean"],
        "front": front[0],
        "margin": acc - front[0],
        "margin_se": math.hypot(se, front[1]),
    }


def best_heuristic(rows: Sequence[dict[str, Any]], max_nfe: Optional[float] = None) -> Optional[dict[str, Any]]:
    """The most accurate heuristic row (at or below `max_nfe` when given)."""
    pool = [r for r in rows if max_nfe is None or r["nfe_mean"] <= max_nfe + 1e-9]
    return max(pool, key=lambda r: (r["accuracy_mean"], -r["nfe_mean"])) if pool else None


def collapse_note(m: dict[str, Any], setting: Setting) -> str:
    """ " (never unmask)" / " (everything at once)" for a policy at one token per step / one step per block."""
    if m["nfe"] >= setting.gen_length - 0.5:
        return " (never unmask: one token per step)"
    if m["nfe"] <= setting.gen_length // setting.block_length + 0.05:
        return " (everything at once: one step per block)"
    return ""


def fmt_point(acc: float, nfe: float, se: Optional[float] = None) -> str:
    return f"{100 * acc:.1f}%{'' if se is None else f' +- {100 * se:.1f}'} @ {nfe:.1f} NFE"


def fmt_margin(m: dict[str, Any]) -> str:
    return f"{100 * m['margin']:+.1f} +- {100 * m['margin_se']:.1f}"


def fmt_row(r: dict[str, Any]) -> str:
    budget = "" if r["budget"] in ("", "-") else f" {r['budget']}"
    return f"{r['strategy']}{budget}: {fmt_point(r['accuracy_mean'], r['nfe_mean'])}"


# ------------------------------------------------------------------------------------------------------ training
def training_complete(folder: Path) -> bool:
    """A finished training run: the saved policy and a trainer state at its last step (an interrupted run is not)."""
    state = folder / "trainer_state.json"
    if not ((folder / "model.safetensors").is_file() and (folder / "config.json").is_file() and state.is_file()):
        return False
    data = json.loads(state.read_text())
    return data.get("global_step") is not None and data.get("global_step") == data.get("max_steps")


def training_command(name: str, seed: int, output_dir: Path) -> list[str]:
    """The training-script command of run `name` (see TRAINING) for one training seed."""
    _, flags = TRAINING[name]
    # the claims read the policy each run ends with (claim (c): whether it collapsed), not its best checkpoint
    return [sys.executable, "scripts/train_unmasking_policy.py", *flags, "--eval_num_examples", "0",
            "--eval_strategy", "no", "--load_best_model_at_end", "false",
            "--seed", str(seed), "--output_dir", str(output_dir)]  # fmt: skip


def train_missing(runs: Sequence[tuple[str, int]], policies_dir: Path, jobs: int, log_dir: Path) -> None:
    """Train every (run, seed) whose folder is not a finished run, `jobs` at a time (one thread each when > 1)."""
    todo = [(name, seed) for name, seed in runs if not training_complete(policies_dir / f"{name}-seed{seed}")]
    for name, seed in runs:
        if (name, seed) not in todo:
            print(f"  reusing the finished run {policies_dir / f'{name}-seed{seed}'}")
    if not todo:
        return
    log_dir.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1") if jobs > 1 else dict(os.environ)
    running: list[tuple[str, subprocess.Popen, Any, float]] = []
    try:
        while todo or running:
            while todo and len(running) < jobs:
                name, seed = todo.pop(0)
                folder = policies_dir / f"{name}-seed{seed}"
                cmd = training_command(name, seed, folder)
                log = open(log_dir / f"{name}-seed{seed}.log", "w")  # noqa: SIM115 (closed when the run ends)
                print(f"  training {folder.name}: {' '.join(cmd[1:])} (log: {log.name})", flush=True)
                running.append((folder.name, subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=log), log,
                                time.perf_counter()))  # fmt: skip
            time.sleep(2)
            for entry in list(running):
                label, proc, log, started = entry
                if proc.poll() is None:
                    continue
                running.remove(entry)
                log.close()
                if proc.returncode in (130, -signal.SIGINT):  # the run was interrupted (Ctrl-C): so is this
                    raise KeyboardInterrupt
                if proc.returncode != 0:
                    raise RuntimeError(f"training {label} failed (exit {proc.returncode}); see {log.name}")
                print(f"  trained {label} in {(time.perf_counter() - started) / 60:.1f} min", flush=True)
    except KeyboardInterrupt:  # a terminal's Ctrl-C reaches the runs too; forward it to any that did not get it
        for _, proc, _, _ in running:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)  # the training script saves a checkpoint and stops
        raise
    finally:
        for _, proc, log, _ in running:
            proc.wait()
            log.close()


# ---------------------------------------------------------------------------------------------------- evaluation
class Evaluator:
    """Runs (and caches in `evals/`) the heuristic sweep and policy evaluations of each setting."""

    def __init__(self, out_dir: Path, seeds: Sequence[int], batch_size: int) -> None:
        self.out_dir, self.seeds, self.batch_size = out_dir, list(seeds), batch_size
        self._models: dict[str, Any] = {}

    def model(self, name: str) -> tuple[Any, Any]:
        if name not in self._models:
            from hf_unmask.models import load_dllm

            self._models[name] = load_dllm(f"builtin:{name}")
        return self._models[name]

    def _run(self, folder: Path, setting: Setting, specs: list[str], seeds: list[int], fingerprint: str) -> list:
        meta_path = folder / "evaluation.json"
        request = {"strategies": specs, "seeds": seeds, "n_examples": setting.n, "gen_length": setting.gen_length,
                   "block_length": setting.block_length, "weights": fingerprint}  # fmt: skip
        if meta_path.is_file():  # reuse a finished evaluation of the same request
            saved = json.loads(meta_path.read_text())
            if saved["meta"].get("complete") and saved["meta"].get("claims_request") == request:
                return saved["rows"]
        model, tokenizer = self.model(setting.model)
        print(
            f"  evaluate {setting.key}/{folder.name} ({len(specs)} families, {setting.n} examples, seeds {seeds})",
            flush=True,
        )
        try:
            result = evaluate_strategies(
                model, tokenizer, setting.task, specs, block_lengths=[setting.block_length], seeds=seeds,
                n_examples=setting.n, max_new_tokens=setting.gen_length, batch_size=self.batch_size,
                model_name=setting.model,
            )  # fmt: skip
        except EvaluationInterrupted as stop:
            stop.result.meta.update(claims_request=request)
            stop.save(folder)
            raise
        result.meta.update(claims_request=request)
        result.save(folder)
        return result.rows

    def heuristics(self, setting: Setting) -> list[dict[str, Any]]:
        return self._run(self.out_dir / "evals" / setting.key / "heuristics", setting, setting.heuristics(),
                         [0], "heuristics")  # fmt: skip

    def policy(self, setting: Setting, source: str) -> dict[str, Any]:
        """One policy (shipped name or folder) at its saved inference settings, averaged over the seeds."""
        weights = policy_folder(source) / "model.safetensors"
        fingerprint = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
        rows = self._run(self.out_dir / "evals" / setting.key / Path(source).name, setting, [source], self.seeds,
                         fingerprint)  # fmt: skip
        (row,) = rows
        return row


def policy_folder(source: str) -> Path:
    """The folder of a policy given as a folder or by shipped name."""
    from hf_unmask.strategies.builtin import builtin_policy_path

    return Path(source) if Path(source).is_dir() else builtin_policy_path(source)


def policy_parameters(source: str) -> int:
    """Parameters of a policy given by shipped name or folder."""
    from hf_unmask.strategies import UnmaskingStrategy

    return sum(p.numel() for p in UnmaskingStrategy.from_pretrained(str(policy_folder(source))).parameters())


# --------------------------------------------------------------------------------------------------------- claims
def claim_a(ev: Evaluator, n: int, **_: Any) -> dict[str, Any]:
    setting = Setting("tiny-dllm", "program_trace", 16, 8, n)
    heur = ev.heuristics(setting)
    margins = [margin_over_front(heur, ev.policy(setting, p)) for p in SEMI_AR_POLICIES]
    best = max(margins, key=lambda m: m["margin"])
    fastest = min(margins, key=lambda m: m["nfe"])
    ours = "; ".join(f"{m['policy']}: {fmt_point(m['accuracy'], m['nfe'], m['accuracy_se'])}, front "
                     f"{100 * m['front']:.1f}%, margin {fmt_margin(m)}" for m in margins)  # fmt: skip
    holds = best["margin"] >= 0 and fastest["margin"] > 0
    verdict = (f"{'holds' if holds else 'does not hold'}: best margin {fmt_margin(best)}, at the lowest budget "
               f"{fmt_margin(fastest)}")  # fmt: skip
    return dict(setting=setting.key, ours=ours, holds=holds, verdict=verdict, margins=margins)


def claim_b(ev: Evaluator, n: int, **_: Any) -> dict[str, Any]:
    setting = Setting("tiny-dllm-long", "trace_until", 64, 64, n)
    heur = ev.heuristics(setting)
    m = margin_over_front(heur, ev.policy(setting, FULL_LONG_POLICY))
    top = best_heuristic(heur)
    ours = (f"{FULL_LONG_POLICY}: {fmt_point(m['accuracy'], m['nfe'], m['accuracy_se'])}, front {100 * m['front']:.1f}%"
            f", margin {fmt_margin(m)}; best full-diffusion heuristic at any NFE: {fmt_row(top)}")  # fmt: skip
    holds = m["margin"] > 2 * m["margin_se"]
    verdict = f"{'holds' if holds else 'does not hold'}: margin {fmt_margin(m)} (> 2 SE required)"
    return dict(setting=setting.key, ours=ours, holds=holds, verdict=verdict, margins=[m])


def claim_c(ev: Evaluator, n: int, policies_dir: Path, train_seeds: Sequence[int], **_: Any) -> dict[str, Any]:
    setting = Setting("tiny-dllm", "program_trace", 16, 8, n)
    heur = ev.heuristics(setting)
    lines, holds_all, margins = [], [], []
    blocks = setting.gen_length // setting.block_length
    for seed in train_seeds:
        add = margin_over_front(heur, ev.policy(setting, str(policies_dir / f"reward-additive-seed{seed}")))
        mul = margin_over_front(heur, ev.policy(setting, str(policies_dir / f"reward-multiplicative-seed{seed}")))
        margins += [add, mul]
        # collapsed: one forward pass per block (everything at once) or one token per step (never unmask)
        collapsed = add["nfe"] <= blocks + 0.5 or add["nfe"] >= setting.gen_length - 0.5
        better = mul["accuracy"] - add["accuracy"] > 2 * math.hypot(mul["accuracy_se"], add["accuracy_se"])
        holds_all.append(collapsed and better)
        lines.append(f"training seed {seed}: additive {fmt_point(add['accuracy'], add['nfe'], add['accuracy_se'])}, "
                     f"multiplicative {fmt_point(mul['accuracy'], mul['nfe'], mul['accuracy_se'])}")  # fmt: skip
    holds = all(holds_all)
    verdict = (f"{'holds' if holds else 'does not hold'} for {sum(holds_all)}/{len(holds_all)} training seeds "
               f"(additive at {blocks} NFE = one step per block, or {setting.gen_length} = one token per step, and "
               "multiplicative more accurate by > 2 SE)")  # fmt: skip
    return dict(setting=setting.key, ours="; ".join(lines), holds=holds, verdict=verdict, margins=margins)


def claim_d(ev: Evaluator, n: int, policies_dir: Path, train_seeds: Sequence[int], **_: Any) -> dict[str, Any]:
    setting = Setting("tiny-dllm", "program_trace", 16, 8, n)
    heur = ev.heuristics(setting)
    lines: list[str] = []
    checks: list[dict[str, bool]] = []
    margins: list[dict[str, Any]] = []
    for seed in train_seeds:
        sources = {
            "confidence, d = 32": str(policies_dir / f"input-confidence-d32-seed{seed}"),
            "confidence, d = 128 (the paper's size)": str(policies_dir / f"reward-multiplicative-seed{seed}"),
            "hidden states": str(policies_dir / f"input-hidden-states-seed{seed}"),
        }
        got = {k: margin_over_front(heur, ev.policy(setting, s)) for k, s in sources.items()}
        margins += list(got.values())
        hidden = got["hidden states"]
        # the confidence policy minus the hidden-state policy, in margin over the front, with its SE
        diffs = {
            size: (got[k]["margin"] - hidden["margin"], math.hypot(got[k]["margin_se"], hidden["margin_se"]))
            for size, k in (("equal", "confidence, d = 128 (the paper's size)"), ("small", "confidence, d = 32"))
        }
        checks.append({size: d >= -2 * se for size, (d, se) in diffs.items()})
        lines.append(f"training seed {seed}: " + "; ".join(
            f"{k} ({policy_parameters(sources[k]):,} parameters): {fmt_point(m['accuracy'], m['nfe'], m['accuracy_se'])}"
            f"{collapse_note(m, setting)}, margin {fmt_margin(m)}" for k, m in got.items()))  # fmt: skip
        lines[-1] += (f" (confidence minus hidden states: d = 128 {100 * diffs['equal'][0]:+.1f} +- "
                      f"{100 * diffs['equal'][1]:.1f}, d = 32 {100 * diffs['small'][0]:+.1f} +- {100 * diffs['small'][1]:.1f})")  # fmt: skip
    equal = sum(c["equal"] for c in checks)
    small = sum(c["small"] for c in checks)
    holds = equal == small == len(checks)
    verdict = (f"{'holds' if holds else 'partly' if equal or small else 'does not hold'}: the confidence policy is "
               f">= the hidden-state policy (margin over the front, within 2 SE) at equal size for {equal}/{len(checks)} "
               f"training seeds, at 13x fewer parameters (d = 32) for {small}/{len(checks)}")  # fmt: skip
    return dict(setting=setting.key, ours="; ".join(lines), holds=holds, verdict=verdict, margins=margins)


def claim_e(
    ev: Evaluator, n: int, n_l128: int, policies_dir: Path, train_seeds: Sequence[int], **_: Any
) -> dict[str, Any]:
    settings = {L: Setting("tiny-dllm-long", "trace_until", L, L, n if L < 128 else n_l128) for L in (32, 64, 128)}
    heur = {L: ev.heuristics(s) for L, s in settings.items()}

    def run_at(source: str, lengths: Sequence[int]) -> dict[int, dict[str, Any]]:
        return {L: margin_over_front(heur[L], ev.policy(settings[L], source)) for L in lengths}

    def describe(got: dict[int, dict[str, Any]]) -> str:
        return ", ".join(f"L = {L}: {fmt_point(m['accuracy'], m['nfe'], m['accuracy_se'])}, front "
                         f"{100 * m['front']:.1f}%, margin {fmt_margin(m)}" for L, m in got.items())  # fmt: skip

    lines, holds_all, margins = [], [], []
    for seed in train_seeds:  # the paper's test: trained at the shorter L, run at longer ones
        got = run_at(str(policies_dir / f"long-L32-seed{seed}"), (32, 64, 128))
        margins += list(got.values())
        holds_all.append(all(got[L]["margin"] > 0 for L in (64, 128)))
        lines.append(f"trained at L = 32 (training seed {seed}): {describe(got)}")
    shipped = run_at(FULL_LONG_POLICY, (32, 64, 128))  # trained at L = 64: run at half and twice its length
    margins += list(shipped.values())
    from_64 = shipped[128]["margin"] > 0
    lines.append(f"{FULL_LONG_POLICY}, trained at L = 64: {describe(shipped)}")
    tops = ", ".join(f"L = {L}: {100 * best_heuristic(rows)['accuracy_mean']:.1f}%" for L, rows in heur.items())
    lines.append(f"best full-diffusion heuristic at any NFE: {tops}")
    holds = all(holds_all) and from_64
    verdict = (f"{'holds' if holds else 'partly' if any(holds_all) or from_64 else 'does not hold'}: trained at "
               f"L = 32, margin > 0 at L = 64 and 128 for {sum(holds_all)}/{len(holds_all)} training seeds; trained "
               f"at L = 64, margin at L = 128 {fmt_margin(shipped[128])}")  # fmt: skip
    return dict(setting=settings[64].key, ours="; ".join(lines), holds=holds, verdict=verdict, margins=margins)


def claim_f(ev: Evaluator, n: int, policies_dir: Path, train_seeds: Sequence[int], **_: Any) -> dict[str, Any]:
    setting = Setting("tiny-dllm-small", "program_trace", 16, 8, n)
    heur = ev.heuristics(setting)
    lines, holds_all, margins = [], [], []
    for seed in train_seeds:
        moved = margin_over_front(heur, ev.policy(setting, str(policies_dir / f"reward-multiplicative-seed{seed}")))
        native = margin_over_front(heur, ev.policy(setting, str(policies_dir / f"small-dllm-seed{seed}")))
        margins += [moved, native]
        holds_all.append(moved["margin"] >= native["margin"] - 2 * math.hypot(moved["margin_se"], native["margin_se"]))
        lines.append(
            f"training seed {seed}, on tiny-dllm-small: trained on tiny-dllm "
            f"{fmt_point(moved['accuracy'], moved['nfe'], moved['accuracy_se'])}{collapse_note(moved, setting)}, "
            f"margin {fmt_margin(moved)}; trained on tiny-dllm-small "
            f"{fmt_point(native['accuracy'], native['nfe'], native['accuracy_se'])}{collapse_note(native, setting)}, "
            f"margin {fmt_margin(native)}"
        )
    holds = all(holds_all)
    verdict = (f"{'holds' if holds else 'does not hold'} for {sum(holds_all)}/{len(holds_all)} training seeds "
               "(transferred margin >= native margin - 2 SE)")  # fmt: skip
    return dict(setting=setting.key, ours="; ".join(lines), holds=holds, verdict=verdict, margins=margins)


def claim_g(ev: Evaluator, n: int, **_: Any) -> dict[str, Any]:
    got = {}
    for task in ("program_trace", "shell_game", "sort_digits"):
        setting = Setting("tiny-dllm", task, 16, 8, n)
        got[task] = margin_over_front(ev.heuristics(setting), ev.policy(setting, OOD_POLICY))
    home, away = got["program_trace"], got["sort_digits"]
    drop_se = math.hypot(home["margin_se"], away["margin_se"])
    holds = home["margin"] - away["margin"] > 2 * drop_se
    ours = f"{OOD_POLICY} (trained on program_trace): " + "; ".join(
        f"{task}: {fmt_point(m['accuracy'], m['nfe'], m['accuracy_se'])}, front {100 * m['front']:.1f}%, margin "
        f"{fmt_margin(m)}" for task, m in got.items())  # fmt: skip
    verdict = (f"{'holds' if holds else 'does not hold'}: the margin falls by "
               f"{100 * (home['margin'] - away['margin']):.1f} +- {100 * drop_se:.1f} points from program_trace to "
               "sort_digits (> 2 SE required)")  # fmt: skip
    return dict(setting="tiny-dllm-*-L16-bl8", ours=ours, holds=holds, verdict=verdict, margins=list(got.values()))


CLAIM_FUNCTIONS = dict(a=claim_a, b=claim_b, c=claim_c, d=claim_d, e=claim_e, f=claim_f, g=claim_g)


def markdown_table(claims: dict[str, dict[str, Any]], command: str) -> str:
    """The table of docs/results/paper_claims.md: claim, the paper's number, ours (with SEs), the verdict and the
    command."""
    lines = ["| claim | paper | ours | verdict | command |", "|---|---|---|---|---|"]
    for key, c in claims.items():
        cmd = f"`{command} --claims {key}`"
        lines.append(f"| ({key}) {TITLES[key]} | {PAPER[key]} | {c['ours']} | {c['verdict']} | {cmd} |")
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, claims: dict[str, Any], args: argparse.Namespace, complete: bool) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    payload = {"complete": complete, "claims": claims, "paper": PAPER, "args": vars(args)}
    (out_dir / "claims.json").write_text(json.dumps(payload, indent=2) + "\n")
    path = out_dir / "claims.md"
    path.write_text(markdown_table(claims, "python -m benchmarks.paper_claims"))
    return path


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--claims", nargs="+", choices=list(CLAIMS), default=list(CLAIMS))
    parser.add_argument("--n", type=int, default=500, help="test examples per setting (first n of the test split)")
    parser.add_argument("--n-l128", type=int, default=100, help="test examples at L = 128 (claim e; costly)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="sampling seeds of the policies")
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0], help="training seeds (claims c-f)")
    parser.add_argument("--train-jobs", type=int, default=1, help="training runs at once (one thread each if > 1)")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output-dir", default="outputs/paper_claims")
    args = parser.parse_args(argv)
    if args.n <= 0 or args.n_l128 <= 0:
        parser.error("--n and --n-l128 must be positive")
    torch.set_num_threads(args.threads)
    out_dir = Path(args.output_dir)
    policies_dir = out_dir / "policies"
    claims = sorted(set(args.claims))
    started = time.perf_counter()
    results: dict[str, Any] = {}
    try:
        runs = [(name, s) for name, (used, _) in TRAINING.items() if set(used) & set(claims) for s in args.train_seeds]
        if runs:
            print(f"== Training ({len(runs)} runs; finished ones are reused)", flush=True)
            train_missing(runs, policies_dir, args.train_jobs, out_dir / "logs")
        ev = Evaluator(out_dir, args.seeds, args.batch_size)
        for key in claims:
            print(f"== ({key}) {TITLES[key]}", flush=True)
            results[key] = CLAIM_FUNCTIONS[key](ev, n=args.n, n_l128=args.n_l128, policies_dir=policies_dir,
                                                train_seeds=args.train_seeds)  # fmt: skip
            print(f"   paper: {PAPER[key]}\n   ours:  {results[key]['ours']}\n   -> {results[key]['verdict']}",
                  flush=True)  # fmt: skip
            write_report(out_dir, results, args, complete=False)
    except KeyboardInterrupt:
        path = write_report(out_dir, results, args, complete=False)
        print(
            f"paper_claims.py: interrupted; the {len(results)} finished claims are in {out_dir / 'claims.json'}",
            file=sys.stderr,
        )
        return 130
    path = write_report(out_dir, results, args, complete=True)
    print(f"\n{markdown_table(results, 'python -m benchmarks.paper_claims')}")
    print(f"Written to {path} and {out_dir / 'claims.json'} in {(time.perf_counter() - started) / 60:.1f} min.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
