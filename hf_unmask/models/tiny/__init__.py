"""The built-in tiny masked-diffusion LM: config, model, tokenizer, adapter and the shipped checkpoints.

Importing this module registers the model with `AutoConfig` / `AutoModelForMaskedLM` (model type
`"hf_unmask_tiny"`) and its diffusion adapter.
"""

from transformers import AutoConfig, AutoModelForMaskedLM

from .adapter import TinyDLLMAdapter
from .builtin import (
    DEFAULT_BUILTIN_MODEL,
    builtin_model_name,
    builtin_model_path,
    is_builtin_alias,
    list_builtin_models,
    load_builtin_model,
)
from .configuration_tiny_dllm import TinyDLLMConfig
from .modeling_tiny_dllm import TinyDLLMForMaskedDiffusion
from .tokenization import build_tokenizer

AutoConfig.register(TinyDLLMConfig.model_type, TinyDLLMConfig, exist_ok=True)
AutoModelForMaskedLM.register(TinyDLLMConfig, TinyDLLMForMaskedDiffusion, exist_ok=True)

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
