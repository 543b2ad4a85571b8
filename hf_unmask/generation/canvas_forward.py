"""The model call of each denoising step: the logits of the L generated positions, with or without a cache.

Without a cache every step runs the model over the whole canvas `[prompt | L]`. With `use_cache=True`
(Fast-dLLM's two modes, `cache_implementation`; see `cache_settings.py`):

* the first step of every block is a *refresh*: one full forward whose keys and values (of every position) the
  cache keeps; its logits are exactly those of the uncached loop on the same canvas;
* the other steps feed a *window* against the cache: `"prefix"`: the current block and everything after it;
  `"dual"`: the current block only. Full diffusion (one block) feeds the whole generated region, so only the
  prompt is cached, whatever the mode.

What a strategy sees at positions the step did not recompute: the logits of the block's refresh (so their
confidence and proposal are those of the block's first step). The trajectory records exactly what the strategy
saw. For families whose logits are shifted (Dream: position i is predicted at i - 1), the window starts one
position earlier, so every position of the window gets a fresh prediction. A model that mixes neighbouring
positions before attention (the built-in tiny dLLM's local convolution) names a margin
(`diffusion_cache_margin`): that many positions on each side of the window are fed with it, so that no position
the window's tokens reach in the first layer keeps stale keys and values; their logits are not shown.

Block-diffusion models (the adapter's `block_causal`) never let a position see a later block, so a step needs the
canvas only up to the end of the current block, and earlier blocks' logits never change: every step feeds the
prefix up to the current block's end (no cache), or only the current block (with the prompt positions it holds,
which attend to its generated ones) against the cached keys and values of everything before it (with the cache; a
block's first step also re-feeds the block just finished, whose last tokens were written after its last forward). The cached logits equal the uncached ones. What a strategy sees
outside the current block is the same either way: a finished block keeps the logits of its last step, a later
block has not been computed yet and shows zero logits (a uniform distribution).

A strategy with `requires_verification` (WINO) gets every forward over the canvas plus a shadow block (see
`shadow_block.py`): the logits returned are the canvas's, the same as a normal forward's, and the shadow block's
stay with the `ShadowBlock` (`shadow`). Never with a cache.

Rows with nothing left to decide in the current block are not fed (the loop passes the rows at work), with or
without a cache; a row's logits do not depend on the other rows of the batch, so this changes no result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Optional

import torch

from .shadow_block import ShadowBlock


class CanvasForward:
    """Calls the model for one step and returns `(logits [b, L, V] of the generated positions, hidden states of
    them or None, positions run through the model per row [b])` for the `b` rows fed.

    `model_inputs(rows)` gives the keyword arguments of a forward over the whole `canvas` (`rows=None`) or over the
    rows `rows` of it. The canvas is written in place and the mask and positions never change, so one set serves
    every step that feeds all rows, unless the adapter hands the model a copy of the canvas (then they are rebuilt
    every step). A step that feeds only some rows (the others have nothing left to decide in the block) builds
    their inputs anew; with a cache, rows that leave are dropped from it (rows never come back within a block, and
    the next block's refresh feeds every row at work again). The returned logits are this step's own tensor without
    a cache; with one, a tensor kept for the block and updated over the window (do not keep references across
    steps).
    """

    def __init__(
        self,
        adapter: Any,
        canvas: torch.Tensor,
        model_inputs: Callable[[Optional[torch.Tensor]], dict[str, Any]],
        prompt_length: int,
        gen_length: int,
        block_length: int,
        real_lengths: torch.Tensor,
        wants_hidden: bool = False,
        cache_implementation: Optional[str] = None,
        block_causal: bool = False,
        shadow: Optional[ShadowBlock] = None,
    ) -> None:
        self.adapter = adapter
        self.model_inputs = model_inputs
        self.inputs = model_inputs(None)
        self.reuse_inputs = self.inputs.get("input_ids") is canvas
        self.P, self.L, self.BL = prompt_length, gen_length, block_length
        self.real_lengths = real_lengths
        self.wants_hidden = wants_hidden
        self.cache_implementation = cache_implementation
        self.cache = adapter.new_cache() if cache_implementation is not None else None
        self._logits: Optional[torch.Tensor] = None  # the block's logits of the generated region (cache only)
        self._cached_rows: Optional[torch.Tensor] = None  # the rows the cache holds (None: every row)
        self.shift = 1 if adapter.shift_logits else 0
        self.margin = adapter.cache_margin
        self.block_causal = block_causal
        self._hidden: Optional[torch.Tensor] = None  # block-causal: the hidden states kept like the logits
        self._previous_start = 0  # block-causal cache: where the block before the current one starts
        self.shadow = shadow  # the verification forward's shadow block (None: a normal forward)

    @property
    def keeps_logits(self) -> bool:
        """Whether the returned logits are a tensor kept across steps (a logits processor then gets a copy)."""
        return self.cache is not None or self.block_causal

    def __call__(
        self,
        block_start: int,
        block_end: int,
        block_step: int,
        rows: Optional[torch.Tensor] = None,
        window_start: Optional[int] = None,
        in_block: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
        """One step over the rows `rows` (a sorted `[b]` long tensor of row indices; None: every row).
        For a block-causal model: `window_start`, where the current block starts on the canvas in generated
        positions (negative inside the prompt; default `block_start`), and `in_block`, `[B, L]` bool, each row's own
        block (its logits are the only ones a row's step updates; default: all of `[block_start, block_end)`)."""
        if self.block_causal:
            start = block_start if window_start is None else window_start
            return self._block_causal_step(block_start, block_end, block_step, rows, start, in_block)
        if rows is not None:
            inputs = self.model_inputs(rows)
        else:
            if not self.reuse_inputs:
                self.inputs = self.model_inputs(None)
            inputs = self.inputs
        real_lengths = self.real_lengths if rows is None else self.real_lengths.index_select(0, rows)
        if self.cache is None:
            logits, hidden = self._forward(inputs, block_start, rows, in_block)
            hidden = None if hidden is None else hidden[:, self.P :]
            return logits.narrow(1, self.P, self.L), hidden, real_lengths
        if block_step == 0:
            self._logits = self.adapter.forward_refresh(inputs, self.cache).narrow(1, self.P, self.L)
            self._cached_rows = rows
            return self._logits, None, real_lengths
        self._keep_cached_rows(rows)
        # the generated positions whose logits this step recomputes, in canvas coordinates
        start = self.P + block_start
        end = self.P + (block_end if self.cache_implementation == "dual" and self.BL < self.L else self.L)
        # what is fed: one position earlier for shifted logits, and the model's margin on both sides
        lo = max(start - self.shift - self.margin, 0)
        hi = min(end + self.margin, self.P + self.L)
        raw = self.adapter.forward_window(inputs, self.cache, lo, hi)
        # raw row j is canvas position lo + j, whose (aligned) logits predict position lo + j + shift
        first = start - self.shift - lo
        self._logits[:, start - self.P : end - self.P] = raw[:, first : first + end - start]
        return self._logits, None, self._real_positions_in(real_lengths, lo, hi)

    def _forward(
        self,
        inputs: dict[str, Any],
        block_start: int,
        rows: Optional[torch.Tensor],
        in_block: Optional[torch.Tensor],
    ) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
        """A full forward without a cache: the verification forward when a shadow block is set."""
        if self.shadow is None:
            return self.adapter.forward_inputs(inputs, output_hidden_states=self.wants_hidden)
        if in_block is not None and rows is not None and in_block.shape[0] > 1:
            in_block = in_block.index_select(0, rows)
        return self.shadow.forward(inputs, block_start, in_block, self.wants_hidden)

    def _keep_cached_rows(self, rows: Optional[torch.Tensor]) -> None:
        """Drop from the cache (and the block's logits) the rows that left since the last step: `rows` is a subset
        of the cached rows, both sorted."""
        cached = self._cached_rows
        if rows is None or (cached is not None and rows.numel() == cached.numel()):
            return
        keep = rows if cached is None else torch.searchsorted(cached, rows)
        self.cache.batch_select_indices(keep)
        self._logits = self._logits.index_select(0, keep)
        self._cached_rows = rows

    def _real_positions_in(self, real_lengths: torch.Tensor, lo: int, hi: int) -> torch.Tensor:
        """How many of the canvas positions `[lo, hi)` are real tokens (not left padding) in each row."""
        padding = self.P + self.L - real_lengths
        return (hi - lo) - (padding - lo).clamp(0, hi - lo)

    def _block_causal_step(
        self,
        block_start: int,
        block_end: int,
        block_step: int,
        rows: Optional[torch.Tensor],
        window_start: int,
        in_block: Optional[torch.Tensor],
    ) -> tuple[torch.Tensor, Optional[torch.Tensor], torch.Tensor]:
        """A step of a block-causal model: the current block's logits, computed from the canvas up to its end."""
        if rows is not None:
            inputs = self.model_inputs(rows)
        else:
            if not self.reuse_inputs:
                self.inputs = self.model_inputs(None)
            inputs = self.inputs
        real_lengths = self.real_lengths if rows is None else self.real_lengths.index_select(0, rows)
        start, hi = self.P + block_start, self.P + block_end
        prefix = _prefix_of(inputs, hi)
        hidden = None
        if self.cache is None:
            logits, hidden = self._forward(prefix, block_start, rows, in_block)
            fresh, lo = logits[:, start:hi], 0
            hidden = None if hidden is None else hidden[:, start:hi]
        elif self.cache.get_seq_length() == 0:  # the first step: every row of the batch enters the cache
            fresh, lo = self.adapter.forward_refresh(_prefix_of(self.inputs, hi), self.cache)[:, start:hi], 0
            fresh = fresh if rows is None else fresh.index_select(0, rows)
        else:
            # the whole block, its prompt tail included (it attends to the block's generated positions). Rows
            # that left a block early come back at the next block's first step, which re-feeds the block they left.
            lo = max(0, self.P + (self._previous_start if block_step == 0 else window_start))
            fresh = self.adapter.forward_window(prefix, self.cache, lo, hi, rows=rows)[:, start - lo :]
        if block_step == 0:
            self._previous_start = window_start
        # each row keeps the fresh logits of its own block only: the window also covers other rows' blocks
        B, span = self.real_lengths.shape[0], (block_start, block_end)
        self._logits = _keep(self._logits, fresh, rows, B, self.L, span, in_block)
        if hidden is not None:
            self._hidden = _keep(self._hidden, hidden, rows, B, self.L, span, in_block)
        pick = (lambda t: t) if rows is None else (lambda t: t.index_select(0, rows))
        kept_hidden = None if self._hidden is None else pick(self._hidden)
        return pick(self._logits), kept_hidden, self._real_positions_in(real_lengths, lo, hi)


def _prefix_of(inputs: dict[str, Any], end: int) -> dict[str, Any]:
    """The model inputs of the canvas positions `[0, end)` (2-D tensors cut; the block length and others kept)."""
    cut = dict(inputs)
    for key, value in inputs.items():
        if isinstance(value, torch.Tensor) and value.dim() == 2:
            cut[key] = value[:, :end]
    return cut


def _keep(
    kept: Optional[torch.Tensor],
    fresh: torch.Tensor,
    rows: Optional[torch.Tensor],
    batch: int,
    length: int,
    span: tuple[int, int],
    where: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """Write `fresh` (`[b, end - start, ...]` of the rows `rows` over `span` = `(start, end)`) into the kept
    `[batch, length, ...]` tensor (zeros until a position's block is computed), only where `where` (`[batch, length]`
    bool) is True when it is given."""
    start, end = span
    if kept is None:
        kept = fresh.new_zeros((batch, length, *fresh.shape[2:]))
    if where is not None:
        own = where[:, start:end] if rows is None else where[:, start:end].index_select(0, rows)
        old = kept[:, start:end] if rows is None else kept[:, start:end].index_select(0, rows)
        fresh = torch.where(own.view(*own.shape, *([1] * (fresh.dim() - 2))), fresh, old)
    if rows is None:
        kept[:, start:end] = fresh
    else:
        kept[:, start:end].index_copy_(0, rows, fresh)
    return kept
