"""`load_dllm`: the one way the CLI, the demo, evaluation and training load a dLLM and its tokenizer by name."""

from __future__ import annotations

import os
from typing import Any, Optional, Union

import torch

__all__ = ["load_dllm", "resolve_dtype"]


def resolve_dtype(dtype: Optional[Union[str, torch.dtype]]) -> Optional[torch.dtype]:
    """A `torch.dtype` from its name (`"bfloat16"`, ...); `None` and `"auto"` keep the checkpoint's own dtype.

    Example:
        ```python
        >>> resolve_dtype("bfloat16"), resolve_dtype("auto"), resolve_dtype(torch.float16)
        (torch.bfloat16, None, torch.float16)
        ```
    """
    if dtype is None or (isinstance(dtype, str) and dtype == "auto"):
        return None
    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"Unknown dtype '{dtype}'. Use float32, bfloat16, float16 or auto.")
    return value


def load_dllm(
    name_or_path: Optional[Union[str, os.PathLike]] = "builtin",
    *,
    dtype: Optional[Union[str, torch.dtype]] = None,
    device: Optional[Union[str, torch.device]] = None,
    peft_adapter: Optional[Union[str, os.PathLike]] = None,
    tokenizer: Any = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """Load a dLLM with a diffusion `generate`, and its tokenizer, in eval mode.

    Every option is a keyword argument, so that no caller's positional order can bind to the wrong one.

    Args:
        name_or_path: `"builtin"` (or `None`) for the built-in tiny dLLM, `"builtin:NAME"` for another built-in one
            (`hf_unmask.list_builtin_models()`), or a folder / Hub id that `hf_unmask.AutoDiffusionLM` loads
            (LLaDA, Dream, any masked LM).
        dtype: `"float32"`, `"bfloat16"`, `"float16"`, a `torch.dtype`, or `None` / `"auto"` (as saved).
        device: where to put the model; `"auto"` is CUDA when available; `None` leaves it where it was loaded.
        peft_adapter: folder or Hub id of a PEFT adapter (e.g. LoRA) put on top of the dLLM.
        tokenizer: a tokenizer, or the folder / Hub id to load it from (default: the model's own).
        trust_remote_code: run modeling code a checkpoint ships (never needed for LLaDA, Dream or the built-in).

    Returns:
        `(model, tokenizer)`.

    Raises:
        LocalFolderNotFoundError: `name_or_path` can only be a local folder and does not exist (also a `ValueError`).
        ValueError: the tokenizer or the model cannot be loaded, or `dtype` is unknown.

    Example:
        ```python
        >>> from hf_unmask.models import load_dllm
        >>> model, tokenizer = load_dllm("builtin", dtype="float32")
        >>> type(model).__name__, next(model.parameters()).dtype, model.training
        ('TinyDLLMForMaskedDiffusion', torch.float32, False)
        ```
    """
    from .tiny import builtin_model_name, is_builtin_alias, load_builtin_model

    torch_dtype = resolve_dtype(dtype)
    dtype_kwargs = {"dtype": torch_dtype} if torch_dtype is not None else {}
    if isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = _load_tokenizer(tokenizer, trust_remote_code)
    if name_or_path is None or is_builtin_alias(name_or_path):
        model, builtin_tokenizer = load_builtin_model(builtin_model_name(name_or_path or "builtin"), **dtype_kwargs)
        tokenizer = tokenizer if tokenizer is not None else builtin_tokenizer
        if peft_adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, peft_adapter)
    else:
        model, tokenizer = _load_pretrained(name_or_path, tokenizer, peft_adapter, trust_remote_code, dtype_kwargs)
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else None
    if device is not None:
        model = model.to(device)
    return model.eval(), tokenizer


def _load_pretrained(
    name_or_path: Union[str, os.PathLike],
    tokenizer: Any,
    peft_adapter: Optional[Union[str, os.PathLike]],
    trust_remote_code: bool,
    dtype_kwargs: dict[str, Any],
) -> tuple[Any, Any]:
    """A folder or Hub id through `AutoDiffusionLM`, with its tokenizer unless one is given."""
    from .._paths import LocalFolderNotFoundError, looks_like_local_path
    from .auto import AutoDiffusionLM

    folder = os.path.expanduser(os.fspath(name_or_path))
    if looks_like_local_path(name_or_path) and not os.path.isdir(folder):
        raise LocalFolderNotFoundError(
            f"No model folder '{os.fspath(name_or_path)}' (resolved to '{os.path.abspath(folder)}'). Pass an existing "
            "folder, a Hub id (org/name) or 'builtin'."
        )
    if tokenizer is None:
        tokenizer = _load_tokenizer(name_or_path, trust_remote_code)
    try:
        model = AutoDiffusionLM.from_pretrained(
            name_or_path,
            trust_remote_code=trust_remote_code,
            peft_adapter=peft_adapter,
            tokenizer=tokenizer,
            **dtype_kwargs,
        )
    except OSError as err:
        raise ValueError(f"Could not load a dLLM from '{os.fspath(name_or_path)}': {err}") from err
    return model, tokenizer


def _load_tokenizer(source: Union[str, os.PathLike], trust_remote_code: bool) -> Any:
    from .auto import load_tokenizer

    try:
        return load_tokenizer(source, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as err:
        raise ValueError(f"Could not load a tokenizer from '{os.fspath(source)}': {err}") from err
