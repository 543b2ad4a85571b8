"""`RemaskingPolicy`: a learned policy that unmasks *and* re-masks (sets decided tokens of the current block back to
`[MASK]`, see `hf_unmask.generation.remasking`), on the paper's network with a second output per position.

Per position the network reads three features: the dLLM confidence of the proposed token (as `ConfidencePolicy`),
the probability the dLLM now gives the token in place (`state.token_confidence`) and the age of that token
(`time - decided_time`, in the unit of the time, steps / L); the last two are 0 at masked positions. The mask bit and
the time condition the block as before. It returns two logits per position: `z_u` (unmask, read at eligible
positions) and `z_r` (re-mask, read at `revisable` positions, the decided positions of the current block).

Action model, with `z = logits / temperature`, E the eligible and R the revisable positions (disjoint sets):

- unmask: exactly `ConfidencePolicy`'s for the mode (`bernoulli`, `bernoulli-argmax`, `dpls`; see `action_models`),
  `p_u = min(1, unmask_beta * sigmoid(z_u))`;
- re-mask: independent Bernoulli draws on R, `p_r = min(1, sigmoid(z_r) / unmask_beta)`; an empty re-mask is allowed in
  every mode;
- `log pi(u, r) = log pi_unmask(u) + sum_{k in R} [r_k log p_r,k + (1 - r_k) log(1 - p_r,k)]`; the entropy is the
  sum of both parts (None for DPLS, whose unmask entropy has no closed form).

`unmask_beta` (the paper's test-time beta) is the speed dial: above 1 the policy unmasks more *and* re-masks less (fewer steps), below 1 the reverse.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Optional

import torch

from .action_models import bernoulli_log_probs, entropy_term, remask_log_probs, sample_unmask, uniform
from .confidence_policy import ConfidencePolicy, check_confidence_feature, log_odds
from .learned import UnmaskingPolicy, _Batch
from .policy_network import INITIAL_LOGIT

#: Re-mask bias at initialisation: every decided position starts with re-mask probability sigmoid(-6) ~ 0.0025.
REMASK_INITIAL_LOGIT = -6.0
#: Per-position features: confidence, token confidence, age.
NUM_FEATURES = 3


def remask_features(
    confidence: torch.Tensor,
    token_confidence: torch.Tensor,
    decided_time: torch.Tensor,
    time: torch.Tensor,
    masked: torch.Tensor,
) -> torch.Tensor:
    """`[..., L, 3]` float32 features (confidence, token confidence, age) from `[..., L]` fields and the time `[...]`;
    the age `time - decided_time` is 0 at masked positions.

    Example:
        ```python
        >>> f = remask_features(torch.tensor([[0.5, 0.9]]), torch.tensor([[0.0, 0.8]]), torch.tensor([[0.3, 0.25]]),
        ...                     torch.tensor([0.5]), torch.tensor([[True, False]]))
        >>> f[0].tolist()
        [[0.5, 0.0, 0.0], [0.8999999761581421, 0.800000011920929, 0.25]]
        ```
    """
    age = (time.float().unsqueeze(-1) - decided_time.float()).masked_fill(masked.bool(), 0.0)
    return torch.stack([confidence.float(), token_confidence.float(), age], dim=-1)


class RemaskingPolicy(UnmaskingPolicy):
    """A learned policy that unmasks masked positions and re-masks decided ones (see the module doc).

    Same network as `ConfidencePolicy` with three inputs per position (confidence, token confidence, age) and two
    outputs (unmask, re-mask logits); 331,650 parameters with the defaults. `generate` shows it `state.revisable`,
    `state.token_confidence` and `state.decided_time`, and records `remask_action` in the trajectory, so
    `log_prob(trajectory)` reproduces what sampling reported for both actions.

    Args:
        hidden_size, num_heads, ffn_size, time_frequency_dim, rope_theta, mode, temperature, trained_for, init_bias:
            as in `ConfidencePolicy`.
        confidence_feature: as in `ConfidencePolicy`, applied to the confidence and the token confidence.
        architecture, time_features_bfloat16: as in `ConfidencePolicy`.
        unmask_beta: the speed dial: `p_u = min(1, unmask_beta * sigmoid(z_u))`, `p_r = min(1, sigmoid(z_r) /
            unmask_beta)` (`beta=` is its deprecated name).
        remask_init_bias: the re-mask bias at initialisation (-6: re-masking starts rare, p ~ 0.0025).

    `RemaskingPolicy.from_unmasking_policy(policy)` warm-starts from a trained commit-only `ConfidencePolicy`.

    Example:
        ```python
        >>> import torch
        >>> from hf_unmask.strategies import RemaskingPolicy
        >>> policy = RemaskingPolicy()
        >>> policy.num_parameters(), policy.remasks_decided_tokens
        (331650, True)
        >>> states = {"confidence": torch.rand(1, 4), "masked": torch.tensor([[True, True, False, False]]),
        ...           "eligible": torch.tensor([[True, True, False, False]]), "time": torch.tensor([0.5]),
        ...           "revisable": torch.tensor([[False, False, True, True]]),
        ...           "token_confidence": torch.tensor([[0.0, 0.0, 0.9, 0.4]]),
        ...           "decided_time": torch.tensor([[0.0, 0.0, 0.25, 0.25]])}
        >>> [round(p, 4) for p in policy.remask_probabilities(states)[0].tolist()]
        [0.0, 0.0, 0.0025, 0.0025]
        ```
        With a dLLM: `model.generate(input_ids, strategy=policy, max_new_tokens=256, block_length=32)`.
    """

    remasks_decided_tokens = True

    def __init__(
        self,
        hidden_size: int = 128,
        num_heads: int = 2,
        ffn_size: int = 512,
        time_frequency_dim: int = 128,
        rope_theta: float = 10_000.0,
        mode: str = "bernoulli-argmax",
        temperature: float = 1.0,
        unmask_beta: float = 1.0,
        trained_for: Optional[dict[str, Any]] = None,
        init_bias: float = INITIAL_LOGIT,
        confidence_feature: str = "probability",
        architecture: str = "hf_unmask",
        time_features_bfloat16: Optional[bool] = None,
        remask_init_bias: float = REMASK_INITIAL_LOGIT,
        *,
        beta: Optional[float] = None,
    ) -> None:
        super().__init__(
            mode=mode, temperature=temperature, unmask_beta=unmask_beta, trained_for=trained_for, beta=beta
        )
        check_confidence_feature(confidence_feature)
        bias = remask_init_bias
        if not isinstance(bias, (int, float)) or isinstance(bias, bool) or not math.isfinite(bias):
            raise ValueError(
                f"remask_init_bias must be a finite number (the re-mask logit at initialisation), got {bias!r}. "
                f"Default: {REMASK_INITIAL_LOGIT} (re-masking starts rare)."
            )
        self.confidence_feature = confidence_feature
        self.remask_init_bias = float(bias)
        self._build_network(
            NUM_FEATURES,
            hidden_size,
            num_heads,
            ffn_size,
            time_frequency_dim,
            rope_theta,
            init_bias,
            architecture=architecture,
            time_features_bfloat16=time_features_bfloat16,
            output_dim=2,
        )
        with torch.no_grad():
            self.network.head.bias[1] = self.remask_init_bias

    @property
    def trajectory_fields(self) -> tuple[str, ...]:
        return ("confidence", "token_confidence", "decided_time", "revisable", "remask_action")

    @classmethod
    def from_unmasking_policy(cls, policy: ConfidencePolicy, **kwargs: Any) -> RemaskingPolicy:
        """A `RemaskingPolicy` that decides exactly as the commit-only `policy` and re-masks rarely: its
        hyper-parameters and `trained_for` (`kwargs` override them, e.g. `remask_init_bias`) and weights, the two new
        input columns zero, the unmask head row its head, the re-mask row weight 0 and bias `remask_init_bias`.

        Example:
            ```python
            >>> import torch
            >>> from hf_unmask.strategies import RemaskingPolicy, load_builtin_policy
            >>> commit_only = load_builtin_policy("tiny-dllm-program_trace-bl8-alpha1")
            >>> policy = RemaskingPolicy.from_unmasking_policy(commit_only)
            >>> policy.confidence_feature == commit_only.confidence_feature, policy.temperature
            (True, 0.5)
            ```
        """
        if not isinstance(policy, ConfidencePolicy):
            raise TypeError(
                f"from_unmasking_policy warm-starts from a commit-only ConfidencePolicy, got {type(policy).__name__}."
            )
        new = cls(**{**policy.get_config(), **kwargs}).to(next(policy.parameters()).device)
        source = policy.state_dict()
        state = new.state_dict()
        with torch.no_grad():
            for key, value in source.items():
                target = state[key]
                if key == "network.input_proj.weight":
                    target.zero_()[:, :1] = value
                elif key == "network.head.weight":
                    target.zero_()[:1] = value
                elif key == "network.head.bias":
                    target[0], target[1] = value[0], new.remask_init_bias
                else:
                    target.copy_(value)
        new.load_state_dict(state, strict=True)
        return new.train(policy.training)

    # ---- the network -------------------------------------------------------------------------------------------
    def forward(
        self,
        features: torch.Tensor,
        masked: torch.Tensor,
        time: torch.Tensor,
        padding_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Logits `[B, L, 2]` (unmask, re-mask; before temperature) from `features [B, L, 3]` (confidence, token
        confidence, age: `remask_features`), `masked [B, L]` and `time [B]`."""
        if features.dim() != masked.dim() + 1 or features.shape[-1] != NUM_FEATURES:
            raise ValueError(
                f"RemaskingPolicy reads [B, L, {NUM_FEATURES}] features (confidence, token confidence, age; see "
                f"remask_features), got {tuple(features.shape)} for masked {tuple(masked.shape)}."
            )
        confidence, token_confidence, age = features.unbind(-1)
        if self.confidence_feature == "log_odds":
            confidence, token_confidence = log_odds(confidence), log_odds(token_confidence)
        token_confidence = token_confidence.masked_fill(masked.bool(), 0.0)
        return self.network(torch.stack([confidence, token_confidence, age], dim=-1), masked, time, padding_mask)

    def _read_feature(self, get: Callable[[str], Any], time: torch.Tensor) -> torch.Tensor:
        values = {name: get(name) for name in ("confidence", "token_confidence", "decided_time")}
        missing = [name for name, value in values.items() if value is None]
        if missing:
            raise ValueError(
                f"RemaskingPolicy reads {missing}, which the states carry none of. generate passes them to a strategy "
                "with remasks_decided_tokens = True, and a trajectory records them when generated with one and "
                "output_trajectory=True."
            )
        return remask_features(*values.values(), time, get("masked"))

    # ---- the action model --------------------------------------------------------------------------------------
    def _sample_actions(
        self, logits: torch.Tensor, batch: _Batch, generator: Optional[torch.Generator]
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        z = logits / self.temperature
        action, u = sample_unmask(z[..., 0], batch.eligible, self.mode, self.unmask_beta, generator)
        if u is None:  # DPLS draws its own numbers; the Bernoulli modes' draws serve both (disjoint positions)
            u = uniform(tuple(action.shape), generator, z.device)
        log_p, _ = remask_log_probs(z[..., 1], self.unmask_beta)
        return action, (u < log_p.exp()) & batch.revisable

    def log_prob_from_logits(
        self,
        logits: torch.Tensor,
        eligible: torch.Tensor,
        action: torch.Tensor,
        with_entropy: bool = False,
        revisable: Optional[torch.Tensor] = None,
        remask: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Log-probability (and entropy) of the unmask `action` and the re-mask `remask` (None: no re-mask) given
        the network's `[..., L, 2]` logits: the unmask part over `eligible` plus the re-mask part over `revisable`."""
        if logits.shape[-1] != 2 or logits.dim() != eligible.dim() + 1:
            raise ValueError(
                f"RemaskingPolicy's logits are [..., L, 2] (unmask, re-mask), got {tuple(logits.shape)} for eligible "
                f"{tuple(eligible.shape)}."
            )
        if revisable is None:
            raise ValueError(
                "RemaskingPolicy's log-probability needs `revisable`, the decided positions it could re-mask (the "
                "trajectory's `revisable`)."
            )
        log_prob, entropy = self._log_prob_and_entropy(logits[..., 0], eligible, action, with_entropy)
        revisable = revisable.bool()
        remask = torch.zeros_like(revisable) if remask is None else remask.bool() & revisable
        log_p, log_q = remask_log_probs(logits[..., 1] / self.temperature, self.unmask_beta)
        zero = torch.zeros_like(log_p)
        log_prob = log_prob + torch.where(revisable, torch.where(remask, log_p, log_q), zero).sum(-1)
        if entropy is not None:
            terms = entropy_term(log_p.exp()) + entropy_term(log_q.exp())
            entropy = entropy + torch.where(revisable, terms, zero).sum(-1)
        return log_prob, entropy

    def unmask_probabilities(self, states: Any) -> torch.Tensor:
        """`[..., L]` unmask probability `min(1, unmask_beta * sigmoid(z_u / temperature))` (0 where not eligible)."""
        batch = self._batch(states)
        log_p, _ = bernoulli_log_probs(self._logits(batch)[..., 0] / self.temperature, self.unmask_beta)
        return (log_p.exp() * batch.eligible).reshape(*batch.lead, -1)

    def remask_probabilities(self, states: Any) -> torch.Tensor:
        """`[..., L]` re-mask probability `min(1, sigmoid(z_r / temperature) / unmask_beta)` (0 where not revisable)."""
        batch = self._batch(states)
        log_p, _ = remask_log_probs(self._logits(batch)[..., 1] / self.temperature, self.unmask_beta)
        return (log_p.exp() * batch.revisable).reshape(*batch.lead, -1)
