"""What the trainer saves and pushes (the inference policy, its card), dataset columns for rewards, evaluation."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from datasets import Dataset
from grpo_toys import (
    make_trainer,
    policy_inputs,
    toy_dataset,
)

from hf_unmask.strategies import ConfidencePolicy, UnmaskingStrategy

# --------------------------------------------------------------------------------------------------- saving / Hub


def test_saved_policy_is_the_inference_policy_with_trained_for(dllm, tmp_path):
    trainer = make_trainer(dllm, tmp_path, max_steps=1, task_name="sort_digits", train_dataset_name="toy")
    trainer.train()
    out = tmp_path / "final"
    trainer.save_model(str(out))
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "README.md", "training_config.json"} <= names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl"))]
    policy = UnmaskingStrategy.from_pretrained(out)
    assert isinstance(policy, ConfidencePolicy)
    assert (policy.mode, policy.temperature) == ("bernoulli-argmax", 0.5)
    assert policy.trained_for["gen_length"] == 12 and policy.trained_for["block_length"] == 6
    assert policy.trained_for["training_steps"] == 1 and policy.trained_for["task"] == "sort_digits"
    assert policy.trained_for["alpha"] == 1.0 and policy.trained_for["temperature"] == 1.0
    assert all(torch.equal(v, trainer.policy.state_dict()[k]) for k, v in policy.state_dict().items())
    assert (trainer.policy.mode, trainer.policy.temperature) == ("bernoulli", 1.0)  # training settings restored
    config = json.loads((out / "training_config.json").read_text())
    assert config["alpha"] == 1.0 and config["gen_length"] == 12
    assert "ConfidencePolicy" in (out / "README.md").read_text()


def test_push_to_hub_uses_the_policy_card_with_the_evaluation(dllm, tmp_path, monkeypatch):
    from hf_unmask import hub

    pushed = {}

    def fake_push(folder, repo_id, **kwargs):
        pushed["repo_id"] = repo_id
        pushed["files"] = {p.name: p.read_bytes() for p in Path(folder).iterdir()}
        return "commit"

    monkeypatch.setattr(hub, "push_folder", fake_push)
    trainer = make_trainer(dllm, tmp_path, max_steps=1, hub_model_id="me/tiny-policy")
    trainer.train()
    rows = [{"strategy": "ConfidencePolicy", "budget": "alpha=1", "accuracy": 0.5, "nfe_mean": 7.5}]
    assert trainer.push_to_hub(evaluation_results=rows) == "commit"
    assert pushed["repo_id"] == "me/tiny-policy"
    assert {"config.json", "model.safetensors", "README.md"} <= set(pushed["files"])
    card = pushed["files"]["README.md"].decode()
    assert "7.5" in card and "me/tiny-policy" in card
    assert json.loads(pushed["files"]["config.json"])["trained_for"]["training_steps"] == 1


def test_untrained_dataset_row_types_are_kept_for_rewards(dllm, tmp_path):
    """Dataset columns reach the reward function unchanged, one value per completion (TRL's convention)."""
    seen = {}

    def reads_columns(prompts, completions, reference, number, **kwargs):
        seen["reference"], seen["number"] = list(reference), list(number)
        return [0.0] * len(completions)

    data = Dataset.from_list([{"prompt": f"sort : {i} 1", "reference": f"1 {i}", "number": i} for i in range(8)])
    trainer = make_trainer(dllm, tmp_path, reward=reads_columns, dataset=data)
    trainer._generate_and_score_completions(policy_inputs(trainer, [3, 5]))
    assert seen["number"] == [3] * 4 + [5] * 4 and seen["reference"][0] == "1 3"


def test_evaluate_rolls_out_the_inference_policy(dllm, tmp_path):
    trainer = make_trainer(dllm, tmp_path)
    trainer.eval_dataset = toy_dataset(4, seed=1)
    metrics = trainer.evaluate()
    assert {"eval_reward", "eval_nfe/mean", "eval_correctness", "eval_loss"} <= set(metrics)
    assert (trainer.policy.mode, trainer.policy.temperature) == ("bernoulli", 1.0)
