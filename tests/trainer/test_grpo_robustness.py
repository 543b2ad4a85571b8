"""The entropy floor (`entropy_floor` / `entropy_coef`): off by default (the paper's settings), checked on input, and
in a short seeded run it keeps the policy stochastic where the plain settings turn it deterministic, with groups of
identical rewards (`frac_reward_zero_std` -> 1) from which GRPO cannot learn."""

from __future__ import annotations

import math

import pytest
import torch
from grpo_toys import constant_reward, make_trainer, small_config, tiny_dllm, toy_dataset

from hf_unmask.trainer import UnmaskingGRPOConfig
from hf_unmask.trainer.loss import entropy_floor_penalty


def test_the_floor_is_off_by_default_and_checked(tmp_path):
    config = UnmaskingGRPOConfig(output_dir=str(tmp_path))
    assert config.entropy_floor == 0.0 and config.entropy_coef == 1.0
    with pytest.raises(ValueError, match="ln 2"):
        small_config(tmp_path, entropy_floor=0.8)
    with pytest.raises(ValueError, match="entropy_coef must be >= 0"):
        small_config(tmp_path, entropy_floor=0.1, entropy_coef=-1.0)
    with pytest.raises(ValueError, match="dpls"):
        small_config(tmp_path, entropy_floor=0.1, action_mode="dpls")


def test_the_penalty_is_the_shortfall_per_eligible_position():
    eligible = torch.tensor([[True] * 4, [True, True, False, False], [False] * 4])
    entropy = torch.tensor([4 * 0.05, 2 * 0.3, 0.0])
    penalty = entropy_floor_penalty(entropy, eligible, 0.1)
    assert penalty.tolist() == pytest.approx([0.05, 0.0, 0.0])
    # its gradient raises the entropy of a confident Bernoulli policy
    logits = torch.tensor([4.0, -4.0], requires_grad=True)
    p = torch.sigmoid(logits)
    h = -(p * p.log() + (1 - p) * (1 - p).log()).sum()
    entropy_floor_penalty(h.unsqueeze(0), torch.ones(1, 2, dtype=torch.bool), 0.3).sum().backward()
    assert logits.grad[0] > 0 and logits.grad[1] < 0  # both move towards 0, i.e. towards p = 0.5


def _run(tmp_path, **overrides):
    dllm = tiny_dllm()
    torch.manual_seed(0)
    trainer = make_trainer(
        dllm, tmp_path, reward=constant_reward, dataset=toy_dataset(32),  # the reward only ranks speed
        alpha=1.0, max_steps=14, learning_rate=3e-2, gen_length=16, block_length=16, per_device_train_batch_size=16,
        num_iterations=1, **overrides,
    )  # fmt: skip
    trainer.train()
    logs = [h for h in trainer.state.log_history if "entropy" in h]
    return [h["entropy"] for h in logs], [h["frac_reward_zero_std"] for h in logs]


def test_the_floor_keeps_the_policy_learning_where_plain_grpo_turns_deterministic(tmp_path):
    plain_entropy, plain_zero_std = _run(tmp_path / "plain")
    floor_entropy, floor_zero_std = _run(tmp_path / "floor", entropy_floor=0.3, entropy_coef=5.0)
    # plain GRPO at a high learning rate: the policy becomes (nearly) deterministic and its groups stop varying
    assert plain_entropy[-1] < 0.15 * plain_entropy[0], plain_entropy
    assert sum(plain_zero_std[-3:]) / 3 >= 0.5, plain_zero_std
    # with the floor the same run stays stochastic, so its groups keep a reward spread to learn from
    assert min(floor_entropy[-3:]) > 3 * plain_entropy[-1], (floor_entropy, plain_entropy)
    assert sum(floor_zero_std[-3:]) / 3 <= 0.5 * sum(plain_zero_std[-3:]) / 3, (floor_zero_std, plain_zero_std)
    assert all(math.isfinite(v) for v in floor_entropy)
