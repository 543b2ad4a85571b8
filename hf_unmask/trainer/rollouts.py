"""Rollouts: generations of the frozen dLLM steered by a strategy, recorded step by step for the GRPO loss.

A rollout batch is a dict of tensors with the rollout as leading axis: `sequences [N, P + L]`, `nfe [N]` and the
trajectory as `[N, T, ...]` (`confidence`, `masked`, `eligible`, `action`, `time`, `live`, `log_prob`, and
`hidden_states [N, T, L, H]` when the strategy reads them, e.g. a `HiddenStatePolicy`, and the re-masking fields
`REMASK_FIELDS` when it re-masks, e.g. a `RemaskingPolicy`), where step t of row i is a dLLM forward pass when
`live[i, t]`. A policy names the recorded fields it reads (`trajectory_fields`) and turns them into its network's
inputs (`network_inputs`) and the log-probability of the recorded actions (`log_prob_from_states`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Optional

import torch

from .._warnings import warn_at_caller
from ..generation import completion_texts, completion_token_ids, diffusion_generate, encode_prompts

__all__ = [
    "HIDDEN_STATES",
    "PADDING_MASK",
    "REMASK_FIELDS",
    "STEP_FIELDS",
    "decode_completions",
    "group_advantages",
    "live_states",
    "pad_steps",
    "policy_eligible",
    "policy_feature",
    "policy_fields",
    "rollout",
    "step_log_probs",
    "tokenize_prompts",
]

#: Trajectory fields of a rollout batch that the loss reads (leading axis = rollout, then step); a hidden-state policy
#: reads `hidden_states` too (`HIDDEN_STATES`, recorded only by strategies that read them).
STEP_FIELDS = ("confidence", "masked", "eligible", "action")
HIDDEN_STATES = "hidden_states"
#: On a block-diffusion model a row's canvas may end before the batch's (`DiffusionTrajectory.padding_mask`).
PADDING_MASK = "padding_mask"
#: Recorded by strategies that re-mask decided tokens (`remasks_decided_tokens`): what a re-masking policy reads.
REMASK_FIELDS = ("revisable", "remask_action", "remasked", "token_confidence", "decided_time")
_POSITION_FIELDS = (*STEP_FIELDS, PADDING_MASK, HIDDEN_STATES, *REMASK_FIELDS)


def pad_steps(x: torch.Tensor, steps: int) -> torch.Tensor:
    """Pad the step axis (dim 1) of `[N, T, ...]` with zeros / False up to `steps`.

    Example:
        ```python
        >>> pad_steps(torch.ones(2, 1), 3).tolist()
        [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]
        ```
    """
    missing = steps - x.shape[1]
    if missing <= 0:
        return x
    pad = torch.zeros((x.shape[0], missing, *x.shape[2:]), dtype=x.dtype, device=x.device)
    return torch.cat([x, pad], dim=1)


def _pad_positions(x: torch.Tensor, width: int) -> torch.Tensor:
    """Pad the position axis (dim 2) of `[N, T, L, ...]` with zeros / False up to `width`."""
    missing = width - x.shape[2]
    if missing <= 0:
        return x
    pad = torch.zeros((*x.shape[:2], missing, *x.shape[3:]), dtype=x.dtype, device=x.device)
    return torch.cat([x, pad], dim=2)


def concat_rollouts(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """One rollout batch from several (rows concatenated, step axes padded to the longest). Block-diffusion canvases
    of different lengths are padded to the longest, and `padding_mask` marks each row's own positions. A part without
    the re-masking fields (its strategy did not re-mask) gets zeros / False there."""
    steps = max(p["live"].shape[1] for p in parts)
    width = max(p["masked"].shape[2] for p in parts)
    if any(PADDING_MASK in p or p["masked"].shape[2] != width for p in parts):
        parts = [p if PADDING_MASK in p else {**p, PADDING_MASK: torch.ones_like(p["masked"])} for p in parts]
    remask = {key: p[key] for p in parts for key in REMASK_FIELDS if key in p}
    if remask:
        parts = [{**{k: torch.zeros_like(p["masked"], dtype=v.dtype) for k, v in remask.items()}, **p} for p in parts]

    def padded(p: dict[str, torch.Tensor], key: str) -> torch.Tensor:
        if key in ("sequences", "nfe"):
            return p[key]
        value = pad_steps(p[key], steps)
        return _pad_positions(value, width) if key in _POSITION_FIELDS else value

    return {key: torch.cat([padded(p, key) for p in parts], dim=0) for key in parts[0]}


def tokenize_prompts(
    tokenizer: Any, prompts: list[Any], chat_template_kwargs: dict[str, Any], device: torch.device
) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Deprecated: use `hf_unmask.generation.encode_prompts(tokenizer, prompts, chat_template_kwargs=...,
    device=...)` (its `texts`, `input_ids` and `attention_mask`)."""
    warn_at_caller(
        "hf_unmask.trainer.rollouts.tokenize_prompts is deprecated and will be removed in the next release; use "
        "hf_unmask.generation.encode_prompts(tokenizer, prompts, chat_template_kwargs=..., device=...) instead.",
        FutureWarning,
    )
    batch = encode_prompts(tokenizer, prompts, chat_template_kwargs=chat_template_kwargs, device=device)
    return batch.texts, batch.input_ids, batch.attention_mask


