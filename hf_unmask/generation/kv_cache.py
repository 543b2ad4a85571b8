"""`DiffusionKVCache`: the key/value cache of diffusion generation (Fast-dLLM's prefix and dual caches).

A masked diffusion LM re-reads the whole canvas at every step, but the keys and values of positions that barely
change (the prompt, finished blocks, and for the dual cache the still-masked positions after the current block)
can be reused. The cache holds, per layer, the keys and values of **every** position of the sequence, as computed
by the last full forward (a *refresh*, at the start of each block). A *partial* forward feeds only a window of
positions: their fresh keys and values are written over the cached ones, and their queries attend to all positions,
the others read from the cache. Prefix cache: the window is the current block and everything after it; dual cache:
the current block only; full diffusion caches the prompt (the window is the whole generated region).

The calling convention is transformers': a model's forward takes the cache as `past_key_values` and the positions
it is fed as `cache_position` (a 1-D LongTensor of consecutive sequence positions, `torch.arange(start, end)`; best
built on the CPU, as the model reads its bounds). Without `cache_position` the forward is a refresh: its inputs are
the whole sequence. Each attention layer hands its keys and values to
`past_key_values.update(key, value, layer_idx, {"cache_position": cache_position})`, which writes them over the
positions fed and returns the keys and values of the whole sequence. The cache itself holds nothing but states.

Layers that mix neighbouring positions before attention (the built-in tiny dLLM's local convolution) keep their
inputs per position the same way (`update_state`); such a model names how far they reach
(`diffusion_cache_margin`) and the generation loop widens each window by that much.

Block-diffusion models (block-causal attention) use the cache exactly: no position attends to a later block, so
the keys and values of finished blocks never change. Their cache holds the positions up to the end of the current
block and grows by one block at a time (a window that ends past the cached positions is appended).

Rows that finish while the others go on leave the cache with transformers' `batch_select_indices` (the generation
loop then feeds only the rows still at work); `select_rows` gives a view that feeds some rows of the cached batch
and leaves the others as they are.

Built on transformers' `Cache` / `CacheLayerMixin`: one `DiffusionCacheLayer` per model layer, created on first use;
`offloading=True` keeps layers on the CPU between uses.
"""

from __future__ import annotations

from typing import Any, Optional

import torch
from transformers.cache_utils import Cache, CacheLayerMixin

from .._warnings import warn_deprecated

Window = tuple[int, int]


def window_of(cache_position: Optional[torch.Tensor], length: Optional[int] = None) -> Optional[Window]:
    """`(start, end)` of the consecutive sequence positions `cache_position` (None: a refresh). With `length` (the
    number of positions fed), a `ValueError` when the positions are not `length` consecutive ones.

    Example:
        ```python
        >>> import torch
        >>> window_of(torch.arange(8, 12)), window_of(None)
        ((8, 12), None)
        ```
    """
    if cache_position is None:
        return None
    if not isinstance(cache_position, torch.Tensor) or cache_position.dim() != 1 or cache_position.is_floating_point():
        raise TypeError(
            "cache_position must be a 1-D LongTensor of the sequence positions fed, e.g. torch.arange(start, end), "
            f"got {cache_position!r}."
        )
    if cache_position.numel() == 0:
        raise ValueError("cache_position is empty: feed at least one position, e.g. torch.arange(start, start + 1).")
    start = int(cache_position[0])
    end = start + cache_position.numel()
    if start < 0:
        raise ValueError(f"cache_position must hold sequence positions >= 0, got the window ({start}, {end}).")
    if length is not None:
        if length != end - start:
            raise ValueError(
                f"The cache window ({start}, {end}) does not fit {length} fed positions: cache_position must hold one "
                f"position per fed token, torch.arange(start, start + {length})."
            )
        if length > 1 and not torch.equal(cache_position.cpu(), torch.arange(start, end)):
            raise ValueError(
                f"cache_position must be consecutive positions (torch.arange(start, end)), got "
                f"{cache_position.tolist()}: a diffusion cache rewrites one window of the sequence."
            )
    return start, end


def _position_of(cache_kwargs: Optional[dict[str, Any]]) -> Optional[torch.Tensor]:
    return None if not cache_kwargs else cache_kwargs.get("cache_position")


