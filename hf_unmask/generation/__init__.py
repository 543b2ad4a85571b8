from .adapter import (
    ADAPTER_REGISTRY,
    DiffusionAdapter,
    MaskedLMAdapter,
    get_adapter,
    model_device,
    register_adapter,
    resolve_adapter_class,
    unwrap_model,
)
from .config import DiffusionGenerationConfig, check_block_length
from .eos import cut_at_eos, eos_id_list
from .kv_cache import DiffusionKVCache
from .loop import diffusion_generate
from .mixin import DiffusionGenerationMixin, enable_diffusion_generate
from .outputs import DiffusionGenerateOutput, DiffusionStep, DiffusionTrajectory
from .schedule import num_transfer_tokens, num_transfer_tokens_at
from .state import DenoisingState
from .strategy import StrategyOutput, as_strategy
from .streamers import DiffusionTextStreamer
from .text import DiffusionTextGenerator, DiffusionTextOutput
from .text_io import EncodedPrompts, completion_eos_ids, completion_texts, completion_token_ids, encode_prompts

__all__ = [
    "ADAPTER_REGISTRY",
    "DiffusionAdapter",
    "DiffusionKVCache",
    "MaskedLMAdapter",
    "StrategyOutput",
    "as_strategy",
    "get_adapter",
    "register_adapter",
    "resolve_adapter_class",
    "model_device",
    "unwrap_model",
    "DenoisingState",
    "DiffusionGenerateOutput",
    "DiffusionGenerationConfig",
    "DiffusionGenerationMixin",
    "DiffusionStep",
    "DiffusionTextGenerator",
    "DiffusionTextOutput",
    "DiffusionTextStreamer",
    "DiffusionTrajectory",
    "EncodedPrompts",
    "check_block_length",
    "completion_eos_ids",
    "completion_texts",
    "completion_token_ids",
    "cut_at_eos",
    "diffusion_generate",
    "enable_diffusion_generate",
    "encode_prompts",
    "eos_id_list",
    "num_transfer_tokens",
    "num_transfer_tokens_at",
]
