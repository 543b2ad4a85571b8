from .adapters import (
    ADAPTER_REGISTRY,
    DiffusionAdapter,
    MaskedLMAdapter,
    get_adapter,
    register_adapter,
    resolve_adapter_class,
    unwrap_model,
)

__all__ = [
    "ADAPTER_REGISTRY",
    "DiffusionAdapter",
    "MaskedLMAdapter",
    "get_adapter",
    "register_adapter",
    "resolve_adapter_class",
    "unwrap_model",
]
