"""SDAR, native: configuration, model (loaded lazily: it needs the generation mixin) and diffusion adapter."""

from .adapter import SDARAdapter
from .configuration_sdar import (
    SDAR_END_OF_TURN_TOKEN_ID,
    SDAR_EOS_TOKEN_ID,
    SDAR_MASK_TOKEN_ID,
    SDAR_TRAINED_BLOCK_LENGTH,
    SDARConfig,
)

__all__ = [
    "SDAR_END_OF_TURN_TOKEN_ID",
    "SDAR_EOS_TOKEN_ID",
    "SDAR_MASK_TOKEN_ID",
    "SDAR_TRAINED_BLOCK_LENGTH",
    "SDARAdapter",
    "SDARConfig",
    "SDARForCausalLM",
]


def __getattr__(name: str) -> object:
    if name == "SDARForCausalLM":
        from .modeling_sdar import SDARForCausalLM

        return SDARForCausalLM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
