"""A two-layer block-causal transformer with a diffusion cache, for tests of the generation loop's block-diffusion
path (fast on CPU; the real families' layouts are tested against their own references elsewhere)."""

from __future__ import annotations

from typing import Any, Optional

import torch
from torch import nn
from transformers import PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import MaskedLMOutput

from hf_unmask.generation.adapter import DiffusionAdapter, register_adapter
from hf_unmask.generation.mixin import DiffusionGenerationMixin
from hf_unmask.models.bidirectional import RMSNorm, RotaryEmbedding, attend, attention_inputs

TOY_MASK, TOY_EOS, TOY_VOCAB, TOY_BLOCK = 39, 2, 40, 4


class ToyBlockConfig(PretrainedConfig):
    model_type = "toy_block_causal"

    def __init__(self, vocab_size: int = TOY_VOCAB, hidden_size: int = 32, heads: int = 4, layers: int = 2, **kw):
        self.vocab_size, self.hidden_size, self.heads, self.layers = vocab_size, hidden_size, heads, layers
        super().__init__(**kw)


class _Layer(nn.Module):
    is_causal = False

    def __init__(self, config: ToyBlockConfig, layer_idx: int) -> None:
        super().__init__()
        self.config, self.layer_idx = config, layer_idx
        self.num_heads = self.num_key_value_heads = config.heads
        self.num_key_value_groups = 1
        self.head_dim = config.hidden_size // config.heads
        d = config.hidden_size
        self.norm, self.q, self.k, self.v, self.o = (
            RMSNorm(d),
            nn.Linear(d, d),
            nn.Linear(d, d),
            nn.Linear(d, d),
            nn.Linear(d, d),
        )
        self.mlp = nn.Sequential(RMSNorm(d), nn.Linear(d, 2 * d), nn.SiLU(), nn.Linear(2 * d, d))

    def forward(self, x, position_embeddings, mask, cache=None):
        h = self.norm(x)
        x = x + self.o(attend(self, self.q(h), self.k(h), self.v(h), position_embeddings, mask, cache=cache))
        return x + self.mlp(x)


class ToyBlockCausalLM(DiffusionGenerationMixin, PreTrainedModel):
    config_class = ToyBlockConfig
    supports_diffusion_cache = True
    _supports_sdpa = True

    def __init__(self, config: ToyBlockConfig) -> None:
        super().__init__(config)
        self.embed = nn.Embedding(config.vocab_size, config.hidden_size)
        self.layers = nn.ModuleList(_Layer(config, i) for i in range(config.layers))
        self.norm = RMSNorm(config.hidden_size)
        self.head = nn.Linear(config.hidden_size, config.vocab_size)
        self.rotary = RotaryEmbedding(config.hidden_size // config.heads, 10000.0)
        self.post_init()

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(0, 0.5)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: Optional[torch.Tensor] = None,
        position_ids: Optional[torch.Tensor] = None,
        cache: Any = None,
        block_length: Optional[int] = None,
        output_hidden_states: Optional[bool] = None,
        **kwargs: Any,
    ) -> MaskedLMOutput:
        x = self.embed(input_ids)
        mask, positions = attention_inputs(
            self.config, x, attention_mask, position_ids, cache, block_length or TOY_BLOCK
        )
        pe = self.rotary(positions, torch.float32)
        for layer in self.layers:
            x = layer(x, pe, mask, cache=cache)
        x = self.norm(x)
        return MaskedLMOutput(logits=self.head(x), hidden_states=(x,) if output_hidden_states else None)


@register_adapter("toy_block_causal")
class ToyBlockAdapter(DiffusionAdapter):
    default_mask_token_id = TOY_MASK
    default_eos_token_ids = (TOY_EOS,)
    block_causal = True
    trained_block_length = TOY_BLOCK
    supports_shadow_block = True


def toy_block_model(seed: int = 0) -> ToyBlockCausalLM:
    torch.manual_seed(seed)
    return ToyBlockCausalLM(ToyBlockConfig()).eval()


def published_block_mask(total: int, block_length: int) -> torch.Tensor:
    """`[1, 1, T, T]` boolean block-causal mask as the published samplers build it (`tril` over blocks, repeated)."""
    blocks = -(-total // block_length)
    mask = torch.tril(torch.ones(blocks, blocks, dtype=torch.bool))
    mask = mask.repeat_interleave(block_length, 0).repeat_interleave(block_length, 1)
    return mask[:total, :total][None, None]
