"""One setting of a sweep on this process's batches (`Sweep.run_setting` -> `SettingShard`), and its table row from
the shards of every process (`setting_row`): a single process has one shard per setting, a data-parallel run one
per rank, and both give the same row."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

from ..generation import completion_eos_ids, completion_texts, model_device
from .data import EvaluationData
from .specs import budget_label

__all__ = ["SettingShard", "Sweep", "setting_row"]


@dataclass
class SettingShard:
    """One setting's results on the batches one process ran: per seed, `(example index, correct, NFE, sample)`
    for each of its examples (`sample` is None unless completions are kept), and the generation seconds."""

    per_seed: dict[int, list[tuple[int, bool, int, Optional[dict[str, Any]]]]] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class Sweep:
    """What every setting of a sweep shares: the model, the examples, this process's batches (`(start, input_ids,
    attention_mask)`), the generation arguments, the progress bar and `should_stop` (asked between batches: another
    process was interrupted)."""

    model: Any
    tokenizer: Any
    data: EvaluationData
    batches: list[tuple[int, torch.Tensor, torch.Tensor]]
    gen_length: int
    temperature: float
    generation_kwargs: dict[str, Any]
    keep_samples: bool
    bar: Any
    should_stop: Callable[[], bool] = lambda: False

    def __post_init__(self) -> None:
        self.device = model_device(self.model)
        # One EOS set stops generation (stop_at_eos) and cuts the completions: the user's eos_token_id, else the
        # model family's and the tokenizer's (training decodes with the same set).
        self.eos_ids = completion_eos_ids(
            self.model, self.tokenizer, eos_token_id=self.generation_kwargs.get("eos_token_id")
        )
        self.generation_kwargs = {**self.generation_kwargs, "eos_token_id": self.eos_ids}

    def completions(self, sequences: torch.Tensor, prompt_length: int) -> list[str]:
        """The completion texts of generated `sequences` `[B, P + L]` (`hf_unmask.generation.completion_texts`)."""
        return completion_texts(self.tokenizer, sequences.cpu(), prompt_length, self.eos_ids)

    def run_seed(self, label: str, budget: dict[str, Any], strategy: Any, bl: int, seed: int) -> tuple[list, float]:
        """One seed of one setting over this process's batches: its entries and generation seconds."""
        entries: list[tuple[int, bool, int, Optional[dict[str, Any]]]] = []
        elapsed = 0.0
        for start, input_ids, attention_mask in self.batches:
            if self.should_stop():
                raise KeyboardInterrupt("another process of this evaluation was interrupted")
            t0 = time.perf_counter()
            out = self.model.generate(
                input_ids.to(self.device),
                attention_mask=attention_mask.to(self.device),
                strategy=strategy,
                max_new_tokens=self.gen_length,
                block_length=bl,
                temperature=self.temperature,
                seed=seed,
                return_dict_in_generate=True,
                **self.generation_kwargs,
            )
            elapsed += time.perf_counter() - t0
            texts = self.completions(out.sequences, input_ids.shape[1])
            for j, (text, nfe) in enumerate(zip(texts, out.nfe.cpu().tolist())):
                i = start + j
                ok = bool(self.data.is_correct(text, self.data.references[i]))
                sample = None
                if self.keep_samples:
                    sample = {
                        "strategy": label,
                        "budget": budget_label(budget),
                        "block_length": bl,
                        "seed": seed,
                        "index": i,
                        "prompt": self.data.prompts[i],
                        "reference": self.data.references[i],
                        "completion": text,
                        "correct": ok,
                        "nfe": int(nfe),
                    }
                entries.append((i, ok, int(nfe), sample))
            self.bar.update(1)
        return entries, elapsed

    def run_setting(
        self, label: str, budget: dict[str, Any], strategy: Any, bl: int, seeds: list[int]
    ) -> SettingShard:
        """Every seed of one setting on this process's batches."""
        shard = SettingShard()
        # Without any random draw (greedy dLLM, deterministic strategy) every seed gives the same result: run it once
        # and count it for each seed.
        run_once = self.temperature == 0 and bool(getattr(strategy, "deterministic", False))
        for seed_index, seed in enumerate(seeds):
            if run_once and seed_index > 0:
                first = shard.per_seed[seeds[0]]
                shard.per_seed[seed] = [(i, ok, nfe, s and dict(s, seed=seed)) for i, ok, nfe, s in first]
                self.bar.update(len(self.batches))
                continue
            self.bar.set_postfix_str(f"{label} {budget_label(budget)} BL={bl} seed={seed}".strip(), refresh=False)
            shard.per_seed[seed], seconds = self.run_seed(label, budget, strategy, bl, seed)
            shard.seconds += seconds
        return shard


def setting_row(
    label: str, budget: dict[str, Any], bl: int, gen_length: int, seeds: Sequence[int], shards: Sequence[SettingShard]
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The table row of one setting from the shards of every process, and its samples (seed by seed, in example
    order). The wall time is the slowest process's (they run side by side)."""
    acc_per_seed: list[float] = []
    nfe_per_seed: list[float] = []
    all_nfe: list[int] = []
    samples: list[dict[str, Any]] = []
    n = 0
    for seed in seeds:
        entries = sorted((e for shard in shards for e in shard.per_seed[seed]), key=lambda e: e[0])
        n = len(entries)
        acc_per_seed.append(sum(ok for _, ok, _, _ in entries) / n)
        nfes = [nfe for _, _, nfe, _ in entries]
        nfe_per_seed.append(sum(nfes) / n)
        all_nfe.extend(nfes)
        samples.extend(s for _, _, _, s in entries if s is not None)
    acc_mean, acc_std = mean_std(acc_per_seed)
    nfe_mean, nfe_std = mean_std(nfe_per_seed)
    row = {
        "strategy": label,
        "budget": budget_label(budget),
        "block_length": bl,
        "mode": "full_diffusion" if bl == gen_length else "semi_ar",
        "gen_length": gen_length,
        "accuracy_mean": acc_mean,
        "accuracy_std": acc_std,
        "nfe_mean": nfe_mean,
        "nfe_std": nfe_std,
        "nfe_example_std": mean_std(all_nfe)[1],
        "wall_time_s": max(shard.seconds for shard in shards),
        "n_examples": n,
        "seeds": list(seeds),
        "accuracy_per_seed": acc_per_seed,
        "nfe_per_seed": nfe_per_seed,
        "pareto": False,
        "params": dict(budget),
    }
    return row, samples


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and population standard deviation."""
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / len(values)
    return mean, math.sqrt(var)
