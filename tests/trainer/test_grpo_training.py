"""Training runs: a step changes the policy and not the dLLM, reproducibility, resuming, learning in a few steps."""

from __future__ import annotations

import torch
from grpo_toys import (
    MatchReward,
    constant_reward,
    make_trainer,
    small_config,
    state_of,
    tiny_dllm,
    toy_dataset,
)

from hf_unmask.generation import diffusion_generate
from hf_unmask.strategies import TopKConfidence, UnmaskingStrategy
from hf_unmask.trainer import UnmaskingGRPOTrainer

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


def varied_reward(prompts, completions, **kwargs):
    """A deterministic reward with a learning signal (no step has all advantages 0, so none is skipped)."""
    return [float(len(set(c.split())) % 3) / 2 for c in completions]


def test_resuming_from_a_checkpoint_gives_the_uninterrupted_result(dllm, tmp_path):
    settings = dict(
        max_steps=4, save_strategy="steps", save_steps=2, learning_rate=3e-3, warmup_steps=1, reward=varied_reward
    )
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
