"""Run a sweep: every strategy x budget x block length x seed on the same examples, one table row per setting;
Ctrl-C keeps the settings finished so far (`EvaluationInterrupted`)."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..models import unwrap_model
from ..strategies import UnmaskingStrategy
from .data import EvaluationData
from .model_io import (
    completion_eos_ids,
    decode_completions,
    default_gen_length,
    ensure_diffusion_generate,
    model_device,
    tokenize_batches,
)
from .pareto import flag_pareto_per_block_length
from .results import EvaluationResult
from .specs import (
    StrategySpec,
    as_spec,
    budget_label,
    check_block_lengths,
    default_strategy_specs,
    plan_sweep,
    unique_family_labels,
)

__all__ = ["EvaluationInterrupted", "evaluate_strategies", "load_model_and_tokenizer"]

# `generate` arguments that `evaluate_strategies` sets itself.
_RESERVED_GENERATE_KWARGS = (
    "strategy",
    "block_length",
    "max_new_tokens",
    "seed",
    "generator",
    "return_dict_in_generate",
)


class EvaluationInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped `evaluate_strategies`; `.result` holds the settings finished so far (`result.complete` is
    False). A `KeyboardInterrupt`, so code that handles Ctrl-C keeps working; `save(output_dir)` writes the partial
    table like `EvaluationResult.save` and `str(err)` then names the files.

    Example (a step callback raises the `KeyboardInterrupt` that Ctrl-C would, in the third setting):
        ```python
        >>> import tempfile
        >>> from hf_unmask.evaluation import EvaluationInterrupted, evaluate_strategies
        >>> from hf_unmask.models import load_dllm
        >>> model, tokenizer = load_dllm("builtin")
        >>> calls = []
        >>> def ctrl_c_in_the_third_setting(step):
        ...     calls.append(step.step)
        ...     if calls.count(0) == 3:
        ...         raise KeyboardInterrupt
        >>> try:
        ...     evaluate_strategies(model, tokenizer, "program_trace", ["top_k_confidence:steps=2,4,8"],
        ...                         block_lengths=[8], n_examples=4, progress=False,
        ...                         generation_kwargs={"callback_on_step_end": ctrl_c_in_the_third_setting})
        ... except EvaluationInterrupted as stop:
        ...     paths = stop.save(tempfile.mkdtemp())  # evaluation.json says "complete": false
        ...     print(stop.result.complete, len(stop.result.rows))
        False 2
        ```
    """

    def __init__(self, result: EvaluationResult) -> None:
        super().__init__()
        self.result = result
        self.paths: dict[str, Path] = {}

    def save(self, output_dir: Union[str, Path]) -> dict[str, Path]:
        """Write the partial table (CSV, JSON with `"complete": false`, plot, samples) to `output_dir`."""
        self.paths = self.result.save(output_dir)
        return self.paths

    def __str__(self) -> str:
        meta = self.result.meta
        done = f"{meta.get('settings_done', len(self.result.rows))} of {meta.get('settings_planned', '?')} settings"
        if not self.paths:
            return f"evaluation interrupted after {done}; nothing written yet"
        return (
            f"evaluation interrupted after {done}; the finished rows are in {self.paths['json']} (marked "
            f'"complete": false) and {self.paths["csv"]}'
        )


