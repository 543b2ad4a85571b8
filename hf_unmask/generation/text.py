"""Text in, text out: prompts or chat messages to decoded completions in one call."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch

from .adapter import model_device
from .loop import diffusion_generate
from .outputs import DiffusionGenerateOutput
from .text_io import Prompts, completion_eos_ids, completion_texts, encode_prompts


@dataclass
class DiffusionTextOutput(DiffusionGenerateOutput):
    """Everything `generate(..., return_dict_in_generate=True)` returns (a `DiffusionGenerateOutput`: sequences, nfe,
    trajectory, history, stopped, forward_positions) plus the decoded completions.

    Attributes:
        texts: one completion per prompt: the generated tokens up to the first EOS, decoded without special tokens
            and stripped of surrounding whitespace.
        prompt_length: P, the width of the left-padded prompts (`sequences[:, prompt_length:]` is generated).
    """

    texts: Optional[list[str]] = None
    prompt_length: Optional[int] = None


class DiffusionTextGenerator:
    """Generate text from strings or chat messages with a diffusion LM, the way transformers' `pipeline` or
    diffusers' `LLaDA2Pipeline` do.

    Strings are tokenized as they are; a conversation (a list of `{"role": ..., "content": ...}` messages) goes
    through the tokenizer's chat template with the generation prompt added. A list of prompts is one batch, left-padded.
    Each completion is cut at the first EOS (`eos_token_id` when given, else the model family's EOS ids and the
    tokenizer's; the same set stops generation under `stop_at_eos`) and decoded without special tokens. Encoding,
    the EOS set and decoding are those of `hf_unmask.generation.text_io`, which evaluation and training use too.
    Keyword arguments given here are defaults for every call; a call's own override them. The output holds
    everything `generate` returns.

    Args:
        model: a model with a diffusion `generate` (built-in, `AutoDiffusionLM`, `enable_diffusion_generate`) or any
            model `hf_unmask.diffusion_generate` supports.
        tokenizer: its tokenizer (also the source of the mask id when the model names none).
        **generate_kwargs: defaults for `generate` (strategy, max_new_tokens, block_length, ...).

    Example:
        ```python
        >>> import hf_unmask
        >>> model, tokenizer = hf_unmask.load_builtin_model("tiny-dllm")
        >>> generator = hf_unmask.DiffusionTextGenerator(model, tokenizer, strategy="top_k_confidence")
        >>> out = generator(["trace : 3 | +4 *3 +1 *7 +2 *9 +3 +1 *3 +4 +2 | run 6", "sort : 3 1 2"])
        >>> out.texts[0], out.nfe.tolist()
        ('7 1 2 4 6 4 ; answer : 4', [16, 16])
        ```
    """

    def __init__(self, model: Any, tokenizer: Any, **generate_kwargs: Any) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.generate_kwargs = generate_kwargs

    def encode(self, prompts: Prompts) -> dict[str, torch.Tensor]:
        """`input_ids` and `attention_mask` `[B, P]` of the prompts, left-padded, on the model's device (see
        `hf_unmask.generation.encode_prompts`; the tokenizer is left as it was)."""
        return encode_prompts(self.tokenizer, prompts, device=model_device(self.model)).model_inputs()

    def eos_token_ids(self, eos_token_id: Optional[Union[int, list[int]]] = None) -> list[int]:
        """The ids that end a completion (`hf_unmask.generation.completion_eos_ids`): `eos_token_id`, else the one
        given at construction, else the model family's and the tokenizer's."""
        if eos_token_id is None:
            eos_token_id = self.generate_kwargs.get("eos_token_id")
        adapter = self.generate_kwargs.get("adapter", getattr(self.model, "diffusion_adapter", None))
        return completion_eos_ids(self.model, self.tokenizer, eos_token_id=eos_token_id, adapter=adapter)

    def decode(
        self, sequences: torch.Tensor, prompt_length: int, eos_token_id: Optional[Union[int, list[int]]] = None
    ) -> list[str]:
        """The completions of `sequences` `[B, P + L]`: generated tokens up to the first EOS (`eos_token_ids`),
        decoded without special tokens (`hf_unmask.generation.completion_texts`)."""
        return completion_texts(self.tokenizer, sequences, prompt_length, self.eos_token_ids(eos_token_id))

    def __call__(self, prompts: Prompts, **generate_kwargs: Any) -> DiffusionTextOutput:
        """Generate one completion per prompt; `generate_kwargs` override the defaults given at construction."""
        batch = self.encode(prompts)
        kwargs = {**self.generate_kwargs, **generate_kwargs}
        for name in ("input_ids", "inputs", "attention_mask"):
            if name in kwargs:
                raise TypeError(f"{name} comes from the prompts; pass text or messages, or call model.generate.")
        kwargs["return_dict_in_generate"] = True
        kwargs.setdefault("tokenizer", self.tokenizer)
        if getattr(self.model, "diffusion_adapter", None) is not None:
            kwargs.setdefault("adapter", self.model.diffusion_adapter)
        # one EOS set ends generation (stop_at_eos) and cuts the decoded completions
        kwargs["eos_token_id"] = completion_eos_ids(
            self.model, self.tokenizer, eos_token_id=kwargs.get("eos_token_id"), adapter=kwargs.get("adapter")
        )
        out = diffusion_generate(self.model, **batch, **kwargs)
        P = batch["input_ids"].shape[1]
        generated = {f.name: getattr(out, f.name) for f in dataclasses.fields(out)}
        return DiffusionTextOutput(
            **generated,
            texts=completion_texts(self.tokenizer, out.sequences, P, kwargs["eos_token_id"]),
            prompt_length=P,
        )
