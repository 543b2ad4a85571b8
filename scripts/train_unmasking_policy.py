"""Train a learned unmasking policy with GRPO (arXiv 2512.09106), TRL-style: a YAML recipe and flag overrides.

The same as `hf-unmask train`; the code is `hf_unmask.trainer.script` (its docstring lists every source of prompts).

    # built-in task and tiny dLLM, on CPU
    python scripts/train_unmasking_policy.py --config scripts/recipes/builtin_cpu.yaml

    # flags override the recipe
    python scripts/train_unmasking_policy.py --config scripts/recipes/builtin_cpu.yaml --alpha 3 --max_steps 50

    # many processes / GPUs: the same script, unchanged
    accelerate launch --num_processes 8 scripts/train_unmasking_policy.py --config scripts/recipes/llada_gsm8k_math_bl32.yaml

    # 2 CPU processes (gloo). accelerate's `--cpu` flag starts a single process unless MPI is used, so ask for the
    # multi-process launcher and keep `use_cpu: true` from the recipe (or use `torchrun --nproc_per_node 2`):
    accelerate launch --multi_gpu --num_processes 2 scripts/train_unmasking_policy.py --config scripts/recipes/builtin_cpu.yaml

Ctrl-C finishes the current step, saves a checkpoint and the policy, and exits with 130.
"""

import sys
from pathlib import Path

from hf_unmask.trainer.script import main, make_parser, report_interrupt

if __name__ == "__main__":
    trainer = None  # read by tools that run this file with runpy (tests/ddp_probe.py)
    try:
        script_args, training_args = make_parser().parse_args_and_config()
        trainer = main(script_args, training_args)
    except KeyboardInterrupt as stop:
        sys.exit(report_interrupt(stop, Path(__file__).name))
