"""LLaDA2.x (model_type "llada2_moe"), native: configuration, model (loaded lazily: it needs the generation mixin)
and diffusion adapter."""

from .adapter import LLaDA2Adapter
from .configuration_llada2_moe import (
    LLADA2_EOS_TOKEN_ID,
    LLADA2_MASK_TOKEN_ID,
    LLADA2_TRAINED_BLOCK_LENGTH,
    LLaDA2MoeConfig,
)

__all__ = [
    "LLADA2_EOS_TOKEN_ID",
    "LLADA2_MASK_TOKEN_ID",
    "LLADA2_TRAINED_BLOCK_LENGTH",
    "LLaDA2Adapter",
    "LLaDA2MoeConfig",
    "LLaDA2MoeModelLM",
]


def __getattr__(name: str) -> object:
    if name == "LLaDA2MoeModelLM":
        from .modeling_llada2_moe import LLaDA2MoeModelLM

        return LLaDA2MoeModelLM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
