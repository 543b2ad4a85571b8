"""`DiffusionGenerationConfig`: the knobs of diffusion generation, saved as `generation_config.json`."""

from __future__ import annotations

from typing import Any

from transformers import GenerationConfig

# Fields this subclass adds to `transformers.GenerationConfig`, with their defaults.
DIFFUSION_DEFAULTS: dict[str, Any] = {
    "block_length": None,
    "steps": None,
    "max_steps": None,
    "mask_token_id": None,
    "stop_at_eos": False,
    "progress_fallback": True,
    "output_trajectory": False,
    "output_history": False,
}


class DiffusionGenerationConfig(GenerationConfig):
    """Generation settings for masked diffusion LMs.

    It is a `transformers.GenerationConfig`, so it saves to and loads from `generation_config.json`
    and any field can be overridden by a keyword argument of `generate`.

    Args:
        max_new_tokens (`int`): L, the number of generated positions (all `[MASK]` at the start).
        block_length (`int`, *optional*): BL, tokens per semi-autoregressive block, decoded left to right.
            Must divide `max_new_tokens`. `None` (default) or `max_new_tokens` means full diffusion (one block).
        steps (`int`, *optional*): total number of denoising steps for fixed-count strategies
            (top-k confidence, random...), split evenly over the blocks as LLaDA does. Defaults to L
            (one token per step). Adaptive strategies (thresholds, learned policies) ignore it.
        max_steps (`int`, *optional*): hard cap on forward passes per row. The loop unmasks extra
            (most confident) positions when needed so that generation always ends within it.
            Defaults to L. Must be a multiple of the number of blocks.
        temperature (`float`, *optional*): 0 or `None` is greedy (argmax) token choice; > 0 draws tokens by
            Gumbel-max in float64 as LLaDA does (`do_sample` is then set for you).
        top_k, top_p: restrict the token choice, as in transformers.
        mask_token_id (`int`, *optional*): id of `[MASK]`; taken from the model adapter when unset.
        stop_at_eos (`bool`): once a row's EOS is decided and everything before it is unmasked, fill the rest
            of the row with EOS/pad without further forward passes.
        progress_fallback (`bool`): when a live row's strategy selects nothing, unmask its most confident
            eligible position (default). Trainers turn it off so an empty action costs a step.
        output_trajectory (`bool`): record per step what a learned policy is trained on.
        output_history (`bool`): record the canvas after every step.
        return_dict_in_generate (`bool`): return a `DiffusionGenerateOutput` instead of a tensor.

    Example:
        ```python
        >>> from hf_unmask import DiffusionGenerationConfig
        >>> config = DiffusionGenerationConfig(max_new_tokens=64, block_length=16, steps=32)
        >>> config.num_blocks
        4
        ```
    """

    def __init__(self, **kwargs: Any) -> None:
        for name, default in DIFFUSION_DEFAULTS.items():
            setattr(self, name, kwargs.pop(name, default))
        kwargs.setdefault("max_new_tokens", 128)
        super().__init__(**kwargs)
        self._sync_sampling_flags()

    def _sync_sampling_flags(self) -> None:
        # transformers only validates temperature/top-k/top-p together with `do_sample`; for diffusion a
        # positive temperature is what asks for sampling, so derive the flag instead of making users set both.
        if self.temperature is not None and self.temperature <= 0:
            self.temperature = None
        if self.temperature is not None:
            self.do_sample = True

    def update(self, defaults_only: bool = False, allow_custom_entries: bool = False, **kwargs: Any) -> dict:
        if "temperature" in kwargs and kwargs["temperature"] is not None and kwargs["temperature"] > 0:
            kwargs.setdefault("do_sample", True)
        if "temperature" in kwargs and (kwargs["temperature"] is None or kwargs["temperature"] <= 0):
            kwargs["temperature"] = None
            kwargs.setdefault("do_sample", False)
        unused = super().update(defaults_only=defaults_only, allow_custom_entries=allow_custom_entries, **kwargs)
        self._sync_sampling_flags()
        return unused

    @property
    def gen_length(self) -> int:
        return int(self.max_new_tokens)

    @property
    def effective_block_length(self) -> int:
        return int(self.block_length) if self.block_length is not None else int(self.max_new_tokens)

    @property
    def num_blocks(self) -> int:
        return self.gen_length // self.effective_block_length

    def validate_diffusion(self) -> None:
        """Check the diffusion fields; raise `ValueError` naming the problem and the fix."""
        L = self.max_new_tokens
        if not isinstance(L, int) or isinstance(L, bool) or L <= 0:
            raise ValueError(f"max_new_tokens (L) must be a positive integer, got {L!r}. Pass e.g. max_new_tokens=64.")
        BL = self.effective_block_length
        if BL <= 0:
            raise ValueError(f"block_length must be a positive integer, got {self.block_length!r}.")
        if L % BL != 0:
            raise ValueError(
                f"block_length={BL} does not divide max_new_tokens={L}. Choose a block_length that divides L "
                f"(e.g. {_largest_divisor_at_most(L, BL)}), or block_length=None for full diffusion."
            )
        nb = L // BL
        if self.steps is not None:
            if not isinstance(self.steps, int) or self.steps <= 0:
                raise ValueError(f"steps must be a positive integer, got {self.steps!r}.")
            if self.steps % nb != 0:
                raise ValueError(
                    f"steps={self.steps} is not a multiple of the number of blocks ({nb} = {L} / {BL}); "
                    f"LLaDA's schedule splits steps evenly over blocks. Use e.g. steps={max(nb, self.steps // nb * nb)}."
                )
            if self.steps > L:
                raise ValueError(
                    f"steps={self.steps} exceeds max_new_tokens={L}; at most one step per token. Use steps <= {L}."
                )
        if self.max_steps is not None:
            if not isinstance(self.max_steps, int) or self.max_steps < nb:
                raise ValueError(
                    f"max_steps must be an integer >= the number of blocks ({nb}), got {self.max_steps!r}."
                )
            if self.max_steps % nb != 0:
                raise ValueError(
                    f"max_steps={self.max_steps} must be a multiple of the number of blocks ({nb}) so each block gets "
                    f"the same step budget. Use e.g. max_steps={self.max_steps // nb * nb}."
                )
        if self.top_k is not None and (not isinstance(self.top_k, int) or self.top_k <= 0):
            raise ValueError(f"top_k must be a positive integer or None, got {self.top_k!r}.")
        if self.top_p is not None and not (0.0 < float(self.top_p) <= 1.0):
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p!r}.")

    def block_step_budget(self) -> int:
        """Forward passes a row may spend in one block (at most BL, or `max_steps` / num_blocks)."""
        BL = self.effective_block_length
        if self.max_steps is None:
            return BL
        return min(BL, self.max_steps // self.num_blocks)


def _largest_divisor_at_most(n: int, k: int) -> int:
    for d in range(min(n, max(k, 1)), 0, -1):
        if n % d == 0:
            return d
    return n
