"""Learned unmasking policies (arXiv 2512.09106): a small network that reads what the dLLM is doing and decides,
per position, whether to unmask it now.

`UnmaskingPolicy` reads the dLLM confidences (the paper's policy); `HiddenStatePolicy` reads the dLLM's last hidden
states instead (the paper's ablation). Both are `torch.nn.Module`s *and* unmasking strategies:

- `policy(state)` with a `DenoisingState` is the strategy call used by `generate`: it samples an action and
  returns `StrategyOutput(selection, log_prob)`;
- `policy(confidence, masked, time)` (any other arguments) is the ordinary module call, which runs `forward` and
  returns the logits. `nn.Module.__call__` is kept for it, so hooks, `torch.compile` and DDP wrappers behave as usual.

Action modes (`mode=`), with `z = logits / temperature` over the eligible positions E (masked, current block):

- `"bernoulli"` (training): `u_k ~ Bernoulli(p_k)` independently for k in E, `p_k = min(1, beta * sigmoid(z_k))`;
  an empty action is allowed. `log pi(u) = sum_{k in E} u_k log p_k + (1 - u_k) log(1 - p_k)`.
- `"bernoulli-argmax"` (inference default): as above, but a live row that drew nothing unmasks its eligible position
  of highest `p` instead (k*, lowest index on ties). Its log-probability is that of the resulting action under this
  modified distribution: `log pi_bern(u)`, plus `pi_bern(empty)` added inside the log when `u = {k*}`.
- `"dpls"` (dynamic Plackett-Luce): a forced first pick from `softmax(z)` over E, then Plackett-Luce draws without
  replacement from the remaining eligible positions and a STOP item of logit `-log(beta)` (0 by default); every
  position drawn before STOP is unmasked, so a live row always unmasks at least one position. See
  `dpls_set_log_prob` for the exact log-probability of the unmasked *set*.

The paper's test-time knobs: `temperature` (tau_pi; 1 in training, 0.5 is best at BL = 32) and `beta` (scales the
unmask probabilities, `p = min(1, beta * s)`; in DPLS it multiplies the odds of every position against STOP).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from .. import hub
from ..generation.outputs import DiffusionTrajectory
from ..generation.state import DenoisingState
from .base import StrategyOutput, UnmaskingStrategy
from .policy_network import INITIAL_LOGIT, PolicyNetwork

MODES = ("bernoulli", "bernoulli-argmax", "dpls")

#: Keys of `trained_for` that hf_unmask reads (others are kept and shown on the model card as they are).
TRAINED_FOR_KEYS = (
    "base_model",  # Hub id (or path) of the dLLM the policy was trained with
    "gen_length",  # L
    "block_length",  # BL (None or L = full diffusion)
    "alpha",  # efficiency exponent of the reward
    "temperature",  # tau_pi used during training
    "task",  # task name, e.g. "gsm8k"
    "dataset",  # dataset id(s) of the training prompts
    "training_steps",  # optimiser steps
)

# DPLS utilities are clamped to this range (in sampling and in log-probabilities alike) to keep exp() finite.
_DPLS_CLAMP = 50.0
# Quadrature nodes and tail cut-off of the DPLS set-probability integral (relative error ~1e-13, see tests).
_DPLS_NODES = 96
_DPLS_TAIL = 45.0


# ------------------------------------------------------------------------------------------------------------------
# Action distributions (pure functions of logits, eligibility and actions; shared by sampling and log_prob)
# ------------------------------------------------------------------------------------------------------------------
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


def _argmax_eligible(z: torch.Tensor, eligible: torch.Tensor) -> torch.Tensor:
    """`[N]` index of the eligible position with the largest z (lowest index on ties)."""
    return z.masked_fill(~eligible, float("-inf")).argmax(dim=-1)


def _entr(p: torch.Tensor) -> torch.Tensor:
    return torch.special.entr(p.clamp(1e-30, 1.0))


def _uniform(shape: tuple[int, ...], generator: Optional[torch.Generator], device: torch.device, dtype=torch.float32):
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

    def log_integrand(u: torch.Tensor, vs: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        # u: [n] or [n, K] -> same shape
        x = torch.exp(vs.unsqueeze(1) + u.unsqueeze(-1)) if u.dim() == 2 else torch.exp(vs + u.unsqueeze(-1))
        mask = in_set.unsqueeze(1) if u.dim() == 2 else in_set
        terms = torch.where(mask, torch.log(-torch.expm1(-x)), torch.zeros_like(x)).sum(-1)
        c = c.unsqueeze(-1) if u.dim() == 2 else c
        return u - c * torch.exp(u) + terms

    with torch.no_grad():
        vs, c = v_set.detach(), log_c.detach().exp()

        def slope(u: torch.Tensor) -> torch.Tensor:
            x = torch.exp(vs + u.unsqueeze(-1))
            d = torch.where(x < 1e-8, 1.0 - x / 2, x / torch.expm1(x))
            return 1.0 - c * torch.exp(u) + torch.where(in_set, d, torch.zeros_like(d)).sum(-1)

        lo, hi = -log_c.detach() - 1.0, torch.log(size + 1.0) - log_c.detach() + 1.0
        for _ in range(48):  # the mode: slope is decreasing (concave log-integrand), positive at lo, negative at hi
            mid = (lo + hi) / 2
            up = slope(mid) > 0
            lo, hi = torch.where(up, mid, lo), torch.where(up, hi, mid)
        mode = (lo + hi) / 2
        top = log_integrand(mode, vs, c)
        ends = []
        for sign in (-1.0, 1.0):  # where the integrand has dropped by _DPLS_TAIL nats, on each side
            step = torch.ones_like(mode)
            for _ in range(14):
                far = log_integrand(mode + sign * step, vs, c) < top - _DPLS_TAIL
                step = torch.where(far, step, 2 * step)
            a, b = torch.zeros_like(mode), step
            for _ in range(30):
                mid = (a + b) / 2
                far = log_integrand(mode + sign * mid, vs, c) < top - _DPLS_TAIL
                a, b = torch.where(far, a, mid), torch.where(far, mid, b)
            ends.append(mode + sign * b)
        grid = torch.linspace(0.0, 1.0, _DPLS_NODES, dtype=torch.float64, device=v.device)
        nodes = ends[0].unsqueeze(-1) + (ends[1] - ends[0]).unsqueeze(-1) * grid
        log_weights = torch.log((ends[1] - ends[0]) / (_DPLS_NODES - 1)).unsqueeze(-1).repeat(1, _DPLS_NODES)
        log_weights[:, 0] -= math.log(2.0)
        log_weights[:, -1] -= math.log(2.0)
    log_integral = torch.logsumexp(log_integrand(nodes, v_set, log_c.exp()) + log_weights, dim=-1)
    value = log_integral + torch.logaddexp(torch.zeros_like(log_w), log_w) - log_w
    return out.index_put((rows,), value)


def _dpls_sample(v: torch.Tensor, eligible: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
    """Draw DPLS actions by an exponential race: arrival times `T_k ~ Exp(w_k)`; the first eligible arrival is the
    forced pick; STOP arrives `Exp(1)` after it; every eligible arrival before STOP is unmasked."""
    v = v.double().clamp(-_DPLS_CLAMP, _DPLS_CLAMP)
    tiny = torch.finfo(torch.float64).tiny
    exp1 = -torch.log(_uniform(tuple(v.shape), generator, v.device, torch.float64).clamp_min(tiny))
    arrival = torch.where(eligible, exp1 * torch.exp(-v), torch.full_like(v, float("inf")))
    first = arrival.min(dim=-1, keepdim=True).values
    stop = first - torch.log(_uniform((v.shape[0], 1), generator, v.device, torch.float64).clamp_min(tiny))
    chosen = eligible & (arrival <= stop)
    return chosen & eligible.any(-1, keepdim=True)


# ------------------------------------------------------------------------------------------------------------------
# Outputs
# ------------------------------------------------------------------------------------------------------------------
@dataclass
class PolicySample:
    """A sampled action. `action`: `[..., L]` bool; `log_prob`: `[...]`; `logits`: `[..., L]` (before temperature)."""

    action: torch.Tensor
    log_prob: torch.Tensor
    logits: torch.Tensor


@dataclass
class ActionEvaluation:
    """Log-probabilities of given actions (differentiable), per-step entropy of the action distribution (None for
    DPLS, whose entropy has no cheap closed form) and the logits, all with the leading shape of the inputs."""

    log_prob: torch.Tensor
    entropy: Optional[torch.Tensor]
    logits: torch.Tensor


@dataclass
class _Batch:
    feature: torch.Tensor  # [N, L, F]
    masked: torch.Tensor  # [N, L]
    eligible: torch.Tensor  # [N, L]
    time: torch.Tensor  # [N]
    padding_mask: Optional[torch.Tensor]  # [N, L]
    lead: tuple[int, ...]
    device: torch.device


# ------------------------------------------------------------------------------------------------------------------
# The shared base
# ------------------------------------------------------------------------------------------------------------------
class LearnedUnmaskingPolicy(UnmaskingStrategy, nn.Module):
    """Base of learned policies: action modes, sampling, log-probabilities, the trained-for check and weights I/O.

    Subclasses build `self.network` and implement `forward` and `_feature`.
    """

    def __init__(
        self,
        mode: str = "bernoulli-argmax",
        temperature: float = 1.0,
        beta: float = 1.0,
        trained_for: Optional[dict[str, Any]] = None,
    ) -> None:
        nn.Module.__init__(self)
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise ValueError(f"temperature (tau_pi) must be a positive number, got {temperature!r}.")
        if not (isinstance(beta, (int, float)) and beta > 0):
            raise ValueError(f"beta must be a positive number, got {beta!r}.")
        trained_for = dict(trained_for or {})
        try:
            json.dumps(trained_for)
        except TypeError as err:
            raise TypeError(f"trained_for must hold JSON values (str, numbers, lists, dicts): {err}") from err
        for key in ("gen_length", "block_length", "training_steps"):
            value = trained_for.get(key)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
                raise ValueError(f"trained_for[{key!r}] must be a positive integer (or None), got {value!r}.")
        self.mode = mode
        self.temperature = float(temperature)
        self.beta = float(beta)
        self.trained_for = trained_for
        self._warned: set[tuple[str, Any, Any]] = set()

    def _build_network(
        self,
        input_dim: int,
        hidden_size: int,
        num_heads: int,
        ffn_size: int,
        time_frequency_dim: int,
        rope_theta: float,
        init_bias: float,
        project_input: bool = True,
    ) -> None:
        """Keep the architecture hyper-parameters (they are the saved config) and build `self.network`."""
        self.init_bias = float(init_bias)
        self.hidden_size = hidden_size
        self.num_heads = num_heads
        self.ffn_size = ffn_size
        self.time_frequency_dim = time_frequency_dim
        self.rope_theta = rope_theta
        self.network = PolicyNetwork(
            input_dim=input_dim,
            hidden_size=hidden_size,
            num_heads=num_heads,
            ffn_size=ffn_size,
            time_frequency_dim=time_frequency_dim,
            rope_theta=rope_theta,
            project_input=project_input,
            init_bias=self.init_bias,
        )

    # ---- the two calls -----------------------------------------------------------------------------------------
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """`policy(state)` -> `StrategyOutput` (strategy call); any other arguments -> `forward` (module call)."""
        if len(args) == 1 and not kwargs and isinstance(args[0], DenoisingState):
            return self.act(args[0])
        return nn.Module.__call__(self, *args, **kwargs)

    def __eq__(self, other: object) -> bool:  # modules compare by identity (same config != same weights)
        return self is other

    __hash__ = nn.Module.__hash__

    def act(self, state: DenoisingState) -> StrategyOutput:
        """Sample an action for one denoising step (no gradient): the strategy protocol."""
        self._check_trained_for(state)
        with torch.no_grad():
            sample = self.sample(state, generator=state.generator)
        return StrategyOutput(
            selection=sample.action.to(state.eligible.device) & state.eligible,
            log_prob=sample.log_prob.float().to(state.eligible.device),
        )

    # ---- inputs ------------------------------------------------------------------------------------------------
    def _feature(self, source: Any, kind: str) -> torch.Tensor:
        """`[..., L, F]` per-position input of the network from a state, a trajectory or a mapping."""
        raise NotImplementedError

    def _batch(self, states: Any) -> _Batch:
        if isinstance(states, DenoisingState):
            kind, get = "state", lambda name: getattr(states, name)
            time, padding = states.time, None
        elif isinstance(states, DiffusionTrajectory):
            kind, get = "trajectory", lambda name: getattr(states, name)
            time, padding = states.time, None
            if states.confidence is None:
                raise ValueError("The trajectory is empty: generate with output_trajectory=True to record one.")
        elif isinstance(states, Mapping):
            missing = [k for k in ("masked", "eligible", "time") if k not in states]
            if missing:
                raise KeyError(f"The states mapping lacks {missing}; it needs confidence/masked/eligible/time.")
            kind, get = "mapping", lambda name: states.get(name)
            time, padding = states["time"], states.get("padding_mask")
        else:
            raise TypeError(
                "states must be a DenoisingState, a DiffusionTrajectory (from generate(..., output_trajectory=True)) "
                f"or a mapping of tensors with confidence/masked/eligible/time; got {type(states).__name__}."
            )
        masked, eligible = get("masked"), get("eligible")
        lead, length = tuple(masked.shape[:-1]), masked.shape[-1]
        feature = self._feature(states, kind)
        device = self._device()
        n = int(math.prod(lead))
        time = torch.as_tensor(time, dtype=torch.float32)
        if tuple(time.shape) != lead:
            raise ValueError(f"time must have shape {lead} (one value per step and row), got {tuple(time.shape)}.")
        return _Batch(
            feature=feature.reshape(n, length, feature.shape[-1]).to(device),
            masked=masked.reshape(n, length).to(device=device, dtype=torch.bool),
            eligible=eligible.reshape(n, length).to(device=device, dtype=torch.bool),
            time=time.reshape(n).to(device),
            padding_mask=None if padding is None else padding.reshape(n, length).to(device=device, dtype=torch.bool),
            lead=lead,
            device=masked.device,
        )

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _logits(self, batch: _Batch) -> torch.Tensor:
        return nn.Module.__call__(self, batch.feature, batch.masked, batch.time, batch.padding_mask).float()

    # ---- sampling and log-probabilities ------------------------------------------------------------------------
    def unmask_probabilities(self, states: Any) -> torch.Tensor:
        """`[..., L]` per-position unmask probability `min(1, beta * sigmoid(logit / temperature))` (0 where not
        eligible). For DPLS this is the Bernoulli view of the same logits, useful for inspection only."""
        batch = self._batch(states)
        log_p, _ = bernoulli_log_probs(self._logits(batch) / self.temperature, self.beta)
        return (log_p.exp() * batch.eligible).reshape(*batch.lead, -1)

    def sample(self, states: Any, generator: Optional[torch.Generator] = None) -> PolicySample:
        """Sample actions (restricted to eligible positions) and their log-probabilities under `self.mode`.

        Example:
            ```python
            >>> import torch
            >>> from hf_unmask.strategies import UnmaskingPolicy
            >>> policy = UnmaskingPolicy(mode="dpls")
            >>> states = {"confidence": torch.rand(3, 8), "masked": torch.ones(3, 8, dtype=torch.bool),
            ...           "eligible": torch.ones(3, 8, dtype=torch.bool), "time": torch.zeros(3)}
            >>> out = policy.sample(states, generator=torch.Generator().manual_seed(0))
            >>> bool(out.action.any(-1).all()), out.log_prob.shape
            (True, torch.Size([3]))
            ```
        """
        batch = self._batch(states)
        logits = self._logits(batch)
        z = logits / self.temperature
        eligible = batch.eligible
        if self.mode == "dpls":
            action = _dpls_sample(z + math.log(self.beta), eligible, generator)
        else:
            log_p, _ = bernoulli_log_probs(z, self.beta)
            action = (_uniform(tuple(z.shape), generator, z.device) < log_p.exp()) & eligible
            if self.mode == "bernoulli-argmax":
                empty = eligible.any(-1) & ~action.any(-1)
                fallback = torch.zeros_like(action).scatter(-1, _argmax_eligible(z, eligible).unsqueeze(-1), True)
                action = torch.where(empty.unsqueeze(-1), fallback & eligible, action)
        log_prob = self._log_prob_and_entropy(logits, eligible, action, with_entropy=False)[0]
        shape = (*batch.lead, -1)
        return PolicySample(
            action=action.reshape(shape).to(batch.device),
            log_prob=log_prob.reshape(batch.lead).to(batch.device),
            logits=logits.reshape(shape).to(batch.device),
        )

    def evaluate_actions(self, states: Any, actions: Optional[torch.Tensor] = None) -> ActionEvaluation:
        """Log-probabilities (differentiable) and entropies of recorded actions, batched over steps.

        Args:
            states: a `DiffusionTrajectory` (tensors `[T, B, L]`), a `DenoisingState`, or a mapping with `confidence`
                (or `hidden_states`), `masked`, `eligible`, `time` and optionally `padding_mask`, flattened `[N, L]`.
            actions: bool `[..., L]`; defaults to `states.action` for a trajectory (or `states["action"]`).

        Returns:
            `ActionEvaluation` with `log_prob` of shape `[T, B]` (or `[N]`), equal to what sampling reported. Rows
            with no eligible position (not live in a trajectory) get log-probability 0 and entropy 0.
        """
        if actions is None:
            actions = states.get("action") if isinstance(states, Mapping) else getattr(states, "action", None)
            if actions is None:
                raise ValueError("No actions given and none recorded in `states`; pass actions=...")
        batch = self._batch(states)
        logits = self._logits(batch)
        actions = actions.reshape(batch.eligible.shape).to(device=batch.eligible.device, dtype=torch.bool)
        log_prob, entropy = self._log_prob_and_entropy(logits, batch.eligible, actions, with_entropy=True)
        return ActionEvaluation(
            log_prob=log_prob.reshape(batch.lead),
            entropy=None if entropy is None else entropy.reshape(batch.lead),
            logits=logits.reshape(*batch.lead, -1),
        )

    def log_prob(self, states: Any, actions: Optional[torch.Tensor] = None) -> torch.Tensor:
        """`[T, B]` (or `[N]`) log-probabilities of `actions` in `states`; see `evaluate_actions`.

        Example:
            ```python
            >>> import torch
            >>> from hf_unmask.strategies import UnmaskingPolicy
            >>> policy = UnmaskingPolicy(mode="bernoulli")
            >>> states = {"confidence": torch.rand(2, 4), "masked": torch.ones(2, 4, dtype=torch.bool),
            ...           "eligible": torch.ones(2, 4, dtype=torch.bool), "time": torch.zeros(2)}
            >>> out = policy.sample(states)
            >>> torch.allclose(policy.log_prob(states, out.action), out.log_prob)
            True
            ```
        """
        return self.evaluate_actions(states, actions).log_prob

    def log_prob_from_logits(
        self, logits: torch.Tensor, eligible: torch.Tensor, action: torch.Tensor, with_entropy: bool = False
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Log-probability (and entropy) of `action` given network `logits` (before temperature), `[..., L]` each.

        For trainers that run the network themselves (e.g. through a DDP wrapper) and need the action model on top.
        DPLS returns no entropy.
        """
        return self._log_prob_and_entropy(logits, eligible, action, with_entropy)

    def _log_prob_and_entropy(
        self, logits: torch.Tensor, eligible: torch.Tensor, action: torch.Tensor, with_entropy: bool
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        z = logits / self.temperature
        action = action & eligible
        if self.mode == "dpls":
            return dpls_set_log_prob(z + math.log(self.beta), eligible, action).to(logits.dtype), None
        log_p, log_q = bernoulli_log_probs(z, self.beta)
        zero = torch.zeros_like(log_p)
        per_position = torch.where(eligible, torch.where(action, log_p, log_q), zero)
        log_prob = per_position.sum(-1)
        entropy = None
        if with_entropy:
            p, q = log_p.exp(), log_q.exp()
            entropy = torch.where(eligible, _entr(p) + _entr(q), zero).sum(-1)
        if self.mode == "bernoulli-argmax":
            live = eligible.any(-1)
            best = _argmax_eligible(z, eligible).unsqueeze(-1)
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
                merged = (entropy - _entr(p0) - _entr(p1) + _entr(p0 + p1)).clamp_min(0.0)
                entropy = torch.where(live, merged, entropy)
        return log_prob, entropy

    # ---- the trained-for check ---------------------------------------------------------------------------------
    def _check_trained_for(self, state: DenoisingState) -> None:
        trained = self.trained_for
        trained_length = trained.get("gen_length")
        if trained_length is None:
            return
        trained_block = trained.get("block_length") or trained_length
        used_length, used_block = state.gen_length, state.config.effective_block_length
        checks = [
            ("gen_length (L)", int(trained_length), used_length, "max_new_tokens"),
            ("block_length (BL)", int(trained_block), used_block, "block_length"),
        ]
        for name, expected, used, argument in checks:
            key = (name, expected, used)
            if expected != used and key not in self._warned:
                self._warned.add(key)
                warnings.warn(
                    f"{type(self).__name__} was trained with {name} = {expected} but is used with {argument}={used}. "
                    "It runs at any length, but its speed/accuracy trade-off was only learned for the training "
                    f"setting (trained_for={self.trained_for}).",
                    UserWarning,
                    stacklevel=2,
                )

    # ---- weights I/O ------------------------------------------------------------------------------------------
    def _save_extra(self, save_directory: Path) -> None:
        hub.save_weights(self.state_dict(), save_directory / hub.WEIGHTS_NAME, metadata={"class": type(self).__name__})
        card_path = save_directory / "README.md"
        if not card_path.exists():
            from ..model_card import build_model_card

            # the snippet loads this very folder, by its absolute path so it runs from any working directory
            build_model_card(self, repo_id=str(save_directory.resolve())).save(str(card_path))

    @classmethod
    def _from_config_and_files(
        cls, config: dict[str, Any], pretrained_model_name_or_path: Union[str, os.PathLike], hub_kwargs: dict[str, Any]
    ) -> LearnedUnmaskingPolicy:
        policy = cls(**config)
        weights_file = hub.resolve_file(pretrained_model_name_or_path, hub.WEIGHTS_NAME, **hub_kwargs)
        if weights_file is None:
            config_file = hub.resolve_file(pretrained_model_name_or_path, hub.CONFIG_NAME, **hub_kwargs)
            if config_file is not None:
                hub.check_no_pickle(Path(config_file).parent)
            raise OSError(
                f"'{pretrained_model_name_or_path}' has a {cls.__name__} config but no {hub.WEIGHTS_NAME}. Learned "
                "policies are stored as safetensors only (pickled .bin/.pt files are never loaded); save the policy "
                "with save_pretrained / push_to_hub."
            )
        state_dict = hub.load_weights(weights_file)
        hub.check_state_dict(policy.state_dict(), state_dict, source=str(weights_file))
        policy.load_state_dict(state_dict, strict=True)
        return policy.eval()

    def push_to_hub(self, repo_id: str, **kwargs: Any) -> Any:
        """As `UnmaskingStrategy.push_to_hub` (card, config, weights and plot in one commit); warns when the policy
        records no training, since its weights are then only the initialisation."""
        if not self.trained_for:
            warnings.warn(
                f"Pushing a {type(self).__name__} with an empty `trained_for`: nothing says it was trained, and its "
                "model card will say it is untrained. Set policy.trained_for (base_model, gen_length, block_length, "
                "alpha, ...) after training.",
                UserWarning,
                stacklevel=2,
            )
        return super().push_to_hub(repo_id, **kwargs)

    def num_parameters(self) -> int:
        """Number of parameters of the network."""
        return sum(p.numel() for p in self.parameters())


# ------------------------------------------------------------------------------------------------------------------
# The two policies
# ------------------------------------------------------------------------------------------------------------------
class UnmaskingPolicy(LearnedUnmaskingPolicy):
    """The paper's confidence policy: per-position dLLM confidence, mask bit and time -> unmasking decisions.

    One DiT-style transformer block with adaptive LayerNorm and RoPE over the L generated positions (see
    `hf_unmask.strategies.policy_network`); 331,265 parameters with the defaults. It works at any L, batch size and
    block layout (only eligible positions are ever chosen).

    Args:
        hidden_size, num_heads, ffn_size: block width (d), attention heads, FFN width.
        time_frequency_dim: size of the sinusoidal time features; rope_theta: RoPE base.
        mode: `"bernoulli"` (training), `"bernoulli-argmax"` (inference default) or `"dpls"`; see the module doc.
        temperature: tau_pi, divides the logits. beta: test-time scaling, `p = min(1, beta * sigmoid(z))`.
        trained_for: what the policy was trained for (keys in `TRAINED_FOR_KEYS`: base_model, gen_length,
            block_length, alpha, temperature, task, dataset, training_steps); `generate` warns when the policy runs
            with another L or BL, and the model card shows it. Empty for an untrained policy.

    Example:
        ```python
        >>> import torch
        >>> from hf_unmask.strategies import UnmaskingPolicy
        >>> policy = UnmaskingPolicy(temperature=0.5)
        >>> policy.num_parameters()
        331265
        >>> logits = policy(torch.rand(1, 16), torch.ones(1, 16, dtype=torch.bool), torch.zeros(1))
        >>> round(torch.sigmoid(logits[0, 0]).item(), 4)  # every position starts at sigmoid(-2)
        0.1192
        ```
        With a dLLM: `model.generate(input_ids, strategy=policy, max_new_tokens=256, block_length=32)`.
    """

    def __init__(
        self,
        hidden_size: int = 128,
        num_heads: int = 2,
        ffn_size: int = 512,
        time_frequency_dim: int = 128,
        rope_theta: float = 10_000.0,
        mode: str = "bernoulli-argmax",
        temperature: float = 1.0,
        beta: float = 1.0,
        trained_for: Optional[dict[str, Any]] = None,
        init_bias: float = INITIAL_LOGIT,
    ) -> None:
        super().__init__(mode=mode, temperature=temperature, beta=beta, trained_for=trained_for)
        self._build_network(1, hidden_size, num_heads, ffn_size, time_frequency_dim, rope_theta, init_bias)

    def forward(
        self,
        confidence: torch.Tensor,
        masked: torch.Tensor,
        time: torch.Tensor,
        padding_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Logits `[B, L]` (before temperature) from `confidence [B, L]`, `masked [B, L]` and `time [B]`.

        Pass `confidence` either `[B, L]` or `[B, L, 1]`. `padding_mask` (True = real position) batches rows of
        different lengths."""
        if confidence.dim() == masked.dim():
            confidence = confidence.unsqueeze(-1)
        return self.network(confidence, masked, time, padding_mask)

    def _feature(self, source: Any, kind: str) -> torch.Tensor:
        confidence = source.get("confidence") if kind == "mapping" else source.confidence
        if confidence is None:
            raise ValueError("UnmaskingPolicy needs the per-position confidence; the states carry none.")
        return confidence.float().unsqueeze(-1)


def _read_dllm_config(source: Any) -> dict[str, Optional[int]]:
    config = getattr(source, "config", source)
    get = config.get if isinstance(config, Mapping) else lambda name, default=None: getattr(config, name, default)

    def first(*names: str) -> Optional[int]:
        for name in names:
            value = get(name, None)
            if isinstance(value, int) and not isinstance(value, bool):
                return value
        return None

    hidden = first("hidden_size", "d_model", "n_embd", "dim")
    if hidden is None:
        raise ValueError(
            "Could not read the dLLM hidden size from the given config (no hidden_size / d_model / n_embd). Pass "
            "input_size=<int> instead."
        )
    return {
        "hidden": hidden,
        "heads": first("num_attention_heads", "n_heads", "n_head"),
        "ffn": first("intermediate_size", "mlp_hidden_size", "n_inner", "ffn_dim"),
    }


class HiddenStatePolicy(LearnedUnmaskingPolicy):
    """The paper's ablation: the dLLM's last hidden states (instead of confidences) through one transformer block.

    Same interface, modes and Hub I/O as `UnmaskingPolicy`; `generate` passes hidden states to it because
    `requires_hidden_states = True`. By default the block is as wide as the dLLM (hidden size, heads and FFN width
    read from its config, ~300M parameters for an 8B dLLM), as in the paper.

    Args:
        input_size: the dLLM hidden size, or the dLLM config / model to read it (and the defaults below) from.
        hidden_size: block width (default: the dLLM hidden size; a Linear projects when they differ).
        num_heads, ffn_size: default to the dLLM's, else `hidden_size // 64` heads and `4 * hidden_size`.
        Other arguments as in `UnmaskingPolicy`.

    Example:
        ```python
        >>> from transformers import BertConfig
        >>> from hf_unmask.strategies import HiddenStatePolicy
        >>> policy = HiddenStatePolicy(BertConfig(hidden_size=32, num_attention_heads=2, intermediate_size=64))
        >>> policy.input_size, policy.num_heads, policy.requires_hidden_states
        (32, 2, True)
        ```
    """

    requires_hidden_states = True

    def __init__(
        self,
        input_size: Union[int, Any],
        hidden_size: Optional[int] = None,
        num_heads: Optional[int] = None,
        ffn_size: Optional[int] = None,
        time_frequency_dim: int = 128,
        rope_theta: float = 10_000.0,
        mode: str = "bernoulli-argmax",
        temperature: float = 1.0,
        beta: float = 1.0,
        trained_for: Optional[dict[str, Any]] = None,
        init_bias: float = INITIAL_LOGIT,
    ) -> None:
        super().__init__(mode=mode, temperature=temperature, beta=beta, trained_for=trained_for)
        dllm = {"hidden": input_size, "heads": None, "ffn": None}
        if not isinstance(input_size, int) or isinstance(input_size, bool):
            dllm = _read_dllm_config(input_size)
        self.input_size = int(dllm["hidden"])
        width = int(hidden_size or self.input_size)
        same_width = width == self.input_size
        default_heads = (dllm["heads"] if same_width else None) or max(1, width // 64)
        self._build_network(
            self.input_size,
            width,
            int(num_heads or default_heads),
            int(ffn_size or (dllm["ffn"] if same_width else None) or 4 * width),
            time_frequency_dim,
            rope_theta,
            init_bias,
            project_input=not same_width,
        )

    @classmethod
    def from_dllm_config(cls, config: Any, **kwargs: Any) -> HiddenStatePolicy:
        """Build a policy sized after a dLLM config (or model): `HiddenStatePolicy.from_dllm_config(model.config)`."""
        return cls(config, **kwargs)

    def forward(
        self,
        hidden_states: torch.Tensor,
        masked: torch.Tensor,
        time: torch.Tensor,
        padding_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Logits `[B, L]` from the dLLM's last hidden states `[B, L, H]` over the generated positions."""
        return self.network(hidden_states, masked, time, padding_mask)

    def _feature(self, source: Any, kind: str) -> torch.Tensor:
        hidden = source.get("hidden_states") if kind == "mapping" else source.hidden_states
        if hidden is None:
            raise ValueError(
                "HiddenStatePolicy needs the dLLM's last hidden states, but the states carry none. generate passes "
                "them to strategies with requires_hidden_states = True; a trajectory records them when generated "
                "with this policy and output_trajectory=True."
            )
        if hidden.shape[-1] != self.input_size:
            raise ValueError(f"hidden states have size {hidden.shape[-1]}, the policy expects {self.input_size}.")
        return hidden
