"""Streamers that show a diffusion draft as it fills in."""

from __future__ import annotations

import sys
from typing import Any, Optional, TextIO

import torch
from transformers.generation.streamers import BaseStreamer

from .._warnings import warn_at_caller
from .eos import cut_at_eos


class DiffusionTextStreamer(BaseStreamer):
    """Redraws the decoded canvas after every denoising step, masks shown as `mask_placeholder`.

    `generate` calls `put(canvas)` with the `[B, L]` generated region after each step and `end()` at the end.
    On a terminal the draft is redrawn in place; otherwise one line per step is written.

    Example:
        ```python
        >>> import hf_unmask
        >>> model, tokenizer = hf_unmask.load_builtin_model("tiny-dllm")
        >>> ids = tokenizer("sort : 3 1 2", return_tensors="pt").input_ids
        >>> streamer = DiffusionTextStreamer(tokenizer)  # here not a terminal: one line per step
        >>> _ = model.generate(ids, streamer=streamer, strategy="confidence_threshold")
        [step   1] 1 2 3________
        [step   2] 1 2 3
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


class _FinalTokensStreamer:
    """Feeds a transformers token streamer (`TextStreamer`, `TextIteratorStreamer`, ...) what it expects: the prompt
    first (as transformers' generate does), then the generated tokens, left to right through the first EOS. A
    diffusion draft is not left to right, so the tokens come once, when generation ends."""

    def __init__(self, streamer: Any, prompt: torch.Tensor, eos_ids: list[int]) -> None:
        self.streamer = streamer
        self.eos_ids = set(eos_ids)
        self.last: Optional[torch.Tensor] = None
        streamer.put(prompt.cpu())

    def put(self, value: torch.Tensor) -> None:
        self.last = value

    def end(self) -> None:
        if self.last is not None:
            self.streamer.put(torch.tensor([cut_at_eos(self.last[0].tolist(), self.eos_ids, keep_eos=True)]))
        self.streamer.end()


def prepare_streamer(streamer: Any, input_ids: torch.Tensor, eos_ids: list[int]) -> Any:
    """Check `streamer=` and return what the loop calls: the streamer itself (it gets `put([B, L] canvas)` after
    every step, then `end()`), or, for a transformers `TextStreamer`, a wrapper that gives it the final tokens."""
    if streamer is None:
        return None
    if not (callable(getattr(streamer, "put", None)) and callable(getattr(streamer, "end", None))):
        raise TypeError(
            f"streamer must have put(value) and end() methods (a transformers BaseStreamer), got "
            f"{type(streamer).__name__}. Use hf_unmask.DiffusionTextStreamer(tokenizer) to watch the draft fill in."
        )
    from transformers.generation.streamers import TextStreamer

    if not isinstance(streamer, TextStreamer):
        return streamer
    if input_ids.shape[0] != 1:
        raise ValueError(
            f"{type(streamer).__name__} shows one sequence, but the batch has {input_ids.shape[0]} rows. Generate one "
            "prompt at a time, or use hf_unmask.DiffusionTextStreamer(tokenizer, row=i) to watch row i."
        )
    warn_at_caller(
        f"{type(streamer).__name__} expects tokens appended left to right, but a diffusion draft fills in anywhere "
        "and its [MASK] positions are not text: it receives the final tokens once generation ends. To watch the "
        "draft fill in, use hf_unmask.DiffusionTextStreamer(tokenizer)."
    )
    return _FinalTokensStreamer(streamer, input_ids, eos_ids)
