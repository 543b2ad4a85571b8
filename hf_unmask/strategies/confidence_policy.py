"""`ConfidencePolicy`: the paper's confidence policy (per-position dLLM confidence, mask bit and time)."""

from __future__ import annotations

from typing import Any, Optional

import torch

from .learned import UnmaskingPolicy
from .policy_network import INITIAL_LOGIT

#: How the confidence enters the network: the probability itself (paper) or its log-odds log(c / (1 - c)).
CONFIDENCE_FEATURES = ("probability", "log_odds")
#: Confidences are clamped to [eps, 1 - eps] before the log-odds (|log-odds| <= 13.8).
LOG_ODDS_EPS = 1e-6


def check_confidence_feature(confidence_feature: str) -> str:
    """`confidence_feature` if it is one of `CONFIDENCE_FEATURES`, else a ValueError."""
    if confidence_feature not in CONFIDENCE_FEATURES:
        raise ValueError(
            f"Unknown confidence_feature {confidence_feature!r}. Use one of {CONFIDENCE_FEATURES} "
            "(paper: 'probability')."
        )
    return confidence_feature


def log_odds(confidence: torch.Tensor) -> torch.Tensor:
    """float32 log(c / (1 - c)) of a confidence, clamped to [LOG_ODDS_EPS, 1 - LOG_ODDS_EPS] first."""
    c = confidence.float().clamp(LOG_ODDS_EPS, 1 - LOG_ODDS_EPS)
    return torch.log(c) - torch.log1p(-c)


class ConfidencePolicy(UnmaskingPolicy):
    """The paper's confidence policy: per-position dLLM confidence, mask bit and time -> unmasking decisions.

    One DiT-style transformer block with adaptive LayerNorm and RoPE over the L generated positions (see
    `hf_unmask.strategies.policy_network`); 331,265 parameters with the defaults. It works at any L, batch size and
    block layout (only eligible positions are ever chosen).

    Args:
        hidden_size, num_heads, ffn_size: block width (d), attention heads, FFN width.
        time_frequency_dim: size of the sinusoidal time features; rope_theta: RoPE base.
        mode: `"bernoulli"` (training), `"bernoulli-argmax"` (inference default) or `"dpls"`; see the module doc.
        temperature: tau_pi, divides the logits. unmask_beta: the paper's test-time beta, `p = min(1, unmask_beta *
            sigmoid(z))` (`beta=` is its deprecated name).
        confidence_feature: `"probability"` (paper) feeds the confidence c itself; `"log_odds"` feeds log(c / (1 - c)),
            which spreads the confidences near 1 that threshold heuristics tell apart (0.9 vs 0.99: 2.2 vs 4.6).
        architecture: `"hf_unmask"` (default) or `"paper"`, the paper's released network (no SiLU before the adaLN
            linear, time features `cos t` / `sin t`, head weight randomly initialised); same parameters and weight
            names. Its checkpoints load with `ConfidencePolicy.from_pretrained` (see `paper_checkpoint`).
        time_features_bfloat16: round the time features through bfloat16 before the time MLP, as the paper's code
            does. None (default) means True for `"paper"`, so a paper checkpoint sees exactly the inputs it was
            trained on, and False for `"hf_unmask"`.
        init_bias: the head bias at initialisation (-2: unmask probability ~0.12 on every position).
        trained_for: what the policy was trained for (keys in `TRAINED_FOR_KEYS`: base_model, gen_length,
            block_length, alpha, temperature, task, dataset, training_steps); `generate` warns when the policy runs
            with another L or BL, and the model card shows it. Empty for an untrained policy.

    Example:
        ```python
        >>> import torch
        >>> from hf_unmask.strategies import ConfidencePolicy
        >>> policy = ConfidencePolicy(temperature=0.5)
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
        unmask_beta: float = 1.0,
        trained_for: Optional[dict[str, Any]] = None,
        init_bias: float = INITIAL_LOGIT,
        confidence_feature: str = "probability",
        architecture: str = "hf_unmask",
        time_features_bfloat16: Optional[bool] = None,
        *,
        beta: Optional[float] = None,
    ) -> None:
        super().__init__(
            mode=mode, temperature=temperature, unmask_beta=unmask_beta, trained_for=trained_for, beta=beta
        )
        self.confidence_feature = check_confidence_feature(confidence_feature)
        self._build_network(
            1,
            hidden_size,
            num_heads,
            ffn_size,
            time_frequency_dim,
            rope_theta,
            init_bias,
            architecture=architecture,
            time_features_bfloat16=time_features_bfloat16,
        )

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
        if self.confidence_feature == "log_odds":
            confidence = log_odds(confidence)
        return self.network(confidence, masked, time, padding_mask)

    def _prepare_feature(self, confidence: Optional[torch.Tensor]) -> torch.Tensor:
        if confidence is None:
            raise ValueError("ConfidencePolicy needs the per-position confidence; the states carry none.")
        return confidence.float().unsqueeze(-1)
