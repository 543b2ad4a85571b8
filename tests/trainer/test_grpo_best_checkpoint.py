"""Keeping the best checkpoint by evaluation (`eval_strategy` + `metric_for_best_model` + `load_best_model_at_end`):
the config's defaults and errors, and a seeded run on the built-in dLLM whose best evaluation is not its last."""

from __future__ import annotations

import logging
from typing import Any

import pytest
import torch
from grpo_toys import small_config, state_of
from transformers import TrainerCallback

from hf_unmask.strategies import ConfidencePolicy


def test_the_best_checkpoint_is_chosen_by_the_eval_reward_by_default(tmp_path):
    best = dict(eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=4, load_best_model_at_end=True)
    config = small_config(tmp_path, **best)
    assert (config.metric_for_best_model, config.greater_is_better) == ("reward", True)
    assert small_config(tmp_path, **best, metric_for_best_model="eval_correctness").greater_is_better is True
    assert small_config(tmp_path, **best, metric_for_best_model="nfe/mean").greater_is_better is False
    assert small_config(tmp_path, **best, metric_for_best_model="nfe/mean", greater_is_better=True).greater_is_better
    with pytest.warns(UserWarning, match="GRPO loss is no measure"):
        small_config(tmp_path, **best, metric_for_best_model="loss")
    assert small_config(tmp_path).metric_for_best_model is None  # nothing changes without load_best_model_at_end


def test_evaluation_must_come_with_every_checkpoint(tmp_path):
    best = dict(eval_strategy="steps", save_strategy="steps", load_best_model_at_end=True)
    with pytest.raises(ValueError, match=r"save_steps \(250\) must be a multiple of eval_steps \(100\).*"
                                         r"--eval_steps 50 or --save_steps 200"):  # fmt: skip
        small_config(tmp_path, **best, save_steps=250, eval_steps=100)
    with pytest.raises(ValueError, match="--eval_strategy steps \\(now no\\)"):
        small_config(tmp_path, **{**best, "eval_strategy": "no"}, save_steps=10)
    with pytest.warns(UserWarning, match="load_best_model_at_end=True ignored: --save_strategy no"):
        config = small_config(tmp_path, **{**best, "save_strategy": "no"}, eval_steps=10)
    assert config.load_best_model_at_end is False


class StepReward:
    """0.5 for every completion, 1.0 for those scored at step 4: of the evaluations at steps 2, 4 and 6, the one at
    step 4 has the highest reward (however the policy changes)."""

    __name__ = "step_reward"

    def __call__(self, prompts: list, completions: list, trainer_state: Any = None, **kwargs: Any) -> list[float]:
        return [1.0 if trainer_state.global_step == 4 else 0.5] * len(completions)


class Snapshots(TrainerCallback):
    """The policy's weights at every checkpoint."""

    def __init__(self) -> None:
        self.trainer: Any = None
        self.states: dict[int, dict[str, torch.Tensor]] = {}

    def on_save(self, args, state, control, **kwargs):
        self.states[state.global_step] = state_of(self.trainer.policy)


def test_the_saved_policy_is_the_best_checkpoint_not_the_last(tmp_path, caplog):
    from hf_unmask.tasks import get_task
    from hf_unmask.trainer import UnmaskingGRPOTrainer

    data = get_task("program_trace").dataset(n_train=32, n_test=4, seed=0)
    args = small_config(
        tmp_path / "run", dllm_name_or_path="builtin", gen_length=16, block_length=8, max_steps=6, num_iterations=1,
        policy_init_bias=0.0, eval_strategy="steps", eval_steps=2, save_strategy="steps", save_steps=2,
        save_total_limit=1, load_best_model_at_end=True,
    )  # fmt: skip
    snapshots = Snapshots()
    trainer = UnmaskingGRPOTrainer(reward_funcs=StepReward(), args=args, train_dataset=data["train"],
                                   eval_dataset=data["test"], callbacks=[snapshots])  # fmt: skip
    snapshots.trainer = trainer
    with caplog.at_level(logging.WARNING, logger="hf_unmask.trainer.monitoring"):
        trainer.train()

    evals = {h["step"]: h["eval_reward"] for h in trainer.state.log_history if "eval_reward" in h}
    assert sorted(evals) == [2, 4, 6] and max(evals, key=evals.get) == 4, evals
    assert trainer.state.best_global_step == 4 and trainer.state.best_metric == evals[4]
    assert sorted(p.name for p in (tmp_path / "run").glob("checkpoint-*")) == ["checkpoint-4"]  # the best is kept
    assert any(not torch.equal(snapshots.states[4][k], v) for k, v in snapshots.states[6].items())
    now = state_of(trainer.policy)
    assert all(torch.equal(now[k], v) for k, v in snapshots.states[4].items())  # step 4's policy, not step 6's
    assert "the best checkpoint by eval_reward, step 4 of 6" in caplog.text

    out = tmp_path / "final"
    trainer.save_model(str(out))
    saved = ConfidencePolicy.from_pretrained(out)
    assert all(torch.equal(saved.state_dict()[k], v) for k, v in snapshots.states[4].items())
    assert saved.trained_for["training_steps"] == 4 and saved.mode == "bernoulli-argmax"


