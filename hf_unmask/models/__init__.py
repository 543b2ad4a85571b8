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

# The built-in tiny dLLM imports the generation mixin, which imports this package: expose it lazily to avoid an
# import cycle (`import hf_unmask` imports `hf_unmask.models.tiny` once generation is loaded, which registers it
# with the Auto classes).
_TINY_EXPORTS = (
    "TinyDLLMAdapter",
    "TinyDLLMConfig",
    "TinyDLLMForMaskedDiffusion",
    "builtin_model_path",
    "list_builtin_models",
    "load_builtin_model",
)
__all__ += list(_TINY_EXPORTS)


def __getattr__(name: str) -> object:
    """Lazy access to the tiny dLLM exports (see `_TINY_EXPORTS`)."""
    if name in _TINY_EXPORTS:
        from . import tiny

        return getattr(tiny, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
