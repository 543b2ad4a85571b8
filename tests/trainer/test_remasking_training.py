"""GRPO on a `RemaskingPolicy` (`policy_remasking=True`): the rollouts record the re-masking fields, the recorded
log-probabilities (both actions) reproduce in `step_log_probs` and the loss, one step trains the re-mask head, the
warm start from a saved or shipped `ConfidencePolicy`, saving / resuming, and the errors before any rollout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from grpo_toys import constant_reward, make_trainer, policy_inputs, small_config, state_of, toy_dataset

from hf_unmask.strategies import ConfidencePolicy, RemaskingPolicy, UnmaskingPolicy
from hf_unmask.trainer import UnmaskingGRPOTrainer
from hf_unmask.trainer import rollouts as rollouts_module
from hf_unmask.trainer.rollouts import REMASK_FIELDS, concat_rollouts, step_log_probs
from hf_unmask.trainer.script import make_parser

CPU_RECIPE = Path(__file__).resolve().parents[2] / "scripts" / "recipes" / "builtin_cpu.yaml"
# a fresh re-masking policy that re-masks often (bias +1), so the rollouts hold re-masks
REMASKING = dict(policy_remasking=True, policy_remask_init_bias=1.0, policy_architecture="hf_unmask")


def varied(prompts, completions, **kwargs):
    """Rewards that differ within each group, so every step has non-zero advantages."""
    return [float(i % 2) for i in range(len(completions))]


# --------------------------------------------------------------------------------------------------- training


def test_one_grpo_step_trains_the_remasking_policy_and_its_remask_head(dllm, tmp_path):
    trainer = make_trainer(dllm, tmp_path, reward=varied, max_steps=1, num_iterations=1, **REMASKING)
    policy = trainer.policy
    assert isinstance(policy, RemaskingPolicy) and (policy.mode, policy.temperature) == ("bernoulli", 1.0)
    assert policy.network.head.bias[1].item() == 1.0 and policy.hidden_size == 32
    before = state_of(policy)
    trainer.train()
    after = state_of(trainer.policy)
    assert not torch.equal(before["network.head.weight"][1], after["network.head.weight"][1])
    assert not torch.equal(before["network.head.bias"][1], after["network.head.bias"][1])
    # the two new inputs (token confidence, age) reach the network
    assert not torch.equal(before["network.input_proj.weight"][:, 1:], after["network.input_proj.weight"][:, 1:])
    log = trainer.state.log_history[0]
    assert log["remask_fraction"] > 0 and log["remasked_per_rollout"] > 0 and torch.isfinite(torch.tensor(log["loss"]))


@pytest.mark.parametrize(
    "overrides",
    [dict(), dict(rollout_use_cache=True, block_length=12, rollout_finish_blocks=True)],
    ids=["semi-ar", "full-diffusion-cache-finish-blocks"],
)
def test_recorded_log_probs_reproduce_and_the_loss_reaches_the_remask_head(dllm, tmp_path, overrides):
    trainer = make_trainer(dllm, tmp_path, reward=varied, beta=0.04, **REMASKING, **overrides)
    batch = trainer._generate_and_score_completions(policy_inputs(trainer, [0, 1]))
    for name in ("token_confidence", "decided_time", "revisable", "remask_action"):
        assert batch[name].shape == batch["masked"].shape, name
    live = batch["live"]
    assert bool(batch["remask_action"].any()) and not bool((batch["remask_action"] & ~batch["revisable"]).any())
    policy = trainer.policy
    with trainer._training_setting():
        recomputed = step_log_probs(policy, batch)
    torch.testing.assert_close(recomputed[live], batch["old_logps"][live], atol=1e-5, rtol=0)
    torch.testing.assert_close(batch["ref_logps"][live], batch["old_logps"][live], atol=1e-5, rtol=0)
    for i in range(2):  # and with the policy's public log_prob over the states it saw
        states = {k: batch[k][i][live[i]] for k in ("masked", "eligible", "time", "action", *policy.trajectory_fields)}
        torch.testing.assert_close(policy.log_prob(states), batch["old_logps"][i][live[i]], atol=1e-5, rtol=0)
    policy.zero_grad()
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    assert torch.isfinite(loss) and bool(policy.network.head.weight.grad[1].abs().sum() > 0)
    with pytest.raises(KeyError, match="reads 'token_confidence'.*re-masking fields"):
        step_log_probs(policy, {k: v for k, v in batch.items() if k != "token_confidence"})


def test_commit_only_rollouts_record_no_remasking_fields_and_concat_fills_them(dllm, tmp_path):
    trainer = make_trainer(dllm, tmp_path)
    batch = trainer._generate_and_score_completions(policy_inputs(trainer, [0]))
    assert not set(REMASK_FIELDS) & set(batch)
    n, T, L = 2, 3, 4
    plain = {"sequences": torch.zeros(n, 6), "nfe": torch.ones(n), "live": torch.ones(n, T, dtype=torch.bool),
             "masked": torch.ones(n, T, L, dtype=torch.bool)}  # fmt: skip
    longer = {"live": torch.ones(n, T + 1, dtype=torch.bool), "masked": torch.ones(n, T + 1, L, dtype=torch.bool)}
    remasked = {**plain, **longer, "remask_action": torch.ones(n, T + 1, L, dtype=torch.bool)}
    joined = concat_rollouts([plain, remasked])
    assert joined["remask_action"].shape == (2 * n, T + 1, L)
    assert not bool(joined["remask_action"][:n].any()) and bool(joined["remask_action"][n:].all())


# --------------------------------------------------------------------------------------------------- warm start


def test_warm_start_from_a_saved_or_shipped_unmasking_policy(dllm, tmp_path):
    torch.manual_seed(0)
    commit_only = ConfidencePolicy(hidden_size=32, num_heads=2, ffn_size=64, init_bias=0.5)
    with torch.no_grad():
        for p in commit_only.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    folder = tmp_path / "commit-only"
    commit_only.save_pretrained(folder)
    trainer = make_trainer(dllm, tmp_path, policy_remasking=True, policy_name_or_path=str(folder))
    policy = trainer.policy
    assert isinstance(policy, RemaskingPolicy) and policy.network.head.bias[1].item() == -6.0
    assert policy.get_config()["init_bias"] == 0.5 and policy.hidden_size == 32
    batch = trainer._generate_and_score_completions(policy_inputs(trainer, [0]))
    live = batch["live"]
    states = {k: batch[k][live] for k in ("masked", "eligible", "time", *policy.trajectory_fields)}
    commit_only.temperature = policy.temperature
    torch.testing.assert_close(
        policy.unmask_probabilities(states), commit_only.unmask_probabilities(states), atol=1e-6, rtol=1e-5
    )
    assert trainer.trained_for()["initialized_from"].endswith("commit-only")
    # a shipped policy by name, as it is or warm-started
    name = "tiny-dllm-program_trace-bl8-alpha1"
    shipped = make_trainer(dllm, tmp_path, policy_name_or_path=name).policy
    assert type(shipped) is ConfidencePolicy and shipped.hidden_size == 128
    warm = make_trainer(dllm, tmp_path, policy_remasking=True, policy_name_or_path=name).policy
    assert isinstance(warm, RemaskingPolicy) and warm.confidence_feature == shipped.confidence_feature


def test_saved_remasking_policy_loads_back_and_resumes(dllm, tmp_path):
    trainer = make_trainer(dllm, tmp_path, max_steps=1, **REMASKING)
    trainer.train()
    out = tmp_path / "final"
    trainer.save_model(str(out))
    policy = UnmaskingPolicy.from_pretrained(out)
    assert isinstance(policy, RemaskingPolicy) and (policy.mode, policy.temperature) == ("bernoulli-argmax", 0.5)
    assert all(torch.equal(v, trainer.policy.state_dict()[k]) for k, v in policy.state_dict().items())
    config = json.loads((out / "training_config.json").read_text())
    assert config["policy_remasking"] is True and config["policy_remask_init_bias"] == 1.0
    card = (out / "README.md").read_text()
    assert "# RemaskingPolicy" in card and "re-masks" in card
    again = make_trainer(dllm, tmp_path, policy_remasking=True, policy_name_or_path=str(out))
    assert all(torch.equal(v, again.policy.state_dict()[k]) for k, v in policy.state_dict().items())
    with pytest.raises(ValueError, match="holds a RemaskingPolicy, which re-masks.*Pass --policy_remasking true"):
        make_trainer(dllm, tmp_path, policy_name_or_path=str(out))


# --------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            dict(policy_remasking=True, expert_steering=True, expert_block_length=6),
            "expert rollout.*never re-masks.*Drop --expert_steering",
        ),
        (dict(policy_remasking=True, policy_type="hidden_states"), "reads the dLLM's confidence. Drop --policy_type"),
        (dict(policy_remask_init_bias=float("nan")), "policy_remask_init_bias must be a finite number"),
        (dict(policy_remasking="yes"), "policy_remasking must be true or false"),
    ],
)
def test_config_errors_name_the_problem_and_the_fix(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        small_config(tmp_path, **overrides)


def test_trainer_errors_come_before_any_rollout(dllm, tmp_path, monkeypatch):
    def no_rollout(*args, **kwargs):
        raise AssertionError("a rollout ran before the error")

    monkeypatch.setattr(rollouts_module, "diffusion_generate", no_rollout)
    model, tokenizer = dllm
    kwargs = dict(dllm=model, processing_class=tokenizer, reward_funcs=constant_reward, train_dataset=toy_dataset())
    args = small_config(tmp_path, policy_remasking=True)
    args.expert_steering, args.expert_block_length = True, 6  # edited after construction: checked again
    with pytest.raises(ValueError, match="Drop --expert_steering"):
        UnmaskingGRPOTrainer(args=args, **kwargs)
    with pytest.raises(ValueError, match="The given policy is a RemaskingPolicy.*Pass --policy_remasking true"):
        UnmaskingGRPOTrainer(model=RemaskingPolicy(hidden_size=32, ffn_size=64), args=small_config(tmp_path),
                             **kwargs)  # fmt: skip
    warm = UnmaskingGRPOTrainer(model=ConfidencePolicy(hidden_size=32, ffn_size=64),
                                args=small_config(tmp_path, policy_remasking=True), **kwargs)  # fmt: skip
    assert isinstance(warm.policy, RemaskingPolicy)  # a given commit-only policy is warm-started too


def test_training_script_takes_the_remasking_flags(tmp_path):
    help_text = make_parser().format_help()
    assert "--policy_remasking" in help_text and "--policy_remask_init_bias" in help_text
    argv = ["--config", str(CPU_RECIPE), "--output_dir", str(tmp_path)]
    _, args = make_parser().parse_args_and_config(
        [*argv, "--policy_remasking", "true", "--policy_remask_init_bias", "-4"]
    )
    assert args.policy_remasking is True and args.policy_remask_init_bias == -4.0
    _, args = make_parser().parse_args_and_config(argv)
    assert args.policy_remasking is False and args.policy_remask_init_bias == -6.0
