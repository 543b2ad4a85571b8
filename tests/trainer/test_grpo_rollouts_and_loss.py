"""Rollouts, rewards and advantages, and the GRPO loss against a hand computation (clipping, expert steering, KL)."""

from __future__ import annotations

import math

import pytest
import torch
from grpo_toys import (
    make_trainer,
    policy_inputs,
    state_of,
)

from hf_unmask.generation import diffusion_generate
from hf_unmask.strategies import ConfidenceThreshold

# --------------------------------------------------------------------------------------------------- rollouts and loss


def test_rollout_batch_holds_trajectories_rewards_and_group_advantages(dllm, tmp_path):
    calls = []

    def recording_reward(prompts, completions, reference, **kwargs):
        scores = [len(c.split()) % 3 / 2 for c in completions]  # any deterministic function of the completion
        calls.append((list(completions), scores))
        return scores

    trainer = make_trainer(dllm, tmp_path, reward=recording_reward, alpha=1.5)
    batch = trainer._generate_and_score_completions(policy_inputs(trainer, [0, 1]))
    L = trainer.args.gen_length
    n, T, width = batch["confidence"].shape
    assert n == 8 and width == L and batch["live"].shape == (8, T)
    # one live step per dLLM forward pass; the policy's own actions are eligible positions only
    assert torch.equal(batch["live"].sum(1), batch["nfe"])
    assert not (batch["action"] & ~batch["eligible"]).any()
    assert not batch["eligible"][~batch["live"]].any()
    # reward = r * ((L - NFE + 1) / L) ** alpha, advantage = reward - mean of the prompt's G rollouts
    task = torch.tensor(calls[-1][1])
    expected = task * ((L - batch["nfe"].float() + 1) / L) ** 1.5
    assert torch.allclose(batch["rewards"], expected)
    groups = expected.view(2, 4)
    assert torch.allclose(batch["advantages"], (groups - groups.mean(1, keepdim=True)).flatten(), atol=1e-6)
    # the recorded log-probs are those of the policy's training distribution (ratio 1 before any update)
    policy = trainer.policy
    for i in range(n):
        steps = batch["live"][i]
        states = {k: batch[k][i][steps] for k in ("confidence", "masked", "eligible", "time")}
        recomputed = policy.log_prob(states, batch["action"][i][steps])
        assert torch.allclose(recomputed, batch["old_logps"][i][steps], atol=1e-5)


def test_group_std_scaling(dllm, tmp_path):
    def varied(prompts, completions, **kwargs):
        return [float(i % 2) for i in range(len(completions))]

    trainer = make_trainer(dllm, tmp_path, reward=varied, alpha=0.0, scale_rewards="group")
    batch = trainer._generate_and_score_completions(policy_inputs(trainer, [0, 1]))
    groups = batch["rewards"].view(2, 4)
    expected = (groups - groups.mean(1, keepdim=True)) / (groups.std(1, keepdim=True) + 1e-4)
    assert torch.allclose(batch["advantages"], expected.flatten(), atol=1e-5)


def hand_loss(policy, batch, epsilon, expert_weight=None, beta=0.0, ref_policy=None):
    """-mean_i mean_{t live} [min(r A, clip(r) A) - beta * k3], with per-step log-probs from the policies' public
    `log_prob` (k3 = exp(q - p) - (q - p) - 1, q = log pi_ref, p = log pi)."""
    per_rollout = []
    for i in range(batch["live"].shape[0]):
        terms = []
        for t in torch.nonzero(batch["live"][i]).flatten().tolist():
            state = {k: batch[k][i, t][None] for k in ("confidence", "masked", "eligible", "time")}
            new = policy.log_prob(state, batch["action"][i, t][None])[0]
            old = batch["old_logps"][i, t]
            if expert_weight is not None and batch["is_expert"][i]:
                w_pi, w_expert = expert_weight
                new = torch.logaddexp(math.log(w_pi) + new, torch.tensor(math.log(w_expert)))
                old = torch.logaddexp(math.log(w_pi) + old, torch.tensor(math.log(w_expert)))
            ratio = torch.exp(new - old)
            a = batch["advantages"][i]
            term = torch.min(ratio * a, ratio.clamp(1 - epsilon, 1 + epsilon) * a)
            if beta:
                p = policy.log_prob(state, batch["action"][i, t][None])[0]
                q = ref_policy.log_prob(state, batch["action"][i, t][None])[0]
                term = term - beta * (torch.exp(q - p) - (q - p) - 1)
            terms.append(term)
        per_rollout.append(torch.stack(terms).mean())
    return -torch.stack(per_rollout).mean()


