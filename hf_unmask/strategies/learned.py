"""The base of learned unmasking policies (arXiv 2512.09106): the strategy call, sampling, log-probabilities, the
trained-for check and weights I/O, over the action models of `action_models.py`.

A policy is a `torch.nn.Module` *and* an unmasking strategy:

- `policy(state)` with a `DenoisingState` is the strategy call used by `generate`: it samples an action and
  returns `StrategyOutput(selection, log_prob)`;
- `policy(confidence, masked, time)` (any other arguments) is the ordinary module call, which runs `forward` and
  returns the logits. `nn.Module.__call__` is kept for it, so hooks, `torch.compile` and DDP wrappers behave as usual.

The paper's test-time knobs: `temperature` (tau_pi; 1 in training, 0.5 is best at BL = 32) and `beta` (scales the
unmask probabilities, `p = min(1, beta * s)`; in DPLS it multiplies the odds of every position against STOP).
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional, Union

import torch
from torch import nn

from .. import hub
from ..generation.outputs import DiffusionTrajectory
from ..generation.state import DenoisingState
from ..generation.strategy import StrategyOutput
from .action_models import (
    MODES,
    argmax_eligible,
    bernoulli_log_probs,
    dpls_sample,
    dpls_set_log_prob,
    entropy_term,
    uniform,
)
from .base import UnmaskingStrategy
from .policy_network import PolicyNetwork
from .trained_for import TRAINED_FOR_KEYS, checked_trained_for, setting_mismatches  # noqa: F401 (re-exported)


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


class LearnedUnmaskingPolicy(UnmaskingStrategy, nn.Module):
    """Base of learned policies: action modes, sampling, log-probabilities, the trained-for check and weights I/O.

    Subclasses build `self.network`, implement `forward`, and name the per-position input they read from a state,
    a trajectory or a mapping (`feature_name`, checked and shaped by `_prepare_feature`).
    """

    #: The field of a `DenoisingState` / `DiffusionTrajectory` / states mapping that the network reads per position.
    feature_name: ClassVar[str] = "confidence"

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
        self.mode = mode
        self.temperature = float(temperature)
        self.beta = float(beta)
        self.trained_for = checked_trained_for(trained_for)
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
        architecture: str = "hf_unmask",
        time_features_bfloat16: Optional[bool] = None,
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
            architecture=architecture,
            time_features_bfloat16=time_features_bfloat16,
        )
        self.architecture = self.network.architecture
        self.time_features_bfloat16 = self.network.time_features_bfloat16

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
            # sampled over the whole batch, so a row's random draws do not depend on which rows the step feeds
            sample = self.sample(state.over_full_batch(), generator=state.generator)
        action, log_prob = sample.action.to(state.eligible.device), sample.log_prob.float().to(state.eligible.device)
        if state.rows is not None:
            action, log_prob = action[state.rows], log_prob[state.rows]
        return StrategyOutput(selection=action & state.eligible, log_prob=log_prob)

    # ---- inputs ------------------------------------------------------------------------------------------------
    def _prepare_feature(self, value: Optional[torch.Tensor]) -> torch.Tensor:
        """`[..., L, F]` network input from the states' `feature_name` field (None when the states lack it)."""
        raise NotImplementedError

    def _batch(self, states: Any) -> _Batch:
        if isinstance(states, DenoisingState):
            get = lambda name: getattr(states, name)  # noqa: E731
            time, padding = states.time, states.padding_mask
        elif isinstance(states, DiffusionTrajectory):
            get = lambda name: getattr(states, name)  # noqa: E731
            time, padding = states.time, states.padding_mask
            if states.confidence is None:
                raise ValueError("The trajectory is empty: generate with output_trajectory=True to record one.")
        elif isinstance(states, Mapping):
            missing = [k for k in ("masked", "eligible", "time") if k not in states]
            if missing:
                raise KeyError(f"The states mapping lacks {missing}; it needs confidence/masked/eligible/time.")
            get = states.get
            time, padding = states["time"], states.get("padding_mask")
        else:
            raise TypeError(
                "states must be a DenoisingState, a DiffusionTrajectory (from generate(..., output_trajectory=True)) "
                f"or a mapping of tensors with confidence/masked/eligible/time; got {type(states).__name__}."
            )
        masked, eligible = get("masked"), get("eligible")
        lead, length = tuple(masked.shape[:-1]), masked.shape[-1]
        feature = self._prepare_feature(get(self.feature_name))
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
            action = dpls_sample(z + math.log(self.beta), eligible, generator)
        else:
            log_p, _ = bernoulli_log_probs(z, self.beta)
            action = (uniform(tuple(z.shape), generator, z.device) < log_p.exp()) & eligible
            if self.mode == "bernoulli-argmax":
                empty = eligible.any(-1) & ~action.any(-1)
                fallback = torch.zeros_like(action).scatter(-1, argmax_eligible(z, eligible).unsqueeze(-1), True)
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
            entropy = torch.where(eligible, entropy_term(p) + entropy_term(q), zero).sum(-1)
        if self.mode == "bernoulli-argmax":
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

    # ---- the trained-for check ---------------------------------------------------------------------------------
    def _check_trained_for(self, state: DenoisingState) -> None:
        for message in setting_mismatches(
            self.trained_for, state.config.gen_length, state.config.effective_block_length
        ):
            if message not in self._warned:
                self._warned.add(message)
                warnings.warn(f"{type(self).__name__} {message}", UserWarning, stacklevel=3)

    # ---- weights I/O ------------------------------------------------------------------------------------------
    def _save_pretrained(self, save_directory: Path) -> None:
        hub.save_weights(self.state_dict(), save_directory / hub.WEIGHTS_NAME, metadata={"class": type(self).__name__})

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
