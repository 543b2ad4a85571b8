"""The paper's released checkpoints: load them as `ConfidencePolicy(architecture="paper")`, and export ours to them.

The paper's code saves its confidence policy as a transformers model folder: `config.json` with transformers'
generic keys only (`model_type: "policy"`, `architectures: ["PolicyHFWrapper"]`, `torch_dtype`,
`transformers_version`; no hyper-parameters) and `model.safetensors` with the network under `base_policy.`
(`base_policy.confidence_proj.weight`, `base_policy.transformer_blocks.0.q_proj.weight`, ...).
`UnmaskingStrategy.from_pretrained(folder_or_hub_id)` (or that of `UnmaskingPolicy` / `ConfidencePolicy`) recognises
that layout through `load_if_paper_checkpoint`, registered with `register_checkpoint_loader`.

The names map one to one onto `PolicyNetwork` (`confidence_proj` = `input_proj`, `time_mlp` =
`time_embedding.mlp`, `linear1/linear2` = `ffn.0/ffn.2`, `output_proj` = `head`...), except for:

- q/k/v: separate projections there, one fused `qkv` here (rows = q, k, v). The paper's RoPE rotates interleaved
  pairs (2j, 2j + 1) of each head, ours the halves (j, j + head_dim / 2) with the same frequencies; permuting the
  rows of q and k within each head (our row j <- row 2j, our row half + j <- row 2j + 1) gives the same scores.
- adaLN: the paper's chunks are (scale, shift, gate) per sub-layer, ours (shift, scale, gate).
- the RoPE frequencies `inv_freq`, a buffer there, are checked and dropped.

Only the published configuration's one block, one confidence per position (`confidences_top_p=1`) and time period
1 (`time_period=1`) are supported: other checkpoints and values are refused with an error, as are checkpoints of
the paper's hidden-state policy.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, Optional, Union

import torch

from .. import hub
from .._paths import check_local_folder
from .base import register_checkpoint_loader
from .confidence_policy import ConfidencePolicy

#: What the paper's `PolicyHFWrapper.save_pretrained` writes in `config.json`.
PAPER_MODEL_TYPE = "policy"
PAPER_WRAPPER_CLASS = "PolicyHFWrapper"
#: The prefix of the network's tensors in the paper's `model.safetensors`.
PAPER_PREFIX = "base_policy."
#: The paper's published configuration, used where the weights do not tell (the number of heads, unless the file
#: has `inv_freq`).
PAPER_DEFAULTS: dict[str, Any] = {
    "hidden_size": 128,
    "ffn_size": 512,
    "num_heads": 2,
    "time_frequency_dim": 128,
    "architecture": "paper",
}
#: Options of the paper's code that hf_unmask supports at their published value only.
PAPER_ONLY_OPTIONS = {"num_blocks": 1, "confidences_top_p": 1, "time_period": 1}

# our network's module -> the paper's (qkv is assembled from q_proj, k_proj, v_proj)
_NAMES = {
    "input_proj": "confidence_proj",
    "mask_embedding": "mask_embedding",
    "time_embedding.mlp.0": "time_mlp.0",
    "time_embedding.mlp.2": "time_mlp.2",
    "block.norm1": "transformer_blocks.0.norm1",
    "block.norm2": "transformer_blocks.0.norm2",
    "block.out_proj": "transformer_blocks.0.out_proj",
    "block.ffn.0": "transformer_blocks.0.linear1",
    "block.ffn.2": "transformer_blocks.0.linear2",
    "block.adaLN_modulation.1": "transformer_blocks.0.ada_conditioning",
    "final_norm": "final_norm",
    "head": "output_proj",
}
_QKV = ("q_proj", "k_proj", "v_proj")
_BLOCK = "transformer_blocks.0."
# our adaLN chunk k is the paper's chunk _ADA_ORDER[k] (the permutation is its own inverse)
_ADA_ORDER = (1, 0, 2, 4, 3, 5)


def is_paper_config(config: Mapping[str, Any]) -> bool:
    """True for the `config.json` of the paper's `PolicyHFWrapper` (and False for an hf_unmask config)."""
    if "_class_name" in config:
        return False
    architectures = config.get("architectures") or []
    return config.get("model_type") == PAPER_MODEL_TYPE or PAPER_WRAPPER_CLASS in architectures


