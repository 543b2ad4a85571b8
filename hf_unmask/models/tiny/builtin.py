"""The trained tiny dLLMs shipped inside the package, loadable offline by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..._shipped import DEFAULT_BUILTIN_MODEL, shipped_names, shipped_path

PRETRAINED_DIR = Path(__file__).resolve().parent.parent / "pretrained"


def list_builtin_models() -> list[str]:
    """Names of the trained models shipped with hf_unmask (folders of `hf_unmask/models/pretrained/`).

    Example:
        ```python
        >>> from hf_unmask.models.tiny import list_builtin_models
        >>> "tiny-dllm" in list_builtin_models()
        True
        ```
    """
    return shipped_names(PRETRAINED_DIR)


def builtin_model_path(name: str) -> Path:
    """Folder of the shipped model `name` (usable with `from_pretrained`)."""
    return shipped_path(PRETRAINED_DIR, name, "model", "models")


def load_builtin_model(name: str = DEFAULT_BUILTIN_MODEL, **kwargs: Any) -> tuple[Any, Any]:
    """Load a shipped tiny dLLM and its tokenizer from the package folder (no network needed).

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
