"""`DiffusionKVCache`: the key/value cache of diffusion generation (Fast-dLLM's prefix and dual caches).

A masked diffusion LM re-reads the whole canvas at every step, but the keys and values of positions that barely
change (the prompt, finished blocks, and for the dual cache the still-masked positions after the current block)
can be reused. The cache holds, per layer, the keys and values of **every** position of the sequence, as computed
by the last full forward (a *refresh*, at the start of each block). A *partial* forward feeds only a window of
positions (`cache.window = (start, end)`): their fresh keys and values are written over the window, and their
queries attend to all positions, the others read from the cache. Prefix cache: the window is the current block and
everything after it; dual cache: the current block only; full diffusion caches the prompt (the window is the whole
generated region).

Layers that mix neighbouring positions before attention (the built-in tiny dLLM's local convolution) keep their
inputs per position the same way (`update_state`); such a model names how far they reach
(`diffusion_cache_margin`) and the generation loop widens each window by that much.

Block-diffusion models (block-causal attention) use the cache exactly: no position attends to a later block, so
the keys and values of finished blocks never change. Their cache holds the positions up to the end of the current
block and grows by one block at a time (a window that ends past the cached positions is appended).

Rows that finish while the others go on leave the cache with transformers' `batch_select_indices` (the generation
loop then feeds only the rows still at work).

Built on transformers' `Cache` / `CacheLayerMixin`: one `DiffusionCacheLayer` per model layer, created on first use;
`offloading=True` keeps layers on the CPU between uses.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from transformers.cache_utils import Cache, CacheLayerMixin


class DiffusionCacheLayer(CacheLayerMixin):
    """Keys, values (and named per-position states) of one layer for the whole sequence `[B, H_kv, T, D]`."""

    is_sliding = False
    is_compileable = False
    is_croppable = False

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.states: dict[str, torch.Tensor] = {}

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.device = key_states.device
        self.is_initialized = True

    def update(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        *args: Any,
        window: Any = None,
        rows: Optional[torch.Tensor] = None,
        **kwargs: Any,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Refresh (`window` None: keep these states as the whole sequence's) or write a window's fresh states over
        the cached ones; returns the keys and values of the whole sequence. With `rows` (a window fed for some rows
        of the cached batch), only those rows are written, and returned."""
        if window is None or not self.is_initialized:
            if window is not None:
                raise RuntimeError("A partial forward needs a refreshed cache: run a full forward first.")
            self.lazy_initialization(key_states, value_states)
            self.keys, self.values = key_states, value_states
            return key_states, value_states
        if rows is not None:
            return self._update_rows(key_states, value_states, window, rows)
        start, end = window
        if end > self.keys.shape[-2]:  # a block-causal cache grows by the next block
            self.keys = torch.cat([self.keys[:, :, :start], key_states], dim=-2)
            self.values = torch.cat([self.values[:, :, :start], value_states], dim=-2)
            return self.keys, self.values
        self.keys[:, :, start:end] = key_states
        self.values[:, :, start:end] = value_states
        return self.keys, self.values

    def _update_rows(
        self, key_states: torch.Tensor, value_states: torch.Tensor, window: tuple[int, int], rows: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = window
        missing = end - self.keys.shape[-2]
        if missing > 0:  # grow for every row; the rows not fed get theirs when they are fed again
            grow = lambda t: torch.cat([t, t.new_zeros((*t.shape[:2], missing, t.shape[-1]))], dim=-2)  # noqa: E731
            self.keys, self.values = grow(self.keys), grow(self.values)
        index = rows.to(self.keys.device)
        self.keys[:, :, start:end].index_copy_(0, index, key_states)
        self.values[:, :, start:end].index_copy_(0, index, value_states)
        return self.keys.index_select(0, index), self.values.index_select(0, index)

    def update_state(self, name: str, states: torch.Tensor, window: Optional[tuple[int, int]]) -> torch.Tensor:
        """The same for any per-position tensor `[B, T, ...]` (e.g. a convolution's input)."""
        if window is None:
            self.states[name] = states
            return states
        if name not in self.states:
            raise RuntimeError(f"No cached '{name}' states: run a full forward first.")
        start, end = window
        if end > self.states[name].shape[1]:
            self.states[name] = torch.cat([self.states[name][:, :start], states], dim=1)
        else:
            self.states[name][:, start:end] = states
        return self.states[name]

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        """Keep only the rows `indices` (of the batch dimension) of every cached tensor."""
        if self.is_initialized:
            keep = indices.to(self.keys.device)
            self.keys, self.values = self.keys[keep], self.values[keep]
        self.states = {name: states[indices.to(states.device)] for name, states in self.states.items()}

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return (self.keys.shape[-2] if self.is_initialized else query_length), 0

    def get_seq_length(self) -> int:
        return self.keys.shape[-2] if self.is_initialized else 0

    def get_max_length(self) -> int:
        return -1

    def reset(self) -> None:
        self.keys = self.values = None
        self.states = {}
        self.is_initialized = False


class DiffusionKVCache(Cache):
    """The cache of one diffusion `generate` call (see the module docstring).

    `window = None` before a forward makes it a refresh (the forward gets the whole sequence and its states are
    kept); `window = (start, end)` makes it a partial forward over those positions.

    Example:
        ```python
        >>> import torch
        >>> from hf_unmask.generation import DiffusionKVCache
        >>> cache = DiffusionKVCache()
        >>> k = v = torch.zeros(1, 2, 6, 4)
        >>> _ = cache.update(k, v, layer_idx=0)                     # refresh: 6 positions kept
        >>> cache.window = (2, 4)
        >>> keys, _ = cache.update(torch.ones(1, 2, 2, 4), torch.ones(1, 2, 2, 4), layer_idx=0)
        >>> keys[0, 0, :, 0].tolist()
        [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
        ```
    """

    def __init__(self, offloading: bool = False) -> None:
        super().__init__(layer_class_to_replicate=DiffusionCacheLayer, offloading=offloading)
        self.window: Optional[tuple[int, int]] = None
        #: with a window: the rows of the cached batch that the forward feeds (None: all of them)
        self.rows: Optional[torch.Tensor] = None

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: Any, **kwargs: Any
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return super().update(key_states, value_states, layer_idx, *args, window=self.window, rows=self.rows, **kwargs)

    def update_state(self, name: str, layer_idx: int, states: torch.Tensor) -> torch.Tensor:
        """Cache (refresh) or update (partial forward) a per-position tensor of layer `layer_idx`."""
        while len(self.layers) <= layer_idx:
            self.layers.append(DiffusionCacheLayer())
        return self.layers[layer_idx].update_state(name, states, self.window)

    @property
    def is_partial(self) -> bool:
        """Whether the next forward feeds a window against cached states (False: it refreshes the cache)."""
        return self.window is not None