def is_paper_checkpoint(pretrained_model_name_or_path: Union[str, os.PathLike], **hub_kwargs: Any) -> bool:
    """True when a folder or Hub repo holds a checkpoint saved by the paper's code, or the path is a `.safetensors`
    file (the paper's code also loads its weights file alone)."""
    check_local_folder(pretrained_model_name_or_path, "policy")
    path = Path(os.path.expanduser(os.fspath(pretrained_model_name_or_path)))
    if path.is_file():
        return path.suffix == ".safetensors"
    return _paper_config(pretrained_model_name_or_path, hub_kwargs) is not None


def _paper_config(
    pretrained_model_name_or_path: Union[str, os.PathLike], hub_kwargs: dict[str, Any]
) -> Optional[dict]:
    """The paper's `config.json` of a folder or Hub repo; None when there is none or it is not the paper's."""
    return read_paper_config(hub.resolve_file(pretrained_model_name_or_path, hub.CONFIG_NAME, **hub_kwargs))


def read_paper_config(config_file: Optional[str]) -> Optional[dict]:
    """The content of an already resolved `config.json` when it is the paper's; None otherwise (or without a file)."""
    if config_file is None:
        return None
    try:
        with open(config_file, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):  # unreadable, not UTF-8 or not JSON: not the paper's config
        return None
    return config if isinstance(config, dict) and is_paper_config(config) else None


def load_paper_checkpoint(
    pretrained_model_name_or_path: Union[str, os.PathLike],
    *,
    expected_class: type = ConfidencePolicy,
    hub_kwargs: Optional[dict[str, Any]] = None,
    saved_config: Optional[dict[str, Any]] = None,
    **overrides: Any,
) -> ConfidencePolicy:
    """A `ConfidencePolicy(architecture="paper")` with the weights of a checkpoint of the paper's code.

    Args:
        pretrained_model_name_or_path: the folder the paper's code saved (or a Hub repo of it), or its
            `model.safetensors` alone. Weights are read from safetensors only.
        expected_class: the class `from_pretrained` was called on; the policy must be an instance of it.
        hub_kwargs: `revision`, `cache_dir`, `token`, `subfolder`... as for `hub.resolve_file`.
        saved_config: the checkpoint's `config.json` when the caller has already read it (it is not fetched again).
        **overrides: any `ConfidencePolicy` argument (`temperature=0.5`, `mode="dpls"`, `num_heads=...`). Sizes come
            from the weights (hidden, FFN and time-feature sizes; heads from `inv_freq` when saved, else 2); the
            paper's `num_blocks`, `confidences_top_p` and `time_period` are accepted at their published value 1.
    """
    overrides = {k: v for k, v in overrides.items() if not k.startswith("_")}
    source = str(pretrained_model_name_or_path)
    path = Path(os.path.expanduser(os.fspath(pretrained_model_name_or_path)))
    if path.is_file():
        if path.suffix != ".safetensors":
            raise ValueError(
                f"{source} is a file but not a .safetensors file. Pass the checkpoint folder, or its "
                f"{hub.WEIGHTS_NAME} (weights are never unpickled)."
            )
        weights_file: Optional[str] = str(path)
    else:
        # called on the base class, huggingface_hub's mixin hands over every key of config.json with the overrides
        saved = (
            saved_config
            if saved_config is not None
            else _paper_config(pretrained_model_name_or_path, hub_kwargs or {})
        )
        saved = saved or {}
        overrides = {k: v for k, v in overrides.items() if not (k in saved and saved[k] == v)}
        weights_file = hub.resolve_file(pretrained_model_name_or_path, hub.WEIGHTS_NAME, **(hub_kwargs or {}))
        if weights_file is None:
            if path.is_dir():
                hub.check_no_pickle(path)
            raise OSError(
                f"'{source}' has the paper's policy config but no {hub.WEIGHTS_NAME}. Only safetensors weights are "
                "loaded (pickled .bin/.pt files never are); save the checkpoint with safetensors."
            )
    state = _paper_tensors(hub.load_weights(weights_file), source)
    config = _config_from_weights(state, overrides, source)
    if not issubclass(ConfidencePolicy, expected_class):
        raise TypeError(f"'{source}' holds a paper checkpoint of a ConfidencePolicy, not a {expected_class.__name__}.")
    policy = ConfidencePolicy(**config)
    converted = paper_to_hf_unmask(state, policy.num_heads, policy.rope_theta, source)
    hub.check_state_dict(policy.state_dict(), converted, source=weights_file)
    policy.load_state_dict(converted, strict=True)
    return policy.eval()


