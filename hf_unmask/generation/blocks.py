"""Where the blocks of a `generate` call lie on the generated canvas.

Masked dLLMs trained with full attention (LLaDA-1, Dream, the built-in tiny dLLM) split the L generated positions
into L / BL blocks counted from the first generated position, the same for every row.

Block-diffusion models (LLaDA2.x, SDAR) were trained on blocks aligned to absolute positions: block k holds the
positions `[k * BL, (k + 1) * BL)` counted from the row's first real token, so the prompt's tail shares the first
block with the first generated tokens, and the generated region is extended to the end of the block holding its
last position (the extra positions are decoded with their block, as the published samplers do, and cut from the
output). Each row is aligned on its own prompt length, so a left-padded row has the blocks it has alone; the
loop's block k is every row's k-th block holding generated positions, whose bounds may differ between rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch


@dataclass
class BlockLayout:
    """The blocks of one call over a canvas of `canvas_length` generated positions.

    Attributes:
        block_length: BL.
        num_blocks: blocks the loop walks through.
        canvas_length: generated positions on the canvas (L, or more for block-diffusion models).
        block_of_position: `[B, canvas_length]` long block index of each generated position per row (-1: beyond the
            row's last block, never decided), or None when blocks are the same for every row.
        prompt_lengths: `[B]` real prompt tokens per row (block-diffusion alignment only).

    Example:
        ```python
        >>> import torch
        >>> layout = BlockLayout.aligned(torch.tensor([3, 5]), gen_length=4, block_length=4)
        >>> layout.canvas_length, layout.num_blocks, layout.bounds(0), layout.bounds(1)
        (7, 2, (0, 3), (1, 7))
        >>> layout.block_of_position.tolist()  # row 0: prompt of 3, row 1: prompt of 5, blocks of 4
        [[0, 1, 1, 1, 1, -1, -1], [0, 0, 0, 1, 1, 1, 1]]
        ```
    """

    block_length: int
    num_blocks: int
    canvas_length: int
    block_of_position: Optional[torch.Tensor] = None
    prompt_lengths: Optional[torch.Tensor] = None

    @classmethod
    def relative(cls, gen_length: int, block_length: int, device: torch.device) -> BlockLayout:
        """Blocks counted from the first generated position (BL divides L)."""
        num_blocks = gen_length // block_length
        blocks = None
        if num_blocks > 1:
            blocks = (torch.arange(gen_length, device=device) // block_length).unsqueeze(0)
        return cls(block_length, num_blocks, gen_length, blocks)

    @classmethod
    def aligned(cls, prompt_lengths: torch.Tensor, gen_length: int, block_length: int) -> BlockLayout:
        """Blocks aligned to each row's absolute positions (block-diffusion models)."""
        p = prompt_lengths.long()
        BL = block_length
        row_end = (torch.div(p + gen_length + BL - 1, BL, rounding_mode="floor")) * BL - p  # end of the last block
        canvas = int(row_end.max())
        g = torch.arange(canvas, device=p.device).unsqueeze(0)
        blocks = (
            torch.div(p.unsqueeze(-1) + g, BL, rounding_mode="floor")
            - torch.div(p, BL, rounding_mode="floor")[:, None]
        )
        blocks = torch.where(g < row_end.unsqueeze(-1), blocks, torch.full_like(blocks, -1))
        return cls(BL, int(blocks.max()) + 1, canvas, blocks, p)

    @property
    def padding_mask(self) -> Optional[torch.Tensor]:
        """`[B, canvas_length]` bool: the positions of each row's own canvas, or None when every row has them all."""
        if self.prompt_lengths is None:
            return None
        inside = self.block_of_position >= 0
        return None if bool(inside.all()) else inside

    def in_block(self, block: int) -> Optional[torch.Tensor]:
        """`[B or 1, canvas_length]` bool: the positions of block `block` (None: one block holds everything)."""
        if self.block_of_position is None:
            return None
        return self.block_of_position == block

    def bounds(self, block: int) -> tuple[int, int]:
        """`(start, end)` in generated positions covering block `block` of every row."""
        if self.prompt_lengths is None:
            return block * self.block_length, (block + 1) * self.block_length
        where = (self.block_of_position == block).any(0).nonzero()
        return int(where[0]), int(where[-1]) + 1

    def window_start(self, block: int) -> int:
        """Where block `block` starts on the canvas of the row whose block starts first, in generated positions: a
        block-diffusion block may start inside the prompt (negative), and its prompt positions attend to its
        generated ones."""
        if self.prompt_lengths is None:
            return block * self.block_length
        offsets = self.prompt_lengths % self.block_length
        return block * self.block_length - int(offsets.max())

    def step_budget(self, budget: int, max_steps: Optional[int]) -> int:
        """Forward passes per block: `budget`, and no more than `max_steps` over all the loop's blocks."""
        if max_steps is None:
            return budget
        return max(1, min(budget, max_steps // self.num_blocks))
