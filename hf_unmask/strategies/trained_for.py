"""`trained_for`: what a learned policy records of its training (base dLLM, L, BL, alpha, task...), checked when
it is built and compared with the setting it is used in, and `portable_name`, how local paths are recorded in it and
on model cards (never as absolute paths of the machine)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Optional, Union

#: Keys of `trained_for` that hf_unmask reads (others are kept and shown on the model card as they are).
TRAINED_FOR_KEYS = (
    "base_model",  # Hub id (or path, never absolute: `portable_name`) of the dLLM the policy was trained with
    "gen_length",  # L
    "block_length",  # BL (None or L = full diffusion)
    "alpha",  # efficiency exponent of the reward
    "temperature",  # tau_pi used during training
    "task",  # task name, e.g. "gsm8k"
    "dataset",  # dataset id(s) of the training prompts
    "training_steps",  # optimiser steps
)


def checked_trained_for(trained_for: Optional[dict[str, Any]]) -> dict[str, Any]:
    """A copy of `trained_for`, refused when it is not JSON or its lengths / step count are not positive integers.

    Example:
        ```python
        >>> checked_trained_for({"gen_length": 16, "task": "sum"})
        {'gen_length': 16, 'task': 'sum'}
        ```
    """
    trained_for = dict(trained_for or {})
    try:
        json.dumps(trained_for)
    except TypeError as err:
        raise TypeError(f"trained_for must hold JSON values (str, numbers, lists, dicts): {err}") from err
    for key in ("gen_length", "block_length", "training_steps"):
        value = trained_for.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise ValueError(f"trained_for[{key!r}] must be a positive integer (or None), got {value!r}.")
    return trained_for


def setting_mismatches(trained_for: dict[str, Any], gen_length: int, block_length: int) -> list[str]:
    """One message per training setting (L, BL) that differs from the one in use; none when L is not recorded.

    Example:
        ```python
        >>> setting_mismatches({"gen_length": 16, "block_length": 8}, 32, 8)[0][:47]
        'was trained with gen_length (L) = 16 but is use'
        ```
    """
    trained_length = trained_for.get("gen_length")
    if trained_length is None:
        return []
    trained_block = trained_for.get("block_length") or trained_length
    checks = [
        ("gen_length (L)", int(trained_length), gen_length, "max_new_tokens"),
        ("block_length (BL)", int(trained_block), block_length, "block_length"),
    ]
    return [
        f"was trained with {name} = {expected} but is used with {argument}={used}. It runs at any length, but its "
        f"speed/accuracy trade-off was only learned for the training setting (trained_for={trained_for})."
        for name, expected, used, argument in checks
        if expected != used
    ]


def portable_name(name: Any, cwd: Optional[Union[str, os.PathLike]] = None) -> Any:
    """How a model, dataset or policy path is recorded in a saved config or a model card: never as an absolute path
    of this machine. A Hub id, a built-in name or a relative path stays as given; an absolute path becomes relative to
    `cwd` (the working directory) when it lies below it, else its last part (the folder or file name). A
    comma-separated list (a dataset mixture) is converted part by part; a non-string is returned unchanged.

    Example:
        ```python
        >>> portable_name("/home/me/runs/data/train.jsonl", cwd="/home/me/runs")
        'data/train.jsonl'
        >>> portable_name("/mnt/models/my-bert", cwd="/home/me"), portable_name("GSAI-ML/LLaDA-8B-Instruct")
        ('my-bert', 'GSAI-ML/LLaDA-8B-Instruct')
        ```
    """
    if not isinstance(name, str) or not name:
        return name
    if not any(os.path.isabs(part.strip()) or part.strip().startswith("~") for part in name.split(",")):
        return name
    if "," in name:
        return ",".join(portable_name(part.strip(), cwd) for part in name.split(","))
    path = Path(os.path.expanduser(name))
    base = Path(cwd if cwd is not None else os.getcwd())
    try:
        relative = Path(os.path.normpath(path)).relative_to(os.path.normpath(base))
    except ValueError:
        relative = None
    if relative is not None and str(relative) != ".":
        return relative.as_posix()
    return path.name or "."
