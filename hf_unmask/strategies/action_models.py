"""The action models of learned unmasking policies: how per-position logits become an unmasking decision, and the
exact log-probability of a decision (shared by sampling, `log_prob` and the GRPO loss).

With `z = logits / temperature` over the eligible positions E (masked, current block):

- `"bernoulli"` (training): `u_k ~ Bernoulli(p_k)` independently for k in E, `p_k = min(1, beta * sigmoid(z_k))`;
  an empty action is allowed. `log pi(u) = sum_{k in E} u_k log p_k + (1 - u_k) log(1 - p_k)`.
- `"bernoulli-argmax"` (inference default): as above, but a live row that drew nothing unmasks its eligible position
  of highest `p` instead (k*, lowest index on ties). Its log-probability is that of the resulting action under this
  modified distribution: `log pi_bern(u)`, plus `pi_bern(empty)` added inside the log when `u = {k*}`.
- `"dpls"` (dynamic Plackett-Luce): a forced first pick from `softmax(z)` over E, then Plackett-Luce draws without
  replacement from the remaining eligible positions and a STOP item of logit `-log(beta)` (0 by default); every
  position drawn before STOP is unmasked, so a live row always unmasks at least one position. See
  `dpls_set_log_prob` for the exact log-probability of the unmasked *set*.
"""

from __future__ import annotations

import math
from typing import Optional

import torch

MODES = ("bernoulli", "bernoulli-argmax", "dpls")

# DPLS utilities are clamped to this range (in sampling and in log-probabilities alike) to keep exp() finite.
_DPLS_CLAMP = 50.0
# Quadrature nodes and tail cut-off of the DPLS set-probability integral (relative error ~1e-13, see tests).
_DPLS_NODES = 96
_DPLS_TAIL = 45.0


def _log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, accurate on both sides of -log 2."""
    return torch.where(x > -math.log(2.0), torch.log(-torch.expm1(x)), torch.log1p(-torch.exp(x)))


def bernoulli_log_probs(z: torch.Tensor, beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """`(log p, log(1 - p))` with `p = min(1, beta * sigmoid(z))`, computed stably."""
    if beta == 1.0:
        return torch.nn.functional.logsigmoid(z), torch.nn.functional.logsigmoid(-z)
    log_p = (math.log(beta) + torch.nn.functional.logsigmoid(z)).clamp_max(0.0)
    certain = log_p >= 0.0
    # evaluate log(1 - p) at a safe point where p == 1 so that no inf/nan reaches the backward pass
    safe = torch.where(certain, torch.full_like(log_p, -1.0), log_p)
    log_q = torch.where(certain, torch.full_like(log_p, float("-inf")), _log1mexp(safe))
    return log_p, log_q


def remask_log_probs(z: torch.Tensor, beta: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """`(log p_r, log(1 - p_r))` of a re-mask, `p_r = min(1, sigmoid(z) / beta)`: `beta` > 1 (faster) re-masks less."""
    return bernoulli_log_probs(z, 1.0 / beta)


def argmax_eligible(z: torch.Tensor, eligible: torch.Tensor) -> torch.Tensor:
    """`[N]` index of the eligible position with the largest z (lowest index on ties)."""
    return z.masked_fill(~eligible, float("-inf")).argmax(dim=-1)


def entropy_term(p: torch.Tensor) -> torch.Tensor:
    return torch.special.entr(p.clamp(1e-30, 1.0))


def uniform(shape: tuple[int, ...], generator: Optional[torch.Generator], device: torch.device, dtype=torch.float32):
    rng_device = generator.device if generator is not None else device
    return torch.rand(shape, generator=generator, device=rng_device, dtype=dtype).to(device)


def dpls_set_log_prob(v: torch.Tensor, eligible: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
    """Exact log-probability that DPLS unmasks exactly the set `action` (a subset of `eligible`), differentiable.

    With `v` the utilities *relative to STOP* (`z + log(beta)`), `w_k = exp(v_k)`, `W = sum_{k in E} w_k`, the set
    `S` (non-empty) and `R = sum_{k in E \\ S} w_k`, DPLS (forced first pick by softmax, then Plackett-Luce draws
    against STOP of weight 1) is an exponential race conditioned on STOP not coming first, which gives

        P(S) = (1 + W) / W * integral_0^inf exp(-(1 + R) t) * prod_{k in S} (1 - exp(-w_k t)) dt.

    This is the probability summed over every order in which S could have been drawn (the order is not recorded in
    a trajectory, so it cannot be part of the action). The integral is taken in `u = log t`, where the integrand is
    log-concave: its mode and the points `_DPLS_TAIL` nats below it are found by bisection (no gradient needed),
    and a trapezoid rule with `_DPLS_NODES` nodes spans them, in float64 (relative error ~1e-13). Rows with an
    empty eligible set get 0; a live row with an empty action (impossible under DPLS) gets -inf.

    Args:
        v: `[N, L]` utilities relative to STOP.
        eligible, action: `[N, L]` bool.

    Returns:
        `[N]` float64 log-probabilities.
    """
    v = v.double().clamp(-_DPLS_CLAMP, _DPLS_CLAMP)
    action = action & eligible
    live = eligible.any(-1)
    size = action.sum(-1)
    out = torch.where(live, torch.full_like(v[:, 0], float("-inf")), torch.zeros_like(v[:, 0]))
    rows = torch.nonzero(live & (size > 0)).squeeze(-1)
    if rows.numel() == 0:
        return out
    v, eligible, action, size = v[rows], eligible[rows], action[rows], size[rows].double()
    neg_inf = torch.full_like(v, float("-inf"))
    log_w = torch.where(eligible, v, neg_inf).logsumexp(-1)
    log_r = torch.where(eligible & ~action, v, neg_inf).logsumexp(-1)
    log_c = torch.logaddexp(torch.zeros_like(log_r), log_r)  # log(1 + R)
    width = int(size.max())
    order = torch.argsort(action.to(torch.int8), dim=-1, descending=True, stable=True)[:, :width]
    v_set, in_set = torch.gather(v, 1, order), torch.gather(action, 1, order)
    with torch.no_grad():
        nodes, log_weights = _dpls_quadrature(v_set.detach(), in_set, log_c.detach(), size)
    log_integral = torch.logsumexp(_dpls_log_integrand(nodes, v_set, in_set, log_c.exp()) + log_weights, dim=-1)
    value = log_integral + torch.logaddexp(torch.zeros_like(log_w), log_w) - log_w
    return out.index_put((rows,), value)


def _dpls_log_integrand(u: torch.Tensor, v_set: torch.Tensor, in_set: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """The log of the integrand of `dpls_set_log_prob` in `u = log t`, at `u` `[n]` or `[n, K]` (same shape out);
    `v_set` / `in_set` `[n, width]` the set's utilities and which of them are real, `c` `[n]` = 1 + R."""
    x = torch.exp(v_set.unsqueeze(1) + u.unsqueeze(-1)) if u.dim() == 2 else torch.exp(v_set + u.unsqueeze(-1))
    mask = in_set.unsqueeze(1) if u.dim() == 2 else in_set
    terms = torch.where(mask, torch.log(-torch.expm1(-x)), torch.zeros_like(x)).sum(-1)
    c = c.unsqueeze(-1) if u.dim() == 2 else c
    return u - c * torch.exp(u) + terms