def _write(
    cached: torch.Tensor, fresh: torch.Tensor, dim: int, window: Window, rows: Optional[torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(the cached tensor with `fresh` written over `window` along `dim`, what to return)`: the whole sequence of
    every row, or of the rows `rows` only. A window that ends past the cached positions grows the tensor."""
    start, end = window
    if rows is None:
        if end > cached.shape[dim]:  # a block-causal cache grows by the next block
            cached = torch.cat([cached.narrow(dim, 0, start), fresh], dim=dim)
        else:
            cached.narrow(dim, start, end - start).copy_(fresh)
        return cached, cached
    missing = end - cached.shape[dim]
    if missing > 0:  # grow for every row; the rows not fed get theirs when they are fed again
        shape = list(cached.shape)
        shape[dim] = missing
        cached = torch.cat([cached, cached.new_zeros(shape)], dim=dim)
    index = rows.to(cached.device)
    cached.narrow(dim, start, end - start).index_copy_(0, index, fresh)
    return cached, cached.index_select(0, index)


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
        cache_kwargs: Optional[dict[str, Any]] = None,
        rows: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Refresh (no `cache_position` in `cache_kwargs`: keep these states as the whole sequence's) or write the
        fresh states of the positions fed over the cached ones; returns the keys and values of the whole sequence.
        With `rows` (a window fed for some rows of the cached batch), only those rows are written, and returned."""
        window = window_of(_position_of(cache_kwargs))
        if window is None or not self.is_initialized:
            if window is not None:
                raise RuntimeError("A partial forward needs a refreshed cache: run a full forward first.")
            if rows is not None:
                raise RuntimeError("A forward over some rows of the cache needs cache_position (a window).")
            self.lazy_initialization(key_states, value_states)
            self.keys, self.values = key_states, value_states
            return key_states, value_states
        self.keys, keys = _write(self.keys, key_states, 2, window, rows)
        self.values, values = _write(self.values, value_states, 2, window, rows)
        return keys, values

    def update_state(
        self, name: str, states: torch.Tensor, window: Optional[Window], rows: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """The same for any per-position tensor `[B, T, ...]` (e.g. a convolution's input)."""
        if window is None:
            self.states[name] = states
            return states
        if name not in self.states:
            raise RuntimeError(f"No cached '{name}' states: run a full forward first.")
        self.states[name], out = _write(self.states[name], states, 1, window, rows)
        return out

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


class _RowsOfLayer:
    """One layer of a `select_rows` view: reads and writes the rows `rows` of the wrapped layer."""

    def __init__(self, layer: DiffusionCacheLayer, rows: torch.Tensor) -> None:
        self.layer, self.rows = layer, rows

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, cache_kwargs: Optional[dict[str, Any]] = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.layer.update(key_states, value_states, cache_kwargs, rows=self.rows)

    def update_state(self, name: str, states: torch.Tensor, window: Optional[Window]) -> torch.Tensor:
        return self.layer.update_state(name, states, window, rows=self.rows)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.layer, name)


class DiffusionKVCache(Cache):
    """The cache of one diffusion `generate` call (see the module docstring).

    Pass it to a model's forward as `past_key_values`: without `cache_position` the forward refreshes it (its inputs
    are the whole sequence, whose states are kept); with `cache_position=torch.arange(start, end)` the inputs are
    those positions, fed against the cached states of the others.

    Example:
        ```python
        >>> import torch
        >>> from hf_unmask.generation import DiffusionKVCache
        >>> cache = DiffusionKVCache()
        >>> k = v = torch.zeros(1, 2, 6, 4)
        >>> _ = cache.update(k, v, layer_idx=0)                     # refresh: 6 positions kept
        >>> fresh = torch.ones(1, 2, 2, 4)
        >>> keys, _ = cache.update(fresh, fresh, 0, {"cache_position": torch.arange(2, 4)})
        >>> keys[0, 0, :, 0].tolist()
        [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
        ```
    """

    def __init__(self, offloading: bool = False) -> None:
        super().__init__(layer_class_to_replicate=DiffusionCacheLayer, offloading=offloading)
        self._legacy_window: Optional[Window] = None

    def update(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        layer_idx: int,
        cache_kwargs: Optional[dict[str, Any]] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Refresh or write over the positions `cache_kwargs["cache_position"]` the states of layer `layer_idx`;
        returns the keys and values of the whole sequence (transformers' `Cache.update`)."""
        return super().update(key_states, value_states, layer_idx, self._with_legacy_window(cache_kwargs))

    def update_state(
        self, name: str, layer_idx: int, states: torch.Tensor, cache_position: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Cache (refresh: no `cache_position`) or update (the positions `cache_position`) a per-position tensor of
        layer `layer_idx`; returns it for the whole sequence."""
        while len(self.layers) <= layer_idx:
            self.layers.append(DiffusionCacheLayer())
        position = _position_of(self._with_legacy_window({"cache_position": cache_position}))
        return self.layers[layer_idx].update_state(name, states, window_of(position))

    def select_rows(self, rows: Optional[torch.Tensor]) -> DiffusionKVCache:
        """A view of this cache for a forward that feeds only the rows `rows` (a sorted `[b]` long tensor of row
        indices) of the cached batch: their states are written and returned, the other rows' are kept as they are.
        `None` is the cache itself."""
        if rows is None:
            return self
        view = DiffusionKVCache.__new__(DiffusionKVCache)
        Cache.__init__(view, layers=[_RowsOfLayer(layer, rows) for layer in self.layers])
        view._legacy_window = self._legacy_window
        return view

    def _with_legacy_window(self, cache_kwargs: Optional[dict[str, Any]]) -> Optional[dict[str, Any]]:
        if self._legacy_window is None or _position_of(cache_kwargs) is not None:
            return cache_kwargs
        return {**(cache_kwargs or {}), "cache_position": torch.arange(*self._legacy_window)}

    # ---- deprecated: the window written on the cache ------------------------------------------------------------
    @property
    def window(self) -> Optional[Window]:
        """Deprecated: the window set with `cache.window = (start, end)`; pass `cache_position` to the forward."""
        return self._legacy_window

    @window.setter
    def window(self, value: Optional[Window]) -> None:
        warn_deprecated(
            "Setting DiffusionKVCache.window", "cache_position=torch.arange(start, end) in the model's forward"
        )
        self._legacy_window = None if value is None else (int(value[0]), int(value[1]))

    @property
    def is_partial(self) -> bool:
        """Deprecated with `window`: whether a window was set on the cache."""
        return self._legacy_window is not None
