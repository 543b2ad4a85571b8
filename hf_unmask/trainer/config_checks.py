"""The checks of `UnmaskingGRPOConfig`'s own fields: each error names the problem and the flag that fixes it."""

from __future__ import annotations

import math
from typing import Any

from ..generation import check_block_length
from ..generation.cache_settings import CACHE_IMPLEMENTATIONS, check_cache_implementation, check_cache_support
from ..rewards import REWARD_FORMS
from ..strategies.confidence_policy import CONFIDENCE_FEATURES
from ..strategies.hidden_state_policy import HiddenStatePolicy

ACTION_MODES = ("bernoulli", "bernoulli-argmax", "dpls")
SCALE_REWARDS = ("none", "group", "batch")
ROLLOUT_CACHE_MODES = CACHE_IMPLEMENTATIONS  # generate's cache_implementation values
#: How the trainer's users turn the rollout cache on and off, for generate's cache checks' messages.
_ROLLOUT_CACHE_FLAGS = {"flag": "rollout_use_cache=True", "drop": "--rollout_use_cache"}
EXPERT_SCORINGS = ("policy", "expert")  # which eligible sets the expert rollout's actions are scored over
#: What the trained policy reads per position (its `feature_name`): the dLLM's confidences (`ConfidencePolicy`, the
#: paper's policy) or the dLLM's last hidden states (`HiddenStatePolicy`, the paper's ablation).
POLICY_TYPES = ("confidence", "hidden_states")
#: Networks of a fresh confidence policy (`ConfidencePolicy(architecture=...)`).
POLICY_ARCHITECTURES = ("paper", "hf_unmask")


def check_unmasking_fields(config: Any) -> None:
    """Validate the fields `UnmaskingGRPOConfig` adds to `GRPOConfig`; `ValueError` naming the problem and the fix."""
    _check_lengths_and_groups(config)
    _check_reward_and_loss(config)
    _check_expert_fields(config)
    _check_rollout_fields(config)
    check_policy_type(config)
    check_remasking(config)
    check_trl_fields(config)
    config._check_collapse_and_best_fields()
    _check_policy_network(config)


def _check_lengths_and_groups(config: Any) -> None:
    """L, the block lengths and the group size G."""
    L = config.gen_length
    if not isinstance(L, int) or isinstance(L, bool) or L <= 0:
        raise ValueError(f"gen_length (L) must be a positive integer, got {L!r}. Pass e.g. --gen_length 256.")
    for name in ("block_length", "expert_block_length") if config.expert_steering else ("block_length",):
        if getattr(config, name) is not None:
            check_block_length(getattr(config, name), L, name=name, length_name="gen_length")
    if config.num_generations is None or config.num_generations < 2:
        raise ValueError(
            f"num_generations (G) must be >= 2, got {config.num_generations!r}: GRPO's advantage is the reward minus "
            "the mean of the prompt's group, which is identically 0 for a group of one. Use e.g. "
            "--num_generations 8 (paper)."
        )


def _check_reward_and_loss(config: Any) -> None:
    """The reward, the policy's action mode and temperatures, and the GRPO loss's coefficients."""
    if not isinstance(config.alpha, (int, float)) or isinstance(config.alpha, bool) or config.alpha < 0:
        raise ValueError(
            f"alpha must be a number >= 0, got {config.alpha!r}: it weighs the NFE penalty of the reward "
            "(0 = correctness only). Use e.g. --alpha 1."
        )
    if config.reward_form not in REWARD_FORMS:
        raise ValueError(
            f"Unknown reward_form {config.reward_form!r}. Use one of {REWARD_FORMS} (paper: 'multiplicative')."
        )
    if config.action_mode not in ACTION_MODES:
        raise ValueError(
            f"Unknown action_mode {config.action_mode!r}. Use one of {ACTION_MODES} (paper: 'bernoulli')."
        )
    scale = {True: "group", False: "none"}.get(config.scale_rewards, config.scale_rewards)
    if scale not in SCALE_REWARDS:
        raise ValueError(
            f"Unknown scale_rewards {config.scale_rewards!r}. Use one of {SCALE_REWARDS} (paper: 'none')."
        )
    config.scale_rewards = scale
    for name in ("policy_temperature", "eval_policy_temperature"):
        value = getattr(config, name)
        if value is not None and not (isinstance(value, (int, float)) and value > 0):
            raise ValueError(f"{name} (tau_pi) must be a positive number, got {value!r}.")
    if not (isinstance(config.epsilon, (int, float)) and config.epsilon > 0):
        raise ValueError(f"epsilon (clip range) must be > 0, got {config.epsilon!r}. Paper: 0.5.")
    if not isinstance(config.num_iterations, int) or config.num_iterations < 1:
        raise ValueError(f"num_iterations must be an integer >= 1, got {config.num_iterations!r}. Paper: 2.")
    if config.beta < 0:
        raise ValueError(f"beta (KL weight) must be >= 0, got {config.beta!r}.")
    if not 0.0 <= config.entropy_floor <= math.log(2):
        raise ValueError(
            f"entropy_floor must be between 0 (off) and ln 2 = 0.693 (the entropy of a fair coin), got "
            f"{config.entropy_floor!r}. Try --entropy_floor 0.05."
        )
    if config.entropy_coef < 0:
        raise ValueError(f"entropy_coef must be >= 0, got {config.entropy_coef!r}.")
    if config.entropy_floor > 0 and config.action_mode == "dpls":
        raise ValueError("entropy_floor needs the policy's entropy, which action_mode='dpls' does not give.")
    if config.dllm_temperature < 0:
        raise ValueError(f"dllm_temperature must be >= 0 (0 = greedy), got {config.dllm_temperature!r}.")


