"""The verification forward: the canvas and a *shadow block* in one forward pass (WINO's verification).

A strategy with `requires_verification = True` gets every step's forward over `[canvas | shadow]`, where the
shadow block holds BL extra positions, all the mask id, appended after the canvas:

- shadow slot i takes the position id of the current block's slot i (positions as the model counts them: from
  each row's first real token), so it stands for that slot;
- real rows (prompt and canvas) attend to the real columns only, exactly as in a normal forward (padding columns
  stay unattended; on a block-causal model the block-causal rule holds), so their logits are a normal forward's;
- shadow row i attends to every shadow column, to the prompt and to every canvas column except the current
  block's slot i (on a block-causal model: every column up to the end of the current block, except slot i).

Shadow slot i thus predicts slot i as if it were still masked, from everything else: the *verification
confidence* of a decided slot is the probability its shadow logits give the token in place (the mask id left out
of the softmax, as for the drafting confidence; the logits processor, written for the L generated positions, is
not applied). One forward, one NFE.

Families whose logits are shifted (Dream: the output at position i - 1 predicts token i) get one more shadow slot
and positions one lower: shadow slot i takes the position id of slot i - 1 and its raw output predicts slot i. That
query sees a mask at slot i's position (the next shadow slot's; the extra last slot gives the block's last slot
one) and never slot i's token, as in the unshifted layout.
"""

from __future__ import annotations

from typing import Any, Optional

import torch


