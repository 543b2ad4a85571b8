"""LLaDA-MoE, native: configuration, model (loaded lazily: it needs the generation mixin) and diffusion adapter."""

from .adapter import LLaDAMoEAdapter
from .configuration_llada_moe import (
    LLADA_MOE_EOS_TOKEN_ID,
    LLADA_MOE_MASK_TOKEN_ID,
    LLaDAMoEConfig,
    is_llada_moe_config,
)

__all__ = [
    "LLADA_MOE_EOS_TOKEN_ID",
    "LLADA_MOE_MASK_TOKEN_ID",
    "LLaDAMoEAdapter",
    "LLaDAMoEConfig",
    "LLaDAMoEModelLM",
    "is_llada_moe_config",
]


def __getattr__(name: str) -> object:
    if name == "LLaDAMoEModelLM":
        from .modeling_llada_moe import LLaDAMoEModelLM

        return LLaDAMoEModelLM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
