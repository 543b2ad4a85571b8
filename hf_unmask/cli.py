"""The `hf-unmask` command line: `evaluate`, `train`, `demo` and `list`.

Run `hf-unmask evaluate --help` for the strategy spec syntax and examples, `hf-unmask train --help` for every
training flag.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence
from typing import Any, Optional

from ._command import PROG, ArgumentParser, CLIError, add_config_argument, run_command
from ._threads import add_num_threads_argument, set_cpu_threads

EVALUATE_DESCRIPTION = """\
Evaluate unmasking strategies on a task and dLLM: every strategy x budget x block length x seed runs on the
same examples. Writes <output-dir>/evaluation.csv and evaluation.json (one row per strategy x budget x block
length: accuracy mean/std over seeds, NFE mean/std, wall time, seeds, n examples) and <output-dir>/pareto.png
(accuracy vs mean NFE, one curve per strategy family, one panel per block length: semi-AR and full diffusion).

Strategy specs (--strategy, repeat it for several families):
  NAME                          one point with the default settings
  NAME:KNOB=V1,V2,...           sweep a budget knob (the strategy's constructor argument)
  NAME:V1,V2,...                sweep the family's own budget knob (steps / threshold / factor / gamma)
  NAME:KNOB=V1,V2:OTHER=V       several knobs are crossed
  NAME is a strategy name (see `hf-unmask list`) or the folder of a saved strategy (e.g. a learned policy,
  swept with its knobs such as unmask_beta=0.5,1,2 or temperature=0.5,1). Budgets by family:
    top_k_confidence, top_k_margin, top_k_entropy, random, random_time_grid   steps=...  (total over blocks;
        a multiple of L / block_length and at most L)
    confidence_threshold   threshold=...      confidence_factor   factor=...      eb_sampler   gamma=...
  Without --strategy, a standard sweep of every registered heuristic is run.

Block lengths (--block-length, repeat or comma-separate): integers dividing L, and `full` (= L, full diffusion).
Default: the model's configured block length (if smaller than L) and full diffusion.
"""

EVALUATE_EPILOG = """\
examples:
  # built-in task and model (L = 16), semi-AR and full-diffusion panels, a built-in learned policy swept over unmask_beta
  # (a policy you trained: its folder, e.g. outputs/policy-bl8-alpha1 from scripts/train_unmasking_policy.py)
  hf-unmask evaluate --task program_trace --n-examples 200 --seeds 0 1 2 \\
      --strategy top_k_confidence:steps=4,8,16 --strategy confidence_threshold:threshold=0.9,0.7,0.5 \\
      --strategy tiny-dllm-program_trace-bl8-alpha1:unmask_beta=0.5,1,2 --block-length 8 --block-length full

  # any dLLM on GSM8K from the Hub, judged with math-verify
  hf-unmask evaluate --model GSAI-ML/LLaDA-8B-Instruct --dataset openai/gsm8k --dataset-config main \\
      --split test --prompt-column question --reference-column answer --correctness math_verify \\
      --chat-template --max-new-tokens 256 --block-length 32,full --strategy confidence_threshold:0.9,0.7

  # your data file and verifier: data.jsonl with columns q and a, my_checks.py (in the working directory) with
  # is_correct(completion, reference) -> bool; any dLLM folder or Hub id with --model
  hf-unmask evaluate --dataset data.jsonl --prompt-column q --reference-column a \\
      --correctness my_checks:is_correct --strategy top_k_margin:steps=8,16

  # data-parallel over 2 processes (one GPU each with CUDA): the same table as one process, written by rank 0
  torchrun --nproc_per_node 2 -m hf_unmask.cli evaluate --task program_trace --strategy random:steps=4,8,16

Ctrl-C writes the rows finished so far (evaluation.json says "complete": false) and exits with 130.
"""


def _seeds(values: Sequence[str]) -> list[int]:
    seeds: list[int] = []
    for value in values:
        for item in str(value).split(","):
            item = item.strip()
            if not item:
                continue
            try:
                seeds.append(int(item))
            except ValueError:
                raise CLIError(f"--seeds takes integers (e.g. --seeds 0 1 2), got '{item}'.") from None
    if not seeds:
        raise CLIError("--seeds got no values; give at least one, e.g. --seeds 0.")
    return seeds


def _block_lengths(values: Optional[Sequence[str]]) -> Optional[list[Any]]:
    if values is None:
        return None
    out: list[Any] = []
    for value in values:
        items = [v.strip() for v in value.split(",")]
        if any(not v for v in items):
            raise CLIError(f"Empty value in --block-length '{value}'; give integers or 'full', e.g. 8,full.")
        for item in items:
            if item.lower() in ("full", "none", "l"):
                out.append(None)
            else:
                try:
                    out.append(int(item))
                except ValueError:
                    raise CLIError(f"--block-length takes integers or 'full', got '{item}'.") from None
    return out


def _n_examples(value: str) -> Optional[int]:
    if value.lower() == "all":
        return None
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got '{value}'") from None
    if n <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer or 'all', got {n}")
    return n


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of `hf-unmask evaluate` (with `ArgumentParser`, also `--config FILE.yaml`)."""
    if isinstance(parser, ArgumentParser):
        add_config_argument(parser, example="n_examples: 200")
    _add_model_arguments(parser.add_argument_group("model"))
    _add_data_arguments(parser.add_argument_group("examples (give --task or --dataset)"))
    _add_sweep_arguments(parser.add_argument_group("sweep"))
    out = parser.add_argument_group("output")
    out.add_argument("--output-dir", default="hf_unmask_eval", help="where to write the table and plot.")
    out.add_argument("--save-completions", action="store_true", help="also write every completion to samples.jsonl.")
    out.add_argument("--no-progress", action="store_true", help="hide the progress bar.")
    add_num_threads_argument(parser)


def _add_model_arguments(model: Any) -> None:
    model.add_argument(
        "--model",
        default="builtin",
        help="dLLM folder or Hub id loaded with hf_unmask.AutoDiffusionLM (LLaDA, Dream, masked LMs, PEFT "
        "adapters), or 'builtin' / 'builtin:NAME' for the built-in tiny dLLM (default: builtin).",
    )
    model.add_argument("--tokenizer", help="tokenizer folder or Hub id (default: the model's).")
    model.add_argument("--device", default="auto", help="torch device (default: cuda[:LOCAL_RANK] if any, else cpu).")
    model.add_argument("--dtype", default="auto", help="float32, bfloat16, float16 or auto (default: as saved).")
    model.add_argument(
        "--trust-remote-code",
        action="store_true",
        help="run modeling code the checkpoint ships, for families hf_unmask does not implement natively "
        "(never needed for LLaDA or Dream).",
    )


def _add_data_arguments(data: Any) -> None:
    data.add_argument("--task", help="built-in verifiable task name (see `hf-unmask list`).")
    data.add_argument(
        "--dataset",
        help="`datasets` dataset: a Hub id (e.g. openai/gsm8k) or a local .json/.jsonl/.csv/.tsv/.parquet file.",
    )
    data.add_argument("--dataset-config", help="dataset configuration name (e.g. 'main' for openai/gsm8k).")
    data.add_argument("--split", default="test", help="split to evaluate on (default: test).")
    data.add_argument("--prompt-column", default="prompt", help="prompt column of --dataset (default: prompt).")
    data.add_argument(
        "--reference-column", default="reference", help="reference column of --dataset (default: reference)."
    )
    data.add_argument(
        "--correctness",
        default="math_verify",
        help="how a --dataset completion is judged: math_verify (final answers compared with math-verify, for "
        "GSM8K/MATH; a '#### answer' suffix is understood), code (the completion run against the reference's "
        "assert lines in the training sandbox; needs HF_ALLOW_CODE_EVAL=1), exact_match, or module:function naming "
        "your own function(completion, reference) -> bool (default: math_verify). Built-in tasks use their own verifier.",
    )
    data.add_argument("--prompt-template", help="format of each prompt, with {prompt} (e.g. 'Q: {prompt}\\nA:').")
    data.add_argument("--chat-template", action="store_true", help="wrap prompts in the tokenizer's chat template.")
    data.add_argument(
        "--n-examples",
        type=_n_examples,
        default=100,
        help="number of examples: the first n of the split ('all' for a whole --dataset; default: 100).",
    )


def _add_sweep_arguments(sweep: Any) -> None:
    sweep.add_argument(
        "--strategy",
        action="append",
        metavar="SPEC",
        help="strategy family and budgets, e.g. top_k_confidence:steps=16,32,64 (repeatable; syntax above).",
    )
    sweep.add_argument(
        "--block-length",
        action="append",
        metavar="BL",
        help="block length(s): integers dividing L, or 'full' (repeatable or comma-separated, e.g. 8,full).",
    )
    sweep.add_argument("--seeds", nargs="+", default=["0"], metavar="SEED", help="generation seeds (default: 0).")
    sweep.add_argument("--max-new-tokens", type=int, help="L, generated positions (default: the model's).")
    sweep.add_argument("--batch-size", type=int, default=32, help="rows per generate call (default: 32).")
    sweep.add_argument("--temperature", type=float, default=0.0, help="dLLM token temperature (default: 0, greedy).")
    sweep.add_argument(
        "--stop-at-eos", action="store_true", help="stop a row once its EOS is decided (fewer NFE on the tail)."
    )
    sweep.add_argument(
        "--use-cache",
        action="store_true",
        help="generate with the diffusion KV cache (fewer positions per forward pass; answers may change slightly).",
    )
    sweep.add_argument(
        "--cache-implementation",
        choices=("prefix", "dual"),
        help="which KV cache (implies --use-cache): prefix (the prompt and the finished blocks are cached) or dual "
        "(also what follows the current block) (default: the model's generation config, else prefix).",
    )


def run_evaluate(args: argparse.Namespace) -> int:
    """Run `hf-unmask evaluate` from parsed arguments; returns the exit status. Under `torchrun` or `accelerate
    launch` each process evaluates its share of the batches and rank 0 writes the files."""
    from .evaluation import EvaluationInterrupted, StrategySpec, evaluate_strategies, plan_sweep
    from .evaluation.distributed import init_distributed, interrupt_once
    from .models import load_dllm

    if args.task and args.dataset:
        raise CLIError("Give either --task (a built-in task) or --dataset (a datasets dataset), not both.")
    if not args.task and not args.dataset:
        from .tasks import TASK_REGISTRY

        names = ", ".join(sorted(TASK_REGISTRY)) or "(none in this version)"
        raise CLIError(
            f"Say what to evaluate on: --task NAME (built-in tasks: {names}) or --dataset HUB_ID_OR_FILE with "
            "--prompt-column/--reference-column/--correctness."
        )
    if args.task and args.n_examples is None:
        raise CLIError("--n-examples all only works with --dataset; built-in tasks need a number (e.g. 200).")
    if args.strategy is not None and not args.strategy:
        raise CLIError("--strategy got no value.")
    if args.task and args.prompt_template:
        raise CLIError("--prompt-template applies to --dataset prompts; built-in tasks format their own prompts.")
    # parse cheap things before loading a model, so mistakes fail fast
    specs = [StrategySpec.parse(s) for s in args.strategy] if args.strategy else None
    block_lengths = _block_lengths(args.block_length)
    seeds = _seeds(args.seeds)
    if args.max_new_tokens is not None and block_lengths is not None:  # L is known: check the sweep before loading
        plan_sweep(specs or [], block_lengths, args.max_new_tokens)
    data = _evaluation_data(args)  # before anything is printed: a missing file is the one line of output
    # one process, or this rank of torchrun / accelerate launch (docs/guides/evaluation.md, "Data-parallel")
    ctx = init_distributed()
    try:
        ctx.barrier()  # the ranks measure the idle cores together, each while the others sleep too
        threads = set_cpu_threads(args.num_threads, local_processes=ctx.local_world_size)
        if ctx.is_main:
            print(threads.message(flag="--num-threads"), file=sys.stderr, flush=True)
        model, tokenizer = load_dllm(
            args.model,
            dtype=args.dtype,
            device=ctx.device if ctx.world_size > 1 and args.device == "auto" else args.device,
            tokenizer=args.tokenizer,
            trust_remote_code=args.trust_remote_code,
        )
        # data-parallel: a launcher repeats Ctrl-C to each process, which must not cut the saving short
        with interrupt_once() if ctx.world_size > 1 else contextlib.nullcontext():
            try:
                result = evaluate_strategies(
                    model,
                    tokenizer,
                    data,
                    strategies=specs,
                    block_lengths=block_lengths,
                    seeds=seeds,
                    max_new_tokens=args.max_new_tokens,
                    batch_size=args.batch_size,
                    temperature=args.temperature,
                    chat_template=args.chat_template,
                    generation_kwargs=_generation_kwargs(args),
                    keep_samples=args.save_completions,
                    progress=not args.no_progress,
                    model_name=args.model,
                )
            except EvaluationInterrupted as stop:
                if not ctx.is_main and stop.rank is None:  # gathered to rank 0, which writes it
                    raise KeyboardInterrupt(f"rank {ctx.rank}'s finished work went to rank 0") from None
                stop.save(args.output_dir)  # `main` reports it and exits with 130
                raise
            if ctx.is_main:
                print(result.format_table())
                paths = result.save(args.output_dir)
                print()
                for kind, path in paths.items():
                    print(f"{kind:>7}: {path}")
    finally:
        ctx.close()
    return 0


def _generation_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The `generate` settings of `hf-unmask evaluate` that override the model's generation config."""
    kwargs: dict[str, Any] = {}
    if args.stop_at_eos:
        kwargs["stop_at_eos"] = True
    if args.use_cache or args.cache_implementation:
        kwargs["use_cache"] = True
    if args.cache_implementation:
        kwargs["cache_implementation"] = args.cache_implementation
    return kwargs


def _evaluation_data(args: argparse.Namespace) -> Any:
    """The examples of `hf-unmask evaluate`: a built-in task (--task) or a `datasets` dataset (--dataset)."""
    from .evaluation import EvaluationData

    if args.task:
        from .tasks import get_task

        return EvaluationData.from_task(get_task(args.task), n_examples=args.n_examples, split=args.split)
    return EvaluationData.from_dataset(
        args.dataset,
        prompt_column=args.prompt_column,
        reference_column=args.reference_column,
        correctness=args.correctness,
        split=args.split,
        n_examples=args.n_examples,
        config_name=args.dataset_config,
        prompt_template=args.prompt_template,
    )


def run_list(args: argparse.Namespace) -> int:
    """Print the strategies (with their knobs), built-in policies, models and tasks, and correctness functions."""
    from .evaluation import CORRECTNESS_FUNCTIONS, default_budget_knob
    from .models.tiny import list_builtin_models
    from .strategies import STRATEGY_REGISTRY, list_builtin_policies
    from .tasks import TASK_REGISTRY

    print("strategies (NAME: knobs; * = budget knob swept by bare values):")
    for cls in sorted((c for c in STRATEGY_REGISTRY.values() if c.name), key=lambda c: c.name):
        knob = default_budget_knob(cls)
        knobs = ", ".join(f"{k}*" if k == knob else k for k in cls._config_keys()) or "(none)"
        print(f"  {cls.name:<22} {knobs}   [{cls.__name__}]")
    print("  or the folder of a saved strategy (strategy.save_pretrained / a learned policy)")
    print("built-in learned policies (usable as NAME; knobs unmask_beta, temperature):")
    for name in list_builtin_policies() or ["(none in this version)"]:
        print(f"  {name}")
    print("built-in models (--model builtin:NAME; --model builtin is tiny-dllm):")
    for name in list_builtin_models() or ["(none in this version)"]:
        print(f"  {name}")
    print("built-in tasks:")
    for name in sorted(TASK_REGISTRY) or ["(none in this version)"]:
        print(f"  {name}")
    print("correctness functions (--correctness):")
    for name in sorted(CORRECTNESS_FUNCTIONS):
        print(f"  {name}")
    print("  or module:function")
    return 0


def run_train(argv: Sequence[str]) -> int:
    """`hf-unmask train --config recipe.yaml [--flag value ...]`: train a policy as `scripts/train_unmasking_policy.py`
    does (the same parser: a YAML recipe and flags for every field of the script arguments and
    `UnmaskingGRPOConfig`, flags overriding the recipe). Ctrl-C saves a checkpoint; the exit code is then 130."""
    try:
        from .trainer import script
    except ImportError as err:
        raise ImportError(
            f"Training needs the [train] extra (TRL, accelerate, math-verify): pip install 'hf_unmask[train]' ({err})."
        ) from err
    try:
        script_args, training_args = script.make_parser(prog=f"{PROG} train").parse_args_and_config(list(argv))
        script.main(script_args, training_args)
    except KeyboardInterrupt as stop:
        return script.report_interrupt(stop, f"{PROG} train")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The `hf-unmask` argument parser with its subcommands."""
    from ._version import __version__

    parser = ArgumentParser(
        prog=PROG, description="Diffusion LMs with learnable unmasking strategies: evaluation, training and demo."
    )
    parser.add_argument("--version", action="version", version=f"hf_unmask {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    evaluate = sub.add_parser(
        "evaluate",
        help="accuracy vs NFE of strategies x budgets x block lengths x seeds (CSV, JSON, Pareto plot)",
        description=EVALUATE_DESCRIPTION,
        epilog=EVALUATE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_evaluate_arguments(evaluate)
    evaluate.set_defaults(func=run_evaluate)

    # listed for `hf-unmask --help`; `main` hands everything after `train` to the training script's own parser
    sub.add_parser(
        "train",
        add_help=False,
        help="train a learned unmasking policy with GRPO (TRL): --config recipe.yaml [--flag value ...]",
    )

    from .demo import DEMO_DESCRIPTION, add_demo_arguments, run_demo_from_args

    demo = sub.add_parser(
        "demo",
        help="watch the built-in dLLM fill its canvas, then compare the heuristics (CPU, ~2 min)",
        description=DEMO_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_demo_arguments(demo)
    demo.set_defaults(func=run_demo_from_args)

    lister = sub.add_parser(
        "list", help="strategy names and knobs, built-in policies, models and tasks, correctness functions"
    )
    lister.set_defaults(func=run_list)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of `hf-unmask`; returns the exit status (0 on success, 2 on a usage error, 1 otherwise).

    Example:
        ```python
        >>> import tempfile
        >>> from hf_unmask.cli import main
        >>> main(["evaluate", "--task", "program_trace", "--n-examples", "16", "--strategy", "confidence_threshold:0.9",
        ...       "--block-length", "8", "--output-dir", tempfile.mkdtemp(), "--no-progress"])
        strategy              budget         BL  accuracy  NFE  time (s)  pareto
        --------------------  -------------  --  --------  ---  --------  ------
        confidence_threshold  threshold=0.9   8     87.5%  6.9  ...
            csv: .../evaluation.csv
           json: .../evaluation.json
            png: .../pareto.png
        0
        ```
    """
    parser = build_parser()
    argv = list(argv) if argv is not None else sys.argv[1:]
    if argv[:1] == ["train"]:
        args = argparse.Namespace(command="train", func=lambda _: run_train(argv[1:]))
    else:
        args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    return run_command(args.func, args, f"{PROG} {args.command}")


if __name__ == "__main__":
    sys.exit(main())
