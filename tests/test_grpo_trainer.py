"""UnmaskingGRPOConfig / UnmaskingGRPOTrainer: config validation, rollouts, rewards and advantages, the loss against a
hand computation, expert steering, KL, determinism, checkpoint resume, saving and pushing, and short learning runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from datasets import Dataset

from hf_unmask.generation.loop import diffusion_generate
from hf_unmask.strategies import ConfidenceThreshold, TopKConfidence, UnmaskingPolicy, UnmaskingStrategy
from hf_unmask.trainer import UnmaskingGRPOConfig, UnmaskingGRPOTrainer
from hf_unmask.trainer import trainer as grpo_module
from tests.grpo_toys import MatchReward, constant_reward, small_config, tiny_dllm, toy_dataset


@pytest.fixture
def dllm():
    return tiny_dllm()


def make_trainer(dllm, tmp_path, reward=constant_reward, dataset=None, **overrides):
    model, tokenizer = dllm
    return UnmaskingGRPOTrainer(
        dllm=model,
        processing_class=tokenizer,
        reward_funcs=reward,
        args=small_config(tmp_path / "out", **overrides),
        train_dataset=dataset if dataset is not None else toy_dataset(),
    )


def state_of(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def policy_inputs(trainer, rows):
    """A generation batch as the dataloader gives it: each of `rows` repeated G times."""
    data = trainer.train_dataset
    return [data[i] for i in rows for _ in range(trainer.num_generations)]


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

    monkeypatch.setattr(grpo_module, "diffusion_generate", forbidden)


def test_dataset_without_the_answer_column_fails_before_any_rollout(dllm, tmp_path, no_rollouts):
    data = toy_dataset().rename_column("reference", "solution").add_column("other", [0] * 16)
    with pytest.raises(ValueError, match=r"needs the column\(s\) \['target'\].*--answer_column"):
        make_trainer(dllm, tmp_path, reward=MatchReward(4), dataset=data)
    # a reward that declares nothing: the config names the columns instead
    with pytest.raises(ValueError, match=r"\['answer'\]"):
        make_trainer(dllm, tmp_path, dataset=data, reward_columns=["answer"])
    with pytest.raises(ValueError, match="no 'prompt' column"):
        make_trainer(dllm, tmp_path, dataset=data.rename_column("prompt", "question"))


def test_reward_returning_the_wrong_length_fails_before_any_rollout(dllm, tmp_path, no_rollouts):
    def one_reward(prompts, completions, **kwargs):
        return [1.0]

    with pytest.raises(ValueError, match="returned 1 value"):
        make_trainer(dllm, tmp_path, reward=one_reward)

    def crashes(prompts, completions):  # no **kwargs: TRL passes trainer_state, dataset columns...
        return [0.0] * len(completions)

    with pytest.raises(RuntimeError, match="must accept \\*\\*kwargs"):
        make_trainer(dllm, tmp_path, reward=crashes)


def test_reward_returning_the_wrong_length_later_is_reported_on_that_call(dllm, tmp_path, monkeypatch):
    def short_for_big_batches(prompts, completions, **kwargs):
        return [1.0] * min(len(completions), 2)

    trainer = make_trainer(dllm, tmp_path, reward=short_for_big_batches)  # the 2-row probe passes
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


# --------------------------------------------------------------------------------------------------- training


def test_one_step_changes_the_policy_and_leaves_the_dllm_bit_identical(dllm, tmp_path):
    def varied(prompts, completions, **kwargs):
        return [float(i % 2) for i in range(len(completions))]

    trainer = make_trainer(dllm, tmp_path, reward=varied, max_steps=1, num_iterations=1)
    model = dllm[0]
    dllm_before, policy_before = state_of(model), state_of(trainer.policy)
    trainer.train()
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in dllm_before.items())
    assert not any(p.requires_grad for p in model.parameters()) and not model.training
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not optimised & {id(p) for p in model.parameters()}
    assert optimised == {id(p) for p in trainer.policy.parameters()}
    changed = [k for k, v in policy_before.items() if not torch.equal(v, trainer.policy.state_dict()[k])]
    assert changed
    log = trainer.state.log_history[0]
    for key in ("reward", "correctness", "nfe/mean", "unmask_fraction", "entropy", "clip_fraction", "loss"):
        assert key in log, key


def test_a_peft_dllm_stays_frozen(tmp_path):
    from peft import LoraConfig, get_peft_model

    model, tokenizer = tiny_dllm()
    peft_model = get_peft_model(model, LoraConfig(r=2, target_modules=["qkv"]))
    before = state_of(peft_model)
    trainer = UnmaskingGRPOTrainer(
        dllm=peft_model,
        processing_class=tokenizer,
        reward_funcs=constant_reward,
        args=small_config(tmp_path, max_steps=1),
        train_dataset=toy_dataset(),
    )
    trainer.train()
    assert all(torch.equal(v, peft_model.state_dict()[k]) for k, v in before.items())
    assert not any(p.requires_grad for p in peft_model.parameters())


def run(dllm, output_dir, **overrides):
    trainer = make_trainer(dllm, output_dir, **overrides)
    trainer.train(resume_from_checkpoint=overrides.get("resume_from_checkpoint"))
    return trainer


def test_a_seeded_run_is_reproducible(dllm, tmp_path):
    first = run(dllm, tmp_path / "a", max_steps=3)
    second = run(dllm, tmp_path / "b", max_steps=3)
    a, b = state_of(first.policy), state_of(second.policy)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert [h.get("loss") for h in first.state.log_history] == [h.get("loss") for h in second.state.log_history]
    third = run(dllm, tmp_path / "c", max_steps=3, seed=1)
    assert not all(torch.equal(a[k], v) for k, v in state_of(third.policy).items())


def test_resuming_from_a_checkpoint_gives_the_uninterrupted_result(dllm, tmp_path):
    settings = dict(max_steps=4, save_strategy="steps", save_steps=2, learning_rate=3e-3, warmup_steps=1)
    full = run(dllm, tmp_path / "full", **settings)
    checkpoint = tmp_path / "full" / "out" / "checkpoint-2"
    assert {"config.json", "model.safetensors", "optimizer.pt", "scheduler.pt", "trainer_state.json"} <= {
        p.name for p in checkpoint.iterdir()
    }
    resumed = run(dllm, tmp_path / "resumed", resume_from_checkpoint=str(checkpoint), **settings)
    a, b = state_of(full.policy), state_of(resumed.policy)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.state.global_step == 4
    at_checkpoint = UnmaskingStrategy.from_pretrained(checkpoint).state_dict()
    assert any(not torch.equal(at_checkpoint[k], a[k]) for k in a)  # steps 3-4 did change the policy


def test_a_speed_reward_lowers_the_mean_nfe(tmp_path):
    model, tokenizer = tiny_dllm()
    data = toy_dataset(32)
    trainer = UnmaskingGRPOTrainer(
        dllm=model,
        processing_class=tokenizer,
        reward_funcs=constant_reward,
        train_dataset=data,
        args=small_config(
            tmp_path,
            alpha=1.0,
            max_steps=12,
            learning_rate=2e-2,
            gen_length=16,
            block_length=16,
            per_device_train_batch_size=16,
            num_iterations=1,
        ),
    )
    trainer.train()
    nfe = [h["nfe/mean"] for h in trainer.state.log_history if "nfe/mean" in h]
    assert sum(nfe[-3:]) / 3 < sum(nfe[:3]) / 3 - 1.0, nfe


def test_alpha_zero_does_not_lower_correctness(tmp_path):
    """With alpha = 0 the reward is correctness only. Correctness here = agreement with the dLLM's own
    one-token-per-step greedy decode (unmasking everything at once scores ~0.53, one token per step ~0.99), so it is
    measurable in seconds. Training from a fast, sloppy policy (bias 0: p = 0.5) must not lower it."""
    model, tokenizer = tiny_dllm()
    data = toy_dataset(64)
    enc = tokenizer(list(data["prompt"]), return_tensors="pt", padding=True)
    prompt_length = enc["input_ids"].shape[1]
    careful = model.generate(
        enc["input_ids"],
        attention_mask=enc["attention_mask"],
        strategy=TopKConfidence(),
        max_new_tokens=8,
        block_length=8,
        steps=8,
    )
    targets = [tokenizer.decode(row, skip_special_tokens=True) for row in careful[:, prompt_length:]]
    data = data.add_column("target", targets)
    reward = MatchReward(8)
    args = small_config(
        tmp_path,
        alpha=0.0,
        gen_length=8,
        block_length=8,
        num_generations=8,
        per_device_train_batch_size=32,
        learning_rate=3e-3,
        policy_init_bias=0.0,
        num_iterations=1,
        max_steps=16,
    )
    trainer = UnmaskingGRPOTrainer(
        dllm=model, processing_class=tokenizer, reward_funcs=reward, train_dataset=data, args=args
    )

    def correctness():  # the training distribution, same prompts and seed before and after
        out = diffusion_generate(
            model,
            enc["input_ids"],
            attention_mask=enc["attention_mask"],
            strategy=trainer.policy,
            max_new_tokens=8,
            block_length=8,
            seed=123,
            return_dict_in_generate=True,
        )
        texts = [tokenizer.decode(row, skip_special_tokens=True) for row in out.sequences[:, prompt_length:]]
        return sum(reward(None, texts, targets)) / len(texts), out.nfe.float().mean().item()

    before, _ = correctness()
    initial = [p.detach().clone() for p in trainer.policy.parameters()]
    trainer.train()
    after, _ = correctness()
    assert any(not torch.equal(a, b) for a, b in zip(initial, trainer.policy.parameters())), "training did nothing"
    assert after >= before - 0.02, (before, after)


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
    assert isinstance(policy, UnmaskingPolicy)
    assert (policy.mode, policy.temperature) == ("bernoulli-argmax", 0.5)
    assert policy.trained_for["gen_length"] == 12 and policy.trained_for["block_length"] == 6
    assert policy.trained_for["training_steps"] == 1 and policy.trained_for["task"] == "sort_digits"
    assert policy.trained_for["alpha"] == 1.0 and policy.trained_for["temperature"] == 1.0
    assert all(torch.equal(v, trainer.policy.state_dict()[k]) for k, v in policy.state_dict().items())
    assert (trainer.policy.mode, trainer.policy.temperature) == ("bernoulli", 1.0)  # training settings restored
    config = json.loads((out / "training_config.json").read_text())
    assert config["alpha"] == 1.0 and config["gen_length"] == 12
    assert "UnmaskingPolicy" in (out / "README.md").read_text()


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
    rows = [{"strategy": "UnmaskingPolicy", "budget": "alpha=1", "accuracy": 0.5, "nfe_mean": 7.5}]
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
