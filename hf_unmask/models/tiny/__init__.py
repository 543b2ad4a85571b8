"""The built-in tiny masked-diffusion LM: config, model, tokenizer, adapter and the built-in checkpoints.

Its Auto-class registration (model type `"hf_unmask_tiny"`) lives with the other native families in
`hf_unmask.models.native`.
"""

from ..._builtin import DEFAULT_BUILTIN_MODEL, builtin_model_name, is_builtin_alias
from .adapter import TinyDLLMAdapter
from .builtin import builtin_model_path, list_builtin_models, load_builtin_model
from .configuration_tiny_dllm import TinyDLLMConfig
from .modeling_tiny_dllm import TinyDLLMForMaskedDiffusion
from .tokenization import build_tokenizer

__all__ = [
    "DEFAULT_BUILTIN_MODEL",
    "builtin_model_name",
    "is_builtin_alias",
    "TinyDLLMAdapter",
    "TinyDLLMConfig",
    "TinyDLLMForMaskedDiffusion",
    "build_tokenizer",
    "builtin_model_path",
    "list_builtin_models",
    "load_builtin_model",
]
