"""LLaDA, native: configuration, model (loaded lazily: it needs the generation mixin) and diffusion adapter."""

from .adapter import LLaDAAdapter
from .configuration_llada import LLADA_EOS_TOKEN_ID, LLADA_EOT_TOKEN_ID, LLADA_MASK_TOKEN_ID, LLaDAConfig

__all__ = [
    "LLADA_EOS_TOKEN_ID",
    "LLADA_EOT_TOKEN_ID",
    "LLADA_MASK_TOKEN_ID",
    "LLaDAAdapter",
    "LLaDAConfig",
    "LLaDAModelLM",
]


def __getattr__(name: str) -> object:
    if name == "LLaDAModelLM":
        from .modeling_llada import LLaDAModelLM

        return LLaDAModelLM
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
