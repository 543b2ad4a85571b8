"""The paper's training environment and update rule: blocks that end with masks left, expert steering scored over
every masked position, and no optimiser update from a batch whose advantages are all 0."""

from __future__ import annotations

import pytest
import torch
from grpo_toys import constant_reward, make_trainer, policy_inputs, small_config, state_of


def recording_reward(calls):
    def reward(prompts, completions, **kwargs):
        calls.append(list(completions))
        return [float(len(c.split()) > 0) for c in completions]  # an empty (incomplete) answer scores 0

    return reward


def never_unmask(trainer):
    """Make the policy's unmask probability ~0 everywhere (logit -40)."""
    head = trainer.policy.network.head
    with torch.no_grad():
        head.weight.zero_()
        head.bias.fill_(-40.0)


@pytest.mark.parametrize("finish_blocks", [False, True])
def test_a_never_unmask_policy_leaves_its_blocks_masked_unless_blocks_are_finished(dllm, tmp_path, finish_blocks):
    calls = []
    trainer = make_trainer(dllm, tmp_path, reward=recording_reward(calls), rollout_finish_blocks=finish_blocks)
    never_unmask(trainer)
    batch = trainer._generate_and_score_completions(policy_inputs(trainer, [0, 1]))
    model, tokenizer = dllm
    L = trainer.args.gen_length
    assert batch["nfe"].tolist() == [L] * 8  # BL steps per block either way
    assert not batch["action"].any()  # the policy itself never unmasked
    # the final canvas is not returned by the trainer: regenerate through the same rollout function
    from hf_unmask.generation import encode_prompts
    from hf_unmask.trainer.rollouts import rollout

    encoded = encode_prompts(tokenizer, [r["prompt"] for r in policy_inputs(trainer, [0])], device="cpu")
    ids, mask = encoded.input_ids, encoded.attention_mask
    with trainer._training_setting() as policy:
        out = rollout(
            model, ids, mask, policy, gen_length=L, block_length=trainer.args.block_length,
            generator=torch.Generator().manual_seed(0), finish_blocks=finish_blocks,
        )  # fmt: skip
    still_masked = (out["sequences"][:, ids.shape[1] :] == tokenizer.mask_token_id).float().mean().item()
    if finish_blocks:  # topped up by the dLLM's confidence: complete answers
        assert still_masked == 0.0
        assert all(c for c in calls[-1]) and batch["task_rewards"].eq(1.0).all()
    else:  # the paper: every position stays [MASK], decoded as an empty answer that earns the reward of one
        assert still_masked == 1.0
        assert calls[-1] == [""] * 8 and batch["task_rewards"].eq(0.0).all() and batch["rewards"].eq(0.0).all()


def test_evaluation_rollouts_finish_their_blocks(dllm, tmp_path, generate_calls):
    trainer = make_trainer(dllm, tmp_path)
    trainer._generate_and_score_completions(policy_inputs(trainer, [0]))
    assert generate_calls[-1]["finish_blocks"] is False  # training: the paper's environment by default
    trainer.model.eval()
    trainer._generate_and_score_completions(policy_inputs(trainer, [0]))
    assert generate_calls[-1]["finish_blocks"] is True


def test_expert_steering_scores_over_every_masked_position_by_default(dllm, tmp_path):
    assert small_config(tmp_path).expert_scoring == "policy"
    trainer = make_trainer(
        dllm, tmp_path, expert_steering=True, expert_block_length=6, expert_threshold=0.3, block_length=12
    )
    batch = trainer._generate_and_score_completions(policy_inputs(trainer, [0, 1]))
    expert = batch["is_expert"]
    live = batch["live"][expert]
    eligible, masked = batch["eligible"][expert][live], batch["masked"][expert][live]
    assert torch.equal(eligible, masked)
    assert (masked.sum(-1) > 6).any()  # more than the expert's block of 6 is scored


def optimizer_state_size(trainer):
    return sum(len(state) for state in trainer.optimizer.state.values())


@pytest.mark.parametrize("skip", [True, False])
def test_a_zero_advantage_batch_leaves_weights_and_optimizer_state_unchanged(dllm, tmp_path, skip):
    # every completion is "correct" and alpha = 0: all rewards are 1, every advantage is 0
    trainer = make_trainer(
        dllm, tmp_path, reward=constant_reward, alpha=0.0, skip_zero_advantage_steps=skip, weight_decay=0.1
    )
    before = state_of(trainer.policy)
    trainer.train()
    after = state_of(trainer.policy)
    unchanged = all(torch.equal(before[k], after[k]) for k in before)
    if skip:
        assert unchanged and optimizer_state_size(trainer) == 0
        assert trainer._zero_advantage_skip.skipped == trainer.args.max_steps
        assert [h["skipped_zero_advantage"] for h in trainer.state.log_history if "skipped_zero_advantage" in h] == [
            1.0
        ] * trainer.args.max_steps
    else:  # AdamW still steps: weight decay shrinks the weights and its state fills
        assert not unchanged and optimizer_state_size(trainer) > 0


def test_a_batch_with_signal_is_not_skipped(dllm, tmp_path):
    def varied(prompts, completions, **kwargs):
        return [float(i % 2) for i in range(len(completions))]

    trainer = make_trainer(dllm, tmp_path, reward=varied, alpha=0.0, max_steps=1)
    before = state_of(trainer.policy)
    trainer.train()
    after = state_of(trainer.policy)
    assert trainer._zero_advantage_skip.skipped == 0
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_zero_advantage_steps_are_not_skipped_when_the_loss_has_other_terms(dllm, tmp_path):
    trainer = make_trainer(dllm, tmp_path, reward=constant_reward, alpha=0.0, entropy_floor=0.6, max_steps=1)
    trainer.train()
    assert trainer._zero_advantage_skip.skipped == 0


def test_bad_environment_flags_are_refused(tmp_path):
    with pytest.raises(ValueError, match="rollout_finish_blocks must be true or false"):
        small_config(tmp_path, rollout_finish_blocks="yes")
