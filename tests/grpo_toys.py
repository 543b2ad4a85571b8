"""Small, seeded pieces for the GRPO trainer tests: a random tiny dLLM with the built-in tokenizer, a toy dataset of
built-in-task prompts, toy rewards and a fast `UnmaskingGRPOConfig`.

The dLLM is the built-in model class (`TinyDLLMForMaskedDiffusion`) with random weights (2 layers, d = 32), drawn
with a large init range so the prompt changes the predictions and the confidences spread out. It is untrained, so
the task verifiers score ~0 on it: rewards here are toys whose value depends on the unmasking order or the NFE.
"""

from __future__ import annotations

from typing import Any

import torch
from datasets import Dataset

from hf_unmask.models.tiny import TinyDLLMConfig, TinyDLLMForMaskedDiffusion, build_tokenizer
from hf_unmask.trainer import UnmaskingGRPOConfig, UnmaskingGRPOTrainer


def tiny_dllm(seed: int = 0) -> tuple[TinyDLLMForMaskedDiffusion, Any]:
    """A seeded random tiny dLLM (built-in architecture and tokenizer), in eval mode."""
    tokenizer = build_tokenizer()
    config = TinyDLLMConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        initializer_range=0.3,
        mask_token_id=tokenizer.mask_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = TinyDLLMForMaskedDiffusion(config).eval()
    with torch.no_grad():
        # A random head sometimes proposes [MASK] itself, which the generation loop writes back as a "decoded" token
        # that is still masked (see the report: the loop should exclude the mask id from token choice). Make the
        # mask logit hugely negative: feature 0 of the final norm is pinned near +10 and only the mask row reads it.
        model.norm.bias[0] = 10.0
        model.lm_head.weight[:, 0] = 0.0
        model.lm_head.weight[tokenizer.mask_token_id, 0] = -100.0
    return model, tokenizer


def toy_dataset(n: int = 16, seed: int = 0) -> Dataset:
    """`n` distinct `sort_digits`-style prompts with a `reference` column."""
    gen = torch.Generator().manual_seed(seed)
    rows, seen = [], set()
    while len(rows) < n:
        digits = torch.randint(0, 10, (int(torch.randint(3, 7, (1,), generator=gen)),), generator=gen).tolist()
        prompt = "sort : " + " ".join(map(str, digits))
        if prompt in seen:
            continue
        seen.add(prompt)
        rows.append({"prompt": prompt, "reference": " ".join(map(str, sorted(digits)))})
    return Dataset.from_list(rows)


def constant_reward(prompts: list, completions: list, **kwargs: Any) -> list[float]:
    """Every completion is 'correct': with alpha > 0 the reward only depends on the NFE."""
    return [1.0] * len(completions)


class MatchReward:
    """Fraction of the first `n_tokens` completion tokens equal to the `target` column (a measurable, order-dependent
    'correctness' for a random dLLM: the target is its own one-token-per-step greedy decode)."""

    required_columns = ("target",)
    __name__ = "match_reward"

    def __init__(self, n_tokens: int) -> None:
        self.n_tokens = n_tokens

    def __call__(self, prompts: list, completions: list, target: list, **kwargs: Any) -> list[float]:
        scores = []
        for completion, reference in zip(completions, target):
            got, want = completion.split()[: self.n_tokens], reference.split()[: self.n_tokens]
            scores.append(sum(a == b for a, b in zip(got, want)) / self.n_tokens)
        return scores


def small_config(output_dir: str, **overrides: Any) -> UnmaskingGRPOConfig:
    """A fast configuration: L = 12, BL = 6, G = 4, 8 rollouts per step, a small policy, no saving, no warm-up."""
    values: dict[str, Any] = dict(
        output_dir=str(output_dir),
        gen_length=12,
        block_length=6,
        num_generations=4,
        per_device_train_batch_size=8,
        max_steps=2,
        warmup_steps=0,
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        policy_hidden_size=32,
        policy_num_heads=2,
        policy_ffn_size=64,
    )
    values.update(overrides)
    return UnmaskingGRPOConfig(**values)


def make_trainer(dllm, tmp_path, reward=constant_reward, dataset=None, **overrides):
    """An `UnmaskingGRPOTrainer` on `dllm` = (model, tokenizer) with `small_config(tmp_path / "out", **overrides)`."""
    model, tokenizer = dllm
    return UnmaskingGRPOTrainer(
        dllm=model,
        processing_class=tokenizer,
        reward_funcs=reward,
        args=small_config(tmp_path / "out", **overrides),
        train_dataset=dataset if dataset is not None else toy_dataset(),
    )


def state_of(module):
    """A detached copy of the module's state dict."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def policy_inputs(trainer, rows):
    """A generation batch as the dataloader gives it: each of `rows` repeated G times."""
    data = trainer.train_dataset
    return [data[i] for i in rows for _ in range(trainer.num_generations)]
