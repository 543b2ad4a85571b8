"""Watching a training run: collapse warnings from the policy's own rollouts, and the best checkpoint by evaluation.

`TrainingMonitorMixin` goes before `PolicySavingMixin` in `UnmaskingGRPOTrainer`'s bases. It provides:

- `log`: before TRL averages the logged step's metrics, runs `CollapseDetector` on them (training steps only), adds
  its `collapse/*` indicators to the same log record and gives its warnings (`collapse_warnings`);
- `_record_collapse_signals`: what the detector needs beyond `rollout_metrics` (`masked_at_end`), called by
  `_log_rollouts`;
- `_load_best_model`: with `load_best_model_at_end`, transformers loads the best checkpoint into `self.model`, whose
  keys are the `PolicyModel`'s; the checkpoint holds the policy's own `save_pretrained` files, so it is loaded with
  `_load_from_checkpoint` instead, and the run says which step it came from;
- `trained_for`: `training_steps` of the loaded best policy is its checkpoint's step.
"""

from __future__ import annotations

import logging
import math
import os
from typing import Any, Optional

import torch

from .._warnings import warn_at_caller
from ..models import get_adapter
from .collapse import CollapseDetector, masked_at_end

__all__ = ["TrainingMonitorMixin", "check_best_checkpoint_fields", "check_collapse_fields", "collapse_hints"]

logger = logging.getLogger(__name__)


#: Metrics (without the `eval_` prefix) where lower is better: NFE, groups without signal, positions left masked.
LOWER_IS_BETTER = ("loss", "nfe/", "frac_reward_zero_std", "masked_at_end", "empty_action_fraction")


def check_collapse_fields(args: Any) -> None:
    """The config's `collapse_*` thresholds; `ValueError` naming the field."""
    for name in ("collapse_unmask_fraction", "collapse_masked_fraction", "collapse_correctness_drop",
                 "collapse_zero_std_fraction"):  # fmt: skip
        value = getattr(args, name)
        if not (isinstance(value, (int, float)) and 0.0 <= value <= 1.0):
            raise ValueError(f"{name} must be a fraction between 0 and 1, got {value!r}.")
    if not (isinstance(args.collapse_steps_per_block, (int, float)) and args.collapse_steps_per_block >= 1):
        raise ValueError(
            f"collapse_steps_per_block must be >= 1 (one step per block is the fewest), got "
            f"{args.collapse_steps_per_block!r}."
        )
    if not isinstance(args.collapse_patience, int) or args.collapse_patience < 1:
        raise ValueError(f"collapse_patience must be an integer >= 1, got {args.collapse_patience!r}.")


def check_best_checkpoint_fields(args: Any) -> None:
    """With `load_best_model_at_end` (or `save_strategy="best"`): the metric defaults to `reward` (not transformers'
    `loss`), `greater_is_better` follows it, and evaluation runs wherever a checkpoint is saved (`ValueError` naming
    the values to use). Without checkpoints (`save_strategy="no"`) it is switched off, with a warning."""
    if not (args.load_best_model_at_end or args.save_strategy == "best"):
        return
    if args.load_best_model_at_end and args.save_strategy == "no":
        warn_at_caller(
            "load_best_model_at_end=True ignored: --save_strategy no saves no checkpoint to keep. Use "
            "--save_strategy steps --save_steps N (a multiple of --eval_steps) to keep the best one."
        )
        args.load_best_model_at_end = False
        return
    metric = args.metric_for_best_model = args.metric_for_best_model or "reward"
    if metric.removeprefix("eval_") == "loss":
        warn_at_caller(
            "metric_for_best_model='loss': the GRPO loss is no measure of the policy's quality (its advantages are "
            "centred per group). Use --metric_for_best_model reward (the efficiency-weighted reward) or correctness."
        )
    if args.greater_is_better is None:
        args.greater_is_better = not metric.removeprefix("eval_").startswith(LOWER_IS_BETTER)
    if not args.load_best_model_at_end or args.save_strategy == "best":
        return
    if args.eval_strategy != args.save_strategy:
        raise ValueError(
            f"load_best_model_at_end=True keeps the best of the evaluated checkpoints, so evaluation must run where "
            f"checkpoints are saved: --eval_strategy {args.save_strategy} (now {args.eval_strategy}) with "
            "--eval_steps N, or --save_strategy best."
        )
    save, every = args.save_steps, args.eval_steps if args.eval_steps else args.logging_steps
    if args.save_strategy == "steps" and save >= 1 and every >= 1 and int(save) % int(every):
        save, every = int(save), int(every)
        divisor = next(d for d in range(every, 0, -1) if save % d == 0)
        raise ValueError(
            f"load_best_model_at_end=True compares the checkpoints by the evaluation at their step, so save_steps "
            f"({save}) must be a multiple of eval_steps ({every}). Use e.g. --eval_steps {divisor} or --save_steps "
            f"{max(every, save // every * every)}."
        )


