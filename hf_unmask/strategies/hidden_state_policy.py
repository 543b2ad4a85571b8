"""`HiddenStatePolicy`: the paper's ablation, a policy that reads the dLLM's last hidden states."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional, Union

import torch

from .learned import UnmaskingPolicy
from .policy_network import INITIAL_LOGIT


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


class HiddenStatePolicy(UnmaskingPolicy):
    """The paper's ablation: the dLLM's last hidden states (instead of confidences) through one transformer block.

    Same interface, modes and Hub I/O as `ConfidencePolicy`; `generate` passes hidden states to it because
    `requires_hidden_states = True`. By default the block is as wide as the dLLM (hidden size, heads and FFN width
    read from its config, ~300M parameters for an 8B dLLM), as in the paper.

    Args:
        input_size: the dLLM hidden size, or the dLLM config / model to read it (and the defaults below) from.
        hidden_size: block width (default: the dLLM hidden size; a Linear projects when they differ).
        num_heads, ffn_size: default to the dLLM's, else `hidden_size // 64` heads and `4 * hidden_size`.

    The other arguments are as in `ConfidencePolicy`.

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
    feature_name = "hidden_states"

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
        unmask_beta: float = 1.0,
        trained_for: Optional[dict[str, Any]] = None,
        init_bias: float = INITIAL_LOGIT,
        *,
        beta: Optional[float] = None,
    ) -> None:
        super().__init__(
            mode=mode, temperature=temperature, unmask_beta=unmask_beta, trained_for=trained_for, beta=beta
        )
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

    def _prepare_feature(self, hidden: Optional[torch.Tensor]) -> torch.Tensor:
        if hidden is None:
            raise ValueError(
                "HiddenStatePolicy needs the dLLM's last hidden states, but the states carry none. generate passes "
                "them to strategies with requires_hidden_states = True; a trajectory records them when generated "
                "with this policy and output_trajectory=True."
            )
        if hidden.shape[-1] != self.input_size:
            raise ValueError(f"hidden states have size {hidden.shape[-1]}, the policy expects {self.input_size}.")
        return hidden
