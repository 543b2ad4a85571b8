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
from .llada2.modeling_llada2_moe import LLaDA2MoeModelLM
from .llada_moe.configuration_llada_moe import is_llada_moe_config
from .llada_moe.modeling_llada_moe import LLaDAMoEModelLM
from .sdar.modeling_sdar import SDARForCausalLM
from .tiny.modeling_tiny_dllm import TinyDLLMForMaskedDiffusion

#: `model_type` -> the native class with its head and a diffusion `generate`.
NATIVE_MODEL_CLASSES: dict[str, type] = {
    "llada": LLaDAModelLM,
    "Dream": DreamModel,
    "hf_unmask_tiny": TinyDLLMForMaskedDiffusion,
    "llada2_moe": LLaDA2MoeModelLM,
    "lladamoe": LLaDAMoEModelLM,
    "sdar": SDARForCausalLM,
}

#: Tokenizer classes that checkpoints of the native families ship as remote code, and the transformers class that
#: reads the same files with the same rules (Dream's `DreamTokenizer` is Qwen2's byte-level BPE; SDAR names
#: `Qwen2Tokenizer` and ships a copy of transformers' as remote code in its `auto_map`, never run).
NATIVE_TOKENIZER_CLASSES: dict[str, str] = {"DreamTokenizer": "Qwen2Tokenizer", "Qwen2Tokenizer": "Qwen2Tokenizer"}

for _model_type, _model_class in NATIVE_MODEL_CLASSES.items():
    AutoConfig.register(_model_type, _model_class.config_class, exist_ok=True)
    AutoModel.register(_model_class.config_class, _model_class, exist_ok=True)
    AutoModelForMaskedLM.register(_model_class.config_class, _model_class, exist_ok=True)


def native_model_class(model_type: Any, config_dict: Optional[dict[str, Any]] = None) -> Optional[type]:
    """The native class for `model_type` (`"llada"`, `"Dream"`, `"hf_unmask_tiny"`, ...), or None.

    LLaDA-MoE's published config.json says `model_type` "llada" too: with the checkpoint's `config_dict`, a "llada"
    config with LLaDA-MoE's fields (any mixture-of-experts field such as `num_experts`, or `hidden_size` without
    LLaDA-1's `d_model`; see `is_llada_moe_config`) gets `LLaDAMoEModelLM`, LLaDA-1's OLMo-style fields
    `LLaDAModelLM`.

    Example:
        ```python
        >>> from hf_unmask.models.native import native_model_class
        >>> native_model_class("llada").__name__, native_model_class("bert")
        ('LLaDAModelLM', None)
        >>> native_model_class("llada", {"model_type": "llada", "hidden_size": 2048, "num_experts": 64}).__name__
        'LLaDAMoEModelLM'
        ```
    """
    if model_type == "llada" and config_dict is not None and is_llada_moe_config(config_dict):
        return LLaDAMoEModelLM
    return NATIVE_MODEL_CLASSES.get(model_type)
