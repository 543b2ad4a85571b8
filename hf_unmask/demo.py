"""The two-minute CPU demo: watch the built-in dLLM fill its canvas, compare the unmasking heuristics with the
built-in learned policies, then the long-buffer regime (full diffusion at L = 64) that the heuristics get wrong.

Run `python -m hf_unmask.demo` or `hf-unmask demo` (`--n-examples 32` for a quicker look, `--no-long-buffer` to
leave out the last stage).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, TextIO, Union

from ._command import PROG, ArgumentParser, run_command
from ._threads import add_num_threads_argument, set_cpu_threads
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
  4. prints the accuracy/NFE table and writes it (CSV, JSON) with the Pareto plot (PNG) to --output-dir,
  5. long buffers: loads tiny-dllm-long and compares, in full diffusion at L = 64 on trace_until (answers of
     unknown length), its built-in learned policy with the heuristics that commit the EOS tail first and cut
     answers short there; prints that table and a one-line verdict and writes them to --output-dir/long_buffer
     (--no-long-buffer skips this stage).
For your own model, task or budgets use `hf-unmask evaluate`.
"""

#: Stage 5, the long-buffer panel: this built-in dLLM (trained over L = 32-64), evaluated on this task at this L in
#: full diffusion (block length = L), with this built-in policy (trained for exactly that setting).
LONG_BUFFER_MODEL = "tiny-dllm-long"
LONG_BUFFER_TASK = "trace_until"
LONG_BUFFER_POLICY = "tiny-dllm-long-trace_until-full-alpha1"
LONG_BUFFER_GEN_LENGTH = 64
#: Test examples of the long-buffer panel by default (fewer when the demo's `n_examples` is smaller): its five
#: settings (`long_buffer_strategies`) then add about 20 s to the demo on two idle CPU cores.
LONG_BUFFER_N_EXAMPLES = 64
#: The long-buffer panel's files go to this sub-folder of the demo's output folder.
LONG_BUFFER_DIR = "long_buffer"


# The demo's task when the model's config names none: a chain where each value is computed from the previous one.
_PREFERRED_TASKS = ("program_trace", "shell_game")


def _say(out: TextIO, text: str = "") -> None:
    out.write(text + "\n")
    out.flush()


