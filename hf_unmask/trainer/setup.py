"""What the trainer checks and builds before any rollout: the dLLM, the policy, the reward functions and datasets."""

from __future__ import annotations

import inspect
import os
from collections.abc import Sequence
from typing import Any, Optional

from torch import nn

from .._warnings import warn_at_caller
from ..models import get_adapter, unwrap_model
from ..models import load_dllm as _load_dllm
from ..rewards import required_columns
from ..strategies import ConfidencePolicy, HiddenStatePolicy, RemaskingPolicy, UnmaskingPolicy
from .config_checks import check_rollout_cache

__all__ = [
    "build_policy",
    "check_dataset",
    "check_reward_funcs",
    "check_reward_signatures",
    "fresh_hidden_state_policy",
    "load_environment_dllm",
    "prepare_dllm",
    "warn_about_resume_points",
]


def load_environment_dllm(name_or_path: str, args: Any) -> tuple[Any, Any]:
    """The dLLM the policy is trained against, and its tokenizer, loaded by `hf_unmask.models.load_dllm` from a name
    (`"builtin"` / `"builtin:NAME"`, a Hub id or a folder) with the config's `dllm_dtype`, `dllm_peft_adapter` and
    `trust_remote_code`; `prepare_dllm` then freezes it.

    Example:
        ```python
        >>> from types import SimpleNamespace
        >>> args = SimpleNamespace(dllm_dtype=None, dllm_peft_adapter=None, trust_remote_code=False)
        >>> model, tokenizer = load_environment_dllm("builtin", args)
        >>> type(model).__name__, model.training
        ('TinyDLLMForMaskedDiffusion', False)
        ```
    """
    return _load_dllm(
        name_or_path,
        dtype=args.dllm_dtype,
        peft_adapter=args.dllm_peft_adapter,
        trust_remote_code=args.trust_remote_code,
    )