def _check_expert_fields(config: Any) -> None:
    """Expert steering: its threshold, how its actions are scored and imitated, and what needs it switched on."""
    if not 0.0 <= config.expert_threshold <= 1.0:
        raise ValueError(f"expert_threshold must be in [0, 1], got {config.expert_threshold!r}. Paper: 0.9.")
    if config.policy_confidence_feature not in CONFIDENCE_FEATURES:
        raise ValueError(
            f"Unknown policy_confidence_feature {config.policy_confidence_feature!r}. Use one of "
            f"{CONFIDENCE_FEATURES} (paper: 'probability')."
        )
    if config.expert_scoring not in EXPERT_SCORINGS:
        raise ValueError(
            f"Unknown expert_scoring {config.expert_scoring!r}. Use one of {EXPERT_SCORINGS} (paper: 'policy')."
        )
    if not (isinstance(config.expert_imitation_coef, (int, float)) and config.expert_imitation_coef >= 0):
        raise ValueError(
            f"expert_imitation_coef must be a number >= 0 (0 = off), got {config.expert_imitation_coef!r}."
        )
    if not isinstance(config.expert_imitation_steps, int) or config.expert_imitation_steps < 0:
        raise ValueError(
            f"expert_imitation_steps must be an integer >= 0 (0 = constant), got {config.expert_imitation_steps!r}."
        )
    full = config.block_length is None or config.block_length == config.gen_length
    if (
        config.expert_steering and config.expert_scoring == "policy" and not full
        and config.expert_block_length is not None and config.block_length % config.expert_block_length
    ):  # fmt: skip
        raise ValueError(
            f"expert_scoring='policy' scores the expert's actions inside the policy's block, so the policy's "
            f"block_length ({config.block_length}) must be a multiple of expert_block_length "
            f"({config.expert_block_length}) or full diffusion. Set --expert_block_length {config.block_length}, or "
            "--expert_scoring expert to score them over the expert's own blocks."
        )
    if (config.expert_imitation_coef > 0 or config.expert_scoring != "policy") and not config.expert_steering:
        raise ValueError(
            "expert_imitation_coef and expert_scoring act on the expert rollouts, which only exist with "
            "expert_steering: add --expert_steering true (or drop them)."
        )


def _check_rollout_fields(config: Any) -> None:
    """How rollouts are generated: batch size, cache (rollout_use_cache / rollout_cache_implementation), finished blocks."""
    if config.rollout_batch_size is not None and config.rollout_batch_size <= 0:
        raise ValueError(f"rollout_batch_size must be a positive integer or None, got {config.rollout_batch_size!r}.")
    if not isinstance(config.rollout_use_cache, bool):
        raise ValueError(f"rollout_use_cache must be true or false, got {config.rollout_use_cache!r}.")
    for name in ("rollout_finish_blocks", "skip_zero_advantage_steps"):
        if not isinstance(getattr(config, name), bool):
            raise ValueError(f"{name} must be true or false, got {getattr(config, name)!r}.")
    check_rollout_cache(config)


