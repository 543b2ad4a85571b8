"""Dream, native: configuration, model (loaded lazily: it needs the generation mixin) and diffusion adapter."""

from .adapter import DreamAdapter
from .configuration_dream import DREAM_END_OF_TURN_TOKEN_ID, DREAM_EOS_TOKEN_ID, DREAM_MASK_TOKEN_ID, DreamConfig

__all__ = [
    "DREAM_END_OF_TURN_TOKEN_ID",
    "DREAM_EOS_TOKEN_ID",
    "DREAM_MASK_TOKEN_ID",
    "DreamAdapter",
    "DreamConfig",
    "DreamModel",
]


def __getattr__(name: str) -> object:
    if name == "DreamModel":
        from .modeling_dream import DreamModel

        return DreamModel
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