def test_the_training_script_saves_the_best_checkpoint(tmp_path, caplog, monkeypatch):
    """`hf-unmask train` on the CPU recipe (which keeps the best checkpoint), smaller: the validation prompts held
    out of the task's training prompts are evaluated every 2 steps, and the policy in `--output_dir` is the checkpoint
    of the best `eval_reward`. The evaluation rollouts see the validation prompts only, training never does."""
    from pathlib import Path

    from safetensors.torch import load_file

    from hf_unmask.tasks import get_task
    from hf_unmask.trainer import UnmaskingGRPOTrainer
    from hf_unmask.trainer.script import main, make_parser

    seen: dict[str, list] = {"train": [], "eval": []}
    real = UnmaskingGRPOTrainer._generate_and_score_completions

    def recording(self, inputs):
        seen["train" if self.model.training else "eval"].append([x["prompt"] for x in inputs])
        return real(self, inputs)

    monkeypatch.setattr(UnmaskingGRPOTrainer, "_generate_and_score_completions", recording)
    recipe = Path(__file__).resolve().parents[2] / "scripts" / "recipes" / "builtin_cpu.yaml"
    out = tmp_path / "policy"
    flags = [
        "--config", recipe, "--output_dir", out, "--max_steps", "4", "--per_device_train_batch_size", "16",
        "--task_train_size", "72", "--task_test_size", "8", "--policy_hidden_size", "32", "--policy_ffn_size", "64",
        "--disable_tqdm", "true", "--logging_steps", "1", "--warmup_steps", "0", "--num_iterations", "1",
        "--eval_num_examples", "0", "--eval_steps", "2", "--save_steps", "2", "--validation_size", "8",
        "--per_device_eval_batch_size", "8",
    ]  # fmt: skip
    script_args, args = make_parser().parse_args_and_config([str(f) for f in flags])
    assert args.load_best_model_at_end and args.eval_strategy == "steps" and args.num_generations_eval == 1
    with caplog.at_level(logging.WARNING, logger="hf_unmask.trainer"):
        trainer = main(script_args, args)
    best = trainer.state.best_global_step
    evals = {h["step"]: h["eval_reward"] for h in trainer.state.log_history if "eval_reward" in h}
    assert sorted(evals) == [2, 4] and evals[best] == max(evals.values()), evals
    generated = get_task("program_trace").dataset(n_train=72, n_test=8, seed=0)
    validation, test = generated["train"]["prompt"][64:], generated["test"]["prompt"]
    assert [sorted(batch) for batch in seen["eval"]] == [sorted(validation)] * 2  # one evaluation every 2 steps
    trained = {p for batch in seen["train"] for p in batch}
    assert trained and not trained & set(validation) and not trained & set(test)
    assert "Validation: 8 of the 72 training prompts of the built-in task program_trace" in caplog.text
    saved, at_best = load_file(out / "model.safetensors"), load_file(out / f"checkpoint-{best}" / "model.safetensors")
    assert saved.keys() == at_best.keys() and all(torch.equal(saved[k], at_best[k]) for k in saved)
    assert f"step {best} of 4" in caplog.text
