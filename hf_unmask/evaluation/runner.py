"""Run a sweep: every strategy x budget x block length x seed on the same examples, one table row per setting;
Ctrl-C keeps the settings finished so far (`EvaluationInterrupted`)."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Optional, Union

import torch

from ..models import unwrap_model
from ..strategies import UnmaskingStrategy
from .data import EvaluationData
from .distributed import FINISH_WAIT_SECONDS, STOP_WAIT_SECONDS, DistributedContext, init_distributed
from .model_io import default_gen_length, ensure_diffusion_generate, model_device, tokenize_batches
from .pareto import flag_pareto_per_block_length
from .results import EvaluationResult
from .specs import StrategySpec, as_spec, check_block_lengths, default_strategy_specs, plan_sweep, unique_family_labels
from .sweep import SettingShard, Sweep, setting_row

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
    table like `EvaluationResult.save` and `str(err)` then names the files. In a data-parallel run whose ranks could
    not all be gathered, `.rank` is this rank and `.result` its own batches only; `save` then writes to
    `output_dir/rank<r>/`.

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

    def __init__(self, result: EvaluationResult, rank: Optional[int] = None) -> None:
        super().__init__()
        self.result = result
        self.rank = rank
        self.paths: dict[str, Path] = {}

    def save(self, output_dir: Union[str, Path]) -> dict[str, Path]:
        """Write the partial table (CSV, JSON with `"complete": false`, plot, samples) to `output_dir` (one rank's
        own work: to `output_dir/rank<r>/`)."""
        folder = Path(output_dir) if self.rank is None else Path(output_dir) / f"rank{self.rank}"
        self.paths = self.result.save(folder)
        return self.paths

    def __str__(self) -> str:
        meta = self.result.meta
        done = f"{meta.get('settings_done', len(self.result.rows))} of {meta.get('settings_planned', '?')} settings"
        if self.rank is not None:
            done = f"{done} on rank {self.rank}'s own batches (the ranks could not be gathered)"
        if not self.paths:
            return f"evaluation interrupted after {done}; nothing written yet"
        return (
            f"evaluation interrupted after {done}; the finished rows are in {self.paths['json']} (marked "
            f'"complete": false) and {self.paths["csv"]}'
        )


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
    distributed: Optional[bool] = None,
) -> EvaluationResult:
    """Run every strategy x budget x block length x seed on the same examples and tabulate accuracy vs NFE.

    Args:
        model: a dLLM with a diffusion `generate` (one without gets it via `enable_diffusion_generate`).
        tokenizer: its tokenizer; prompts are left-padded, completions decoded and cut at EOS.
        task: a built-in task name, a `VerifiableTask`, or an `EvaluationData` (e.g. from `from_dataset`).
        strategies: spec strings (`"top_k_confidence:steps=16,32"`, `"path/to/policy:unmask_beta=0.5,1"`, see
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
        progress: show a tqdm progress bar (one tick per `generate` call; rank 0's batches when data-parallel).
        model_name: label for the table metadata.
        distributed: `None` (default) runs data-parallel when the process is one of several (`torch.distributed`
            initialised, or started by `torchrun` / `accelerate launch`: see `init_distributed`): batch i runs on rank
            i % N, with the same seeds and batches as one process, so the rows and samples are those one process
            gives; every rank returns the table, the samples are on rank 0, `wall_time_s` is the slowest rank's.
            `False`: this process evaluates everything on its own.

    Returns:
        An `EvaluationResult`; `.rows` is the table, `.save(dir)` writes CSV, JSON and the Pareto plot.

    Raises:
        EvaluationInterrupted: on Ctrl-C (a `KeyboardInterrupt`); its `.result` holds the settings finished so far
            (data-parallel: by every rank, gathered; a rank that cannot reach the others keeps its own, `.rank` set).

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
    if isinstance(task, EvaluationData):
        data = task
    else:
        data = EvaluationData.from_task(task, n_examples=n_examples if n_examples is not None else 100)
    seeds, generation_kwargs = _check_run_arguments(seeds, batch_size, generation_kwargs)
    model = ensure_diffusion_generate(model, tokenizer)
    gen_length, bls, specs, configs = _plan(model, strategies, block_lengths, max_new_tokens)
    ctx = init_distributed() if distributed is not False else DistributedContext()
    ctx.start_run()
    mine = ctx.shard(tokenize_batches(tokenizer, data.prompts, batch_size, chat_template))  # batch i: rank i % N

    make_sweep = partial(Sweep, model, tokenizer, data, mine, gen_length, temperature, generation_kwargs, keep_samples,
                         should_stop=ctx.stop_requested)  # fmt: skip
    shards, policies, interrupted = _run_configs(make_sweep, len(mine), configs, seeds, progress and ctx.is_main, ctx)
    meta = _metadata(data, model, model_name, gen_length, bls, seeds, temperature, batch_size, specs,
                     generation_kwargs, policies, ctx.world_size)  # fmt: skip
    return _collect(ctx, configs, seeds, gen_length, mine, shards, interrupted, meta)


def _plan(
    model: Any,
    strategies: Optional[Sequence[Union[str, StrategySpec, UnmaskingStrategy]]],
    block_lengths: Optional[Sequence[Optional[int]]],
    max_new_tokens: Optional[int],
) -> tuple[int, list[int], list[StrategySpec], list]:
    """`(L, block lengths, strategy specs, settings)` of a sweep, every argument checked."""
    gen_length = int(max_new_tokens) if max_new_tokens is not None else default_gen_length(model)
    if block_lengths is None:
        configured = getattr(getattr(unwrap_model(model), "generation_config", None), "block_length", None)
        block_lengths = [configured, None] if configured and configured < gen_length else [None]
    bls = check_block_lengths(block_lengths, gen_length)
    specs = [as_spec(s) for s in strategies] if strategies is not None else default_strategy_specs(gen_length, bls)
    if not specs:
        raise ValueError("No strategies to evaluate. Pass e.g. strategies=['top_k_confidence:steps=16,32'].")
    unique_family_labels(specs)
    return gen_length, bls, specs, plan_sweep(specs, bls, gen_length)


def _metadata(
    data: EvaluationData,
    model: Any,
    model_name: Optional[str],
    gen_length: int,
    bls: list[int],
    seeds: list[int],
    temperature: float,
    batch_size: int,
    specs: list[StrategySpec],
    generation_kwargs: dict[str, Any],
    policies: list[str],
    world_size: int,
) -> dict[str, Any]:
    """The table's metadata (`EvaluationResult.meta`)."""
    return {
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
        "world_size": world_size,
    }


def _run_configs(
    make_sweep: Callable[[Any], Sweep],
    n_batches: int,
    configs: list,
    seeds: list[int],
    progress: bool,
    ctx: DistributedContext,
) -> tuple[list[SettingShard], list[str], bool]:
    """Run every setting on this rank's `n_batches` batches (a `Sweep` made by `make_sweep(progress_bar)`):
    `(one shard per finished setting, learned policy labels, interrupted)`. From the bar's first print on (the sweep's
    set-up included), Ctrl-C stops the sweep and keeps the settings finished so far."""
    from tqdm.auto import tqdm

    shards: list[SettingShard] = []
    policies: list[str] = []
    interrupted = False
    bar = None
    try:
        total = len(configs) * len(seeds) * n_batches
        bar = tqdm(total=total, desc="evaluate", unit="batch", disable=not progress, dynamic_ncols=True)
        sweep = make_sweep(bar)
        for spec, budget, strategy, bl in configs:
            if isinstance(strategy, torch.nn.Module):  # learned policies run next to the dLLM
                if spec.label not in policies:
                    policies.append(spec.label)
                strategy.to(sweep.device).eval()
            shards.append(sweep.run_setting(spec.label, budget, strategy, bl, seeds))
    except KeyboardInterrupt:  # Ctrl-C: keep the settings finished so far (EvaluationInterrupted in _collect)
        interrupted = True
        ctx.request_stop()  # the other ranks stop at their next batch
    finally:
        if bar is not None:
            bar.close()
    return shards, policies, interrupted


def _collect(
    ctx: DistributedContext,
    configs: list,
    seeds: list[int],
    gen_length: int,
    mine: list,
    shards: list[SettingShard],
    interrupted: bool,
    meta: dict[str, Any],
) -> EvaluationResult:
    """The result from every rank's shards (gathered on rank 0 and broadcast when data-parallel);
    `EvaluationInterrupted` when a rank was interrupted."""
    per_rank = [shards]
    if ctx.world_size > 1:
        gathered = ctx.gather_to_main((shards, interrupted), STOP_WAIT_SECONDS if interrupted else FINISH_WAIT_SECONDS)
        if gathered is None:  # a rank never reached the gather: this rank's own work is all it can keep
            meta.update(rank=ctx.rank, n_examples=sum(len(ids) for _, ids, _ in mine))
            rows, samples = _table(configs, seeds, gen_length, [shards] if mine else [[]])
            raise EvaluationInterrupted(_finish(rows, samples, meta, False, len(configs)), rank=ctx.rank)
        if ctx.is_main:
            per_rank = [rank_shards for rank_shards, _ in gathered]
            interrupted = any(rank_interrupted for _, rank_interrupted in gathered)
    rows, samples = _table(configs, seeds, gen_length, per_rank) if ctx.is_main else ([], [])
    if ctx.world_size > 1:  # every rank returns the table; the samples stay on rank 0
        rows, interrupted = ctx.broadcast_from_main((rows, interrupted))
    result = _finish(rows, samples, meta, not interrupted, len(configs))
    if interrupted:
        raise EvaluationInterrupted(result)
    return result


def _table(
    configs: list, seeds: list[int], gen_length: int, per_rank: list[list[SettingShard]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The rows (and samples) of the settings every rank finished, from each rank's shards."""
    rows: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    for k in range(min(len(shards) for shards in per_rank)):
        spec, budget, _, bl = configs[k]
        row, setting_samples = setting_row(spec.label, budget, bl, gen_length, seeds, [s[k] for s in per_rank])
        rows.append(row)
        samples.extend(setting_samples)
    return rows, samples


def _finish(
    rows: list[dict[str, Any]], samples: list[dict[str, Any]], meta: dict[str, Any], complete: bool, planned: int
) -> EvaluationResult:
    flag_pareto_per_block_length(rows)
    meta = dict(meta, complete=complete, settings_done=len(rows), settings_planned=planned)
    return EvaluationResult(rows=rows, meta=meta, samples=samples)


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


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _version() -> str:
    from .._version import __version__

    return __version__
