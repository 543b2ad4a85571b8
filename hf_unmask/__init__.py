"""hf_unmask: diffusion language models in the Hugging Face stack, with learnable unmasking strategies.

Every public class and function is importable from here (`from hf_unmask import TopKConfidence, evaluate_strategies`).
What pulls a heavy library is loaded on first use: the evaluation tools and the built-in tasks (`datasets`), the
GRPO trainer (TRL, the `[train]` extra).
"""

from ._paths import LocalFolderNotFoundError
from ._threads import ThreadChoice, set_cpu_threads
from ._version import __version__
from ._warnings import warn_deprecated
from .custom_generate import CUSTOM_GENERATE_DIR, push_custom_generate
from .generation import (
    DenoisingState,
    DiffusionAdapter,
    DiffusionGenerateOutput,
    DiffusionGenerationConfig,
    DiffusionGenerationMixin,
    DiffusionKVCache,
    DiffusionStep,
    DiffusionTextGenerator,
    DiffusionTextOutput,
    DiffusionTextStreamer,
    DiffusionTrajectory,
    StrategyOutput,
    diffusion_generate,
    enable_diffusion_generate,
    register_adapter,
)
from .models import AutoDiffusionLM, DreamConfig, LLaDAConfig, load_tokenizer
from .models.dream.modeling_dream import DreamModel
from .models.llada.modeling_llada import LLaDAModelLM
from .models.native import NATIVE_MODEL_CLASSES  # noqa: F401  (registers the native families with transformers)
from .models.tiny import TinyDLLMConfig, TinyDLLMForMaskedDiffusion, list_builtin_models, load_builtin_model
from .strategies import (
    ConfidenceFactor,
    ConfidencePolicy,
    ConfidenceThreshold,
    EBSampler,
    FixedCountStrategy,
    HiddenStatePolicy,
    LLaDA2Decoder,
    LLaDA21Decoder,
    RandomTimeGrid,
    RandomTopK,
    RemaskingPolicy,
    SDARDecoder,
    TopKConfidence,
    TopKEntropy,
    TopKMargin,
    UnmaskingPolicy,
    UnmaskingStrategy,
    list_builtin_policies,
    load_builtin_policy,
)

# name -> module, imported on first access (these import `datasets`; the trainer imports TRL)
_LAZY = {
    "EvaluationData": "hf_unmask.evaluation",
    "EvaluationResult": "hf_unmask.evaluation",
    "evaluate_strategies": "hf_unmask.evaluation",
    "VerifiableTask": "hf_unmask.tasks",
    "get_task": "hf_unmask.tasks",
    "UnmaskingGRPOConfig": "hf_unmask.trainer",
    "UnmaskingGRPOTrainer": "hf_unmask.trainer",
}

__all__ = [
    "CUSTOM_GENERATE_DIR",
    "AutoDiffusionLM",
    "ConfidenceFactor",
    "ConfidencePolicy",
    "ConfidenceThreshold",
    "DenoisingState",
    "DiffusionAdapter",
    "DiffusionGenerateOutput",
    "DiffusionGenerationConfig",
    "DiffusionGenerationMixin",
    "DiffusionKVCache",
    "DiffusionStep",
    "DiffusionTextGenerator",
    "DiffusionTextOutput",
    "DiffusionTextStreamer",
    "DiffusionTrajectory",
    "DreamConfig",
    "DreamModel",
    "EBSampler",
    "FixedCountStrategy",
    "HiddenStatePolicy",
    "LLaDA21Decoder",
    "LLaDA2Decoder",
    "LLaDAConfig",
    "LLaDAModelLM",
    "LocalFolderNotFoundError",
    "RandomTimeGrid",
    "RandomTopK",
    "RemaskingPolicy",
    "SDARDecoder",
    "StrategyOutput",
    "ThreadChoice",
    "TinyDLLMConfig",
    "TinyDLLMForMaskedDiffusion",
    "TopKConfidence",
    "TopKEntropy",
    "TopKMargin",
    "UnmaskingPolicy",
    "UnmaskingStrategy",
    "__version__",
    "diffusion_generate",
    "enable_diffusion_generate",
    "list_builtin_models",
    "list_builtin_policies",
    "load_builtin_model",
    "load_builtin_policy",
    "load_tokenizer",
    "push_custom_generate",
    "register_adapter",
    "set_cpu_threads",
    *_LAZY,
]


def __getattr__(name: str) -> object:
    """The lazily imported names of `_LAZY`, and the deprecated names (with a `FutureWarning`)."""
    if name == "LearnedUnmaskingPolicy":
        warn_deprecated("LearnedUnmaskingPolicy", "UnmaskingPolicy (the base class of learned policies)")
        return UnmaskingPolicy
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hf_unmask' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
