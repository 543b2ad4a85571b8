"""Streamers that show a diffusion draft as it fills in."""

from __future__ import annotations

import sys
from typing import Any, Optional, TextIO

import torch
from transformers.generation.streamers import BaseStreamer


class DiffusionTextStreamer(BaseStreamer):
    """Redraws the decoded canvas after every denoising step, masks shown as `mask_placeholder`.

    `generate` calls `put(canvas)` with the `[B, L]` generated region after each step and `end()` at the end.
    On a terminal the draft is redrawn in place; otherwise one line per step is written.

    Example:
        ```python
        >>> streamer = DiffusionTextStreamer(tokenizer, mask_token_id=tokenizer.mask_token_id)  # doctest: +SKIP
        >>> model.generate(input_ids, streamer=streamer, max_new_tokens=32)  # doctest: +SKIP
        ```
    """

    def __init__(
        self,
        tokenizer: Any,
        mask_token_id: Optional[int] = None,
        mask_placeholder: str = "_",
        row: int = 0,
        stream: Optional[TextIO] = None,
        skip_special_tokens: bool = True,
        in_place: Optional[bool] = None,
    ) -> None:
        self.tokenizer = tokenizer
        self.mask_token_id = mask_token_id if mask_token_id is not None else getattr(tokenizer, "mask_token_id", None)
        if self.mask_token_id is None:
            raise ValueError("DiffusionTextStreamer needs mask_token_id (the tokenizer defines none).")
        self.mask_placeholder = mask_placeholder
        self.row = row
        self.stream = stream if stream is not None else sys.stdout
        self.skip_special_tokens = skip_special_tokens
        self.in_place = self.stream.isatty() if in_place is None else in_place
        self.steps = 0
        self.text = ""

    def render(self, tokens: torch.Tensor) -> str:
        """Decode one row of the canvas, masks replaced by the placeholder."""
        pieces = []
        run: list[int] = []
        for tok in tokens.tolist():
            if tok == self.mask_token_id:
                if run:
                    pieces.append(self.tokenizer.decode(run, skip_special_tokens=self.skip_special_tokens))
                    run = []
                pieces.append(self.mask_placeholder)
            else:
                run.append(tok)
        if run:
            pieces.append(self.tokenizer.decode(run, skip_special_tokens=self.skip_special_tokens))
        return "".join(pieces)

    def put(self, value: torch.Tensor) -> None:
        if value.dim() == 2:
            value = value[self.row]
        self.steps += 1
        self.text = self.render(value.cpu())
        if self.in_place:
            self.stream.write(f"\r\x1b[2K[step {self.steps:3d}] {self.text}")
        else:
            self.stream.write(f"[step {self.steps:3d}] {self.text}\n")
        self.stream.flush()

    def end(self) -> None:
        if self.in_place:
            self.stream.write("\n")
        self.stream.flush()