@torch.no_grad()
def rollout(
    dllm: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    strategy: Any,
    *,
    gen_length: int,
    block_length: Optional[int],
    generator: torch.Generator,
    temperature: float = 0.0,
    stop_at_eos: bool = False,
    batch_size: Optional[int] = None,
    use_cache: bool = False,
    cache_implementation: str = "prefix",
    finish_blocks: bool = False,
    eos_token_id: Optional[list[int]] = None,
) -> dict[str, torch.Tensor]:
    """Generate with `strategy` (no progress fallback: an empty action costs a step) in calls of `batch_size` rows
    and return the rollout batch. Without `finish_blocks` (the paper's environment) a block ends after its BL steps
    and what is still masked stays `[MASK]`; with it, rows that fall behind are topped up by the dLLM's confidence so
    that every block is decided. `use_cache` / `cache_implementation` are `generate`'s diffusion KV cache; the trajectory
    records the confidences the strategy saw either way, and the dLLM's last hidden states `[N, T, L, H]` (in the
    dLLM's dtype) when the strategy reads them (`requires_hidden_states`, never with the cache), and the re-masking
    fields (`REMASK_FIELDS`) when it re-masks. `eos_token_id`: the ids that end a completion (default: the dLLM's,
    see `hf_unmask.generation.completion_eos_ids`)."""
    size = batch_size or input_ids.shape[0]
    parts = []
    for start in range(0, input_ids.shape[0], size):
        out = diffusion_generate(
            dllm,
            input_ids[start : start + size],
            attention_mask=attention_mask[start : start + size],
            strategy=strategy,
            generator=generator,
            max_new_tokens=gen_length,
            block_length=block_length,
            steps=None,
            max_steps=None,
            temperature=temperature if temperature > 0 else None,
            stop_at_eos=stop_at_eos,
            progress_fallback=False,
            finish_blocks=finish_blocks,
            use_cache=use_cache,
            cache_implementation=cache_implementation if use_cache else None,
            output_trajectory=True,
            return_dict_in_generate=True,
            **({} if eos_token_id is None else {"eos_token_id": eos_token_id}),
        )
        part = {"sequences": out.sequences, "nfe": out.nfe}
        for name in (*STEP_FIELDS, "time", "live", "log_prob", HIDDEN_STATES, PADDING_MASK, *REMASK_FIELDS):
            value = getattr(out.trajectory, name)
            if value is not None:
                part[name] = value.transpose(0, 1).contiguous()  # [T, B, ...] -> [B, T, ...]
        parts.append(part)
    return concat_rollouts(parts)


def policy_eligible(masked: torch.Tensor, block_length: int) -> torch.Tensor:
    """The positions a policy decoding in blocks of `block_length` chooses from in each recorded state: the masked
    positions of the leftmost block that still has one (every masked position when `block_length` = L).

    `masked` is `[..., L]`; the result has its shape. Used to score an expert's actions as the policy would
    (`expert_scoring="policy"`).

    Example:
        ```python
        >>> masked = torch.tensor([[False, True, True, True], [False, False, True, True]])
        >>> policy_eligible(masked, 2).tolist()
        [[False, True, False, False], [False, False, True, True]]
        ```
    """
    L = masked.shape[-1]
    block = torch.arange(L, device=masked.device) // block_length
    first = torch.where(masked, block, torch.full_like(block, L)).min(dim=-1, keepdim=True).values
    return masked & (block == first)


