"""The base of learned unmasking policies (arXiv 2512.09106): the strategy call, sampling, log-probabilities, the
trained-for check and weights I/O, over the action models of `action_models.py`.

A policy is a `torch.nn.Module` *and* an unmasking strategy:

- `policy(state)` with a `DenoisingState` is the strategy call used by `generate`: it samples an action and
  returns `StrategyOutput(selection, log_prob)`;
- `policy(confidence, masked, time)` (any other arguments) is the ordinary module call, which runs `forward` and
  returns the logits. `nn.Module.__call__` is kept for it, so hooks, `torch.compile` and DDP wrappers behave as usual.

The paper's test-time knobs: `temperature` (tau_pi; 1 in training, 0.5 is best at BL = 32) and `unmask_beta` (the
paper's test-time beta: scales the unmask probabilities, `p = min(1, unmask_beta * s)`; in DPLS it multiplies the odds
of every position against STOP). It is not the KL weight `beta` of the GRPO trainer.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Optional, Union

import torch
from torch import nn

from .. import hub
from .._warnings import warn_at_caller, warn_deprecated
from ..generation.outputs import DiffusionTrajectory
from ..generation.state import DenoisingState
from ..generation.strategy import StrategyOutput
from .action_models import MODES, bernoulli_log_probs, sample_unmask, unmask_log_prob
from .base import STRATEGY_REGISTRY, UnmaskingStrategy
from .policy_network import PolicyNetwork
from .trained_for import TRAINED_FOR_KEYS, checked_trained_for, setting_mismatches  # noqa: F401 (re-exported)


@dataclass
class PolicySample:
    """A sampled action. `action`: `[..., L]` bool; `log_prob`: `[...]`; `logits`: `[..., L]` (before temperature;
    `[..., L, 2]` for a re-masking policy); `remask`: `[..., L]` bool, the decided positions a re-masking policy sets
    back to `[MASK]` (None for the others)."""

    action: torch.Tensor
    log_prob: torch.Tensor
    logits: torch.Tensor
    remask: Optional[torch.Tensor] = None


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
    revisable: Optional[torch.Tensor] = None  # [N, L], re-masking policies only


class UnmaskingPolicy(UnmaskingStrategy, nn.Module):
    """Base of learned policies: action modes, sampling, log-probabilities, the trained-for check and weights I/O.

    `UnmaskingPolicy.from_pretrained(folder_or_repo)` loads any saved policy as the class its config names
    (`ConfidencePolicy`, `HiddenStatePolicy`, `RemaskingPolicy`, ...), and every learned policy is an instance of it.

    Subclasses build `self.network`, implement `forward`, and name the per-position input they read from a state,
    a trajectory or a mapping (`feature_name`, checked and shaped by `_prepare_feature`, or `_read_feature` for
    several fields). A re-masking policy (`remasks_decided_tokens`) overrides `_sample_actions` and
    `log_prob_from_logits`; the rest (sampling, `log_prob`, the trainer's `network_inputs` / `log_prob_from_states`)
    is shared.

    Example:
        ```python
        >>> from hf_unmask.strategies import UnmaskingPolicy, load_builtin_policy
        >>> policy = load_builtin_policy("tiny-dllm-program_trace-bl8-alpha1")
        >>> type(policy).__name__, isinstance(policy, UnmaskingPolicy)
        ('ConfidencePolicy', True)
        ```
    """

    is_learned = True
    #: The field of a `DenoisingState` / `DiffusionTrajectory` / states mapping that the network reads per position.
    feature_name: ClassVar[str] = "confidence"
    _deprecated_arguments = ("beta",)

    def __new__(cls, *args: Any, **kwargs: Any) -> UnmaskingPolicy:
        if cls is UnmaskingPolicy:  # the old name of the confidence policy, called with its arguments
            warn_at_caller(
                "Constructing UnmaskingPolicy(...) is deprecated: UnmaskingPolicy is now the base class of learned "
                "policies, and the confidence policy is ConfidencePolicy. Use ConfidencePolicy(...) (same arguments); "
                "this one is built as a ConfidencePolicy until the next release.",
                FutureWarning,
            )
            cls = STRATEGY_REGISTRY["ConfidencePolicy"]
        return super().__new__(cls, *args, **kwargs)

    def __init__(
        self,
        mode: str = "bernoulli-argmax",
        temperature: float = 1.0,
        unmask_beta: float = 1.0,
        trained_for: Optional[dict[str, Any]] = None,
        *,
        beta: Optional[float] = None,
    ) -> None:
        nn.Module.__init__(self)
        if beta is not None:
            warn_deprecated("The argument beta=", "unmask_beta=")
            unmask_beta = beta
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise ValueError(f"temperature (tau_pi) must be a positive number, got {temperature!r}.")
        if not (isinstance(unmask_beta, (int, float)) and unmask_beta > 0):
            raise ValueError(f"unmask_beta must be a positive number, got {unmask_beta!r}.")
        self.mode = mode
        self.temperature = float(temperature)
        self.unmask_beta = float(unmask_beta)
        self.trained_for = checked_trained_for(trained_for)
        self._warned: set[tuple[str, Any, Any]] = set()

    @property
    def beta(self) -> float:
        """Deprecated name of `unmask_beta` (`beta` is the GRPO trainer's KL weight)."""
        warn_deprecated("policy.beta", "policy.unmask_beta")
        return self.unmask_beta

    @beta.setter
    def beta(self, value: float) -> None:
        warn_deprecated("policy.beta", "policy.unmask_beta")
        self.unmask_beta = float(value)

    @classmethod
    def _upgrade_saved_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Configs saved before `unmask_beta` was named so store it as `beta` (data, so no warning)."""
        if "beta" in config:
            config.setdefault("unmask_beta", config["beta"])
            del config["beta"]
        return config

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
        output_dim: int = 1,
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
            output_dim=output_dim,
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
        device = state.eligible.device
        action, log_prob = sample.action.to(device), sample.log_prob.float().to(device)
        remask = None if sample.remask is None else sample.remask.to(device)
        if state.rows is not None:
            action, log_prob = action[state.rows], log_prob[state.rows]
            remask = None if remask is None else remask[state.rows]
        remask = None if remask is None else remask & state.revisable
        return StrategyOutput(selection=action & state.eligible, log_prob=log_prob, remask=remask)

    # ---- inputs ------------------------------------------------------------------------------------------------
    def _prepare_feature(self, value: Optional[torch.Tensor]) -> torch.Tensor:
        """`[..., L, F]` network input from the states' `feature_name` field (None when the states lack it)."""
        raise NotImplementedError

    def _read_feature(self, get: Callable[[str], Any], time: torch.Tensor) -> torch.Tensor:
        """`[..., L, F]` network input from the states' fields (`get(name)`, None when absent) and the time `[...]`."""
        return self._prepare_feature(get(self.feature_name))

    @property
    def trajectory_fields(self) -> tuple[str, ...]:
        """The recorded fields the policy reads besides `masked`, `eligible`, `time`, `action` (and `padding_mask`)."""
        return (self.feature_name,)

    def network_inputs(self, states: Mapping[str, torch.Tensor]) -> tuple[Any, ...]:
        """The arguments of `forward` (`feature, masked, time, padding_mask`) from recorded states (a mapping of
        `[N, L]` fields, `time` `[N]`): what a trainer feeds the network (through its DDP wrapper)."""
        time = states["time"]
        return self._read_feature(states.get, time), states["masked"], time, states.get("padding_mask")

    def log_prob_from_states(
        self, logits: torch.Tensor, states: Mapping[str, torch.Tensor], with_entropy: bool = False
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """`log_prob_from_logits` of the actions recorded in `states` (`action`, and `revisable` / `remask_action`
        for a re-masking policy)."""
        extra = {}
        if self.remasks_decided_tokens:
            extra = {"revisable": states["revisable"], "remask": states["remask_action"]}
        return self.log_prob_from_logits(logits, states["eligible"], states["action"], with_entropy, **extra)

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
        device = self._device()
        n = int(math.prod(lead))
        time = torch.as_tensor(time, dtype=torch.float32)
        if tuple(time.shape) != lead:
            raise ValueError(f"time must have shape {lead} (one value per step and row), got {tuple(time.shape)}.")
        feature = self._read_feature(get, time)
        revisable = get("revisable") if self.remasks_decided_tokens else None
        if self.remasks_decided_tokens and revisable is None:
            raise ValueError(f"{type(self).__name__} re-masks decided tokens: it reads `revisable`, which is missing.")
        return _Batch(
            feature=feature.reshape(n, length, feature.shape[-1]).to(device),
            masked=masked.reshape(n, length).to(device=device, dtype=torch.bool),
            eligible=eligible.reshape(n, length).to(device=device, dtype=torch.bool),
            time=time.reshape(n).to(device),
            padding_mask=None if padding is None else padding.reshape(n, length).to(device=device, dtype=torch.bool),
            lead=lead,
            device=masked.device,
            revisable=None if revisable is None else revisable.reshape(n, length).to(device=device, dtype=torch.bool),
        )

    def _device(self) -> torch.device:
        return next(self.parameters()).device

    def _logits(self, batch: _Batch) -> torch.Tensor:
        return nn.Module.__call__(self, batch.feature, batch.masked, batch.time, batch.padding_mask).float()

    # ---- sampling and log-probabilities ------------------------------------------------------------------------
    def unmask_probabilities(self, states: Any) -> torch.Tensor:
        """`[..., L]` per-position unmask probability `min(1, unmask_beta * sigmoid(logit / temperature))` (0 where not
        eligible). For DPLS this is the Bernoulli view of the same logits, useful for inspection only."""
        batch = self._batch(states)
        log_p, _ = bernoulli_log_probs(self._logits(batch) / self.temperature, self.unmask_beta)
        return (log_p.exp() * batch.eligible).reshape(*batch.lead, -1)

    def sample(self, states: Any, generator: Optional[torch.Generator] = None) -> PolicySample:
        """Sample actions (restricted to eligible positions) and their log-probabilities under `self.mode`.

        Example:
            ```python
            >>> import torch
            >>> from hf_unmask.strategies import ConfidencePolicy
            >>> policy = ConfidencePolicy(mode="dpls")
            >>> states = {"confidence": torch.rand(3, 8), "masked": torch.ones(3, 8, dtype=torch.bool),
            ...           "eligible": torch.ones(3, 8, dtype=torch.bool), "time": torch.zeros(3)}
            >>> out = policy.sample(states, generator=torch.Generator().manual_seed(0))
            >>> bool(out.action.any(-1).all()), out.log_prob.shape
            (True, torch.Size([3]))
            ```
        """
        batch = self._batch(states)
        logits = self._logits(batch)
        action, remask = self._sample_actions(logits, batch, generator)
        log_prob = self._actions_log_prob(logits, batch, action, remask, with_entropy=False)[0]
        shape = (*batch.lead, -1)
        return PolicySample(
            action=action.reshape(shape).to(batch.device),
            log_prob=log_prob.reshape(batch.lead).to(batch.device),
            logits=logits.reshape(*batch.lead, *logits.shape[1:]).to(batch.device),
            remask=None if remask is None else remask.reshape(shape).to(batch.device),
        )

    def _sample_actions(
        self, logits: torch.Tensor, batch: _Batch, generator: Optional[torch.Generator]
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """`(unmask action, re-mask action or None)` `[N, L]` drawn from the network's logits."""
        action, _ = sample_unmask(logits / self.temperature, batch.eligible, self.mode, self.unmask_beta, generator)
        return action, None

    def _actions_log_prob(
        self, logits: torch.Tensor, batch: _Batch, action: torch.Tensor, remask: Any, with_entropy: bool
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        extra = {}
        if self.remasks_decided_tokens or remask is not None:
            extra = {"revisable": batch.revisable, "remask": remask}
        return self.log_prob_from_logits(logits, batch.eligible, action, with_entropy, **extra)

    def evaluate_actions(
        self, states: Any, actions: Optional[torch.Tensor] = None, remask: Optional[torch.Tensor] = None
    ) -> ActionEvaluation:
        """Log-probabilities (differentiable) and entropies of recorded actions, batched over steps.

        Args:
            states: a `DiffusionTrajectory` (tensors `[T, B, L]`), a `DenoisingState`, or a mapping with `confidence`
                (or `hidden_states`), `masked`, `eligible`, `time` and optionally `padding_mask`, flattened `[N, L]`.
            actions: bool `[..., L]`; defaults to `states.action` for a trajectory (or `states["action"]`).
            remask: re-masking policies: bool `[..., L]`, the re-mask action; defaults to `remask_action`.

        Returns:
            `ActionEvaluation` with `log_prob` of shape `[T, B]` (or `[N]`), equal to what sampling reported. Rows
            with no eligible position (not live in a trajectory) get log-probability 0 and entropy 0.
        """

        def recorded(name: str) -> Optional[torch.Tensor]:
            return states.get(name) if isinstance(states, Mapping) else getattr(states, name, None)

        if actions is None:
            actions = recorded("action")
            if actions is None:
                raise ValueError("No actions given and none recorded in `states`; pass actions=...")
        if remask is None and self.remasks_decided_tokens:
            remask = recorded("remask_action")
            if remask is None:
                raise ValueError("No re-mask actions given and none recorded in `states`; pass remask=...")
        batch = self._batch(states)
        logits = self._logits(batch)
        shape, device = batch.eligible.shape, batch.eligible.device
        actions = actions.reshape(shape).to(device=device, dtype=torch.bool)
        remask = None if remask is None else remask.reshape(shape).to(device=device, dtype=torch.bool)
        log_prob, entropy = self._actions_log_prob(logits, batch, actions, remask, with_entropy=True)
        return ActionEvaluation(
            log_prob=log_prob.reshape(batch.lead),
            entropy=None if entropy is None else entropy.reshape(batch.lead),
            logits=logits.reshape(*batch.lead, *logits.shape[1:]),
        )

    def log_prob(
        self, states: Any, actions: Optional[torch.Tensor] = None, remask: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """`[T, B]` (or `[N]`) log-probabilities of `actions` (and `remask`) in `states`; see `evaluate_actions`.

        Example:
            ```python
            >>> import torch
            >>> from hf_unmask.strategies import ConfidencePolicy
            >>> policy = ConfidencePolicy(mode="bernoulli")
            >>> states = {"confidence": torch.rand(2, 4), "masked": torch.ones(2, 4, dtype=torch.bool),
            ...           "eligible": torch.ones(2, 4, dtype=torch.bool), "time": torch.zeros(2)}
            >>> out = policy.sample(states)
            >>> torch.allclose(policy.log_prob(states, out.action), out.log_prob)
            True
            ```
        """
        return self.evaluate_actions(states, actions, remask).log_prob

    def log_prob_from_logits(
        self,
        logits: torch.Tensor,
        eligible: torch.Tensor,
        action: torch.Tensor,
        with_entropy: bool = False,
        revisable: Optional[torch.Tensor] = None,
        remask: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """Log-probability (and entropy) of `action` given network `logits` (before temperature), `[..., L]` each.

        For trainers that run the network themselves (e.g. through a DDP wrapper) and need the action model on top.
        DPLS returns no entropy. `revisable` / `remask` are for re-masking policies (`RemaskingPolicy`).
        """
        if revisable is not None or remask is not None:
            raise ValueError(f"{type(self).__name__} does not re-mask decided tokens: pass no revisable / remask.")
        return self._log_prob_and_entropy(logits, eligible, action, with_entropy)

    def _log_prob_and_entropy(
        self, logits: torch.Tensor, eligible: torch.Tensor, action: torch.Tensor, with_entropy: bool
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        return unmask_log_prob(logits, eligible, action, self.mode, self.temperature, self.unmask_beta, with_entropy)

    # ---- the trained-for check ---------------------------------------------------------------------------------
    def _check_trained_for(self, state: DenoisingState) -> None:
        for message in setting_mismatches(
            self.trained_for, state.config.gen_length, state.config.effective_block_length
        ):
            if message not in self._warned:
                self._warned.add(message)
                warn_at_caller(f"{type(self).__name__} {message}")

    # ---- weights I/O ------------------------------------------------------------------------------------------
    def _save_pretrained(self, save_directory: Path) -> None:
        hub.save_weights(self.state_dict(), save_directory / hub.WEIGHTS_NAME, metadata={"class": type(self).__name__})

    @classmethod
    def _from_config_and_files(
        cls, config: dict[str, Any], pretrained_model_name_or_path: Union[str, os.PathLike], hub_kwargs: dict[str, Any]
    ) -> UnmaskingPolicy:
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
            warn_at_caller(
                f"Pushing a {type(self).__name__} with an empty `trained_for`: nothing says it was trained, and its "
                "model card will say it is untrained. Set policy.trained_for (base_model, gen_length, block_length, "
                "alpha, ...) after training."
            )
        return super().push_to_hub(repo_id, **kwargs)

    def num_parameters(self) -> int:
        """Number of parameters of the network."""
        return sum(p.numel() for p in self.parameters())


def __getattr__(name: str) -> Any:
    if name == "LearnedUnmaskingPolicy":
        warn_deprecated("LearnedUnmaskingPolicy", "UnmaskingPolicy (the base class of learned policies)")
        return UnmaskingPolicy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
