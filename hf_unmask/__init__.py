"""hf_unmask: diffusion language models in the Hugging Face stack, with learnable unmasking strategies."""

__version__ = "0.1.0"

from .generation import (  # noqa: E402
    DenoisingState,
    DiffusionGenerateOutput,
    DiffusionGenerationConfig,
    DiffusionGenerationMixin,
    DiffusionTextStreamer,
    DiffusionTrajectory,
    diffusion_generate,
    enable_diffusion_generate,
)
from .models import DiffusionAdapter, register_adapter  # noqa: E402
from .strategies import StrategyOutput, UnmaskingStrategy  # noqa: E402

__all__ = [
    "DenoisingState",
    "DiffusionAdapter",
    "DiffusionGenerateOutput",
    "DiffusionGenerationConfig",
    "DiffusionGenerationMixin",
    "DiffusionTextStreamer",
    "DiffusionTrajectory",
    "StrategyOutput",
    "UnmaskingStrategy",
    "__version__",
    "diffusion_generate",
    "enable_diffusion_generate",
    "register_adapter",
]
