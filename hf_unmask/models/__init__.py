from ..generation.adapter import (
    ADAPTER_REGISTRY,
    DiffusionAdapter,
    MaskedLMAdapter,
    get_adapter,
    register_adapter,
    resolve_adapter_class,
    unwrap_model,
)
from .auto import AutoDiffusionLM, load_tokenizer
from .dream import DreamAdapter, DreamConfig
from .llada import LLaDAAdapter, LLaDAConfig
from .loading import load_dllm
from .masked_lm import RobertaMaskedLMAdapter

__all__ = [
    "ADAPTER_REGISTRY",
    "AutoDiffusionLM",
    "DiffusionAdapter",
    "DreamAdapter",
    "DreamConfig",
    "LLaDAAdapter",
    "LLaDAConfig",
    "MaskedLMAdapter",
    "RobertaMaskedLMAdapter",
    "get_adapter",
    "load_dllm",
    "load_tokenizer",
    "register_adapter",
    "resolve_adapter_class",
    "unwrap_model",
]

# The model classes import the generation mixin, which imports this package: expose them lazily to avoid an
# import cycle (`import hf_unmask` imports `hf_unmask.models.native` once generation is loaded, which registers them
# with the Auto classes).
_LAZY_EXPORTS = {
    "DreamModel": "dream",
    "LLaDAModelLM": "llada",
    "LLaDA2Adapter": "llada2",
    "LLaDA2MoeConfig": "llada2",
    "LLaDA2MoeModelLM": "llada2",
    "NATIVE_MODEL_CLASSES": "native",
    "native_model_class": "native",
    "SDARAdapter": "sdar",
    "SDARConfig": "sdar",
    "SDARForCausalLM": "sdar",
    "TinyDLLMAdapter": "tiny",
    "TinyDLLMConfig": "tiny",
    "TinyDLLMForMaskedDiffusion": "tiny",
    "builtin_model_path": "tiny",
    "list_builtin_models": "tiny",
    "load_builtin_model": "tiny",
}
__all__ += list(_LAZY_EXPORTS)


def __getattr__(name: str) -> object:
    """Lazy access to the model classes and the tiny dLLM helpers (see `_LAZY_EXPORTS`)."""
    if name in _LAZY_EXPORTS:
        import importlib

        return getattr(importlib.import_module(f".{_LAZY_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
