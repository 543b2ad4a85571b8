"""`simple_evaluate` with NFE, and `main`, lm-eval's own command line with the `hf_unmask` model and NFE reporting."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, Optional, Union

from ..evaluation.distributed import close_distributed, init_distributed
from .model import HFUnmaskLM
from .model_args import ModelArgumentError, parse_model_args, parse_strategy
from .stats import attach_generation_stats, capture_generation_stats

__all__ = ["check_model_args", "main", "simple_evaluate"]


def simple_evaluate(model: Any, **kwargs: Any) -> Optional[dict[str, Any]]:
    """`lm_eval.simple_evaluate` (same arguments, all by keyword) that also reports NFE: every logged sample gets
    `nfe` and `gen_tokens`, every generation task `nfe`, `gen_tokens` and `tokens_per_forward` in `results["results"]`
    (see `hf_unmask.lm_eval.stats`). `model` is `"hf_unmask"` (with `model_args`) or an `HFUnmaskLM`.

    Run it on every process of a data-parallel launch; the results come back on rank 0 (None elsewhere).

    Example:
        ```python
        >>> from lm_eval.tasks import TaskManager
        >>> from hf_unmask.lm_eval import TASKS_DIR, simple_evaluate
        >>> results = simple_evaluate(
        ...     model="hf_unmask", model_args="pretrained=tiny-dllm,block_length=8",
        ...     tasks=["hf_unmask_program_trace"], task_manager=TaskManager(include_path=str(TASKS_DIR)), limit=4,
        ... )
        >>> sorted(k for k in results["results"]["hf_unmask_program_trace"] if k.startswith(("nfe", "tokens")))
        ['nfe,none', 'tokens_per_forward,none']
        ```
    """
    from lm_eval.evaluator import simple_evaluate as lm_eval_simple_evaluate

    with capture_generation_stats() as created:
        if isinstance(model, HFUnmaskLM):
            model.generation_stats.clear()
            created.append(model.generation_stats)
        results = lm_eval_simple_evaluate(model=model, **kwargs)
    return attach_generation_stats(results, list(created), samples=kwargs.get("samples"))


def check_model_args(model_args: Union[str, dict[str, Any]]) -> None:
    """The checks of `HFUnmaskLM` that need no model: keys, types, the strategy spec (`ModelArgumentError`)."""
    if isinstance(model_args, str):
        from lm_eval.utils import simple_parse_args_string

        model_args = simple_parse_args_string(model_args)
    parse_strategy(parse_model_args(dict(model_args)).strategy)


def main(argv: Optional[Sequence[str]] = None) -> None:
    """`python -m hf_unmask.lm_eval ARGS`: lm-eval's command line (`lm-eval ARGS`, every argument as lm-eval takes
    it) with the `hf_unmask` model registered and NFE added to the results it prints and saves. Launch it with
    `torchrun --nproc_per_node N -m hf_unmask.lm_eval ...` or `accelerate launch -m hf_unmask.lm_eval ...` to split
    the requests over N processes."""
    import lm_eval
    from lm_eval._cli import HarnessCLI
    from lm_eval.utils import setup_logging

    saved_argv = list(sys.argv)
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    # lm-eval's `run` command reads `lm_eval.simple_evaluate` when it runs: give it the one that reports NFE.
    had_attribute = "simple_evaluate" in vars(lm_eval)
    previous = vars(lm_eval).get("simple_evaluate")
    lm_eval.simple_evaluate = simple_evaluate
    try:
        # What `lm_eval.__main__.cli_evaluate` does, with the model arguments checked before lm-eval spends
        # seconds indexing its task catalogue.
        setup_logging()
        parser = HarnessCLI()
        args = parser.parse_args()
        if getattr(args, "model", None) == "hf_unmask":
            check_model_args(getattr(args, "model_args", None) or {})
            _choose_threads()
        parser.execute(args)
    except ModelArgumentError as err:
        print(f"hf_unmask.lm_eval: error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    finally:
        if had_attribute:
            lm_eval.simple_evaluate = previous
        else:
            del lm_eval.simple_evaluate
        sys.argv = saved_argv
        close_distributed()


def _choose_threads() -> None:
    """PyTorch's CPU threads for this process (the idle cores, shared by the launcher's local processes, unless
    `HF_UNMASK_NUM_THREADS` or `OMP_NUM_THREADS` says otherwise); rank 0 says what it chose on stderr."""
    from .._threads import set_cpu_threads

    ctx = init_distributed()
    ctx.barrier()  # the ranks measure the idle cores together, each while the others sleep too
    choice = set_cpu_threads(local_processes=ctx.local_world_size)
    if ctx.is_main:
        print(choice.message(), file=sys.stderr, flush=True)
