"""Rollouts with generate's diffusion KV cache: every rollout generate call gets the cache settings, the
recorded log-probabilities are those of what the policy saw, and a step trains the policy."""

from __future__ import annotations

import pytest
import torch
from grpo_toys import make_trainer, policy_inputs, small_config, state_of, toy_dataset

from hf_unmask.trainer import UnmaskingGRPOConfig, UnmaskingGRPOTrainer


def varied(prompts, completions, **kwargs):
    return [float(i % 2) for i in range(len(completions))]


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_a_cached_grpo_step_trains_on_what_the_policy_saw(dllm, tmp_path, generate_calls, mode):
    cached = dict(rollout_use_cache=True, rollout_cache_implementation=mode)
    steering = dict(expert_steering=True, expert_block_length=6, block_length=6)
    trainer = make_trainer(dllm, tmp_path, reward=varied, max_steps=1, num_iterations=1, **cached, **steering)
    batch = trainer._generate_and_score_completions(policy_inputs(trainer, [0, 1]))
    assert len(generate_calls) == 2  # the policy's rollouts and the expert's, both with the cache
    assert all(call["use_cache"] is True and call["cache_implementation"] == mode for call in generate_calls)

    # the cache changes what the policy sees (stale confidences inside a block) ...
    uncached = make_trainer(dllm, tmp_path / "uncached", reward=varied, max_steps=1, num_iterations=1, **steering)
    reference = uncached._generate_and_score_completions(policy_inputs(uncached, [0, 1]))
    steps = min(batch["live"].shape[1], reference["live"].shape[1])
    assert not torch.equal(batch["confidence"][:8, :steps], reference["confidence"][:8, :steps])
    # ... and the trajectory records it: the loss recomputes exactly the rollout's log-probabilities (ratio 1)
    policy, live = trainer.policy, batch["live"]
    own = ~batch["is_expert"]
    rows, steps = (live & own[:, None]).nonzero(as_tuple=True)
    states = {k: batch[k][rows, steps] for k in ("confidence", "masked", "eligible", "time")}
    recomputed = policy.log_prob(states, batch["action"][rows, steps])
    assert torch.allclose(recomputed, batch["old_logps"][rows, steps], atol=1e-5)
    trainer.compute_loss(trainer.model, batch)
    assert trainer._metrics["train"]["clip_fraction"][-1] == 0.0

    before = state_of(trainer.policy)
    trainer.train()
    assert any(not torch.equal(v, trainer.policy.state_dict()[k]) for k, v in before.items())
    assert trainer.state.log_history[0]["nfe/mean"] > 0


def test_cache_settings_are_checked_naming_the_flag(tmp_path, tiny_masked_lm):
    with pytest.raises(
        ValueError, match="--rollout_cache_implementation prefix or --rollout_cache_implementation dual"
    ):
        UnmaskingGRPOConfig(output_dir=str(tmp_path), rollout_use_cache=True, rollout_cache_implementation="full")
    from hf_unmask.models.tiny import build_tokenizer

    with pytest.raises(ValueError, match="BertForMaskedLM has no diffusion KV cache.*Drop --rollout_use_cache"):
        UnmaskingGRPOTrainer(
            dllm=tiny_masked_lm,
            processing_class=build_tokenizer(),
            reward_funcs=varied,
            args=small_config(tmp_path, rollout_use_cache=True),
            train_dataset=toy_dataset(),
        )


def test_the_deprecated_rollout_cache_mode_still_sets_the_implementation(tmp_path):
    with pytest.warns(FutureWarning, match="rollout_cache_mode is deprecated.*rollout_cache_implementation") as caught:
        config = UnmaskingGRPOConfig(output_dir=str(tmp_path), rollout_use_cache=True, rollout_cache_mode="dual")
    assert config.rollout_cache_implementation == "dual" and config.rollout_cache_mode is None
    assert caught[0].filename == __file__
