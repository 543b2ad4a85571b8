"""Strategies by name: a registered short name, a built-in policy, a saved folder or a Hub repo."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Optional, Union

from ..generation.strategy import register_strategy_resolver
from . import paper_checkpoint
from .base import STRATEGY_REGISTRY, UnmaskingStrategy, read_saved_config
from .builtin import builtin_policy_path, list_builtin_policies
from .confidence import TopKConfidence


def registered_strategy_names() -> dict[str, type[UnmaskingStrategy]]:
    """Short name (`TopKConfidence.name` = "top_k_confidence", ...) -> class, for every registered class with one."""
    # a class's own `name` only: a subclass does not take over its parent's short name unless it sets one
    return {vars(cls)["name"]: cls for cls in STRATEGY_REGISTRY.values() if vars(cls).get("name")}


def saved_strategy_class(pretrained_model_name_or_path: Union[str, os.PathLike], **hub_kwargs: Any) -> type:
    """The class of a saved strategy (local folder or Hub repo), read from its config without loading weights."""
    if paper_checkpoint.is_paper_checkpoint(pretrained_model_name_or_path, **hub_kwargs):
        return paper_checkpoint.ConfidencePolicy
    return read_saved_config(pretrained_model_name_or_path, hub_kwargs)[0]


def resolve_strategy_name(name: str) -> tuple[type[UnmaskingStrategy], Optional[Union[str, Path]]]:
    """`(class, source)` for a registered short name (source None: build it from the class), a built-in policy's
    name (source: its package folder), or a saved strategy folder / Hub repo (source: the name itself). A saved
    strategy's class is read from its config.json, without loading weights.

    Example:
        ```python
        >>> from hf_unmask.strategies import resolve_strategy_name
        >>> resolve_strategy_name("confidence_threshold")
        (<class 'hf_unmask.strategies.fast_dllm.ConfidenceThreshold'>, None)
        ```
    """
    names = registered_strategy_names()
    if name in names:
        return names[name], None
    if name in list_builtin_policies():
        source = builtin_policy_path(name)
        return saved_strategy_class(source), source
    looks_like_path = os.path.isdir(name) or name.startswith((".", "/", "~"))
    looks_like_repo = re.fullmatch(r"[\w.-]+/[\w.-]+", name) is not None
    if os.path.isdir(name) or (looks_like_repo and not looks_like_path):
        try:
            return saved_strategy_class(name), name
        except OSError as err:
            raise _not_loadable(name, err) from err
    hint = f" (no such folder: '{name}')" if looks_like_path or "/" in name else ""
    raise ValueError(
        f"Unknown strategy '{name}'{hint}. Known names: {', '.join(sorted(names)) or '(none)'}; built-in policies: "
        f"{', '.join(list_builtin_policies()) or '(none)'}; or give the folder of a strategy saved with "
        "save_pretrained. Run `hf-unmask list` to see the names and their knobs."
    )


def get_strategy_by_name(name: str) -> UnmaskingStrategy:
    """Build a strategy from its short name with default hyper-parameters, or load a built-in policy by name, a
    saved strategy folder or a Hub repo (see `resolve_strategy_name`)."""
    cls, source = resolve_strategy_name(name)
    if source is None:
        return cls()
    try:
        return UnmaskingStrategy.from_pretrained(source)
    except OSError as err:
        raise _not_loadable(name, err) from err


def _not_loadable(name: str, err: OSError) -> ValueError:
    return ValueError(f"Could not load the saved strategy '{name}': {err}")


def strategy_from_name(name: Optional[str]) -> UnmaskingStrategy:
    """What `generate(strategy=...)` makes of a name: `None` is the default (top-k confidence, one token per step
    unless `steps` says otherwise), a string goes through `get_strategy_by_name`."""
    if name is None:
        return TopKConfidence()
    return get_strategy_by_name(name)


register_strategy_resolver(strategy_from_name)