def _dpls_mode(v_set: torch.Tensor, in_set: torch.Tensor, log_c: torch.Tensor, size: torch.Tensor) -> torch.Tensor:
    """`[n]` the mode of the (log-concave) integrand, by bisection on its slope."""
    c = log_c.exp()

    def slope(u: torch.Tensor) -> torch.Tensor:
        x = torch.exp(v_set + u.unsqueeze(-1))
        d = torch.where(x < 1e-8, 1.0 - x / 2, x / torch.expm1(x))
        return 1.0 - c * torch.exp(u) + torch.where(in_set, d, torch.zeros_like(d)).sum(-1)

    lo, hi = -log_c - 1.0, torch.log(size + 1.0) - log_c + 1.0
    for _ in range(48):  # the slope is decreasing (concave log-integrand), positive at lo, negative at hi
        mid = (lo + hi) / 2
        up = slope(mid) > 0
        lo, hi = torch.where(up, mid, lo), torch.where(up, hi, mid)
    return (lo + hi) / 2


def _dpls_quadrature(
    v_set: torch.Tensor, in_set: torch.Tensor, log_c: torch.Tensor, size: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(nodes, log_weights)` `[n, _DPLS_NODES]` of the trapezoid rule over the integrand's bulk: from the mode to
    the points `_DPLS_TAIL` nats below it on each side (found by doubling, then bisection)."""
    c = log_c.exp()
    mode = _dpls_mode(v_set, in_set, log_c, size)
    top = _dpls_log_integrand(mode, v_set, in_set, c)
    ends = []
    for sign in (-1.0, 1.0):  # where the integrand has dropped by _DPLS_TAIL nats, on each side
        step = torch.ones_like(mode)
        for _ in range(14):
            far = _dpls_log_integrand(mode + sign * step, v_set, in_set, c) < top - _DPLS_TAIL
            step = torch.where(far, step, 2 * step)
        a, b = torch.zeros_like(mode), step
        for _ in range(30):
            mid = (a + b) / 2
            far = _dpls_log_integrand(mode + sign * mid, v_set, in_set, c) < top - _DPLS_TAIL
            a, b = torch.where(far, a, mid), torch.where(far, mid, b)
        ends.append(mode + sign * b)
    grid = torch.linspace(0.0, 1.0, _DPLS_NODES, dtype=torch.float64, device=v_set.device)
    nodes = ends[0].unsqueeze(-1) + (ends[1] - ends[0]).unsqueeze(-1) * grid
    log_weights = torch.log((ends[1] - ends[0]) / (_DPLS_NODES - 1)).unsqueeze(-1).repeat(1, _DPLS_NODES)
    log_weights[:, 0] -= math.log(2.0)
    log_weights[:, -1] -= math.log(2.0)
    return nodes, log_weights


def dpls_sample(v: torch.Tensor, eligible: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Draw DPLS actions by an exponential race: arrival times `T_k ~ Exp(w_k)`; the first eligible arrival is the
    forced pick; STOP arrives `Exp(1)` after it; every eligible arrival before STOP is unmasked."""
    v = v.double().clamp(-_DPLS_CLAMP, _DPLS_CLAMP)
    tiny = torch.finfo(torch.float64).tiny
    exp1 = -torch.log(uniform(tuple(v.shape), generator, v.device, torch.float64).clamp_min(tiny))
    arrival = torch.where(eligible, exp1 * torch.exp(-v), torch.full_like(v, float("inf")))
    first = arrival.min(dim=-1, keepdim=True).values
    stop = first - torch.log(uniform((v.shape[0], 1), generator, v.device, torch.float64).clamp_min(tiny))
    chosen = eligible & (arrival <= stop)
    return chosen & eligible.any(-1, keepdim=True)


def sample_unmask(
    z: torch.Tensor, eligible: torch.Tensor, mode: str, beta: float, generator: Optional[torch.Generator]
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """`(action, uniforms)`: an unmask action `[N, L]` drawn under `mode` from `z = logits / temperature`, and the
    uniforms of the Bernoulli draw (None for DPLS, which draws its own)."""
    if mode == "dpls":
        return dpls_sample(z + math.log(beta), eligible, generator), None
    log_p, _ = bernoulli_log_probs(z, beta)
    u = uniform(tuple(z.shape), generator, z.device)
    action = (u < log_p.exp()) & eligible
    if mode == "bernoulli-argmax":
        empty = eligible.any(-1) & ~action.any(-1)
        fallback = torch.zeros_like(action).scatter(-1, argmax_eligible(z, eligible).unsqueeze(-1), True)
        action = torch.where(empty.unsqueeze(-1), fallback & eligible, action)
    return action, u


def unmask_log_prob(
    logits: torch.Tensor,
    eligible: torch.Tensor,
    action: torch.Tensor,
    mode: str,
    temperature: float,
    beta: float,
    with_entropy: bool,
) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """`(log pi(action), entropy or None)` `[N]` of an unmask action under `mode` (see the module doc), from the
    network's logits before the temperature. DPLS gives no entropy."""
    z = logits / temperature
    action = action & eligible
    if mode == "dpls":
        return dpls_set_log_prob(z + math.log(beta), eligible, action).to(logits.dtype), None
    log_p, log_q = bernoulli_log_probs(z, beta)
    zero = torch.zeros_like(log_p)
    per_position = torch.where(eligible, torch.where(action, log_p, log_q), zero)
    log_prob = per_position.sum(-1)
    entropy = None
    if with_entropy:
        p, q = log_p.exp(), log_q.exp()
        entropy = torch.where(eligible, entropy_term(p) + entropy_term(q), zero).sum(-1)
    if mode == "bernoulli-argmax":
        live = eligible.any(-1)
        best = argmax_eligible(z, eligible).unsqueeze(-1)
        log_empty = torch.where(eligible, log_q, zero).sum(-1)
        is_fallback = live & (action.sum(-1) == 1) & action.gather(-1, best).squeeze(-1)
        log_prob = torch.where(is_fallback, torch.logaddexp(log_prob, log_empty), log_prob)
        # a live row never ends with an empty action in this mode
        log_prob = torch.where(live & ~action.any(-1), torch.full_like(log_prob, float("-inf")), log_prob)
        if with_entropy:
            # the empty action and {k*} merge into one outcome: H = H_bern - H(p0) - H(p1) + H(p0 + p1)
            others = eligible & ~torch.zeros_like(eligible).scatter(-1, best, True)
            log_single = torch.where(others, log_q, zero).sum(-1) + log_p.gather(-1, best).squeeze(-1)
            p0, p1 = log_empty.exp(), log_single.exp()
            merged = (entropy - entropy_term(p0) - entropy_term(p1) + entropy_term(p0 + p1)).clamp_min(0.0)
            entropy = torch.where(live, merged, entropy)
    return log_prob, entropy