@dataclass
class _Sweep:
    """What every setting of a sweep shares: the model, the tokenized examples and the generation arguments."""

    model: Any
    tokenizer: Any
    data: EvaluationData
    batches: list[tuple[int, torch.Tensor, torch.Tensor]]
    gen_length: int
    temperature: float
    generation_kwargs: dict[str, Any]
    keep_samples: bool
    bar: Any

    def __post_init__(self) -> None:
        self.device = model_device(self.model)
        self.eos_ids = completion_eos_ids(self.model, self.tokenizer)

    def run_seed(
        self, label: str, budget: dict[str, Any], strategy: Any, bl: int, seed: int, samples: list
    ) -> tuple[list[bool], list[int], float]:
        """One seed of one setting over every batch: `(correct flags, NFE per example, generation seconds)`;
        completions go to `samples` when they are kept."""
        correct, nfes, elapsed = [], [], 0.0
        for start, input_ids, attention_mask in self.batches:
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
            texts = decode_completions(out.sequences.cpu(), input_ids.shape[1], self.tokenizer, self.eos_ids)
            for j, (text, nfe) in enumerate(zip(texts, out.nfe.cpu().tolist())):
                i = start + j
                ok = bool(self.data.is_correct(text, self.data.references[i]))
                correct.append(ok)
                nfes.append(int(nfe))
                if self.keep_samples:
                    samples.append(
                        {
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
                    )
            self.bar.update(1)
        return correct, nfes, elapsed

    def run_setting(
        self, spec: StrategySpec, budget: dict[str, Any], strategy: Any, bl: int, seeds: list[int], samples: list
    ) -> dict[str, Any]:
        """Every seed of one setting, as one table row."""
        acc_per_seed: list[float] = []
        nfe_per_seed: list[float] = []
        all_nfe: list[int] = []
        elapsed = 0.0
        # Without any random draw (greedy dLLM, deterministic strategy) every seed gives the same result: run it once
        # and count it for each seed.
        run_once = self.temperature == 0 and bool(getattr(strategy, "deterministic", False))
        n = len(self.data)
        for seed_index, seed in enumerate(seeds):
            if run_once and seed_index > 0:
                acc_per_seed.append(acc_per_seed[0])
                nfe_per_seed.append(nfe_per_seed[0])
                all_nfe.extend(all_nfe[:n])
                if self.keep_samples:
                    samples.extend(dict(s, seed=seed) for s in samples[-n:])
                self.bar.update(len(self.batches))
                continue
            self.bar.set_postfix_str(f"{spec.label} {budget_label(budget)} BL={bl} seed={seed}".strip(), refresh=False)
            correct, nfes, seconds = self.run_seed(spec.label, budget, strategy, bl, seed, samples)
            acc_per_seed.append(sum(correct) / len(correct))
            nfe_per_seed.append(sum(nfes) / len(nfes))
            all_nfe.extend(nfes)
            elapsed += seconds
        acc_mean, acc_std = _mean_std(acc_per_seed)
        nfe_mean, nfe_std = _mean_std(nfe_per_seed)
        return {
            "strategy": spec.label,
            "budget": budget_label(budget),
            "block_length": bl,
            "mode": "full_diffusion" if bl == self.gen_length else "semi_ar",
            "gen_length": self.gen_length,
            "accuracy_mean": acc_mean,
            "accuracy_std": acc_std,
            "nfe_mean": nfe_mean,
            "nfe_std": nfe_std,
            "nfe_example_std": _mean_std(all_nfe)[1],
            "wall_time_s": elapsed,
            "n_examples": n,
            "seeds": list(seeds),
            "accuracy_per_seed": acc_per_seed,
            "nfe_per_seed": nfe_per_seed,
            "pareto": False,
            "params": dict(budget),
        }


def evaluate_strategies(
    model: Any,
    tokenizer: Any,
    task: Union[str, Any, EvaluationData],
    strategies: Optional[Sequence[Union[str, StrategySpec, UnmaskingStrategy]]] = None,
    block_lengths: Optional[Sequence[Optional[int]]] = None,
    seeds: Sequence[int] = (0,),
    n_examples: Optional[int] = 100,
    max_new_tokens: Optional[int] = None,
    batch_size: int = 32,
    temperature: float = 0.0,
    chat_template: bool = False,
    generation_kwargs: Optional[dict[str, Any]] = None,
    keep_samples: bool = False,
    progress: bool = True,
    model_name: Optional[str] = None,
) -> EvaluationResult:
    """Run every strategy x budget x block length x seed on the same examples and tabulate accuracy vs NFE.

    Args:
        model: a dLLM with a diffusion `generate` (one without gets it via `enable_diffusion_generate`).
        tokenizer: its tokenizer; prompts are left-padded, completions decoded and cut at EOS.
        task: a built-in task name, a `VerifiableTask`, or an `EvaluationData` (e.g. from `from_dataset`).
        strategies: spec strings (`"top_k_confidence:steps=16,32"`, `"path/to/policy:beta=0.5,1"`, see
            `StrategySpec`), `StrategySpec`s or strategy objects. Default: `default_strategy_specs`.
        block_lengths: block lengths to compare; `None` (or `"full"`) in the list means full diffusion (BL = L).
            Default: `[L]` plus the model's configured block length when it is smaller than L.
        seeds: generation seeds; accuracy and NFE are averaged over them (std is the population std over seeds).
            A deterministic strategy (`strategy.deterministic`, e.g. top-k or a threshold) with a greedy dLLM gives
            the same result for every seed, so it is run once and counted for each (its wall time covers one run).
        n_examples: examples taken from a built-in task (first n of its test split); ignored for `EvaluationData`.
        max_new_tokens: L (default: the model's generation config).
        batch_size: rows per `generate` call.
        temperature: dLLM token temperature (0 = greedy argmax, as in the paper).
        chat_template: wrap each prompt as a user message with the tokenizer's chat template.
        generation_kwargs: extra `generate` arguments (e.g. `stop_at_eos=True`).
        keep_samples: keep every completion in `result.samples` (written to `samples.jsonl` by `save`).
        progress: show a tqdm progress bar (one tick per `generate` call).
        model_name: label for the table metadata.

    Returns:
        An `EvaluationResult`; `.rows` is the table, `.save(dir)` writes CSV, JSON and the Pareto plot.

    Raises:
        EvaluationInterrupted: on Ctrl-C (a `KeyboardInterrupt`); its `.result` holds the settings finished so far.

    Example:
        ```python
        >>> from hf_unmask.models import load_dllm
        >>> model, tokenizer = load_dllm("builtin")
        >>> result = evaluate_strategies(model, tokenizer, "program_trace", ["confidence_threshold:0.9,0.5"],
        ...                              block_lengths=[8, None], n_examples=16, progress=False)
        >>> len(result), result.rows[0]["strategy"], result.rows[0]["budget"], result.rows[0]["block_length"]
        (4, 'confidence_threshold', 'threshold=0.9', 8)
        ```
    """
    from tqdm.auto import tqdm

    if isinstance(task, EvaluationData):
        data = task
    else:
        data = EvaluationData.from_task(task, n_examples=n_examples if n_examples is not None else 100)
    seeds, generation_kwargs = _check_run_arguments(seeds, batch_size, generation_kwargs)
    model = ensure_diffusion_generate(model, tokenizer)
    gen_length = int(max_new_tokens) if max_new_tokens is not None else default_gen_length(model)
    if block_lengths is None:
        configured = getattr(getattr(unwrap_model(model), "generation_config", None), "block_length", None)
        block_lengths = [configured, None] if configured and configured < gen_length else [None]
    bls = check_block_lengths(block_lengths, gen_length)
    specs = [as_spec(s) for s in strategies] if strategies is not None else default_strategy_specs(gen_length, bls)
    if not specs:
        raise ValueError("No strategies to evaluate. Pass e.g. strategies=['top_k_confidence:steps=16,32'].")
    unique_family_labels(specs)
    configs = plan_sweep(specs, bls, gen_length)

    batches = tokenize_batches(tokenizer, data.prompts, batch_size, chat_template)
    total = len(configs) * len(seeds) * len(batches)
    rows: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    policies: list[str] = []
    interrupted = False
    bar = None
    try:  # from the bar's first print on, Ctrl-C gives an EvaluationInterrupted (a partial result to save)
        bar = tqdm(total=total, desc="evaluate", unit="batch", disable=not progress, dynamic_ncols=True)
        sweep = _Sweep(model, tokenizer, data, batches, gen_length, temperature, generation_kwargs, keep_samples, bar)
        for spec, budget, strategy, bl in configs:
            if isinstance(strategy, torch.nn.Module):  # learned policies run next to the dLLM
                if spec.label not in policies:
                    policies.append(spec.label)
                strategy.to(sweep.device).eval()
            rows.append(sweep.run_setting(spec, budget, strategy, bl, seeds, samples))
    except KeyboardInterrupt:  # Ctrl-C: keep the settings finished so far (EvaluationInterrupted below)
        interrupted = True
    finally:
        if bar is not None:
            bar.close()
    flag_pareto_per_block_length(rows)
    meta = {
        "task": data.name,
        "model": model_name or getattr(getattr(model, "config", None), "_name_or_path", None) or type(model).__name__,
        "gen_length": gen_length,
        "block_lengths": bls,
        "seeds": list(seeds),
        "n_examples": len(data),
        "temperature": temperature,
        "batch_size": batch_size,
        "strategies": [str(s) for s in specs],
        "generation_kwargs": {k: v for k, v in generation_kwargs.items() if _json_safe(v)},
        "device": str(model_device(model)),
        "hf_unmask_version": _version(),
        "policies": policies,
        "complete": not interrupted,
        "settings_done": len(rows),
        "settings_planned": len(configs),
    }
    result = EvaluationResult(rows=rows, meta=meta, samples=samples)
    if interrupted:
        raise EvaluationInterrupted(result)
    return result


def load_model_and_tokenizer(
    model_name_or_path: Optional[str] = None,
    tokenizer_name_or_path: Optional[str] = None,
    device: Optional[Union[str, torch.device]] = None,
    dtype: Optional[Union[str, torch.dtype]] = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """Load a dLLM and its tokenizer with `hf_unmask.models.load_dllm`: the built-in model (`None`, `"builtin"` or
    `"builtin:NAME"`) or any path / Hub id that `hf_unmask.AutoDiffusionLM` understands.

    Example:
        ```python
        >>> model, tokenizer = load_model_and_tokenizer("builtin")
        >>> type(model).__name__
        'TinyDLLMForMaskedDiffusion'
        ```
    """
    from ..models import load_dllm

    return load_dllm(
        model_name_or_path,
        dtype=dtype,
        device=device,
        tokenizer=tokenizer_name_or_path,
        trust_remote_code=trust_remote_code,
    )


def _check_run_arguments(
    seeds: Sequence[int], batch_size: int, generation_kwargs: Optional[dict[str, Any]]
) -> tuple[list[int], dict[str, Any]]:
    seeds = list(seeds)
    if not seeds:
        raise ValueError("Empty list of seeds. Give at least one, e.g. seeds=[0].")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"Duplicate seeds in {seeds}; each seed must appear once.")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    generation_kwargs = dict(generation_kwargs or {})
    for reserved in _RESERVED_GENERATE_KWARGS:
        if reserved in generation_kwargs:
            raise ValueError(f"generation_kwargs may not set '{reserved}'; evaluate_strategies sets it.")
    return seeds, generation_kwargs


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / len(values)
    return mean, math.sqrt(var)


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _version() -> str:
    from .._version import __version__

    return __version__
