"""UnmaskingGRPOConfig and the checks of the trainer's input: paper defaults, bad values with the fix, errors that come
before any rollout."""

from __future__ import annotations

import pytest
from grpo_toys import (
    MatchReward,
    constant_reward,
    make_trainer,
    policy_inputs,
    small_config,
    toy_dataset,
)

from hf_unmask.trainer import UnmaskingGRPOConfig, UnmaskingGRPOTrainer
from hf_unmask.trainer import rollouts as rollouts_module

# --------------------------------------------------------------------------------------------------- config


def test_config_defaults_are_the_papers(tmp_path):
    config = UnmaskingGRPOConfig(output_dir=str(tmp_path))
    assert (config.num_generations, config.epsilon, config.num_iterations, config.beta) == (8, 0.5, 2, 0.0)
    assert config.scale_rewards == "none" and config.reward_form == "multiplicative"
    assert (config.learning_rate, config.adam_beta1, config.adam_beta2) == (3e-5, 0.9, 0.99)
    assert (config.weight_decay, config.max_grad_norm, config.warmup_steps, config.num_train_epochs) == (
        0.1,
        0.2,
        100,
        1,
    )
    assert str(config.lr_scheduler_type.value) == "cosine"
    assert (config.gen_length, config.block_length, config.policy_temperature) == (256, 32, 1.0)
    assert config.eval_policy_temperature == 0.5  # BL < L; full diffusion gets 1.0
    assert UnmaskingGRPOConfig(output_dir=str(tmp_path), block_length=256).eval_policy_temperature == 1.0
    assert (config.policy_hidden_size, config.policy_num_heads, config.policy_ffn_size) == (128, 2, 512)
    assert config.policy_init_bias == -2.0 and config.action_mode == "bernoulli"
    assert (config.expert_steering, config.expert_threshold, config.expert_block_length) == (False, 0.9, 32)
    assert config.bf16 is False and config.max_completion_length == 256


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(gen_length=64, block_length=10), "block_length=10 does not divide gen_length=64"),
        (dict(num_generations=1), "num_generations (G) must be >= 2"),
        (dict(alpha=-1.0), "alpha must be a number >= 0"),
        (dict(reward_form="exponential"), "Unknown reward_form"),
        (dict(action_mode="greedy"), "Unknown action_mode"),
        (dict(scale_rewards="prompt"), "Unknown scale_rewards"),
        (dict(expert_steering=True, gen_length=64, expert_block_length=24), "expert_block_length=24 does not divide"),
        (
            dict(expert_steering=True, num_generations=4, per_device_train_batch_size=2, steps_per_generation=2),
            "multiple of num_generations",
        ),
        (dict(policy_hidden_size=30, policy_num_heads=4), "heads of even size"),
        (dict(use_vllm=True), "use_vllm=True is not supported by UnmaskingGRPOTrainer: rollouts are diffusion"),
        (dict(beta=0.1, sync_ref_model=True), "sync_ref_model=True is not supported"),
        (dict(cast_lm_head_to_fp32=True), "Drop --cast_lm_head_to_fp32"),
    ],
)
def test_config_rejects_bad_values_with_the_fix(tmp_path, overrides, message):
    with pytest.raises(ValueError) as err:
        UnmaskingGRPOConfig(output_dir=str(tmp_path), **overrides)
    assert message in str(err.value)


# --------------------------------------------------------------------------------------------------- bad input


@pytest.fixture
def no_rollouts(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a rollout ran before the input was validated")

    monkeypatch.setattr(rollouts_module, "diffusion_generate", forbidden)


def test_dataset_without_the_answer_column_fails_before_any_rollout(dllm, tmp_path, no_rollouts):
    data = toy_dataset().rename_column("reference", "solution").add_column("other", [0] * 16)
    with pytest.raises(ValueError, match=r"needs the column\(s\) \['target'\].*--answer_column"):
        make_trainer(dllm, tmp_path, reward=MatchReward(4), dataset=data)
    # a reward that declares nothing: the config names the columns instead
    with pytest.raises(ValueError, match=r"\['answer'\]"):
        make_trainer(dllm, tmp_path, dataset=data, reward_columns=["answer"])
    with pytest.raises(ValueError, match="no 'prompt' column"):
        make_trainer(dllm, tmp_path, dataset=data.rename_column("prompt", "question"))


def test_a_reward_unfit_for_trls_call_fails_before_any_rollout_uncalled(dllm, tmp_path, no_rollouts):
    """Read from the signature, not by calling the reward (a reward with side effects is only called on rollouts)."""
    calls = []

    def crashes(prompts, completions):  # no **kwargs: TRL passes trainer_state, dataset columns...
        calls.append(completions)
        return [0.0] * len(completions)

    with pytest.raises(TypeError, match="must accept \\*\\*kwargs"):
        make_trainer(dllm, tmp_path, reward=crashes)

    def reads_answer(prompts, completions, answer, **kwargs):  # toy_dataset has `reference`, not `answer`
        calls.append(completions)
        return [0.0] * len(completions)

    with pytest.raises(ValueError, match=r"reads the column\(s\) \['answer'\], which train_dataset lacks"):
        make_trainer(dllm, tmp_path, reward=reads_answer)
    assert calls == []


def test_reward_returning_the_wrong_length_later_is_reported_on_that_call(dllm, tmp_path, monkeypatch):
    def short_for_big_batches(prompts, completions, **kwargs):
        return [1.0] * min(len(completions), 2)

    trainer = make_trainer(dllm, tmp_path, reward=short_for_big_batches)  # nothing is called before rollouts
    with pytest.raises(ValueError, match="short_for_big_batches' returned 2 rewards, but 8 were expected"):
        trainer._generate_and_score_completions(policy_inputs(trainer, [0, 1]))


def test_config_errors_come_before_any_rollout(dllm, tmp_path, no_rollouts):
    for overrides, message in ((dict(block_length=5), "does not divide"), (dict(num_generations=1), ">= 2")):
        with pytest.raises(ValueError, match=message):
            make_trainer(dllm, tmp_path, **overrides)
    args = small_config(tmp_path)
    args.block_length = 5  # edited after construction: the trainer checks again
    with pytest.raises(ValueError, match="does not divide"):
        UnmaskingGRPOTrainer(
            dllm=dllm[0],
            processing_class=dllm[1],
            reward_funcs=constant_reward,
            args=args,
            train_dataset=toy_dataset(),
        )
