"""The built-in trained tiny dLLMs, inside the package and loadable offline by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..._builtin import DEFAULT_BUILTIN_MODEL, builtin_names, builtin_path
from ..._warnings import warn_deprecated

BUILTIN_MODEL_DIR = Path(__file__).resolve().parent.parent / "builtin_models"


def list_builtin_models() -> list[str]:
    """Names of the trained models that come with hf_unmask (folders of `hf_unmask/models/builtin_models/`).

    Example:
        ```python
        >>> from hf_unmask.models.tiny import list_builtin_models
        >>> "tiny-dllm" in list_builtin_models()
        True
        ```
    """
    return builtin_names(BUILTIN_MODEL_DIR)


def builtin_model_path(name: str) -> Path:
    """Folder of the built-in model `name` (usable with `from_pretrained`)."""
    return builtin_path(BUILTIN_MODEL_DIR, name, "model", "models")


def load_builtin_model(name: str = DEFAULT_BUILTIN_MODEL, **kwargs: Any) -> tuple[Any, Any]:
    """Load a built-in tiny dLLM and its tokenizer from the package folder (no network needed).

    Args:
        name: one of `list_builtin_models()`, e.g. `"tiny-dllm"` or `"tiny-dllm-small"`.
        kwargs: passed to `TinyDLLMForMaskedDiffusion.from_pretrained` (e.g. `dtype`).

    Returns:
        `(model, tokenizer)`, the model in eval mode with its `generation_config` (L, block length, mask/EOS ids).

    Example:
        ```python
        >>> import hf_unmask
        >>> model, tokenizer = hf_unmask.load_builtin_model("tiny-dllm")
        >>> model.config.model_type, tokenizer.mask_token
        ('hf_unmask_tiny', '[MASK]')
        ```
    """
    from transformers import AutoTokenizer

    from .modeling_tiny_dllm import TinyDLLMForMaskedDiffusion

    path = builtin_model_path(name)
    model = TinyDLLMForMaskedDiffusion.from_pretrained(path, **kwargs)
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(path)
    return model, tokenizer


def __getattr__(name: str) -> Any:
    if name == "PRETRAINED_DIR":  # the folder's name before "built-in" named the concept everywhere
        warn_deprecated("hf_unmask.models.tiny.builtin.PRETRAINED_DIR", "BUILTIN_MODEL_DIR")
        return BUILTIN_MODEL_DIR
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
