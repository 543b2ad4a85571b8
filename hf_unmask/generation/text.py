"""Text in, text out: prompts or chat messages to decoded completions in one call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch

from .adapter import get_adapter, model_device, unwrap_model
from .eos import cut_at_eos, eos_id_list
from .loop import diffusion_generate
from .outputs import DiffusionGenerateOutput

Message = Mapping[str, Any]
Prompts = Union[str, Sequence[str], Sequence[Message], Sequence[Sequence[Message]]]


@dataclass
class DiffusionTextOutput(DiffusionGenerateOutput):
    """`DiffusionGenerateOutput` (sequences, nfe, trajectory, history, stopped) plus the decoded completions.

    Attributes:
        texts: one completion per prompt: the generated tokens up to the first EOS, decoded without special tokens.
        prompt_length: P, the width of the left-padded prompts (`sequences[:, prompt_length:]` is generated).
    """

    texts: Optional[list[str]] = None
    prompt_length: Optional[int] = None


class DiffusionTextGenerator:
    """Generate text from strings or chat messages with a diffusion LM, the way transformers' `pipeline` or
    diffusers' `LLaDA2Pipeline` do.

    Strings are tokenized as they are; a conversation (a list of `{"role": ..., "content": ...}` messages) goes
    through the tokenizer's chat template with the generation prompt added. A list of prompts is one batch, left-padded.
    Each completion is cut at the first EOS (any of the model's EOS ids and the tokenizer's) and decoded without
    special tokens. Keyword arguments given here are defaults for every call; a call's own override them.

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
        """`input_ids` and `attention_mask` `[B, P]` of the prompts, left-padded, on the model's device."""
        texts, from_template = self._texts(prompts)
        encoded = self.tokenizer(texts, add_special_tokens=not from_template)["input_ids"]
        pad = self.tokenizer.pad_token_id
        if pad is None:  # e.g. LLaMA-style tokenizers; the attention mask hides padding, any valid id will do
            pad = self.tokenizer.eos_token_id if self.tokenizer.eos_token_id is not None else 0
        width = max(len(ids) for ids in encoded)
        input_ids = torch.full((len(encoded), width), int(pad), dtype=torch.long)
        attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, ids in enumerate(encoded):
            if ids:
                input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
                attention_mask[row, width - len(ids) :] = 1
        device = model_device(self.model)
        return {"input_ids": input_ids.to(device), "attention_mask": attention_mask.to(device)}

    def decode(
        self, sequences: torch.Tensor, prompt_length: int, eos_token_id: Optional[Union[int, list[int]]] = None
    ) -> list[str]:
        """The completions of `sequences` `[B, P + L]`: generated tokens up to the first EOS (`eos_token_id`, else the
        model's), decoded without special tokens."""
        eos = set(self._eos_ids(eos_token_id))
        rows = sequences[:, prompt_length:].tolist()
        return [self.tokenizer.decode(cut_at_eos(row, eos), skip_special_tokens=True) for row in rows]

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
        out = diffusion_generate(self.model, **batch, **kwargs)
        P = batch["input_ids"].shape[1]
        return DiffusionTextOutput(
            sequences=out.sequences,
            nfe=out.nfe,
            trajectory=out.trajectory,
            history=out.history,
            stopped=out.stopped,
            texts=self.decode(out.sequences, P, kwargs.get("eos_token_id")),
            prompt_length=P,
        )

    # ---- helpers -------------------------------------------------------------------------------------------
    def _texts(self, prompts: Prompts) -> tuple[list[str], bool]:
        """The prompt strings, and whether they came from the chat template (which adds its own special tokens)."""
        if isinstance(prompts, str):
            return [prompts], False
        if isinstance(prompts, Sequence) and prompts and all(isinstance(p, Mapping) for p in prompts):
            prompts = [prompts]  # one conversation
        if not isinstance(prompts, Sequence) or not prompts:
            raise ValueError(
                "prompts must be a string, a list of strings, a conversation (a list of {'role', 'content'} "
                f"messages) or a list of conversations; got {prompts!r}."
            )
        if all(isinstance(p, str) for p in prompts):
            return list(prompts), False
        if not all(isinstance(p, Sequence) and p and all(isinstance(m, Mapping) for m in p) for p in prompts):
            raise TypeError(
                "prompts mixes kinds: give a list of strings, or a list of conversations (each a non-empty list of "
                "{'role': ..., 'content': ...} messages)."
            )
        if getattr(self.tokenizer, "chat_template", None) is None:
            raise ValueError(
                f"{type(self.tokenizer).__name__} has no chat template, so messages cannot be turned into a prompt. "
                "Pass plain strings, or set tokenizer.chat_template (a Jinja template)."
            )
        rendered = [
            self.tokenizer.apply_chat_template(list(c), tokenize=False, add_generation_prompt=True) for c in prompts
        ]
        return rendered, True

    def _eos_ids(self, configured: Optional[Union[int, list[int]]]) -> list[int]:
        """EOS ids that end a completion: `configured`, else the model's (generation config or family), and the
        tokenizer's."""
        if configured is None:
            configured = self.generate_kwargs.get("eos_token_id")
        if configured is None:
            configured = getattr(getattr(unwrap_model(self.model), "generation_config", None), "eos_token_id", None)
        if configured is None:
            adapter = getattr(self.model, "diffusion_adapter", None)
            configured = get_adapter(self.model, adapter).eos_token_ids()
        ids = eos_id_list(configured)
        if self.tokenizer.eos_token_id is not None:
            ids.append(self.tokenizer.eos_token_id)
        return [int(i) for i in ids if i is not None]
