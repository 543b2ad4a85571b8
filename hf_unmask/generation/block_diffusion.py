"""What `generate` does differently for block-diffusion families (LLaDA2.x, SDAR): the default block length, the
check of another one, and the end-of-block EOS stop of their own decoders."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import torch

logger = logging.getLogger(__name__)
_warned: set[tuple[str, int]] = set()


def apply_block_defaults(config: Any, adapter: Any) -> None:
    """Set `block_length` to the family's trained block size when the call leaves it unset (full diffusion means
    nothing to a block-causal model), and warn once per family and size when another size is asked for: the
    attention mask is defined for any size, but the model was trained on one and may decode worse with another."""
    trained = adapter.trained_block_length
    family = type(adapter).__name__
    if adapter.shift_logits:
        raise ValueError(f"{family} declares block_causal and shift_logits; hf_unmask implements one or the other.")
    if config.block_length is None:
        if trained is None:
            raise ValueError(f"{family} is block-causal but names no trained_block_length: pass block_length=...")
        L = config.gen_length
        if L % trained:
            raise ValueError(
                f"max_new_tokens={L} is not a multiple of the block size {trained} this block-diffusion model was "
                f"trained with (the default block_length). Pass max_new_tokens={max(trained, L // trained * trained)} "
                f"or {(L // trained + 1) * trained}, or another block_length that divides it."
            )
        config.block_length = trained
        config.validate()
        return
    if trained is not None and config.block_length != trained and (family, config.block_length) not in _warned:
        _warned.add((family, config.block_length))
        logger.warning(
            "block_length=%d on a block-diffusion model trained with blocks of %d (%s): its attention is block-causal "
            "over the block length you give, which it was not trained on; expect lower quality. Leave block_length "
            "unset to use %d.",
            config.block_length,
            trained,
            family,
            trained,
        )


def stop_rows_with_eos(gen: torch.Tensor, mask_id: int, eos_ids: Sequence[int], fill_id: int, end: int) -> None:
    """After a block: a row with an EOS among its generated positions before `end` is finished; its masked positions
    (all in later blocks) are filled with `fill_id`, so no later block is decoded (the decoders of LLaDA2.0 and SDAR
    stop there)."""
    eos = torch.tensor(list(eos_ids), dtype=gen.dtype, device=gen.device)
    done = torch.isin(gen[:, :end], eos).any(-1)
    if bool(done.any()):
        gen.masked_fill_(done.unsqueeze(-1) & (gen == mask_id), fill_id)