def test_loss_equals_a_hand_computation_with_clipping(dllm, tmp_path):
    def varied(prompts, completions, **kwargs):
        return [1.0 if i % 3 else 0.0 for i in range(len(completions))]

    trainer = make_trainer(dllm, tmp_path, reward=varied, epsilon=0.05)
    batch = trainer._generate_and_score_completions(policy_inputs(trainer, [2, 3]))
    policy = trainer.policy
    with torch.no_grad(), torch.random.fork_rng():  # move the policy away from the rollout policy: ratios != 1
        torch.manual_seed(1)
        for p in policy.parameters():
            p.add_(0.2 * torch.randn_like(p))
    loss = trainer.compute_loss(trainer.model, batch)
    expected = hand_loss(policy, batch, epsilon=0.05)
    assert torch.allclose(loss, expected, rtol=1e-5, atol=1e-7)
    assert trainer._metrics["train"]["clip_fraction"][-1] > 0  # the clipped branch was exercised
    assert not torch.allclose(expected, hand_loss(policy, batch, epsilon=1e9))
    loss.backward()
    assert all(p.grad is not None for p in policy.parameters())


def test_expert_steering_adds_one_rollout_per_group_scored_under_the_mixture(dllm, tmp_path):
    trainer = make_trainer(
        dllm, tmp_path, alpha=1.0, expert_steering=True, expert_block_length=6, expert_threshold=0.3, block_length=12
    )
    inputs = policy_inputs(trainer, [0, 1])
    batch = trainer._generate_and_score_completions(inputs)
    assert batch["is_expert"].tolist() == [False] * 8 + [True] * 2
    # the expert rollouts are Fast-dLLM's own, at the expert block length
    model, tokenizer = dllm
    enc = tokenizer([inputs[0]["prompt"], inputs[4]["prompt"]], return_tensors="pt", padding=True)
    expert = diffusion_generate(
        model,
        enc["input_ids"],
        attention_mask=enc["attention_mask"],
        strategy=ConfidenceThreshold(0.3),
        max_new_tokens=12,
        block_length=6,
        return_dict_in_generate=True,
    )
    assert torch.equal(batch["nfe"][8:], expert.nfe)
    # advantages use the G + 1 samples of each group
    groups = torch.cat([batch["rewards"][:8].view(2, 4), batch["rewards"][8:].view(2, 1)], dim=1)
    expected = groups - groups.mean(1, keepdim=True)
    assert torch.allclose(batch["advantages"][:8], expected[:, :4].flatten(), atol=1e-6)
    assert torch.allclose(batch["advantages"][8:], expected[:, 4], atol=1e-6)
    # the loss scores the expert's actions under (G/(G+1)) pi + (1/(G+1)) delta_expert
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(2)
        for p in trainer.policy.parameters():
            p.add_(0.2 * torch.randn_like(p))
    loss = trainer.compute_loss(trainer.model, batch)
    expected_loss = hand_loss(trainer.policy, batch, epsilon=0.5, expert_weight=(4 / 5, 1 / 5))
    assert torch.allclose(loss, expected_loss, rtol=1e-5, atol=1e-7)
    trainer.train()  # and a full step runs
    assert "expert/nfe" in trainer.state.log_history[0]


def test_loss_with_a_kl_term_equals_a_hand_computation(dllm, tmp_path):
    def varied(prompts, completions, **kwargs):
        return [1.0 if i % 3 else 0.0 for i in range(len(completions))]

    trainer = make_trainer(dllm, tmp_path, reward=varied, beta=0.5)
    batch = trainer._generate_and_score_completions(policy_inputs(trainer, [2, 3]))
    assert "ref_logps" in batch
    with torch.no_grad(), torch.random.fork_rng():  # move the policy away from its reference: KL > 0
        torch.manual_seed(3)
        for p in trainer.policy.parameters():
            p.add_(0.2 * torch.randn_like(p))
    loss = trainer.compute_loss(trainer.model, batch)
    expected = hand_loss(trainer.policy, batch, epsilon=0.5, beta=0.5, ref_policy=trainer.ref_policy)
    assert torch.allclose(loss, expected, rtol=1e-5, atol=1e-7)
    without_kl = hand_loss(trainer.policy, batch, epsilon=0.5)
    assert expected > without_kl + 1e-4  # the KL term is a penalty: it raises the loss
    assert trainer._metrics["train"]["kl"][-1] > 0


def test_kl_to_a_frozen_reference_policy(dllm, tmp_path):
    trainer = make_trainer(dllm, tmp_path, beta=0.1, max_steps=2)
    assert trainer.ref_policy is not None and not any(p.requires_grad for p in trainer.ref_policy.parameters())
    reference = state_of(trainer.ref_policy)
    trainer.train()
    logs = trainer.state.log_history
    assert logs[0]["kl"] == pytest.approx(0.0, abs=1e-6)  # policy == reference before the first update
    assert all(torch.equal(v, trainer.ref_policy.state_dict()[k]) for k, v in reference.items())


@pytest.mark.parametrize("mode", ["dpls", "bernoulli-argmax"])
def test_other_action_modes_train(dllm, tmp_path, mode):
    trainer = make_trainer(dllm, tmp_path, action_mode=mode, max_steps=1)
    trainer.train()
    assert math.isfinite(trainer.state.log_history[0]["loss"])
