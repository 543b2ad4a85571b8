"""Train a learned unmasking policy with GRPO (arXiv 2512.09106), TRL-style: YAML recipe + flag overrides.

The code of `hf-unmask train` and `scripts/train_unmasking_policy.py` (the same parser and `main`). Usage:

    # built-in task and tiny dLLM, on CPU
    hf-unmask train --config scripts/recipes/builtin_cpu.yaml
    python scripts/train_unmasking_policy.py --config scripts/recipes/builtin_cpu.yaml

    # flags override the recipe
    python scripts/train_unmasking_policy.py --config scripts/recipes/builtin_cpu.yaml --alpha 3 --max_steps 50

    # many processes / GPUs: the same script, unchanged
    accelerate launch --num_processes 8 scripts/train_unmasking_policy.py --config scripts/recipes/llada_gsm8k_math_bl32.yaml

    # 2 CPU processes (gloo). accelerate's `--cpu` flag starts a single process unless MPI is used, so ask for the
    # multi-process launcher and keep `use_cpu: true` from the recipe (or use `torchrun --nproc_per_node 2`):
    accelerate launch --multi_gpu --num_processes 2 scripts/train_unmasking_policy.py --config scripts/recipes/builtin_cpu.yaml

Prompts come from a built-in task (`--task program_trace`), a dataset (`--dataset_name openai/gsm8k
--dataset_config main`, a local json/jsonl/csv/parquet file or a `save_to_disk` folder), or a mixture listed under
`datasets:` in the YAML recipe (each entry: `path`, `name`, `split`, `data_files`, `prompt_column`, `answer_column`,
`max_samples`). The prompt column becomes `prompt` and the answer column is renamed to the column the reward reads
(`reference` for the task verifiers and for a per-example reward, `answer` for `math`). A single local file is one
split: `--eval_num_examples` of its rows are held out for the final evaluation (a warning says so), unless
`--eval_datasets test.jsonl` names the test prompts. With `--eval_strategy steps`, the evaluation during training
(and the checkpoint `--load_best_model_at_end` keeps) runs on `--validation_size` prompts held out of the training
ones, not on the test prompts (unless `--validation_size 0`). Rewards are named as in
`hf_unmask.rewards.get_reward_function` (`task:<name>`, `math`, `code`, `package.module:function`; a module in the
current directory is found, as with `hf-unmask evaluate --correctness`, and the same `(completion, reference)`
function works for both).

After training, the policy is saved to `output_dir` (config.json + model.safetensors + model card), evaluated against
Fast-dLLM heuristics on the test split with `hf_unmask.evaluation` (table + Pareto plot on the model card) and, with
`--push_to_hub`, pushed with that card.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, Optional

from .config import UnmaskingGRPOConfig
from .data import DatasetSource, UnmaskingScriptArguments, describe_test_prompts, load_prompts, split_validation
from .interrupt import TrainingInterrupted
from .parser import TrainingArgumentParser

__all__ = ["DatasetSource", "UnmaskingScriptArguments", "final_evaluation", "load_prompts", "main", "make_parser"]

logger = logging.getLogger(__name__)

DESCRIPTION = (
    "Train a learned unmasking policy with GRPO (TRL) on a frozen dLLM. Give a YAML recipe with --config (e.g. "
    "scripts/recipes/builtin_cpu.yaml) and override any field with --field value. Ctrl-C finishes the current step, "
    "saves a checkpoint and exits with 130."
)


# ----------------------------------------------------------------------------------------------------------------
# final evaluation
# ----------------------------------------------------------------------------------------------------------------
def final_evaluation(trainer: Any, script_args: UnmaskingScriptArguments, test: Any, reward_funcs: list) -> Any:
    """Evaluate the saved policy against heuristics on the test prompts (main process); returns the result rows."""
    if script_args.eval_num_examples <= 0:
        return None
    if test is None and not script_args.task:
        logger.warning(
            "No final evaluation: the prompts have no test split. Name one with --dataset_test_split or list "
            "`eval_datasets:` in the recipe."
        )
        return None
    from ..evaluation import EvaluationData, EvaluationInterrupted, evaluate_strategies
    from ..rewards import PerExampleReward, required_columns
    from ..strategies import UnmaskingStrategy
    from ..strategies.trained_for import portable_name

    args = trainer.args
    policy = UnmaskingStrategy.from_pretrained(args.output_dir)  # the saved inference policy
    if script_args.task and script_args.prompt_template is None and not script_args.chat_template:
        data = EvaluationData.from_task(
            script_args.task, n_examples=script_args.eval_num_examples, seed=script_args.task_seed
        )
    else:
        reward = reward_funcs[0]
        column = (list(required_columns(reward)) or ["answer"])[0]
        rows = test.select(range(min(script_args.eval_num_examples, len(test))))
        prompts = [p if isinstance(p, str) else p[-1]["content"] for p in rows["prompt"]]

        def is_correct(completion: str, reference: str) -> bool:
            if isinstance(reward, PerExampleReward):  # the (completion, reference) function, as evaluate calls it
                return bool(reward.function(completion, reference))
            return bool(reward(prompts=[""], completions=[completion], **{column: [reference]})[0] >= 0.5)

        name = portable_name(script_args.source_names())
        data = EvaluationData(prompts, [str(r) for r in rows[column]], is_correct, name=name)
    print(
        f"Final evaluation: the trained policy vs {', '.join(script_args.eval_strategies)} on {len(data)} test prompts "
        f"({describe_test_prompts(script_args)})."
    )
    folder = os.path.join(args.output_dir, "evaluation")
    try:
        result = evaluate_strategies(
            trainer.dllm,
            trainer.processing_class,
            data,
            strategies=[policy, *script_args.eval_strategies],
            block_lengths=[args.block_length or args.gen_length],
            seeds=script_args.eval_seeds,
            max_new_tokens=args.gen_length,
            batch_size=script_args.eval_batch_size,
            temperature=args.dllm_temperature,
            chat_template=script_args.chat_template,
            generation_kwargs={
                "stop_at_eos": args.stop_at_eos,
                "use_cache": args.rollout_use_cache,
                "cache_implementation": args.rollout_cache_implementation if args.rollout_use_cache else None,
            },
            progress=not args.disable_tqdm,
            model_name=trainer.trained_for().get("base_model"),
        )
    except EvaluationInterrupted as stop:
        stop.save(folder)
        raise
    paths = result.save(folder)
    trainer.evaluation_results = result
    trainer.evaluation_plot_path = str(paths["png"]) if paths.get("png") else None
    print(result.format_table())
    return result


# ----------------------------------------------------------------------------------------------------------------
# main
# ----------------------------------------------------------------------------------------------------------------
def main(script_args: UnmaskingScriptArguments, training_args: UnmaskingGRPOConfig) -> Any:
    """Train, save, evaluate and (optionally) push. Returns the trainer."""
    from ..rewards import get_reward_functions
    from .trainer import UnmaskingGRPOTrainer

    reward_funcs = get_reward_functions(script_args.reward_specs())
    train, test = load_prompts(script_args, reward_funcs)
    eval_dataset = None
    if training_args.eval_strategy != "no":  # evaluation during training: on held-out training prompts
        train, eval_dataset = split_validation(train, script_args)
        if eval_dataset is None:
            eval_dataset = test
            logger.warning(
                "--validation_size 0: the evaluation during training runs on the test prompts (%s), those the final "
                "evaluation reports on, so a checkpoint chosen by it (--load_best_model_at_end) looks better there "
                "than it is. --validation_size N holds out N training prompts for it instead.",
                describe_test_prompts(script_args),
            )
    if training_args.dllm_name_or_path is None:
        if not script_args.task:
            raise ValueError(
                "Name the dLLM with --dllm_name_or_path (a Hub id or folder, e.g. GSAI-ML/LLaDA-8B-Instruct)."
            )
        training_args.dllm_name_or_path = "builtin"
    if training_args.task_name is None:
        training_args.task_name = script_args.task or ("math" if script_args.reward_specs() == ["math"] else None)
    if training_args.train_dataset_name is None:
        training_args.train_dataset_name = script_args.source_names()

    trainer = UnmaskingGRPOTrainer(
        reward_funcs=reward_funcs,
        args=training_args,
        train_dataset=train,
        eval_dataset=eval_dataset,
    )
    try:
        trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint)
    except TrainingInterrupted as stop:  # Ctrl-C: the checkpoint is saved; the policy so far goes to output_dir too
        trainer.save_model(training_args.output_dir)
        trainer.save_state()
        raise TrainingInterrupted(
            f"{stop}; the policy so far is saved in {training_args.output_dir}", stop.step, stop.checkpoint
        ) from None
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once
        step = trainer.state.global_step
        raise TrainingInterrupted(f"stopped at once at step {step}; nothing more was saved", step) from None
    trainer.save_model(training_args.output_dir)
    trainer.save_state()  # trainer_state.json: the logged curves (reward, correctness, NFE, ...) of the whole run
    trainer.accelerator.print(f"Policy saved to {training_args.output_dir}.")

    if trainer.accelerator.is_main_process:
        try:
            final_evaluation(trainer, script_args, test, reward_funcs)
        except KeyboardInterrupt as stop:
            raise TrainingInterrupted(
                f"training finished; the policy is saved in {training_args.output_dir}, its final evaluation was "
                f"interrupted ({stop or 'nothing written'})"
            ) from None
        trainer.create_model_card()  # now with the evaluation table and plot
    trainer.accelerator.wait_for_everyone()
    if training_args.push_to_hub:
        trainer.push_to_hub()
        trainer.accelerator.print(f"Policy pushed to https://huggingface.co/{trainer.hub_model_id}.")
    if hasattr(trainer, "end"):  # transformers >= 5.18: finish the trackers, destroy the process group
        trainer.end()
    return trainer


def make_parser(prog: Optional[str] = None) -> TrainingArgumentParser:
    """The parser of `hf-unmask train` and `scripts/train_unmasking_policy.py`: a YAML recipe (`--config`) and flags
    for every field of `UnmaskingScriptArguments` and `UnmaskingGRPOConfig` (flags override the recipe)."""
    return TrainingArgumentParser((UnmaskingScriptArguments, UnmaskingGRPOConfig), prog=prog, description=DESCRIPTION)


def report_interrupt(stop: KeyboardInterrupt, prog: str) -> int:
    """Print the one line a Ctrl-C ends with (what was saved, where) and return the exit code 130."""
    detail = str(stop) or "before training started; nothing was saved"
    print(f"{prog}: interrupted: {detail}", file=sys.stderr)
    return 130
