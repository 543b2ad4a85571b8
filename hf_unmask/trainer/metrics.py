"""The metrics the trainer logs per rollout batch and per loss computation (means over all processes).

`reduce` sums a tensor over processes (`accelerator.reduce(t, reduction="sum")`; the identity on one process).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import torch

__all__ = ["loss_metrics", "rollout_metrics"]

Reduce = Callable[[torch.Tensor], torch.Tensor]


def rollout_metrics(
    batch: dict[str, torch.Tensor],
    is_expert: torch.Tensor,
    scores: dict[str, torch.Tensor],
    lengths: torch.Tensor,
    reduce: Reduce,
) -> dict[str, float]:
    """Metrics of a rollout batch, over the policy's rollouts (the expert's in `expert/*`).

    `batch` and `is_expert` are this process's; `scores` holds the `rewards`, `task_rewards`, `nfe`, `per_func`
    rewards (with `names`), group `stds`, `advantages` and `is_expert` of all processes, `lengths` the completion
    lengths of all processes."""
    rewards, task_rewards, nfe, expert = scores["rewards"], scores["task_rewards"], scores["nfe"], scores["is_expert"]
    own = ~expert
    out = {
        "reward": rewards[own].mean().item(),
        "reward_std": rewards[own].std().item() if int(own.sum()) > 1 else 0.0,
        "correctness": task_rewards[own].nanmean().item(),
        "nfe/mean": nfe[own].mean().item(),
        "nfe/min": nfe[own].min().item(),
        "nfe/max": nfe[own].max().item(),
    }
    for i, name in enumerate(scores["names"]):
        out[f"rewards/{name}/mean"] = torch.nanmean(scores["per_func"][own, i]).item()
    out["frac_reward_zero_std"] = (scores["stds"] < 1e-6).float().mean().item()
    out["completions/mean_length"] = lengths[own].float().mean().item()
    local = ~is_expert
    live, eligible, action = batch["live"][local], batch["eligible"][local], batch["action"][local]
    stats = torch.stack(
        [action.sum().float(), eligible.sum().float(), (live & ~action.any(-1)).sum().float(), live.sum().float()]
    ).to(rewards.device)
    stats = reduce(stats)
    out["unmask_fraction"] = (stats[0] / stats[1].clamp(min=1)).item()
    out["empty_action_fraction"] = (stats[2] / stats[3].clamp(min=1)).item()
    if expert.any():
        out["expert/reward"] = rewards[expert].mean().item()
        out["expert/correctness"] = task_rewards[expert].nanmean().item()
        out["expert/nfe"] = nfe[expert].mean().item()
        out["expert/advantage"] = scores["advantages"][expert].mean().item()
    return out


@torch.no_grad()
def loss_metrics(
    ratio: torch.Tensor,
    advantages: torch.Tensor,
    epsilon_low: float,
    epsilon_high: float,
    own: torch.Tensor,
    eligible: torch.Tensor,
    entropy: Optional[torch.Tensor],
    kl: Optional[torch.Tensor],
    reduce: Reduce,
) -> dict[str, float]:
    """Means over the live steps of all processes: clipped fractions, the policy's entropy per eligible position
    (its own rollouts, `own`), the KL estimate."""
    low = ((ratio < 1 - epsilon_low) & (advantages < 0)).float()
    high = ((ratio > 1 + epsilon_high) & (advantages > 0)).float()
    values = [low.sum(), high.sum(), torch.tensor(float(low.numel()), device=low.device)]
    if entropy is not None:
        values += [entropy[own].sum(), eligible[own].sum().float()]
    if kl is not None:
        values += [kl.sum()]
    totals = reduce(torch.stack([v.float() for v in values]))
    count = totals[2].clamp(min=1)
    out = {
        "clip_fraction": ((totals[0] + totals[1]) / count).item(),
        "clip_fraction/low": (totals[0] / count).item(),
        "clip_fraction/high": (totals[1] / count).item(),
    }
    if entropy is not None:
        out["entropy"] = (totals[3] / totals[4].clamp(min=1)).item()
    if kl is not None:
        out["kl"] = (totals[-1] / count).item()
    return out
