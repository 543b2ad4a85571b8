"""The two-minute CPU demo: watch the built-in dLLM fill its canvas, then compare the unmasking heuristics.

Run `python -m hf_unmask.demo` or `hf-unmask demo` (`--n-examples 32` for a quicker look).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional, TextIO, Union

from ._command import PROG, run_command
from .evaluation import (
    EvaluationData,
    EvaluationInterrupted,
    EvaluationResult,
    StrategySpec,
    evaluate_strategies,
    plan_sweep,
)

DEMO_DESCRIPTION = """\
The hf_unmask demo (CPU, about two minutes):
  1. loads the dLLM shipped with hf_unmask,
  2. streams one generation so you can watch the masked canvas fill in,
  3. evaluates the unmasking heuristics and the learned policies shipped for this dLLM and task on a built-in
     reasoning task, semi-autoregressive and full diffusion,
  4. prints the accuracy/NFE table and writes it (CSV, JSON) with the Pareto plot (PNG) to --output-dir.
For your own model, task or budgets use `hf-unmask evaluate`.
"""


# The demo's task when the model's config names none: a chain where each value is computed from the previous one.
_PREFERRED_TASKS = ("program_trace", "shell_game")


def _say(out: TextIO, text: str = "") -> None:
    out.write(text + "\n")
    out.flush()


def _pick_task(model: Any) -> Any:
    """The task the model was trained on when its config names one, else the first built-in reasoning task."""
    from .tasks import TASK_REGISTRY, get_task

    config = getattr(model, "config", None)
    for attr in ("task", "task_name", "trained_on_task"):
        name = getattr(config, attr, None)
        if isinstance(name, str) and name in TASK_REGISTRY:
            return get_task(name)
    preferred = [n for n in _PREFERRED_TASKS if n in TASK_REGISTRY]
    reasoning = preferred + [
        n for n, cls in sorted(TASK_REGISTRY.items()) if getattr(cls, "reasoning", True) and n not in preferred
    ]
    if not reasoning:
        raise ValueError("No built-in reasoning task is registered; the demo needs one (hf_unmask.tasks).")
    return get_task(reasoning[0])


def _semi_ar_block_length(model: Any, gen_length: int) -> int:
    from .models import unwrap_model

    configured = getattr(getattr(unwrap_model(model), "generation_config", None), "block_length", None)
    if configured and configured < gen_length and gen_length % configured == 0:
        return int(configured)
    for bl in (32, 16, 8, 4, 2, 1):  # the largest power of two up to 32 that splits L into >= 2 blocks
        if bl < gen_length and gen_length % bl == 0:
            return bl
    return gen_length


def demo_strategies(gen_length: int, semi_ar_block_length: int) -> list[StrategySpec]:
    """The heuristics the demo compares, a few budgets each (cheap enough for a CPU): top-k confidence and random
    order at three step counts, the Fast-dLLM threshold and factor rules, and EB-Sampler. `hf-unmask evaluate`
    runs any other family or budget.

    Example:
        ```python
        >>> [str(s) for s in demo_strategies(32, 8)][:2]
        ['top_k_confidence:steps=8,16,32', 'random:steps=8,16,32']
        ```
    """
    from .strategies import registered_strategy_names

    nb = gen_length // semi_ar_block_length
    steps = sorted({s for s in (gen_length // 4, gen_length // 2, gen_length) if s >= nb and s % nb == 0})
    grids: dict[str, dict[str, list[Any]]] = {
        "top_k_confidence": {"steps": steps},
        "random": {"steps": steps},
        "confidence_threshold": {"threshold": [0.9, 0.7, 0.5]},
        "confidence_factor": {"factor": [1.0, 2.0]},
        "eb_sampler": {"gamma": [0.1, 1.0]},
    }
    names = registered_strategy_names()
    return [
        StrategySpec(name, grid)
        for name, grid in grids.items()
        if name in names and all(k in names[name]._config_keys() for k in grid)
    ]


def demo_policies(model_name: str, task_name: str, gen_length: int, semi_ar_block_length: int) -> dict[int, list[str]]:
    """The shipped learned policies trained for this built-in dLLM, task and L, by the block length they were
    trained for (`semi_ar_block_length` or `gen_length` for full diffusion): each is compared in its own panel.

    Example:
        ```python
        >>> demo_policies("tiny-dllm", "program_trace", 16, 8)[8][:1]
        ['tiny-dllm-program_trace-bl8-alpha0.3']
        ```
    """
    from .hub import CONFIG_NAME, read_config
    from .models.tiny import builtin_model_name
    from .strategies.builtin import builtin_policy_path, list_builtin_policies

    found: dict[int, list[str]] = {semi_ar_block_length: [], gen_length: []}
    for name in list_builtin_policies():
        trained_for = read_config(str(builtin_policy_path(name) / CONFIG_NAME)).get("trained_for") or {}
        base = trained_for.get("base_model")
        if not isinstance(base, str) or builtin_model_name(base) != model_name or trained_for.get("task") != task_name:
            continue
        if trained_for.get("gen_length") != gen_length:
            continue
        bl = trained_for.get("block_length") or gen_length
        if bl in found:
            found[bl].append(name)
    return found


def _stream_one(
    model: Any, tokenizer: Any, data: EvaluationData, gen_length: int, block_length: int, out: TextIO
) -> None:
    from .evaluation.model_io import completion_eos_ids, decode_completions, model_device, tokenize_batches
    from .generation import DiffusionTextStreamer
    from .models import unwrap_model
    from .strategies import registered_strategy_names

    names = registered_strategy_names()
    if "confidence_threshold" in names:
        strategy, label = names["confidence_threshold"](threshold=0.9), "confidence_threshold (0.9)"
    else:
        strategy, label = names["top_k_confidence"](), "top_k_confidence (one token per step)"
    mask_id = getattr(tokenizer, "mask_token_id", None)
    if mask_id is None:
        mask_id = getattr(getattr(unwrap_model(model), "generation_config", None), "mask_token_id", None)
    _say(out, f"Prompt: {data.prompts[0]}")
    _say(out, f"Unmasking with {label}, block length {block_length}, L = {gen_length} ('_' = still masked):")
    (_, input_ids, attention_mask), *_ = tokenize_batches(tokenizer, data.prompts[:1], 1, chat_template=False)
    device = model_device(model)
    streamer = DiffusionTextStreamer(tokenizer, mask_token_id=mask_id, stream=out)
    result = model.generate(
        input_ids.to(device),
        attention_mask=attention_mask.to(device),
        strategy=strategy,
        max_new_tokens=gen_length,
        block_length=block_length,
        streamer=streamer,
        return_dict_in_generate=True,
    )
    eos_ids = completion_eos_ids(model, tokenizer)
    completion = decode_completions(result.sequences.cpu(), input_ids.shape[1], tokenizer, eos_ids)[0]
    verdict = "correct" if data.is_correct(completion, data.references[0]) else "wrong"
    _say(out, f"Completion: {completion}")
    _say(out, f"Reference:  {data.references[0]}")
    _say(out, f"-> {verdict}, {int(result.nfe[0])} forward passes for {gen_length} tokens.")


def run_demo(
    n_examples: int = 128,
    output_dir: Union[str, Path] = "hf_unmask_demo",
    seeds: Sequence[int] = (0,),
    stream: bool = True,
    batch_size: int = 64,
    progress: bool = True,
    model: Any = None,
    tokenizer: Any = None,
    task: Any = None,
    strategies: Optional[Sequence[Union[str, StrategySpec]]] = None,
    extra_strategies: Sequence[Union[str, StrategySpec]] = (),
    max_new_tokens: Optional[int] = None,
    out: Optional[TextIO] = None,
) -> EvaluationResult:
    """Run the demo and return the evaluation table; files go to `output_dir`.

    `model`, `tokenizer`, `task` and `strategies` default to the built-in dLLM, a built-in reasoning task and the
    heuristics of `demo_strategies` (plus, with the built-in dLLM, the learned policies shipped for it and the task:
    `demo_policies`); tests pass small ones. `extra_strategies` adds families to the comparison
    (e.g. a learned policy folder swept over beta: `"path/to/policy:beta=0.5,1,2"`).

    On Ctrl-C the settings finished so far are written to `output_dir` (`"complete": false` in `evaluation.json`)
    and `EvaluationInterrupted` (a `KeyboardInterrupt`) is raised.

    Example:
        ```python
        >>> import io
        >>> import tempfile
        >>> from hf_unmask.demo import run_demo
        >>> result = run_demo(n_examples=4, output_dir=tempfile.mkdtemp(), strategies=["top_k_confidence:steps=16"],
        ...                   stream=False, progress=False, out=io.StringIO())  # out: the terminal by default
        >>> for row in result.rows:  # the shipped policies in the panel they were trained for
        ...     print(row["block_length"], row["strategy"])
        8 tiny-dllm-program_trace-bl8-alpha0.3
        8 tiny-dllm-program_trace-bl8-alpha1
        8 tiny-dllm-program_trace-bl8-alpha3
        8 top_k_confidence
        16 tiny-dllm-program_trace-full-alpha1
        16 top_k_confidence
        ```
    """
    from .evaluation.model_io import default_gen_length
    from .models import load_dllm

    out = out if out is not None else sys.stdout
    started = time.perf_counter()
    builtin_name = None
    if model is None:
        from .models.tiny import DEFAULT_BUILTIN_MODEL

        _say(out, "== 1. Loading the built-in dLLM")
        builtin_name = DEFAULT_BUILTIN_MODEL
        model, tokenizer = load_dllm("builtin")
        n_params = sum(p.numel() for p in model.parameters())
        _say(out, f"{type(model).__name__}: {n_params / 1e6:.2f}M parameters, vocabulary of {len(tokenizer)}.")
    elif tokenizer is None:
        raise ValueError("run_demo(model=...) needs the model's tokenizer too (tokenizer=...).")
    if task is None:
        task = _pick_task(model)
    data = task if isinstance(task, EvaluationData) else EvaluationData.from_task(task, n_examples=n_examples)
    gen_length = int(max_new_tokens) if max_new_tokens is not None else default_gen_length(model)
    semi_bl = _semi_ar_block_length(model, gen_length)
    _say(out, f"Task: {data.name} ({len(data)} test examples), generation length L = {gen_length}.")

    if stream:
        _say(out, "\n== 2. One generation, step by step")
        _stream_one(model, tokenizer, data, gen_length, semi_bl, out)

    specs = list(strategies) if strategies is not None else demo_strategies(gen_length, semi_bl)
    specs += [StrategySpec.parse(s) if isinstance(s, str) else s for s in extra_strategies]
    block_lengths = [semi_bl, gen_length] if semi_bl < gen_length else [gen_length]
    # A learned policy is compared in the panel of the block length it was trained for.
    policies = demo_policies(builtin_name, data.name, gen_length, semi_bl) if builtin_name else {}
    panels = (
        f"block length {semi_bl} (semi-AR) and {gen_length} (full diffusion)"
        if semi_bl < gen_length
        else "full diffusion"
    )
    n_policies = len({p for names in policies.values() for p in names})
    shipped = f" and {n_policies} shipped learned policies" if n_policies else ""
    _say(out, f"\n== 3. Evaluating {len(specs)} strategy families{shipped} on {len(data)} examples, {panels}")
    panel_specs = {bl: [*(StrategySpec(p) for p in policies.get(bl, [])), *specs] for bl in block_lengths}
    results: list[EvaluationResult] = []
    try:
        for bl in block_lengths:
            results.append(
                evaluate_strategies(
                    model,
                    tokenizer,
                    data,
                    strategies=panel_specs[bl],
                    block_lengths=[bl],
                    seeds=seeds,
                    max_new_tokens=gen_length,
                    batch_size=batch_size,
                    progress=progress,
                    model_name="hf_unmask built-in dLLM",
                )
            )
    except EvaluationInterrupted as stop:  # Ctrl-C: write what the finished block lengths and settings give
        done = [*results, stop.result]
        partial = EvaluationInterrupted(done[0].merged_with(*done[1:]))
        for bl in block_lengths[len(done) :]:  # panels not started count as planned, not done
            partial.result.meta["settings_planned"] += len(plan_sweep(panel_specs[bl], [bl], gen_length))
        partial.save(output_dir)
        raise partial from None
    result = results[0].merged_with(*results[1:])
    _say(out, "\n== 4. Results (accuracy vs NFE; * = on the Pareto front of its block length)")
    _say(out, result.format_table())
    paths = result.save(output_dir)
    _say(out, "")
    _say(out, f"Table:        {paths['csv']}")
    _say(out, f"              {paths['json']}")
    _say(out, f"Pareto plot:  {paths['png']}")
    _say(out, f"Done in {time.perf_counter() - started:.0f} s. Next: `hf-unmask evaluate --help` for your own sweeps.")
    return result


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `hf-unmask demo` / `python -m hf_unmask.demo`."""
    parser.add_argument("--n-examples", type=int, default=128, help="test examples to evaluate on (default: 128).")
    parser.add_argument("--output-dir", default="hf_unmask_demo", help="where to write the table and the plot.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="generation seeds (default: 0).")
    parser.add_argument("--batch-size", type=int, default=64, help="rows per generate call (default: 64).")
    parser.add_argument("--no-stream", action="store_true", help="skip the step-by-step generation.")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar.")
    parser.add_argument(
        "--strategy",
        action="append",
        default=[],
        metavar="SPEC",
        help="add a strategy family to the comparison, e.g. a learned policy: path/to/policy:beta=0.5,1,2 "
        "(syntax of `hf-unmask evaluate --strategy`; repeatable).",
    )


def run_demo_from_args(args: argparse.Namespace) -> int:
    """Run the demo from parsed arguments; returns the exit status."""
    if args.n_examples <= 0:
        raise ValueError(f"--n-examples must be positive, got {args.n_examples}.")
    run_demo(
        n_examples=args.n_examples,
        output_dir=args.output_dir,
        seeds=args.seeds,
        stream=not args.no_stream,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        extra_strategies=[StrategySpec.parse(spec) for spec in args.strategy],
    )
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m hf_unmask.demo [--n-examples N] [--output-dir DIR]`; same as `hf-unmask demo`."""
    parser = argparse.ArgumentParser(
        prog="python -m hf_unmask.demo",
        description=DEMO_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_demo_arguments(parser)
    args = parser.parse_args(list(argv) if argv is not None else None)
    return run_command(run_demo_from_args, args, f"{PROG} demo")  # the same command as `hf-unmask demo`


if __name__ == "__main__":
    sys.exit(main())