def _check_policy_network(config: Any) -> None:
    """The architecture and sizes of a fresh policy network."""
    if config.policy_architecture not in POLICY_ARCHITECTURES:
        raise ValueError(
            f"Unknown policy_architecture {config.policy_architecture!r}. Use one of {POLICY_ARCHITECTURES} "
            "(paper: 'paper')."
        )
    heads, hidden = config.policy_num_heads, config.policy_hidden_size
    if heads <= 0 or hidden <= 0 or config.policy_ffn_size <= 0 or hidden % heads or (hidden // heads) % 2:
        raise ValueError(
            f"policy_hidden_size={hidden} must split into policy_num_heads={heads} heads of even size (RoPE), and "
            f"policy_ffn_size={config.policy_ffn_size} must be positive. Paper: 128 / 2 / 512."
        )


def check_policy_type(config: Any) -> None:
    """`policy_type` is known, and a hidden-state policy is not combined with what cannot give it hidden states."""
    if config.policy_type not in POLICY_TYPES:
        raise ValueError(
            f"Unknown policy_type {config.policy_type!r}. Use one of {POLICY_TYPES}: 'confidence' (ConfidencePolicy, "
            "the paper's) or 'hidden_states' (HiddenStatePolicy, which reads the dLLM's last hidden states)."
        )
    if config.policy_type != "hidden_states":
        return
    if config.policy_confidence_feature != "probability":
        raise ValueError(
            f"policy_confidence_feature={config.policy_confidence_feature!r} only applies to confidence policies; "
            "policy_type='hidden_states' reads the dLLM's hidden states, not its confidence. Drop "
            "--policy_confidence_feature (or use --policy_type confidence)."
        )
    if config.expert_steering:
        raise ValueError(
            "expert_steering=True with policy_type='hidden_states': the expert rollout (Fast-dLLM confidence "
            "threshold) records no dLLM hidden states, so the hidden-state policy cannot score its actions. Drop "
            "--expert_steering (or use --policy_type confidence)."
        )
    check_rollout_cache(config, strategy=HiddenStatePolicy)


def check_rollout_cache(config: Any, adapter: Any = None, strategy: Any = None) -> None:
    """The rollout cache settings (`rollout_use_cache`, `rollout_cache_implementation`) through generate's own cache checks
    (`generation.cache_settings`), with the trainer's flag names in the messages: the implementation, and when the
    cache is on, the dLLM's family (`adapter`) and the policy (`strategy`, a class or an instance) when given."""
    check_cache_implementation(
        config.rollout_cache_implementation,
        name="rollout_cache_implementation",
        spell=lambda value: f"--rollout_cache_implementation {value}",
    )
    if config.rollout_use_cache:
        check_cache_support(adapter=adapter, strategy=strategy, **_ROLLOUT_CACHE_FLAGS)


def check_remasking(config: Any) -> None:
    """`policy_remasking` is a bool, `policy_remask_init_bias` a finite number, and a re-masking policy is not combined
    with what cannot give it the re-masking fields (expert rollouts) or a confidence (hidden-state policies)."""
    if not isinstance(config.policy_remasking, bool):
        raise ValueError(f"policy_remasking must be true or false, got {config.policy_remasking!r}.")
    bias = config.policy_remask_init_bias
    if not isinstance(bias, (int, float)) or isinstance(bias, bool) or not math.isfinite(bias):
        raise ValueError(f"policy_remask_init_bias must be a finite number, got {bias!r}. Default: -6.")
    if not config.policy_remasking:
        return
    if config.policy_type != "confidence":
        raise ValueError(
            f"policy_remasking=True with policy_type={config.policy_type!r}: the RemaskingPolicy reads the dLLM's "
            "confidence. Drop --policy_type (or --policy_remasking)."
        )
    if config.expert_steering:
        raise ValueError(
            "expert_steering=True with policy_remasking=True: the expert rollout (Fast-dLLM confidence threshold) "
            "never re-masks and records no token confidences or decided times, so the re-masking policy cannot score "
            "it. Drop --expert_steering (or --policy_remasking)."
        )


def check_trl_fields(config: Any) -> None:
    """TRL fields that assume an autoregressive LM trained in place: refused, naming the flag to drop."""
    unsupported = {
        "use_vllm": "rollouts are diffusion generate calls of the dLLM, not vLLM generations",
        "use_transformers_continuous_batching": "rollouts are diffusion generate calls of the dLLM",
        "cast_lm_head_to_fp32": "the trained model is the policy, which has no LM head (it trains in fp32)",
        "use_liger_kernel": "the trained model is the policy, a single small block without Liger kernels",
        "sync_ref_model": "the KL reference is a frozen copy of the initial policy",
    }
    for name, why in unsupported.items():
        if getattr(config, name, False):
            raise ValueError(f"{name}=True is not supported by UnmaskingGRPOTrainer: {why}. Drop --{name}.")
    if getattr(config, "router_aux_loss_coef", None):
        raise ValueError(
            "router_aux_loss_coef is for Mixture-of-Experts LMs trained in place; the trained model here is the "
            "policy. Drop --router_aux_loss_coef."
        )