def _paper_tensors(state: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """The network's tensors without the `base_policy.` prefix, after checking they are the confidence policy's."""
    state = {k[len(PAPER_PREFIX) :] if k.startswith(PAPER_PREFIX) else k: v for k, v in state.items()}
    if any(k.startswith("network.") for k in state):
        raise ValueError(
            f"{source} holds the weights of an hf_unmask policy, not a checkpoint of the paper's code: load the folder "
            "that holds it (with its config.json) with ConfidencePolicy.from_pretrained."
        )
    if any(k.startswith(("ada_linears.", "norms.")) for k in state):
        raise ValueError(
            f"{source} is a checkpoint of the paper's hidden-state policy (DiTHiddenStatePolicy), which hf_unmask "
            "cannot load: its block is a LLaDA decoder layer with adaLN before and after it, another network than "
            "HiddenStatePolicy's. Load a checkpoint of the confidence policy (policy_type dit_confidence), or train "
            "a HiddenStatePolicy with hf_unmask."
        )
    if "confidence_proj.weight" not in state:
        raise ValueError(
            f"{source} is not a checkpoint of the paper's confidence policy (DiTConfidencePolicy): it has no "
            f"{PAPER_PREFIX}confidence_proj.weight (its tensors: {', '.join(sorted(state)[:6])}, ...)."
        )
    blocks = {int(k.split(".")[1]) for k in state if k.startswith("transformer_blocks.")}
    if blocks != {0}:
        raise ValueError(
            f"{source} has {len(blocks)} transformer blocks (policy_num_blocks={len(blocks)}); hf_unmask's policy "
            "network has one block, the paper's published configuration. Use a checkpoint trained with "
            "policy_num_blocks=1."
        )
    return state


def _config_from_weights(state: Mapping[str, torch.Tensor], overrides: dict[str, Any], source: str) -> dict[str, Any]:
    for name, supported in PAPER_ONLY_OPTIONS.items():
        value = overrides.pop(name, supported)
        if value != supported:
            raise ValueError(
                f"{name}={value!r} is not supported: hf_unmask loads the paper's policy with {name}={supported} only "
                f"(the paper's published configuration). Drop the {name} argument."
            )
    top_p = state["confidence_proj.weight"].shape[1]
    if top_p != 1:
        raise ValueError(
            f"{source} reads the top {top_p} confidences per position (confidences_top_p={top_p}); hf_unmask feeds "
            "the policy one confidence per position (confidences_top_p=1, the published configuration). Use a "
            "checkpoint trained with confidences_top_p=1."
        )
    if overrides.get("architecture", "paper") != "paper":
        raise ValueError("A checkpoint of the paper's code runs with architecture='paper' only; drop the argument.")
    if overrides.get("confidence_feature", "probability") != "probability":
        raise ValueError("The paper's policy reads the confidence itself: drop confidence_feature (or 'probability').")
    config = dict(PAPER_DEFAULTS)
    config["hidden_size"] = state["confidence_proj.weight"].shape[0]
    for key, name, dim in (("ffn_size", _BLOCK + "linear1.weight", 0), ("time_frequency_dim", "time_mlp.0.weight", 1)):
        if name in state:  # a missing tensor is reported with the others when the weights are checked
            config[key] = state[name].shape[dim]
    inv_freq = state.get(_BLOCK + "inv_freq")
    if inv_freq is not None and inv_freq.numel() and config["hidden_size"] % (2 * inv_freq.numel()) == 0:
        config["num_heads"] = config["hidden_size"] // (2 * inv_freq.numel())
        if overrides.get("num_heads", config["num_heads"]) != config["num_heads"]:
            raise ValueError(
                f"num_heads={overrides['num_heads']} does not match {source}: its RoPE frequencies are for "
                f"{config['num_heads']} heads of size {2 * inv_freq.numel()}. Drop num_heads."
            )
    config.update(overrides)
    return config


def _rope_rows(hidden_size: int, num_heads: int) -> torch.Tensor:
    """Row order taking the paper's q (or k) rows to ours: within each head, rows 0, 2, 4, ... then 1, 3, 5, ..."""
    head_dim = hidden_size // num_heads
    within = torch.arange(head_dim).view(head_dim // 2, 2).t().reshape(-1)
    return (torch.arange(num_heads).unsqueeze(-1) * head_dim + within).reshape(-1)


def _ada_chunks(tensor: torch.Tensor) -> torch.Tensor:
    chunks = tensor.chunk(6, dim=0)
    return torch.cat([chunks[i] for i in _ADA_ORDER], dim=0)


def paper_to_hf_unmask(
    state: Mapping[str, torch.Tensor], num_heads: int, rope_theta: float = 10_000.0, source: str = "the checkpoint"
) -> dict[str, torch.Tensor]:
    """`ConfidencePolicy` state dict (`network.*`) from the paper's network tensors (without `base_policy.`)."""
    state = dict(state)
    inv_freq = state.pop(_BLOCK + "inv_freq", None)
    hidden = state["confidence_proj.weight"].shape[0]
    if hidden % num_heads or (hidden // num_heads) % 2:
        raise ValueError(f"hidden size {hidden} does not split into num_heads={num_heads} heads of even size.")
    if inv_freq is not None:
        head_dim = hidden // num_heads
        expected = 1.0 / (rope_theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
        expected = expected.to(inv_freq.dtype).float()  # a checkpoint saved in bfloat16 rounds them too
        if inv_freq.shape != expected.shape or not torch.allclose(inv_freq.float(), expected, rtol=1e-5, atol=0):
            raise ValueError(
                f"The RoPE frequencies (inv_freq) in {source} are not those of {num_heads} heads with base "
                f"{rope_theta}. Pass the num_heads (and rope_theta) the policy was trained with."
            )
    rows = _rope_rows(hidden, num_heads)
    out: dict[str, torch.Tensor] = {}
    for ours, theirs in _NAMES.items():
        for suffix in ("weight", "bias"):
            if f"{theirs}.{suffix}" in state:
                tensor = state.pop(f"{theirs}.{suffix}")
                out[f"network.{ours}.{suffix}"] = _ada_chunks(tensor) if "ada_conditioning" in theirs else tensor
    for suffix in ("weight", "bias"):
        parts = [state.pop(f"{_BLOCK}{name}.{suffix}", None) for name in _QKV]
        if all(p is not None for p in parts):
            q, k, v = parts
            out[f"network.block.qkv.{suffix}"] = torch.cat([q[rows], k[rows], v])
    if state:
        raise ValueError(
            f"{source} has tensors that the paper's confidence policy does not: {sorted(state)}. It was probably "
            "saved from another network."
        )
    return out


def hf_unmask_to_paper(policy: ConfidencePolicy) -> dict[str, torch.Tensor]:
    """The paper's `PolicyHFWrapper` state dict (`base_policy.*`, `inv_freq` included) of a policy."""
    state = {k[len("network.") :]: v.detach() for k, v in policy.state_dict().items()}
    inverse = torch.argsort(_rope_rows(policy.hidden_size, policy.num_heads))
    out: dict[str, torch.Tensor] = {}
    for ours, theirs in _NAMES.items():
        for suffix in ("weight", "bias"):
            if f"{ours}.{suffix}" in state:
                tensor = state[f"{ours}.{suffix}"]
                out[f"{theirs}.{suffix}"] = _ada_chunks(tensor) if "ada_conditioning" in theirs else tensor
    for suffix in ("weight", "bias"):
        q, k, v = state[f"block.qkv.{suffix}"].chunk(3, dim=0)
        for name, tensor in zip(_QKV, (q[inverse], k[inverse], v)):
            out[f"{_BLOCK}{name}.{suffix}"] = tensor
    head_dim = policy.hidden_size // policy.num_heads
    out[_BLOCK + "inv_freq"] = 1.0 / (policy.rope_theta ** (torch.arange(0, head_dim, 2).float() / head_dim))
    return {PAPER_PREFIX + k: v for k, v in out.items()}


def save_paper_layout(policy: ConfidencePolicy, save_directory: Union[str, os.PathLike]) -> Path:
    """Write `policy` as the paper's code saves its confidence policy: `config.json` and `model.safetensors`.

    The paper's code rebuilds the network from its own training config (hidden, FFN and time sizes, heads), so
    those must match the policy's; `temperature`, `unmask_beta`, `mode` and `trained_for` are not part of that layout.
    Only `architecture="paper"` policies reading the confidence itself can be exported (the paper's code always
    rounds its time features through bfloat16). Returns the folder.

    Example:
        ```python
        >>> import tempfile
        >>> from hf_unmask.strategies import ConfidencePolicy
        >>> from hf_unmask.strategies.paper_checkpoint import save_paper_layout
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     _ = save_paper_layout(ConfidencePolicy(architecture="paper"), folder)
        ...     ConfidencePolicy.from_pretrained(folder, temperature=0.5).architecture
        'paper'
        ```
    """
    if not isinstance(policy, ConfidencePolicy) or policy.architecture != "paper":
        raise ValueError(
            "Only a ConfidencePolicy with architecture='paper' has the paper's network; got "
            f"{type(policy).__name__} with architecture={getattr(policy, 'architecture', None)!r}."
        )
    if policy.confidence_feature != "probability":
        raise ValueError("The paper's policy reads the confidence itself; this one reads its log-odds.")
    folder = Path(save_directory)
    folder.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "architectures": [PAPER_WRAPPER_CLASS],
        "model_type": PAPER_MODEL_TYPE,
        "torch_dtype": str(next(policy.parameters()).dtype).replace("torch.", ""),
    }
    try:
        config["transformers_version"] = metadata.version("transformers")
    except metadata.PackageNotFoundError:
        pass
    (folder / hub.CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    hub.save_weights(hf_unmask_to_paper(policy), folder / hub.WEIGHTS_NAME)
    return folder


def load_if_paper_checkpoint(
    source: Union[str, os.PathLike],
    *,
    config_file: Optional[str],
    expected_class: type,
    hub_kwargs: dict[str, Any],
    **overrides: Any,
) -> Optional[ConfidencePolicy]:
    """`from_pretrained`'s loader of the paper's checkpoints: a single file (`config_file` None) is taken as the
    paper's weights file; a folder or Hub repo loads when its `config.json` is the paper's, else None."""
    if config_file is None:
        return load_paper_checkpoint(source, expected_class=expected_class, **overrides)
    paper_config = read_paper_config(config_file)
    if paper_config is None:
        return None
    return load_paper_checkpoint(
        source, expected_class=expected_class, hub_kwargs=hub_kwargs, saved_config=paper_config, **overrides
    )


register_checkpoint_loader(load_if_paper_checkpoint)