def _say_paths(out: TextIO, paths: dict[str, Path]) -> None:
    """Where a saved table went (the paths `EvaluationResult.save` returns)."""
    _say(out, "")
    _say(out, f"Table:        {paths['csv']}")
    _say(out, f"              {paths['json']}")
    _say(out, f"Pareto plot:  {paths['png']}")


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
    """The built-in learned policies trained for this built-in dLLM, task and L, by the block length they were
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


def long_buffer_strategies() -> list[StrategySpec]:
    """What the long-buffer panel compares: the built-in policy, then points of the heuristics' full-diffusion front
    at L = 64 (docs/results/long_buffers.md): the confidence threshold at 0.99 and 0.9 and
    EB-Sampler at gamma 0.01 (7-10 NFE), and top-k confidence with 32 steps, the accurate end at 32 NFE (no
    full-diffusion heuristic of that page's sweep passes 91.4% there). Top-k with 16 steps, dominated by the
    threshold, is left out for time.

    Example:
        ```python
        >>> [str(s) for s in long_buffer_strategies()]  # doctest: +NORMALIZE_WHITESPACE
        ['tiny-dllm-long-trace_until-full-alpha1', 'confidence_threshold:threshold=0.99,0.9',
         'eb_sampler:gamma=0.01', 'top_k_confidence:steps=32']
        ```
    """
    return [
        StrategySpec(LONG_BUFFER_POLICY),
        StrategySpec("confidence_threshold", {"threshold": [0.99, 0.9]}),
        StrategySpec("eb_sampler", {"gamma": [0.01]}),
        StrategySpec("top_k_confidence", {"steps": [32]}),
    ]


def long_buffer_missing() -> Optional[str]:
    """Why the long-buffer panel cannot run in this install (its dLLM, policy or task is not shipped), or None.

    Example:
        ```python
        >>> print(long_buffer_missing())
        None
        ```
    """
    from .models.tiny import list_builtin_models
    from .strategies.builtin import list_builtin_policies
    from .tasks import TASK_REGISTRY

    if LONG_BUFFER_MODEL not in list_builtin_models():
        return f"the built-in dLLM '{LONG_BUFFER_MODEL}' is not installed (hf_unmask/models/builtin_models/)"
    if LONG_BUFFER_POLICY not in list_builtin_policies():
        return f"the built-in policy '{LONG_BUFFER_POLICY}' is not installed (hf_unmask/strategies/builtin_policies/)"
    if LONG_BUFFER_TASK not in TASK_REGISTRY:
        return f"the task '{LONG_BUFFER_TASK}' is not registered (hf_unmask.tasks)"
    return None


def _setting(row: dict[str, Any]) -> str:
    return f"{row['strategy']} {row['budget']}" if row.get("budget") else str(row["strategy"])


def _point(row: dict[str, Any]) -> str:
    return f"{100 * row['accuracy_mean']:.1f}% at {row['nfe_mean']:.1f} NFE"


def _points_versus(policy: dict[str, Any], other: dict[str, Any]) -> tuple[float, str]:
    diff = 100 * (policy["accuracy_mean"] - other["accuracy_mean"])
    if abs(diff) < 0.05:
        return 0.0, "level with"
    return diff, f"{abs(diff):.1f} points {'above' if diff > 0 else 'below'}"


def long_buffer_summary(rows: Sequence[dict[str, Any]], policy: str = LONG_BUFFER_POLICY) -> str:
    """One sentence on a panel's rows: the policy's accuracy and NFE against the most accurate heuristic that uses
    no more NFE than it, and against the most accurate heuristic overall; it says "wins" only when the policy is
    more accurate than both. Every row that is not `policy` counts as a heuristic.

    Example (hand-made rows; the demo passes the long-buffer panel's):
        ```python
        >>> def row(strategy, budget, accuracy, nfe):
        ...     return {"strategy": strategy, "budget": budget, "accuracy_mean": accuracy, "nfe_mean": nfe}
        >>> rows = [row("my-policy", "", 0.98, 10.0), row("confidence_threshold", "threshold=0.99", 0.88, 7.3),
        ...         row("top_k_confidence", "steps=32", 0.91, 32.0)]
        >>> print(long_buffer_summary(rows, policy="my-policy"))  # doctest: +NORMALIZE_WHITESPACE
        The learned policy wins this panel: my-policy gets 98.0% at 10.0 NFE, 10.0 points above the best heuristic at
        no more NFE (confidence_threshold threshold=0.99: 88.0% at 7.3 NFE) and 7.0 points above the best heuristic
        overall (top_k_confidence steps=32: 91.0% at 32.0 NFE, 3.2x the policy's NFE).
        >>> rows[0]["accuracy_mean"] = 0.85
        >>> print(long_buffer_summary(rows, policy="my-policy"))  # doctest: +NORMALIZE_WHITESPACE
        The learned policy does not win this panel: my-policy gets 85.0% at 10.0 NFE, 3.0 points below the best
        heuristic at no more NFE (confidence_threshold threshold=0.99: 88.0% at 7.3 NFE) and 6.0 points below the
        best heuristic overall (top_k_confidence steps=32: 91.0% at 32.0 NFE, 3.2x the policy's NFE).
        ```
    """
    mine = [r for r in rows if r["strategy"] == policy]
    heuristics = [r for r in rows if r["strategy"] != policy]
    if not mine:
        return f"The learned policy {policy} has no result in this panel, so there is no comparison to make."
    if not heuristics:
        return f"No heuristic has a result in this panel to compare the learned policy {policy} with."

    def best(candidates: Sequence[dict[str, Any]]) -> dict[str, Any]:  # the most accurate; the cheaper on a tie
        return max(candidates, key=lambda r: (r["accuracy_mean"], -r["nfe_mean"]))

    own = best(mine)
    overall = best(heuristics)
    cheaper = [r for r in heuristics if r["nfe_mean"] <= own["nfe_mean"] + 1e-9]
    diffs, parts = [], []
    if cheaper:
        at_most = best(cheaper)
        diff, words = _points_versus(own, at_most)
        diffs.append(diff)
        parts.append(f"{words} the best heuristic at no more NFE ({_setting(at_most)}: {_point(at_most)})")
    if not cheaper or overall is not best(cheaper):
        diff, words = _points_versus(own, overall)
        diffs.append(diff)
        ratio = overall["nfe_mean"] / own["nfe_mean"] if own["nfe_mean"] > 0 else float("inf")
        parts.append(
            f"{words} the best heuristic overall ({_setting(overall)}: {_point(overall)}, "
            f"{ratio:.1f}x the policy's NFE)"
        )
    else:
        parts[-1] += ", which is also the best heuristic overall"
    if all(d > 0 for d in diffs):
        verdict = "The learned policy wins this panel"
    elif cheaper and diffs[0] > 0:
        verdict = "The learned policy beats the heuristics at no more NFE but not the best one overall"
    else:
        verdict = "The learned policy does not win this panel"
    alone = "" if cheaper else " (no heuristic runs on as few NFE)"
    return f"{verdict}: {own['strategy']} gets {_point(own)}{alone}, {' and '.join(parts)}."


def run_long_buffer_panel(
    n_examples: int = LONG_BUFFER_N_EXAMPLES,
    output_dir: Union[str, Path] = Path("hf_unmask_demo") / LONG_BUFFER_DIR,
    seeds: Sequence[int] = (0,),
    batch_size: int = 64,
    progress: bool = True,
    out: Optional[TextIO] = None,
) -> EvaluationResult:
    """The demo's stage 5: load `tiny-dllm-long`, evaluate `long_buffer_strategies` in full diffusion (block length
    = L = 64) on the first `n_examples` test examples of `trace_until`, print the table and `long_buffer_summary`,
    and write CSV, JSON and the Pareto plot to `output_dir` (the demo's `output_dir/long_buffer`).

    On Ctrl-C the settings finished so far are written to `output_dir` (`"complete": false`) and
    `EvaluationInterrupted` is raised. A `ValueError` says what is missing when the install lacks the dLLM, the
    policy or the task (`long_buffer_missing`).

    Example:
        ```python
        >>> import io
        >>> import tempfile
        >>> result = run_long_buffer_panel(n_examples=2, output_dir=tempfile.mkdtemp(), progress=False,
        ...                                out=io.StringIO())
        >>> [(row["strategy"], row["block_length"], row["mode"]) for row in result.rows][:2]
        [('tiny-dllm-long-trace_until-full-alpha1', 64, 'full_diffusion'), ('confidence_threshold', 64, 'full_diffusion')]
        ```
    """
    from .models import load_dllm
    from .tasks import get_task

    out = out if out is not None else sys.stdout
    missing = long_buffer_missing()
    if missing:
        raise ValueError(f"The long-buffer panel cannot run: {missing}.")
    model, tokenizer = load_dllm(f"builtin:{LONG_BUFFER_MODEL}")
    data = EvaluationData.from_task(get_task(LONG_BUFFER_TASK), n_examples=n_examples)
    specs = long_buffer_strategies()
    n_settings = len(plan_sweep(specs, [LONG_BUFFER_GEN_LENGTH], LONG_BUFFER_GEN_LENGTH))
    _say(out, f"{LONG_BUFFER_MODEL} (trained over L = 32-64) on {data.name}: run a program until its value is 0; the")
    _say(out, "answer's length is known only once the chain is computed. With one block of L tokens the heuristics")
    _say(
        out,
        "tend to commit the EOS tail first and cut answers short; the built-in policy was trained for this setting.",
    )
    _say(
        out,
        f"Evaluating the built-in policy and {n_settings - 1} heuristic settings on {len(data)} examples, "
        f"L = {LONG_BUFFER_GEN_LENGTH}, full diffusion (block length {LONG_BUFFER_GEN_LENGTH})",
    )
    try:
        result = evaluate_strategies(
            model,
            tokenizer,
            data,
            strategies=specs,
            block_lengths=[LONG_BUFFER_GEN_LENGTH],
            seeds=seeds,
            max_new_tokens=LONG_BUFFER_GEN_LENGTH,
            batch_size=batch_size,
            progress=progress,
            model_name=f"hf_unmask built-in dLLM {LONG_BUFFER_MODEL}",
        )
    except EvaluationInterrupted as stop:  # Ctrl-C: write the settings finished so far
        stop.save(output_dir)
        raise
    _say(out, result.format_table())
    _say(out, long_buffer_summary(result.rows))
    paths = result.save(output_dir)
    _say_paths(out, paths)
    return result


def _stream_one(
    model: Any, tokenizer: Any, data: EvaluationData, gen_length: int, block_length: int, out: TextIO
) -> None:
    from .generation import (
        DiffusionTextStreamer,
        completion_eos_ids,
        completion_texts,
        encode_prompts,
        model_device,
    )
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
    batch = encode_prompts(tokenizer, data.prompts[:1], device=model_device(model))
    eos_ids = completion_eos_ids(model, tokenizer)
    streamer = DiffusionTextStreamer(tokenizer, mask_token_id=mask_id, stream=out)
    result = model.generate(
        **batch.model_inputs(),
        eos_token_id=eos_ids,
        strategy=strategy,
        max_new_tokens=gen_length,
        block_length=block_length,
        streamer=streamer,
        return_dict_in_generate=True,
    )
    completion = completion_texts(tokenizer, result.sequences, batch.prompt_length, eos_ids)[0]
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
    long_buffer: Optional[bool] = None,
    long_buffer_n_examples: Optional[int] = None,
) -> EvaluationResult:
    """Run the demo and return the evaluation table of stages 3-4; files go to `output_dir`.

    `model`, `tokenizer`, `task` and `strategies` default to the built-in dLLM, a built-in reasoning task and the
    heuristics of `demo_strategies` (plus, with the built-in dLLM, the learned policies shipped for it and the task:
    `demo_policies`); tests pass small ones. `extra_strategies` adds families to the comparison
    (e.g. a learned policy folder swept over unmask_beta: `"path/to/policy:unmask_beta=0.5,1,2"`).

    Stage 5, the long-buffer panel (`run_long_buffer_panel`: `tiny-dllm-long` in full diffusion at L = 64 on
    `trace_until`, `long_buffer_n_examples` examples, by default `LONG_BUFFER_N_EXAMPLES` or `n_examples` when
    smaller), writes its own table to `output_dir/long_buffer`. `long_buffer=None` runs it only when the demo loads
    the built-in dLLM and picks the task itself (`model` and `task` not given), and skips it with the printed reason
    when this install lacks its dLLM or policy; `True` runs it whatever the model (a `ValueError` when it cannot
    run, before anything else), `False` leaves it out.

    On Ctrl-C the settings finished so far are written to `output_dir` (`"complete": false` in `evaluation.json`)
    and `EvaluationInterrupted` (a `KeyboardInterrupt`) is raised; in stage 5 the partial table goes to
    `output_dir/long_buffer` (stages 3-4 are then complete in `output_dir`).

    Example (stage 5 left out; `run_long_buffer_panel` shows it):
        ```python
        >>> import io
        >>> import tempfile
        >>> from hf_unmask.demo import run_demo
        >>> result = run_demo(n_examples=4, output_dir=tempfile.mkdtemp(), strategies=["top_k_confidence:steps=16"],
        ...                   stream=False, progress=False, out=io.StringIO(),  # out: the terminal by default
        ...                   long_buffer=False)
        >>> for row in result.rows:  # the built-in policies in the panel they were trained for
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

    out = out if out is not None else sys.stdout
    started = time.perf_counter()
    long_buffer, long_buffer_skipped = _long_buffer_choice(long_buffer, model, task, long_buffer_n_examples)
    model, tokenizer, builtin_name = _demo_model(model, tokenizer, out)
    task = task if task is not None else _pick_task(model)
    data = task if isinstance(task, EvaluationData) else EvaluationData.from_task(task, n_examples=n_examples)
    gen_length = int(max_new_tokens) if max_new_tokens is not None else default_gen_length(model)
    semi_bl = _semi_ar_block_length(model, gen_length)
    _say(out, f"Task: {data.name} ({len(data)} test examples), generation length L = {gen_length}.")
    if stream:
        _say(out, "\n== 2. One generation, step by step")
        _stream_one(model, tokenizer, data, gen_length, semi_bl, out)
    specs = list(strategies) if strategies is not None else demo_strategies(gen_length, semi_bl)
    specs += [StrategySpec.parse(s) if isinstance(s, str) else s for s in extra_strategies]
    panels = _DemoPanels(model, tokenizer, data, gen_length, semi_bl, seeds, batch_size, progress, output_dir, out)
    result = panels.run(specs, builtin_name)
    if long_buffer or long_buffer_skipped:
        n_long = long_buffer_n_examples or min(n_examples, LONG_BUFFER_N_EXAMPLES)
        _long_buffer_stage(long_buffer_skipped, n_long, output_dir, seeds, batch_size, progress, out)
    _say(out, f"Done in {time.perf_counter() - started:.0f} s. Next: `hf-unmask evaluate --help` for your own sweeps.")
    return result


def _long_buffer_stage(
    skipped: Optional[str],
    n_examples: int,
    output_dir: Union[str, Path],
    seeds: Sequence[int],
    batch_size: int,
    progress: bool,
    out: TextIO,
) -> None:
    """Stage 5 of the demo: the long-buffer panel in `output_dir/long_buffer`, or why it is skipped."""
    if skipped:
        _say(out, f"\n== 5. Long buffers: skipped, {skipped}.")
        return
    _say(
        out,
        f"\n== 5. Long buffers: full diffusion at L = {LONG_BUFFER_GEN_LENGTH}, the learned policy vs the heuristics",
    )
    run_long_buffer_panel(
        n_examples=n_examples,
        output_dir=Path(output_dir) / LONG_BUFFER_DIR,
        seeds=seeds,
        batch_size=batch_size,
        progress=progress,
        out=out,
    )


def _long_buffer_choice(
    long_buffer: Optional[bool], model: Any, task: Any, long_buffer_n_examples: Optional[int]
) -> tuple[bool, Optional[str]]:
    """`(run stage 5, why it is skipped)` for `run_demo`'s `long_buffer` argument; `ValueError` when it is asked for
    and cannot run."""
    if long_buffer_n_examples is not None and long_buffer_n_examples <= 0:
        raise ValueError(f"long_buffer_n_examples must be positive, got {long_buffer_n_examples}.")
    missing = long_buffer_missing() if long_buffer is not False else None
    if long_buffer is None:
        wanted = model is None and task is None
        if wanted and missing:
            return False, missing
        return wanted, None
    if long_buffer and missing:
        raise ValueError(f"The long-buffer panel cannot run: {missing}. Pass long_buffer=False.")
    return bool(long_buffer), None


def _demo_model(model: Any, tokenizer: Any, out: TextIO) -> tuple[Any, Any, Optional[str]]:
    """`(model, tokenizer, built-in model name)`: the given model, or stage 1: the built-in dLLM loaded."""
    if model is not None:
        if tokenizer is None:
            raise ValueError("run_demo(model=...) needs the model's tokenizer too (tokenizer=...).")
        return model, tokenizer, None
    from .models import load_dllm
    from .models.tiny import DEFAULT_BUILTIN_MODEL

    _say(out, "== 1. Loading the built-in dLLM")
    model, tokenizer = load_dllm("builtin")
    n_params = sum(p.numel() for p in model.parameters())
    _say(out, f"{type(model).__name__}: {n_params / 1e6:.2f}M parameters, vocabulary of {len(tokenizer)}.")
    return model, tokenizer, DEFAULT_BUILTIN_MODEL


@dataclass
class _DemoPanels:
    """Stages 3-4 of the demo: every strategy family (and the shipped learned policies, each in the panel of the
    block length it was trained for) evaluated semi-AR and in full diffusion, the table printed and saved."""

    model: Any
    tokenizer: Any
    data: EvaluationData
    gen_length: int
    semi_bl: int
    seeds: Sequence[int]
    batch_size: int
    progress: bool
    output_dir: Union[str, Path]
    out: TextIO

    def run(self, specs: list[StrategySpec], builtin_name: Optional[str]) -> EvaluationResult:
        gen_length, semi_bl, out = self.gen_length, self.semi_bl, self.out
        block_lengths = [semi_bl, gen_length] if semi_bl < gen_length else [gen_length]
        policies = demo_policies(builtin_name, self.data.name, gen_length, semi_bl) if builtin_name else {}
        panels = (
            f"block length {semi_bl} (semi-AR) and {gen_length} (full diffusion)"
            if semi_bl < gen_length
            else "full diffusion"
        )
        n_policies = len({p for names in policies.values() for p in names})
        shipped = f" and {n_policies} shipped learned policies" if n_policies else ""
        _say(out, f"\n== 3. Evaluating {len(specs)} strategy families{shipped} on {len(self.data)} examples, {panels}")
        panel_specs = {bl: [*(StrategySpec(p) for p in policies.get(bl, [])), *specs] for bl in block_lengths}
        result = self._evaluate(panel_specs, block_lengths)
        _say(out, "\n== 4. Results (accuracy vs NFE; * = on the Pareto front of its block length)")
        _say(out, result.format_table())
        _say_paths(out, result.save(self.output_dir))
        return result

    def _evaluate(self, panel_specs: dict[int, list[StrategySpec]], block_lengths: list[int]) -> EvaluationResult:
        """One evaluation per block length, merged; on Ctrl-C the finished settings are written to `output_dir`."""
        results: list[EvaluationResult] = []
        try:
            for bl in block_lengths:
                results.append(
                    evaluate_strategies(
                        self.model,
                        self.tokenizer,
                        self.data,
                        strategies=panel_specs[bl],
                        block_lengths=[bl],
                        seeds=self.seeds,
                        max_new_tokens=self.gen_length,
                        batch_size=self.batch_size,
                        progress=self.progress,
                        model_name="hf_unmask built-in dLLM",
                    )
                )
        except EvaluationInterrupted as stop:  # Ctrl-C: write what the finished block lengths and settings give
            done = [*results, stop.result]
            partial = EvaluationInterrupted(done[0].merged_with(*done[1:]))
            for bl in block_lengths[len(done) :]:  # panels not started count as planned, not done
                partial.result.meta["settings_planned"] += len(plan_sweep(panel_specs[bl], [bl], self.gen_length))
            partial.save(self.output_dir)
            raise partial from None
        return results[0].merged_with(*results[1:])


def add_demo_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `hf-unmask demo` / `python -m hf_unmask.demo`."""
    parser.add_argument("--n-examples", type=int, default=128, help="test examples to evaluate on (default: 128).")
    parser.add_argument("--output-dir", default="hf_unmask_demo", help="where to write the table and the plot.")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="generation seeds (default: 0).")
    parser.add_argument("--batch-size", type=int, default=64, help="rows per generate call (default: 64).")
    parser.add_argument("--no-stream", action="store_true", help="skip the step-by-step generation.")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar.")
    parser.add_argument(
        "--no-long-buffer",
        action="store_true",
        help=f"skip stage 5, the long-buffer panel ({LONG_BUFFER_MODEL}, full diffusion at L = {LONG_BUFFER_GEN_LENGTH}).",
    )
    parser.add_argument(
        "--long-buffer-n-examples",
        type=int,
        default=None,
        metavar="N",
        help=f"test examples of the long-buffer panel (default: {LONG_BUFFER_N_EXAMPLES}, or --n-examples when smaller).",
    )
    parser.add_argument(
        "--strategy",
        action="append",
        default=[],
        metavar="SPEC",
        help="add a strategy family to the comparison, e.g. a learned policy: path/to/policy:unmask_beta=0.5,1,2 "
        "(syntax of `hf-unmask evaluate --strategy`; repeatable).",
    )
    add_num_threads_argument(parser)


def run_demo_from_args(args: argparse.Namespace) -> int:
    """Run the demo from parsed arguments; returns the exit status."""
    if args.n_examples <= 0:
        raise ValueError(f"--n-examples must be positive, got {args.n_examples}.")
    if args.long_buffer_n_examples is not None and args.long_buffer_n_examples <= 0:
        raise ValueError(f"--long-buffer-n-examples must be positive, got {args.long_buffer_n_examples}.")
    print(set_cpu_threads(args.num_threads).message(flag="--num-threads"), flush=True)
    run_demo(
        n_examples=args.n_examples,
        output_dir=args.output_dir,
        seeds=args.seeds,
        stream=not args.no_stream,
        batch_size=args.batch_size,
        progress=not args.no_progress,
        extra_strategies=[StrategySpec.parse(spec) for spec in args.strategy],
        long_buffer=False if args.no_long_buffer else None,
        long_buffer_n_examples=args.long_buffer_n_examples,
    )
    return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """`python -m hf_unmask.demo [--n-examples N] [--output-dir DIR]`; same as `hf-unmask demo`."""
    parser = ArgumentParser(  # one-line errors, --output_dir as well as --output-dir
        prog="python -m hf_unmask.demo",
        description=DEMO_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_demo_arguments(parser)
    args = parser.parse_args(list(argv) if argv is not None else None)
    return run_command(run_demo_from_args, args, f"{PROG} demo")  # the same command as `hf-unmask demo`


if __name__ == "__main__":
    sys.exit(main())
