"""GRPO on a `HiddenStatePolicy` (`policy_type="hidden_states"`, the paper's ablation): the policy reads the dLLM's
last hidden states, the rollouts record them, the loss and the recorded log-probs use them, the saved policy loads
back and generates, and the combinations that cannot give hidden states fail before any rollout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from grpo_toys import (
    constant_reward,
    make_trainer,
    policy_inputs,
    small_config,
    state_of,
    tiny_dllm,
    toy_dataset,
)

from hf_unmask.cli import main as cli
from hf_unmask.strategies import ConfidencePolicy, HiddenStatePolicy, UnmaskingPolicy
from hf_unmask.trainer import UnmaskingGRPOTrainer
from hf_unmask.trainer import rollouts as rollouts_module
from hf_unmask.trainer.rollouts import step_log_probs
from hf_unmask.trainer.script import main, make_parser

CPU_RECIPE = Path(__file__).resolve().parents[2] / "scripts" / "recipes" / "builtin_cpu.yaml"

# the config's default policy_* sizes: a hidden-state policy ignores them (and warns when they are changed)
HIDDEN = dict(policy_type="hidden_states", policy_hidden_size=128, policy_num_heads=2, policy_ffn_size=512)


def varied(prompts, completions, **kwargs):
    """Rewards that differ within each group, so every step has non-zero advantages."""
    return [float(i % 2) for i in range(len(completions))]


def hidden_trainer(dllm, tmp_path, **overrides):
    return make_trainer(dllm, tmp_path, **{**HIDDEN, **overrides})


# --------------------------------------------------------------------------------------------------- training


def test_grpo_steps_train_a_hidden_state_policy_sized_after_the_dllm(dllm, tmp_path):
    model, _ = dllm
    trainer = hidden_trainer(dllm, tmp_path, reward=varied, max_steps=2, beta=0.04, policy_init_bias=0.0)
    policy = trainer.policy
    assert isinstance(policy, HiddenStatePolicy) and policy.requires_hidden_states
    config = model.config  # one block as wide as the dLLM: its width, heads and FFN
    assert (policy.input_size, policy.hidden_size, policy.num_heads, policy.ffn_size) == (
        config.hidden_size,
        config.hidden_size,
        config.num_attention_heads,
        config.intermediate_size,
    )
    assert (policy.mode, policy.temperature) == ("bernoulli", 1.0)
    assert isinstance(trainer.ref_policy, HiddenStatePolicy)  # the KL reference: a frozen copy
    before = state_of(policy)
    trainer.train()
    assert trainer.state.global_step == 2
    after = state_of(trainer.policy)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(v, trainer.ref_policy.state_dict()[k]) for k, v in before.items())
    logged = [row for row in trainer.state.log_history if "loss" in row]
    assert logged and all(torch.isfinite(torch.tensor(row["loss"])) for row in logged)
    assert any("kl" in row for row in logged)


def test_rollouts_record_hidden_states_and_their_log_probs_reproduce(dllm, tmp_path):
    model, _ = dllm
    trainer = hidden_trainer(dllm, tmp_path, reward=varied, beta=0.04, policy_init_bias=0.0)
    batch = trainer._generate_and_score_completions(policy_inputs(trainer, [0, 1]))
    n, T, L = batch["masked"].shape
    assert batch["hidden_states"].shape == (n, T, L, model.config.hidden_size)
    live = batch["live"]
    assert batch["hidden_states"][live].abs().sum(-1).gt(0).all()  # live steps hold real hidden states
    # the log-probs recorded while sampling = those recomputed from the recorded hidden states (ratio 1 at first)
    policy = trainer.policy
    with trainer._training_setting():
        recomputed = step_log_probs(policy, batch)
    assert torch.allclose(recomputed[live], batch["old_logps"][live], atol=1e-5)
    assert torch.allclose(batch["ref_logps"][live], batch["old_logps"][live], atol=1e-5)
    for i in range(n):  # and with the policy's public log_prob over the states it saw
        states = {k: batch[k][i][live[i]] for k in ("hidden_states", "masked", "eligible", "time")}
        assert torch.allclose(policy.log_prob(states, batch["action"][i][live[i]]), batch["old_logps"][i][live[i]],
                              atol=1e-5)  # fmt: skip
    # the loss reads the hidden states: it back-propagates into the policy's input-facing weights
    policy.zero_grad()
    loss = trainer.compute_loss(trainer.model, batch)
    loss.backward()
    grads = [p.grad for p in policy.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and grads and any(g.abs().sum() > 0 for g in grads)
    with pytest.raises(KeyError, match="reads 'hidden_states'"):
        step_log_probs(policy, {k: v for k, v in batch.items() if k != "hidden_states"})


def test_rollout_batches_of_several_generate_calls_concatenate_hidden_states(dllm, tmp_path, generate_calls):
    calls = generate_calls
    trainer = hidden_trainer(dllm, tmp_path, rollout_batch_size=3)
    batch = trainer._generate_and_score_completions(policy_inputs(trainer, [0, 1]))
    assert len(calls) == 3 and all(call["use_cache"] is False for call in calls)
    assert batch["hidden_states"].shape[:3] == batch["masked"].shape and batch["hidden_states"].shape[0] == 8
    with trainer._training_setting():
        recomputed = step_log_probs(trainer.policy, batch)
    assert torch.allclose(recomputed[batch["live"]], batch["old_logps"][batch["live"]], atol=1e-5)


# --------------------------------------------------------------------------------------------------- saving


def test_saved_hidden_state_policy_loads_back_and_generates(dllm, tmp_path):
    model, tokenizer = dllm
    trainer = hidden_trainer(dllm, tmp_path, max_steps=1, task_name="sort_digits", train_dataset_name="toy")
    trainer.train()
    out = tmp_path / "final"
    trainer.save_model(str(out))
    policy = UnmaskingPolicy.from_pretrained(out)
    assert isinstance(policy, HiddenStatePolicy) and policy.input_size == model.config.hidden_size
    assert (policy.mode, policy.temperature) == ("bernoulli-argmax", 0.5)  # the inference setting
    assert all(torch.equal(v, trainer.policy.state_dict()[k]) for k, v in policy.state_dict().items())
    # trained_for records the run as for a confidence policy
    assert policy.trained_for == {
        "gen_length": 12, "block_length": 6, "alpha": 1.0, "temperature": 1.0, "task": "sort_digits",
        "dataset": "toy", "training_steps": 1, "reward_form": "multiplicative", "num_generations": 4,
    }  # fmt: skip
    assert json.loads((out / "training_config.json").read_text())["policy_type"] == "hidden_states"
    card = (out / "README.md").read_text()
    assert "# HiddenStatePolicy" in card and f"dLLM last hidden states ({model.config.hidden_size}-d)" in card
    assert "HiddenStatePolicy.from_pretrained(" in card and "It reads the dLLM's last hidden states" in card
    # it runs as a strategy of generate
    input_ids = tokenizer(["sort : 3 1 2"], return_tensors="pt").input_ids
    output = model.generate(
        input_ids, strategy=policy, max_new_tokens=12, block_length=6, return_dict_in_generate=True
    )
    assert output.sequences.shape == (1, input_ids.shape[1] + 12)
    assert not (output.sequences == tokenizer.mask_token_id).any() and 2 <= int(output.nfe[0]) <= 12

    # training resumes from it (with its policy type), and a mismatched policy type is refused before any rollout
    again = hidden_trainer(dllm, tmp_path, policy_name_or_path=str(out))
    assert all(torch.equal(v, again.policy.state_dict()[k]) for k, v in policy.state_dict().items())
    with pytest.raises(ValueError, match="holds a HiddenStatePolicy.*Pass --policy_type hidden_states"):
        make_trainer(dllm, tmp_path, policy_name_or_path=str(out))


# --------------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(policy_type="hidden"), r"Unknown policy_type 'hidden'. Use one of \('confidence', 'hidden_states'\)"),
        (
            dict(HIDDEN, policy_confidence_feature="log_odds"),
            "only applies to confidence policies.*Drop --policy_confidence_feature",
        ),  # fmt: skip
        (
            dict(HIDDEN, expert_steering=True, expert_block_length=6),
            "expert rollout.*records no dLLM hidden states.*Drop --expert_steering",
        ),
        (dict(HIDDEN, rollout_use_cache=True), "hidden states of a cached forward pass.*Drop --rollout_use_cache"),
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
    args = small_config(tmp_path, **HIDDEN)
    args.rollout_use_cache = True  # edited after construction: the trainer checks the config again
    with pytest.raises(ValueError, match="Drop --rollout_use_cache"):
        UnmaskingGRPOTrainer(args=args, **kwargs)
    args = small_config(tmp_path, **HIDDEN)
    args.expert_steering, args.expert_block_length = True, 6
    with pytest.raises(ValueError, match="Drop --expert_steering"):
        UnmaskingGRPOTrainer(args=args, **kwargs)
    with pytest.raises(ValueError, match="is a ConfidencePolicy, which reads the dLLM's 'confidence'.*policy_type"):
        UnmaskingGRPOTrainer(model=ConfidencePolicy(hidden_size=32, ffn_size=64), args=small_config(tmp_path, **HIDDEN),
                             **kwargs)  # fmt: skip
    with pytest.raises(ValueError, match="reads 16-d hidden states, but the dLLM's hidden size is 32"):
        UnmaskingGRPOTrainer(model=HiddenStatePolicy(16, num_heads=2, ffn_size=32),
                             args=small_config(tmp_path, **HIDDEN), **kwargs)  # fmt: skip
    with pytest.warns(UserWarning, match="policy_hidden_size=32, policy_ffn_size=64 ignored"):
        trainer = make_trainer(dllm, tmp_path, policy_type="hidden_states")  # small_config's confidence sizes
    assert trainer.policy.hidden_size == model.config.hidden_size


# --------------------------------------------------------------------------------------------------- the script


def test_training_script_takes_policy_type(tmp_path, capsys):
    assert "--policy_type" in make_parser().format_help()
    argv = ["--config", str(CPU_RECIPE), "--output_dir", str(tmp_path), "--policy_type", "hidden_states"]
    _, args = make_parser().parse_args_and_config(argv)
    assert args.policy_type == "hidden_states" and args.dllm_name_or_path == "builtin"
    _, args = make_parser().parse_args_and_config(argv[:4])
    assert args.policy_type == "confidence"  # the default: the paper's confidence policy
    # bad combinations are one error line naming the flag, before anything is loaded
    assert cli(["train", *argv, "--rollout_use_cache", "true"]) == 2
    assert "Drop --rollout_use_cache" in capsys.readouterr().err
    assert cli(["train", *argv[:4], "--policy_type", "hidden"]) == 2
    assert "Unknown policy_type 'hidden'" in capsys.readouterr().err


def test_training_script_trains_and_evaluates_a_hidden_state_policy(tmp_path):
    folder = tmp_path / "dllm"
    model, tokenizer = tiny_dllm()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    out = tmp_path / "policy"
    argv = [
        "--config", CPU_RECIPE, "--dllm_name_or_path", folder, "--output_dir", out, "--policy_type", "hidden_states",
        "--max_steps", "1", "--per_device_train_batch_size", "8", "--task_train_size", "16", "--task_test_size", "4",
        "--save_strategy", "no", "--disable_tqdm", "true", "--logging_steps", "1", "--warmup_steps", "0",
        "--eval_strategy", "no", "--load_best_model_at_end", "false",
        "--eval_num_examples", "4", "--eval_strategies", "confidence_threshold:threshold=0.9",
    ]  # fmt: skip
    script_args, args = make_parser().parse_args_and_config([str(a) for a in argv])
    trainer = main(script_args, args)
    assert trainer.state.global_step == 1
    policy = UnmaskingPolicy.from_pretrained(out)
    assert isinstance(policy, HiddenStatePolicy) and policy.trained_for["task"] == "program_trace"
    table = json.loads((out / "evaluation" / "evaluation.json").read_text())
    assert len(table["rows"]) == 2  # the hidden-state policy and the heuristic, evaluated with generate
    assert "HiddenStatePolicy" in (out / "README.md").read_text()
