"""hf_unmask: diffusion language models in the Hugging Face stack, with learnable unmasking strategies."""

from ._paths import LocalFolderNotFoundError  # noqa: E402
from ._version import __version__
from .custom_generate import CUSTOM_GENERATE_DIR, push_custom_generate  # noqa: E402
from .generation import (  # noqa: E402
    DenoisingState,
    DiffusionGenerateOutput,
    DiffusionGenerationConfig,
    DiffusionGenerationMixin,
    DiffusionStep,
    DiffusionTextGenerator,
    DiffusionTextOutput,
    DiffusionTextStreamer,
    DiffusionTrajectory,
    diffusion_generate,
    enable_diffusion_generate,
)
from .models import (  # noqa: E402
    AutoDiffusionLM,
    DiffusionAdapter,
    DreamConfig,
    LLaDAConfig,
    load_tokenizer,
    register_adapter,
)
from .models.dream.modeling_dream import DreamModel  # noqa: E402
from .models.llada.modeling_llada import LLaDAModelLM  # noqa: E402
from .models.native import NATIVE_MODEL_CLASSES  # noqa: E402, F401  (registers the native families)
from .models.tiny import (  # noqa: E402
    TinyDLLMConfig,
    TinyDLLMForMaskedDiffusion,
    list_builtin_models,
    load_builtin_model,
)
from .strategies import StrategyOutput, UnmaskingStrategy, list_builtin_policies, load_builtin_policy  # noqa: E402

__all__ = [
    "CUSTOM_GENERATE_DIR",
    "AutoDiffusionLM",
    "DenoisingState",
    "DiffusionAdapter",
    "DiffusionGenerateOutput",
    "DiffusionGenerationConfig",
    "DiffusionGenerationMixin",
    "DiffusionStep",
    "DiffusionTextGenerator",
    "DiffusionTextOutput",
    "DiffusionTextStreamer",
    "DiffusionTrajectory",
    "DreamConfig",
    "DreamModel",
    "LLaDAConfig",
    "LLaDAModelLM",
    "LocalFolderNotFoundError",
    "StrategyOutput",
    "TinyDLLMConfig",
    "TinyDLLMForMaskedDiffusion",
    "UnmaskingStrategy",
    "__version__",
    "diffusion_generate",
    "enable_diffusion_generate",
    "push_custom_generate",
    "list_builtin_models",
    "list_builtin_policies",
    "load_builtin_model",
    "load_builtin_policy",
    "load_tokenizer",
    "register_adapter",
]