def collapse_hints(args: Any) -> dict[str, str]:
    """What to try for each collapse condition, with the run's current values."""
    lr, bias, floor = f"{args.learning_rate:g}", f"{args.policy_init_bias:g}", args.entropy_floor
    lower_lr = f"a lower --learning_rate (now {lr})"
    entropy = f"--entropy_floor 0.05 (now {floor:g}) to keep the policy stochastic"
    expert = "" if args.expert_steering else ", expert steering (--expert_steering true) to show it good trajectories"
    additive = args.reward_form == "additive"
    paper = "; the paper's is -2" if args.policy_init_bias > -2 else ""
    if args.load_best_model_at_end:
        best = "; the best checkpoint by evaluation is kept (load_best_model_at_end)."
    else:
        best = "; keep the best checkpoint by evaluation: --eval_strategy steps --load_best_model_at_end true."
    return {
        "never_unmask": f"{lower_lr}, a faster start (--policy_init_bias above {bias}: the initial unmask "
        f"probability is sigmoid(bias)), {entropy}{expert}"
        + (", --reward_form multiplicative (additive pays a correct never-unmask answer 0)" if additive else "")
        + best,
        "everything_at_once": f"{lower_lr}, a slower start (--policy_init_bias below {bias}{paper}), "
        f"{entropy}{expert}, a smaller --alpha (now {args.alpha:g})"
        + (", --reward_form multiplicative (additive pays the fastest wrong rollout most)" if additive else "")
        + best,
        "no_signal": f"{entropy}, {lower_lr}, a larger --num_generations (now {args.num_generations}){expert}; check "
        "that the reward tells the rollouts apart (a constant reward with --alpha 0 never does)" + best,
    }


class TrainingMonitorMixin:
    """Collapse detection and the best checkpoint for `UnmaskingGRPOTrainer` (see the module doc). The trainer
    provides `args` (an `UnmaskingGRPOConfig`), `state`, `dllm`, `policy`, `_metrics` (TRL's metric store),
    `_reduce_sum` and `_load_from_checkpoint`."""

    _collapse_detector: Optional[CollapseDetector] = None
    _best_loaded_step: Optional[int] = None

    def _record_collapse_signals(self, mode: str, batch: dict[str, torch.Tensor], is_expert: torch.Tensor) -> None:
        """Add `masked_at_end` (of the policy's own rollouts) to the metric store of `mode`."""
        mask_id = get_adapter(self.dllm).mask_token_id()
        sequences = batch["sequences"].to(is_expert.device)  # a dLLM with a device map may keep it elsewhere
        value = masked_at_end(sequences, ~is_expert, self.args.gen_length, mask_id, self._reduce_sum)
        self._metrics[mode]["masked_at_end"].append(value)

    def _collapse(self) -> CollapseDetector:
        if self._collapse_detector is None:
            args = self.args
            detector = CollapseDetector(
                gen_length=args.gen_length,
                block_length=args.block_length,
                patience=args.collapse_patience,
                unmask_fraction=args.collapse_unmask_fraction,
                masked_fraction=args.collapse_masked_fraction,
                steps_per_block=args.collapse_steps_per_block,
                correctness_drop=args.collapse_correctness_drop,
                zero_std_fraction=args.collapse_zero_std_fraction,
                hints=collapse_hints(args),
            )
            for record in self.state.log_history:  # a resumed run: the best correctness before the checkpoint
                value = record.get("correctness")
                if isinstance(value, (int, float)) and not math.isnan(value):
                    if detector.best_correctness is None or value > detector.best_correctness:
                        detector.best_correctness, detector.best_step = float(value), record.get("step")
            self._collapse_detector = detector
        return self._collapse_detector

    def log(self, logs: dict[str, float], start_time: Optional[float] = None) -> None:
        """TRL's `log`, with the `collapse/*` indicators of a logged training step and the collapse warnings."""
        store = self._metrics["train"]
        if self.model.training and store.get("nfe/mean"):
            means = {}
            for key, values in store.items():  # as TRL averages them: NaN left out
                valid = [v for v in values if not math.isnan(v)]
                means[key] = sum(valid) / len(valid) if valid else None
            metrics, messages = self._collapse().update(self.state.global_step, means)
            for key, value in metrics.items():
                store[key] = [value]
            if self.args.collapse_warnings and self.is_world_process_zero():
                for message in messages:
                    logger.warning(message)
        super().log(logs, start_time)

    def _load_best_model(self) -> None:
        """Load the best checkpoint's policy (its own safetensors, strict) and say which step it came from."""
        best = self.state.best_model_checkpoint
        self._load_from_checkpoint(best)
        step = self.state.best_global_step
        if step is None:
            step = int(os.path.basename(os.path.normpath(best)).rsplit("-", 1)[-1])
        self._best_loaded_step = step
        metric = self.args.metric_for_best_model
        name = metric if metric.startswith("eval_") else f"eval_{metric}"
        last = next((h[name] for h in reversed(self.state.log_history) if name in h), None)
        last_text = f"; the last evaluation gave {last:.4g}" if last is not None else ""
        if self.is_world_process_zero():
            logger.warning(
                f"load_best_model_at_end: the policy is now the best checkpoint by {name}, step {step} of "
                f"{self.state.global_step} ({best}, {name} = {self.state.best_metric:.4g}{last_text}); save_model "
                "writes that policy."
            )

    def trained_for(self) -> dict[str, Any]:
        """`PolicySavingMixin.trained_for`, with the best checkpoint's step once it is loaded."""
        record = super().trained_for()
        if self._best_loaded_step is not None:
            record["training_steps"] = self._best_loaded_step
        return record
