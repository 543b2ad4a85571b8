r"""The GRPO loss over denoising steps (as in the paper's reference code).

For rollout i with advantage A_i and live steps t in S_i (the steps that cost a dLLM forward pass), with
`r_it = exp(log pi(u_it | s_it) - log pi_old(u_it | s_it))` the ratio of the *joint* probability of the step's action
over all eligible positions,

    loss = -(1 / N) * sum_i (1 / |S_i|) * sum_{t in S_i} min(r_it A_i, clip(r_it, 1 - eps_low, 1 + eps_high) A_i)
           [+ beta * the same average of the k3 KL estimate exp(q - p) - (q - p) - 1, q = log pi_ref, p = log pi]
           [+ entropy_coef * the same average of max(0, entropy_floor - H_it / |eligible_it|) over the policy's own
              steps, H_it the entropy of the step's action distribution]

over the N rollouts of a micro-batch (gradient accumulation divides by the number of micro-batches). Each function
takes the live steps flattened (`[S]` tensors) with `rollout_of_step [S]` naming their rollout.
"""

from __future__ import annotations

import math

import torch

__all__ = ["clipped_surrogate", "entropy_floor_penalty", "expert_mixture_log_prob", "k3_kl", "mean_over_rollouts"]


def clipped_surrogate(
    ratio: torch.Tensor, advantages: torch.Tensor, epsilon_low: float, epsilon_high: float
) -> torch.Tensor:
    """Per-step loss `-min(r A, clip(r, 1 - eps_low, 1 + eps_high) A)`.

    Example:
        ```python
        >>> clipped_surrogate(torch.tensor([2.0, 0.1]), torch.tensor([1.0, -1.0]), 0.5, 0.5).tolist()
        [-1.5, 0.5]
        ```
    """
    clipped = torch.clamp(ratio, 1 - epsilon_low, 1 + epsilon_high)
    return -torch.min(ratio * advantages, clipped * advantages)


def k3_kl(ref_log_prob: torch.Tensor, log_prob: torch.Tensor) -> torch.Tensor:
    """The k3 estimate of KL(pi || pi_ref) per step: `exp(q - p) - (q - p) - 1` (>= 0, 0 when the two agree).

    Example:
        ```python
        >>> [round(v, 4) for v in k3_kl(torch.tensor([-1.0, -2.0]), torch.tensor([-1.0, -1.0])).tolist()]
        [0.0, 0.3679]
        ```
    """
    delta = ref_log_prob - log_prob
    return torch.exp(delta) - delta - 1


def entropy_floor_penalty(entropy: torch.Tensor, eligible: torch.Tensor, floor: float) -> torch.Tensor:
    """Per-step `max(0, floor - H / n)`: how far the mean entropy per eligible position (`H` the step's entropy,
    `n` its eligible positions) is below `floor` (0 for steps without eligible positions).

    Example:
        ```python
        >>> eligible = torch.tensor([[True, True, False], [True, False, False]])
        >>> [round(v, 3) for v in entropy_floor_penalty(torch.tensor([0.1, 0.5]), eligible, 0.2).tolist()]
        [0.15, 0.0]
        ```
    """
    n = eligible.sum(-1)
    per_position = entropy / n.clamp(min=1)
    return torch.where(n > 0, (floor - per_position).clamp(min=0), torch.zeros_like(per_position))


def mean_over_rollouts(per_step: torch.Tensor, rollout_of_step: torch.Tensor, n_rollouts: int) -> torch.Tensor:
    """The mean over rollouts of each rollout's mean over its live steps (a rollout without live steps counts 0).

    Example:
        ```python
        >>> mean_over_rollouts(torch.tensor([1.0, 3.0, 4.0]), torch.tensor([0, 0, 1]), 3).item()
        2.0
        ```
    """
    totals = torch.zeros(n_rollouts, dtype=per_step.dtype, device=per_step.device).index_add(
        0, rollout_of_step, per_step
    )
    counts = torch.bincount(rollout_of_step, minlength=n_rollouts).clamp(min=1)
    return (totals / counts).mean()


def expert_mixture_log_prob(log_prob: torch.Tensor, is_expert: torch.Tensor, num_generations: int) -> torch.Tensor:
    """Expert steering: an expert rollout's action is scored under the mixture `(G/(G+1)) pi + (1/(G+1)) delta`,
    delta = 1 for the expert's own action, i.e. `logaddexp(log(G/(G+1)) + log pi, log(1/(G+1)))`; other steps keep
    `log pi`.

    Example:
        ```python
        >>> out = expert_mixture_log_prob(torch.tensor([-1.0, -1.0]), torch.tensor([False, True]), 4)
        >>> [round(v, 4) for v in out.tolist()]
        [-1.0, -0.7046]
        ```
    """
    G = num_generations
    log_w_pi, log_w_expert = math.log(G / (G + 1)), math.log(1 / (G + 1))
    mixture = torch.logaddexp(log_prob + log_w_pi, torch.full_like(log_prob, log_w_expert))
    return torch.where(is_expert, mixture, log_prob)