class ShadowBlock:
    """Builds the `[canvas | shadow]` inputs of a step and reads the verification confidence from its logits.

    Example:
        ```python
        >>> import torch
        >>> from hf_unmask.generation.shadow_block import shadow_attention
        >>> keep = shadow_attention(torch.ones(1, 3, dtype=torch.bool), torch.tensor([1]), 2)
        >>> keep[0].int().tolist()  # 3 real columns, then 2 shadow ones; shadow slot i hides canvas column 1 + i
        [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 0, 1, 1, 1], [1, 1, 0, 1, 1]]
        ```
    """

    def __init__(self, adapter: Any, prompt_length: int, block_length: int, mask_id: int) -> None:
        self.adapter = adapter
        self.P, self.BL, self.mask_id = prompt_length, block_length, mask_id
        self.shift = 1 if adapter.shift_logits else 0
        self.block_causal = bool(adapter.block_causal)
        #: raw shadow logits `[b, BL (+1 when shifted), V]` and the block's first canvas column `[b]` of the last step
        self.logits: Optional[torch.Tensor] = None
        self.starts: Optional[torch.Tensor] = None

    def forward(
        self,
        inputs: dict[str, Any],
        block_start: int,
        in_block: Optional[torch.Tensor],
        output_hidden_states: bool = False,
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The verification forward over the rows of `inputs` (a normal forward's keyword arguments;
        `in_block`, the current block's `[b, L]` generated positions of those rows, needed on a block-causal
        model). Returns the aligned logits (and hidden states) of the real part; keeps the shadow logits."""
        ids = inputs["input_ids"]
        batch, length = ids.shape
        padding = inputs.get("attention_mask")
        real = torch.ones(batch, length, dtype=torch.bool, device=ids.device) if padding is None else padding.bool()
        positions = inputs.get("position_ids")
        if positions is None:
            positions = _positions(real)
        starts = self._block_starts(positions, block_start, in_block, batch, length)
        S = self.BL + self.shift
        mirror = (starts.unsqueeze(-1) - self.shift + torch.arange(S, device=ids.device)).clamp(0, length - 1)
        extended = dict(inputs)
        extended["input_ids"] = torch.cat(
            [ids, torch.full((batch, S), self.mask_id, dtype=ids.dtype, device=ids.device)], 1
        )
        extended["position_ids"] = torch.cat([positions, positions.gather(1, mirror)], 1)
        blocks = torch.div(positions, self.BL, rounding_mode="floor") if self.block_causal else None
        extended["attention_mask"] = shadow_attention(real, starts, S, blocks).unsqueeze(1)
        types = inputs.get("token_type_ids")
        if isinstance(types, torch.Tensor) and types.dim() == 2:
            extended["token_type_ids"] = torch.cat([types, types.gather(1, mirror)], 1)
        extended = self.adapter.verification_inputs(extended, real, S)
        logits, self.logits, hidden = self.adapter.forward_verification(extended, S, output_hidden_states)
        self.starts = starts
        return logits, hidden

    def _block_starts(
        self,
        positions: torch.Tensor,
        block_start: int,
        in_block: Optional[torch.Tensor],
        batch: int,
        length: int,
    ) -> torch.Tensor:
        """`[b]` the canvas column of each row's current block's first slot."""
        if not self.block_causal or in_block is None:
            return torch.full((batch,), self.P + block_start, dtype=torch.long, device=positions.device)
        # aligned blocks: from the row's first generated position of the block, back to the block's first position
        first = self.P + in_block.long().argmax(-1)
        offset = positions.gather(1, first.unsqueeze(-1)).squeeze(-1) % self.BL
        return (first - offset).clamp(0, length - self.BL)

    def confidence(self, gen: torch.Tensor, decided: torch.Tensor) -> torch.Tensor:
        """`[b, L]` float32: the probability the last forward's shadow logits give the token in place at each
        `decided` generated position of the current block (0 elsewhere)."""
        if self.logits is None or self.starts is None:
            raise RuntimeError("internal error: no verification forward ran before reading its confidence")
        scores = self.logits[:, : self.BL].float()
        scores[..., self.mask_id] = float("-inf")
        slots = self.starts.unsqueeze(-1) - self.P + torch.arange(self.BL, device=gen.device)  # generated positions
        inside = (slots >= 0) & (slots < gen.shape[1])
        slots = slots.clamp(0, gen.shape[1] - 1)
        tokens = gen.gather(1, slots)
        chosen = scores.gather(-1, tokens.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(scores, dim=-1)
        values = torch.where(inside, chosen.exp(), torch.zeros_like(chosen))
        out = torch.zeros(gen.shape, dtype=torch.float32, device=gen.device).scatter_(1, slots, values)
        return torch.where(decided, out, torch.zeros_like(out))


def _positions(real: torch.Tensor) -> torch.Tensor:
    """Position ids counted from each row's first real token (the models' default for a padded batch)."""
    return (real.long().cumsum(-1) - 1).clamp_min(0)


def shadow_attention(
    real: torch.Tensor, starts: torch.Tensor, shadow_length: int, blocks: Optional[torch.Tensor] = None
) -> torch.Tensor:
    """`[b, T + S, T + S]` bool (True = may attend) of the verification forward over `[canvas (T) | shadow (S)]`.

    `real`: `[b, T]` bool, the canvas's non-padding columns. `starts`: `[b]`, the canvas column of the current
    block's first slot; shadow row i hides canvas column `starts + i`. `blocks`: `[b, T]` block index of each canvas
    column for a block-causal model (a row sees its own and earlier blocks; shadow row i those of slot i), None for
    bidirectional attention. Padding rows attend to the real columns (their output is never read)."""
    batch, length = real.shape
    device = real.device
    keys = real.unsqueeze(1)
    slot_columns = starts.unsqueeze(-1) + torch.arange(shadow_length, device=device)  # [b, S]
    if blocks is None:
        real_rows = keys.expand(batch, length, length)
        shadow_rows = keys.expand(batch, shadow_length, length)
    else:
        real_rows = (blocks.unsqueeze(1) <= blocks.unsqueeze(2)) & keys
        slot_blocks = blocks.gather(1, slot_columns.clamp(max=length - 1))
        shadow_rows = (blocks.unsqueeze(1) <= slot_blocks.unsqueeze(2)) & keys
    own = torch.arange(length, device=device).view(1, 1, length) == slot_columns.unsqueeze(-1)
    top = torch.cat([real_rows, real.new_zeros(batch, length, shadow_length)], -1)
    bottom = torch.cat([shadow_rows & ~own, real.new_ones(batch, shadow_length, shadow_length)], -1)
    return torch.cat([top, bottom], 1)
