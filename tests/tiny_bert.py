"""The seeded random `BertForMaskedLM` that many tests start from (not a test module).

Tests tune it for their purpose afterwards (scaled head, banned tokens, a diffusion `generate`); the shapes and the
seeding live here once.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import BertConfig, BertForMaskedLM


def seeded_tiny_bert(seed: int = 0, **config: Any) -> BertForMaskedLM:
    """A random 2-layer, 32-wide `BertForMaskedLM` in eval mode, drawn after `torch.manual_seed(seed)` without
    disturbing the caller's RNG. `config` overrides the `BertConfig` fields (vocab 64, 2 heads, FFN 64, 128
    positions by default)."""
    values: dict[str, Any] = dict(
        vocab_size=64,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    values.update(config)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return BertForMaskedLM(BertConfig(**values)).eval()
