from .adapters import (
    ADAPTER_REGISTRY,
    DiffusionAdapter,
    MaskedLMAdapter,
    get_adapter,
    register_adapter,
    resolve_adapter_class,
    unwrap_model,
)
from .auto import AutoDiffusionLM
from .dream import DreamAdapter
from .llada import LLaDAAdapter
from .masked_lm import RobertaMaskedLMAdapter

__all__ = [
    "ADAPTER_REGISTRY",
    "AutoDiffusionLM",
    "DiffusionAdapter",
    "DreamAdapter",
    "LLaDAAdapter",
    "MaskedLMAdapter",
    "RobertaMaskedLMAdapter",
    "get_adapter",
    "register_adapter",
    "resolve_adapter_class",
    "unwrap_model",
]