def load_dllm(
    name_or_path: str,
    dtype: Optional[str] = None,
    peft_adapter: Optional[str] = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """Deprecated: use `hf_unmask.models.load_dllm` (keyword options), or `load_environment_dllm(name, args)`."""
    warn_at_caller(
        "hf_unmask.trainer.load_dllm is deprecated and will be removed in the next release; use "
        "hf_unmask.models.load_dllm(name, dtype=..., peft_adapter=..., trust_remote_code=...) instead.",
        FutureWarning,
    )
    return _load_dllm(name_or_path, dtype=dtype, peft_adapter=peft_adapter, trust_remote_code=trust_remote_code)


def build_policy(model: Any, args: Any, dllm: Any = None) -> UnmaskingPolicy:
    """The trained policy, in the training setting of `args` (action mode, temperature tau_pi, unmask_beta 1): `model`
    itself, a saved policy (`model` or `args.policy_name_or_path` a folder / Hub id / built-in policy name), or a fresh
    one of `args.policy_type`: a `ConfidencePolicy` sized by `args.policy_*` (a `RemaskingPolicy` with
    `args.policy_remasking`), or a `HiddenStatePolicy` sized after the config of `dllm` (one block as wide as the
    dLLM, as in the paper). A given or saved policy must read what `args.policy_type` names (`policy.feature_name`);
    with `args.policy_remasking` a commit-only `ConfidencePolicy` warm-starts a `RemaskingPolicy`
    (`RemaskingPolicy.from_unmasking_policy`)."""
    if model is None and args.policy_name_or_path is not None:
        model = args.policy_name_or_path
    remasking = bool(getattr(args, "policy_remasking", False))
    if isinstance(model, (str, os.PathLike)):
        policy = UnmaskingPolicy.from_pretrained(saved_policy_source(str(model)))
        if not isinstance(policy, UnmaskingPolicy):
            raise TypeError(f"'{model}' holds a {type(policy).__name__}, not a learned unmasking policy.")
    elif model is None and args.policy_type == "hidden_states":
        policy = fresh_hidden_state_policy(args, dllm)
    elif model is None:
        sizes = dict(
            hidden_size=args.policy_hidden_size,
            num_heads=args.policy_num_heads,
            ffn_size=args.policy_ffn_size,
            init_bias=args.policy_init_bias,
            confidence_feature=args.policy_confidence_feature,
            architecture=args.policy_architecture,
        )
        if remasking:
            policy = RemaskingPolicy(**sizes, remask_init_bias=args.policy_remask_init_bias)
        else:
            policy = ConfidencePolicy(**sizes)
    elif isinstance(model, UnmaskingPolicy):
        policy = model
    else:
        raise TypeError(
            f"model must be a ConfidencePolicy or a HiddenStatePolicy, a saved policy (folder or Hub id) or None, got "
            f"{type(model).__name__}. The dLLM goes in `dllm=`."
        )
    from .config import POLICY_TYPES  # not at import time: the config module imports TRL

    reads = getattr(policy, "feature_name", None)
    if reads != args.policy_type:
        source = f"'{model}' holds" if isinstance(model, (str, os.PathLike)) else "The given policy is"
        if reads not in POLICY_TYPES:
            raise ValueError(
                f"{source} a {type(policy).__name__}, which reads the dLLM's {reads!r}; UnmaskingGRPOTrainer trains "
                f"policies that read one of {POLICY_TYPES} (ConfidencePolicy, HiddenStatePolicy)."
            )
        raise ValueError(
            f"{source} a {type(policy).__name__}, which reads the dLLM's {reads!r}, but policy_type is "
            f"{args.policy_type!r}. Pass --policy_type {reads} (UnmaskingGRPOConfig(policy_type={reads!r}))."
        )
    if policy.requires_hidden_states and dllm is not None:
        check_hidden_size(policy, dllm)
    policy = match_remasking(policy, model, args)
    policy.mode = args.action_mode
    policy.temperature = float(args.policy_temperature)
    policy.unmask_beta = 1.0  # the test-time scale is 1 in training (not the trainer's KL weight `beta`)
    return policy.train()


def saved_policy_source(name: str) -> str:
    """A saved policy's folder / Hub id, or the folder of the built-in policy of that name (when no such path exists).

    Example:
        ```python
        >>> saved_policy_source("tiny-dllm-program_trace-bl8-alpha1").endswith("tiny-dllm-program_trace-bl8-alpha1")
        True
        ```
    """
    from ..strategies import builtin_policy_path, list_builtin_policies

    if not os.path.exists(name) and name in list_builtin_policies():
        return str(builtin_policy_path(name))
    return name


def match_remasking(policy: UnmaskingPolicy, model: Any, args: Any) -> UnmaskingPolicy:
    """The policy `args.policy_remasking` asks for: a re-masking policy as it is, a commit-only `ConfidencePolicy`
    warm-started into a `RemaskingPolicy` (`args.policy_remask_init_bias`); `ValueError` naming the flag otherwise,
    and for a re-masking policy with expert steering (the expert's rollouts record no re-masking fields)."""
    source = f"'{model}' holds" if isinstance(model, (str, os.PathLike)) else "The given policy is"
    name = type(policy).__name__
    if not getattr(args, "policy_remasking", False):
        if policy.remasks_decided_tokens:
            raise ValueError(
                f"{source} a {name}, which re-masks decided tokens, but policy_remasking is False. Pass "
                "--policy_remasking true (UnmaskingGRPOConfig(policy_remasking=True))."
            )
        return policy
    if not policy.remasks_decided_tokens:
        if not isinstance(policy, ConfidencePolicy):
            raise ValueError(
                f"policy_remasking=True trains a RemaskingPolicy, warm-started from a commit-only ConfidencePolicy; "
                f"{source} a {name}. Drop --policy_remasking, or start from a ConfidencePolicy."
            )
        policy = RemaskingPolicy.from_unmasking_policy(policy, remask_init_bias=args.policy_remask_init_bias)
    if args.expert_steering:
        raise ValueError(
            f"expert_steering=True with the re-masking {name}: the expert rollout (Fast-dLLM confidence threshold) "
            "never re-masks and records no token confidences or decided times, so the policy cannot score it. Drop "
            "--expert_steering (or --policy_remasking)."
        )
    return policy


#: The policy_* sizes of the config, which a hidden-state policy does not read (it is as wide as the dLLM).
_CONFIDENCE_POLICY_SIZES = {"policy_hidden_size": 128, "policy_num_heads": 2, "policy_ffn_size": 512}


def fresh_hidden_state_policy(args: Any, dllm: Any) -> HiddenStatePolicy:
    """A fresh `HiddenStatePolicy` sized after the dLLM's config (width, heads, FFN), with `args.policy_init_bias`;
    warns when `args` sets policy_* sizes, which do not apply to it."""
    config = getattr(unwrap_model(dllm), "config", None) if dllm is not None else None
    if config is None:
        raise ValueError(
            "policy_type='hidden_states' sizes the policy after the dLLM's config, but no dLLM with a `config` was "
            "given. Pass dllm=<model> (or dllm_name_or_path)."
        )
    changed = [f"{k}={getattr(args, k)}" for k, v in _CONFIDENCE_POLICY_SIZES.items() if getattr(args, k) != v]
    if changed:
        warn_at_caller(
            f"{', '.join(changed)} ignored: policy_type='hidden_states' builds a HiddenStatePolicy as wide as the "
            "dLLM (hidden size, heads and FFN width of its config), as in the paper."
        )
    return HiddenStatePolicy.from_dllm_config(config, init_bias=args.policy_init_bias)


def check_hidden_size(policy: Any, dllm: Any) -> None:
    """A given or saved hidden-state policy must read hidden states of the dLLM's width (checked before rollouts)."""
    from ..strategies.hidden_state_policy import _read_dllm_config

    config = getattr(unwrap_model(dllm), "config", None)
    try:
        width = _read_dllm_config(config)["hidden"] if config is not None else None
    except ValueError:  # a config without a known width: the first rollout checks the hidden states themselves
        width = None
    size = getattr(policy, "input_size", None)
    if width is not None and size is not None and width != size:
        raise ValueError(
            f"The {type(policy).__name__} reads {size}-d hidden states, but the dLLM's hidden size is "
            f"{width}. Train a policy made for this dLLM: drop --policy_name_or_path (a fresh policy is sized after "
            "the dLLM) or give one saved for a dLLM of this width."
        )


def reward_name(func: Any) -> str:
    """How a reward function is named in errors (TRL names it the same way in the logs)."""
    while hasattr(func, "func") and not hasattr(func, "__name__"):  # functools.partial
        func = func.func
    if isinstance(func, nn.Module):
        return type(func).__name__
    return getattr(func, "__name__", None) or type(func).__name__


def check_reward_funcs(reward_funcs: Any, reward_processing_classes: Any) -> tuple[list[Any], list[Any]]:
    """`(reward_funcs, reward_processing_classes)` as lists, checked: callables `f(prompts, completions, **columns)`
    or reward models with their tokenizer (names are not loaded: the training script resolves reward specs)."""
    if reward_funcs is None:
        raise ValueError(
            "No reward function given. Pass reward_funcs=[f] with f(prompts, completions, **columns) -> list of "
            "floats, e.g. a correctness reward from hf_unmask.rewards."
        )
    funcs = list(reward_funcs) if isinstance(reward_funcs, (list, tuple)) else [reward_funcs]
    for i, func in enumerate(funcs):
        if isinstance(func, str) or not (callable(func) or isinstance(func, nn.Module)):
            raise TypeError(
                f"reward_funcs[{i}] is {func!r}; pass callables f(prompts, completions, **columns) -> list[float] "
                "(hf_unmask.rewards.get_reward_function resolves reward names)."
            )
    if reward_processing_classes is None:
        procs = [None] * len(funcs)
    else:
        procs = (
            reward_processing_classes if isinstance(reward_processing_classes, list) else [reward_processing_classes]
        )
    if len(procs) != len(funcs):
        raise ValueError("Give one reward processing class per reward function (None for plain functions).")
    for func, proc in zip(funcs, procs):
        if isinstance(func, nn.Module) and proc is None:
            raise ValueError(
                f"The reward model {type(func).__name__} needs its tokenizer in reward_processing_classes."
            )
    return funcs, procs


def check_dataset(
    dataset: Any, label: str, reward_funcs: Sequence[Any], reward_columns: Optional[Sequence[str]]
) -> None:
    """A dataset must have a `prompt` column and every column a reward function reads: the columns it declares
    (`required_columns`), else `reward_columns` (the config's). Checked before any rollout."""
    if dataset is None:
        return
    columns = getattr(dataset, "column_names", None)
    if columns is None:  # an IterableDataset without known features: checked on the first batch instead
        return
    if "prompt" not in columns:
        raise ValueError(
            f"{label} has no 'prompt' column (columns: {', '.join(columns)}). Rename the prompt column, e.g. "
            "dataset.rename_column('question', 'prompt'), or pass --prompt_column to the training script."
        )
    for func in reward_funcs:
        needed = list(required_columns(func)) or list(reward_columns or [])
        missing = [c for c in needed if c not in columns]
        if missing:
            raise ValueError(
                f"The reward function '{reward_name(func)}' needs the column(s) {missing}, which {label} lacks "
                f"(columns: {', '.join(columns)}). Add the reference answers under that name, e.g. "
                f"dataset.rename_column('<your answer column>', '{missing[0]}'), or pass --answer_column to the "
                "training script."
            )


#: The keywords TRL passes to every reward function besides the dataset columns.
TRL_REWARD_KEYWORDS = ("prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric")


def check_reward_signatures(dataset: Any, reward_funcs: Sequence[Any], label: str = "train_dataset") -> None:
    """Each plain reward function must accept TRL's call, `f(prompts=..., completions=..., completion_ids=...,
    trainer_state=..., log_extra=..., log_metric=..., **dataset_columns)`, and find every column it names among those
    of `dataset`. Read from the signatures before any rollout: no reward is called before the first rollout."""
    columns = getattr(dataset, "column_names", None)
    passed = set(TRL_REWARD_KEYWORDS)
    if columns is not None:
        passed |= {c for c in columns if c not in ("prompt", "completion", "completion_ids")}
    for func in reward_funcs:
        if isinstance(func, nn.Module):
            continue
        try:
            signature = inspect.signature(func)
        except (TypeError, ValueError):  # nothing to read (a C function): TRL's first call tells
            continue
        params = list(signature.parameters.values())
        name = reward_name(func)
        call = (
            "TRL calls reward functions with keyword arguments only, f(prompts=..., completions=..., "
            "completion_ids=..., trainer_state=..., log_extra=..., log_metric=..., **dataset_columns)"
        )
        positional_only = [p.name for p in params if p.kind is p.POSITIONAL_ONLY and p.default is p.empty]
        if positional_only:
            raise TypeError(f"The reward function '{name}{signature}' has positional-only parameters; {call}.")
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            unexpected = sorted(passed - {p.name for p in params})
            hint = ""
            if not {"prompts", "completions"} & {p.name for p in params} and len(params) >= 2:
                hint = (
                    " A per-example function (completion, reference) -> bool, as `hf-unmask evaluate --correctness` "
                    "takes, is wrapped by hf_unmask.rewards.per_example_reward(f) (get_reward_function does it)."
                )
            raise TypeError(
                f"The reward function '{name}{signature}' does not accept {unexpected}; {call}, so it must accept "
                f"**kwargs.{hint}"
            )
        if columns is None:  # an IterableDataset without known features: TRL's first call tells
            continue
        named = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
        missing = [p.name for p in params if p.kind in named and p.default is p.empty and p.name not in passed]
        if missing:
            raise ValueError(
                f"The reward function '{name}{signature}' reads the column(s) {missing}, which {label} lacks "
                f"(columns: {', '.join(columns)}). Rename the column, or pass --answer_column to the training script."
            )


def prepare_dllm(dllm: Any, processing_class: Any, args: Any) -> tuple[Any, Any, Optional[str]]:
    """`(dllm, tokenizer, name)`: the frozen environment (eval mode, no gradients), loaded from `dllm` or
    `args.dllm_name_or_path` when given a name, and what `trained_for` records as its base model."""
    if dllm is None or isinstance(dllm, (str, os.PathLike)):
        source = str(dllm) if dllm is not None else args.dllm_name_or_path
        if source is None:
            raise ValueError(
                "No dLLM: pass dllm=<model> (with processing_class=<tokenizer>) or set dllm_name_or_path (a Hub id, "
                "a folder, or 'builtin' for the built-in tiny dLLM)."
            )
        dllm, tokenizer = load_environment_dllm(source, args)
        processing_class = processing_class if processing_class is not None else tokenizer
        name: Optional[str] = source
    else:
        if args.dllm_peft_adapter is not None:
            raise ValueError(
                "dllm_peft_adapter is only applied when the trainer loads the dLLM itself; pass a PeftModel as "
                "dllm instead, or pass dllm=None with dllm_name_or_path."
            )
        config = getattr(unwrap_model(dllm), "config", None)
        name = args.dllm_name_or_path or getattr(config, "_name_or_path", None) or None
    if processing_class is None:
        raise ValueError(
            "Pass processing_class=<the dLLM's tokenizer>: prompts are tokenized and completions decoded with it."
        )
    adapter = get_adapter(dllm)  # unknown families fail here, with the list of supported ones
    check_rollout_cache(args, adapter=adapter)  # generate's cache checks, with the trainer's flag names
    if args.expert_steering and adapter.block_causal:
        raise ValueError(
            f"expert_steering=True on {type(unwrap_model(dllm)).__name__}, a block-diffusion model: its blocks are "
            "aligned to each prompt's length, so the expert's states cannot be scored over the policy's blocks. "
            "Drop --expert_steering (train the policy on its own rollouts)."
        )
    dllm.requires_grad_(False)
    dllm.eval()
    return dllm, processing_class, name


def warn_about_resume_points(args: Any) -> None:
    """Warn when checkpoints fall inside a rollout batch: a run resumed there cannot match an uninterrupted one."""
    generate_every = args.steps_per_generation * args.num_iterations
    if args.save_strategy == "steps" and args.save_steps and generate_every > args.gradient_accumulation_steps:
        steps_per_round = generate_every // args.gradient_accumulation_steps
        if steps_per_round and int(args.save_steps) % steps_per_round:
            warn_at_caller(
                f"save_steps={args.save_steps} is not a multiple of the {steps_per_round} optimiser steps that "
                "share one rollout batch (num_iterations x steps_per_generation / gradient_accumulation_steps): "
                "a run resumed from such a checkpoint draws new rollouts for the rest of that batch, so it will "
                "not match an uninterrupted run exactly."
            )
