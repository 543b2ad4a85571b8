"""The model families hf_unmask implements itself, registered with transformers' Auto classes.

After `import hf_unmask`, `AutoConfig`, `AutoModel` and `AutoModelForMaskedLM` resolve the `model_type` of
LLaDA ("llada"), Dream ("Dream") and the built-in tiny dLLM ("hf_unmask_tiny") to these classes, so a checkpoint
of those families loads without `trust_remote_code` and without running any file it ships.
"""

from __future__ import annotations

from typing import Any, Optional

from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

from .dream.modeling_dream import DreamModel
from .llada.modeling_llada import LLaDAModelLM
from .tiny.modeling_tiny_dllm import TinyDLLMForMaskedDiffusion

#: `model_type` -> the native class with its head and a diffusion `generate`.
NATIVE_MODEL_CLASSES: dict[str, type] = {
    "llada": LLaDAModelLM,
    "Dream": DreamModel,
    "hf_unmask_tiny": TinyDLLMForMaskedDiffusion,
}

#: Tokenizer classes that checkpoints of the native families ship as remote code, and the transformers class that
#: reads the same files with the same rules (Dream's `DreamTokenizer` is Qwen2's byte-level BPE).
NATIVE_TOKENIZER_CLASSES: dict[str, str] = {"DreamTokenizer": "Qwen2Tokenizer"}

for _model_type, _model_class in NATIVE_MODEL_CLASSES.items():
    AutoConfig.register(_model_type, _model_class.config_class, exist_ok=True)
    AutoModel.register(_model_class.config_class, _model_class, exist_ok=True)
    AutoModelForMaskedLM.register(_model_class.config_class, _model_class, exist_ok=True)


def native_model_class(model_type: Any) -> Optional[type]:
    """The native class for `model_type` (`"llada"`, `"Dream"`, `"hf_unmask_tiny"`), or None.

    Example:
        ```python
        >>> from hf_unmask.models.native import native_model_class
        >>> native_model_class("llada").__name__, native_model_class("bert")
        ('LLaDAModelLM', None)
        ```
    """
    return NATIVE_MODEL_CLASSES.get(model_type)