@torch.no_grad()
def step_log_probs(policy: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """`[N, T]` log-probabilities of the recorded actions under `policy` in its current mode and temperature (0 on
    steps that are not live), the policy reading the recorded fields it names (`policy_fields`): confidences or hidden
    states, and for a re-masking policy the re-masking fields and its re-mask actions."""
    live = batch["live"]
    out = torch.zeros(live.shape, dtype=torch.float32, device=live.device)
    rows, steps = live.nonzero(as_tuple=True)
    if rows.numel() == 0:
        return out
    states = live_states(policy, batch, rows, steps)
    logits = policy(*policy.network_inputs(states))
    log_prob, _ = policy.log_prob_from_states(logits.float(), states, with_entropy=False)
    out[rows, steps] = log_prob.float()
    return out


def live_states(
    policy: Any, batch: dict[str, torch.Tensor], rows: torch.Tensor, steps: torch.Tensor
) -> dict[str, torch.Tensor]:
    """The recorded states of the steps `(rows, steps)` that `policy` reads, `[S, L, ...]` each (`time` `[S]`):
    `masked`, `eligible`, `time`, `action`, `padding_mask` (when recorded) and the policy's `policy_fields`. What the
    policy's `network_inputs` and `log_prob_from_states` take (in `step_log_probs` and the trainer's loss)."""
    fields = {key: batch[key] for key in ("masked", "eligible", "time", "action", PADDING_MASK) if key in batch}
    fields.update(policy_fields(policy, batch))
    return {key: value[rows, steps] for key, value in fields.items()}


def policy_fields(policy: Any, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The recorded fields `policy` reads besides `masked`, `eligible`, `time` and `action`
    (`policy.trajectory_fields`: `[N, T, L]` confidences, `[N, T, L, H]` hidden states, the re-masking fields);
    `KeyError` naming the first field the rollouts did not record."""
    names = getattr(policy, "trajectory_fields", None) or (getattr(policy, "feature_name", "confidence"),)
    for name in names:
        if name not in batch:
            raise KeyError(
                f"{type(policy).__name__} reads '{name}', which the rollout batch does not hold (fields: "
                f"{', '.join(sorted(batch))}). Hidden states are only recorded by rollouts of a strategy that reads "
                "them (requires_hidden_states = True), without the KV cache; the re-masking fields only by rollouts "
                "of a strategy that re-masks (remasks_decided_tokens = True)."
            )
    return {name: batch[name] for name in names}


def policy_feature(policy: Any, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """`batch[policy.feature_name]`: the recorded per-position input the policy reads (`[N, T, L]` confidences or
    `[N, T, L, H]` hidden states); `KeyError` naming the field when the rollouts did not record it."""
    name = getattr(policy, "feature_name", "confidence")
    if name not in batch:
        raise KeyError(
            f"{type(policy).__name__} reads '{name}', which the rollout batch does not hold (fields: "
            f"{', '.join(sorted(batch))}). Hidden states are only recorded by rollouts of a strategy that reads them "
            "(requires_hidden_states = True), without the KV cache."
        )
    return batch[name]


def decode_completions(
    tokenizer: Any, sequences: torch.Tensor, prompt_length: int, eos_token_ids: Iterable[int]
) -> tuple[list[str], list[list[int]]]:
    """Deprecated: use `hf_unmask.generation.completion_texts` and `completion_token_ids`."""
    warn_at_caller(
        "hf_unmask.trainer.rollouts.decode_completions is deprecated and will be removed in the next release; use "
        "hf_unmask.generation.completion_texts(tokenizer, sequences, prompt_length, eos_token_ids) and "
        "completion_token_ids(sequences, prompt_length, eos_token_ids) instead.",
        FutureWarning,
    )
    eos = list(eos_token_ids)
    texts = completion_texts(tokenizer, sequences, prompt_length, eos)
    return texts, completion_token_ids(sequences, prompt_length, eos)


def group_advantages(
    rewards: torch.Tensor, group_ids: torch.Tensor, scale: str = "none"
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(advantages, per-group reward std)`: each reward minus the mean of its group (`group_ids`, 0..G-1 per
    prompt), divided by the group's std (`scale="group"`, + 1e-4) or the batch's (`"batch"`), or not (`"none"`).

    Example:
        ```python
        >>> adv, std = group_advantages(torch.tensor([1.0, 0.0, 0.5, 0.5]), torch.tensor([0, 0, 1, 1]))
        >>> adv.tolist(), std.tolist()
        ([0.5, -0.5, 0.0, 0.0], [0.7071067690849304, 0.0])
        ```
    """
    num_groups = int(group_ids.max()) + 1
    zeros = torch.zeros(num_groups, dtype=rewards.dtype, device=rewards.device)
    counts = zeros.index_add(0, group_ids, torch.ones_like(rewards))
    means = zeros.index_add(0, group_ids, rewards) / counts
    sq = zeros.index_add(0, group_ids, (rewards - means[group_ids]) ** 2)
    stds = (sq / (counts - 1).clamp(min=1)).sqrt()
    advantages = rewards - means[group_ids]
    if scale == "group":
        advantages = advantages / (stds[group_ids] + 1e-4)
    elif scale == "batch" and rewards.numel() > 1:
        advantages = advantages / (rewards.std() + 1e-4)
    return advantages, stds
