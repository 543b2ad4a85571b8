"""The text boundary of a diffusion LM: prompts to a left-padded batch, the ids that end a completion, and generated
ids back to completions.

Every part of hf_unmask that turns text into `generate` inputs or generated ids into text calls this module:
`DiffusionTextGenerator`, evaluation, training rollouts and rewards, the built-in tasks, the demo and the
lm-evaluation-harness model. They therefore make the same three decisions:

- encoding (`encode_prompts`): strings are tokenized as they are; conversations (and strings with
  `chat_template=True`) go through the tokenizer's chat template with the generation prompt, without special tokens
  added twice; the batch is left-padded through the tokenizer call's `padding_side` argument, so the tokenizer
  object is never changed;
- the end of a completion (`completion_eos_ids`): the ids the user names, else the model family's
  (`DiffusionAdapter.eos_token_ids`), then the tokenizer's EOS;
- decoding (`completion_token_ids`, `completion_texts`): the generated ids up to the first of those ids, decoded
  without special tokens and stripped of surrounding whitespace.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

import torch

from .adapter import DiffusionAdapter, get_adapter, unwrap_model
from .eos import cut_at_eos, eos_id_list
from .validation import as_token_id

__all__ = [
    "EncodedPrompts",
    "Prompts",
    "completion_eos_ids",
    "completion_texts",
    "completion_token_ids",
    "encode_prompts",
]

Message = Mapping[str, Any]
#: One prompt string, a list of strings, one conversation (a list of `{"role": ..., "content": ...}` messages) or a
#: list of conversations.
Prompts = Union[str, Sequence[str], Sequence[Message], Sequence[Sequence[Message]]]


@dataclass
class EncodedPrompts:
    """A left-padded batch of prompts and the texts it was tokenized from (what `encode_prompts` returns).

    Attributes:
        input_ids: `[B, P]` prompt ids, left-padded.
        attention_mask: `[B, P]`, 0 on padding.
        texts: the prompt strings that were tokenized (conversations rendered by the chat template).
        templated: whether `texts` come from the chat template (which wrote its own special tokens).

    Example:
        ```python
        >>> from hf_unmask.models.tiny import build_tokenizer
        >>> batch = encode_prompts(build_tokenizer(), ["sort : 3 1 2", "sort : 1 2"])
        >>> batch.input_ids.shape == batch.attention_mask.shape, batch.attention_mask[1, 0].item(), batch.texts[1]
        (True, 0, 'sort : 1 2')
        ```
    """

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    texts: list[str]
    templated: bool = False

    @property
    def prompt_length(self) -> int:
        """P, the width of the padded batch (`sequences[:, P:]` is what `generate` adds)."""
        return int(self.input_ids.shape[1])

    def model_inputs(self) -> dict[str, torch.Tensor]:
        """`{"input_ids": ..., "attention_mask": ...}`, for `model.generate(**batch.model_inputs(), ...)`."""
        return {"input_ids": self.input_ids, "attention_mask": self.attention_mask}


def _is_conversation(prompt: Any) -> bool:
    return (
        isinstance(prompt, Sequence)
        and not isinstance(prompt, str)
        and len(prompt) > 0
        and all(isinstance(m, Mapping) for m in prompt)
    )


def _render(
    tokenizer: Any, prompts: Prompts, chat_template: bool, chat_template_kwargs: Optional[dict[str, Any]]
) -> tuple[list[str], bool]:
    """The prompt strings, and whether they were rendered by the chat template."""
    if isinstance(prompts, str) or _is_conversation(prompts):
        prompts = [prompts]  # type: ignore[list-item]
    if not isinstance(prompts, Sequence) or len(prompts) == 0:
        raise ValueError(
            "prompts must be a string, a list of strings, a conversation (a list of {'role', 'content'} messages) or "
            f"a list of conversations; got {prompts!r}."
        )
    if all(isinstance(p, str) for p in prompts):
        if not chat_template:
            return list(prompts), False  # type: ignore[arg-type]
        conversations = [[{"role": "user", "content": p}] for p in prompts]
    elif all(_is_conversation(p) for p in prompts):
        conversations = [list(p) for p in prompts]  # type: ignore[arg-type]
    else:
        raise TypeError(
            "prompts mixes kinds: give a list of strings, or a list of conversations (each a non-empty list of "
            "{'role': ..., 'content': ...} messages)."
        )
    if getattr(tokenizer, "chat_template", None) is None:
        raise ValueError(
            f"{type(tokenizer).__name__} has no chat template, so messages cannot be turned into a prompt. Pass plain "
            "strings without chat_template=True, or set tokenizer.chat_template (a Jinja template)."
        )
    kwargs = dict(chat_template_kwargs or {})
    rendered = [
        tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True, **kwargs) for c in conversations
    ]
    return rendered, True


def encode_prompts(
    tokenizer: Any,
    prompts: Prompts,
    *,
    chat_template: bool = False,
    chat_template_kwargs: Optional[dict[str, Any]] = None,
    add_special_tokens: Optional[bool] = None,
    device: Optional[Union[str, torch.device]] = None,
) -> EncodedPrompts:
    """Tokenize prompts into one left-padded batch; the tokenizer is left exactly as it was.

    Args:
        tokenizer: the model's tokenizer.
        prompts: a string, a list of strings, a conversation (a list of `{"role": ..., "content": ...}` messages)
            or a list of conversations (all of one kind). Conversations go through the tokenizer's chat template
            with the generation prompt added.
        chat_template: also render plain strings with the chat template, each as one user message.
        chat_template_kwargs: extra arguments of `apply_chat_template` (e.g. `{"enable_thinking": False}`).
        add_special_tokens: whether the tokenizer adds its special tokens (BOS, ...). Default: yes for plain
            strings, no for rendered conversations (the template wrote them). Pass False for strings that already
            hold them (rendered by a chat template elsewhere).
        device: where the tensors go (default: CPU).

    Padding goes on the left through the tokenizer call's `padding_side="left"`. A tokenizer without a pad token
    (LLaMA-style) is padded with its EOS id (or 0) by hand; the attention mask hides those positions either way.

    Example:
        ```python
        >>> from hf_unmask.models.tiny import build_tokenizer
        >>> tokenizer = build_tokenizer()
        >>> tokenizer.padding_side = "right"
        >>> batch = encode_prompts(tokenizer, ["sort : 3 1 2", "sort : 1"])
        >>> batch.attention_mask.tolist(), tokenizer.padding_side
        ([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]], 'right')
        ```
    """
    texts, templated = _render(tokenizer, prompts, chat_template, chat_template_kwargs)
    special = (not templated) if add_special_tokens is None else bool(add_special_tokens)
    if getattr(tokenizer, "pad_token_id", None) is not None:
        enc = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=special)
        input_ids, attention_mask = enc["input_ids"], enc["attention_mask"]
    else:
        input_ids, attention_mask = _left_pad_by_hand(tokenizer, texts, special)
    if device is not None:
        input_ids, attention_mask = input_ids.to(device), attention_mask.to(device)
    return EncodedPrompts(input_ids=input_ids, attention_mask=attention_mask, texts=texts, templated=templated)


def _left_pad_by_hand(tokenizer: Any, texts: list[str], add_special_tokens: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-padded ids and mask for a tokenizer without a pad token (any id will do under the attention mask)."""
    encoded = tokenizer(texts, add_special_tokens=add_special_tokens)["input_ids"]
    eos = getattr(tokenizer, "eos_token_id", None)
    pad = int(eos) if eos is not None else 0
    width = max(len(ids) for ids in encoded)
    input_ids = torch.full((len(encoded), width), pad, dtype=torch.long)
    attention_mask = torch.zeros((len(encoded), width), dtype=torch.long)
    for row, ids in enumerate(encoded):
        if ids:
            input_ids[row, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[row, width - len(ids) :] = 1
    return input_ids, attention_mask


def completion_eos_ids(
    model: Any,
    tokenizer: Any = None,
    eos_token_id: Optional[Union[int, Sequence[int]]] = None,
    adapter: Optional[Union[type[DiffusionAdapter], DiffusionAdapter]] = None,
    vocab_size: Optional[int] = None,
) -> list[int]:
    """The ids that end a completion, in order (the first is what `stop_at_eos` fills a finished row with when the
    model names no pad id).

    `eos_token_id` given (one id or a list): exactly those ids, the user's override. Otherwise the model family's
    (`DiffusionAdapter.eos_token_ids`: the model's generation config or config, else the family's defaults, with
    the family's end-of-turn ids), then the tokenizer's EOS when it is not among them.

    Args:
        model: the dLLM (a PEFT wrapper included).
        tokenizer: its tokenizer, or None.
        eos_token_id: the user's EOS ids, replacing the rest.
        adapter: the model's `DiffusionAdapter` (class or instance); default: `model.diffusion_adapter` or the one
            registered for its `model_type`.
        vocab_size: when given, every id is checked to lie in `[0, vocab_size)` (a tokenizer's EOS outside it is
            left out: the model cannot produce it).

    Example:
        ```python
        >>> import hf_unmask
        >>> model, tokenizer = hf_unmask.load_builtin_model("tiny-dllm")
        >>> completion_eos_ids(model, tokenizer), completion_eos_ids(model, tokenizer, eos_token_id=[5, 6])
        ([2], [5, 6])
        ```
    """
    if eos_token_id is not None:
        return [as_token_id("eos_token_id", e, vocab_size) for e in eos_id_list(eos_token_id)]
    ids = [as_token_id("eos_token_id", e, vocab_size) for e in _family_eos_ids(model, adapter)]
    tokenizer_eos = getattr(tokenizer, "eos_token_id", None) if tokenizer is not None else None
    if tokenizer_eos is not None:
        tokenizer_eos = int(tokenizer_eos)
        inside = tokenizer_eos >= 0 and (vocab_size is None or tokenizer_eos < vocab_size)
        if inside and tokenizer_eos not in ids:
            ids.append(tokenizer_eos)
    return ids


def _family_eos_ids(model: Any, adapter: Optional[Union[type[DiffusionAdapter], DiffusionAdapter]]) -> list[Any]:
    """The adapter's EOS ids; for a model no family is registered for, those its generation config or config name."""
    if adapter is None:
        adapter = getattr(model, "diffusion_adapter", None)
    try:
        return get_adapter(model, adapter).eos_token_ids()
    except ValueError:  # unsupported model type: it may still have its own generate
        for source in (getattr(unwrap_model(model), "generation_config", None), getattr(model, "config", None)):
            value = getattr(source, "eos_token_id", None) if source is not None else None
            if value is not None:
                return eos_id_list(value)
        return []


def completion_token_ids(
    sequences: Union[torch.Tensor, Sequence[Sequence[int]]], prompt_length: int, eos_token_ids: Iterable[int]
) -> list[list[int]]:
    """The generated ids of each row of `sequences` `[B, P + L]` (those after `prompt_length`), cut before the first
    EOS id (all of them when there is none).

    Example:
        ```python
        >>> completion_token_ids(torch.tensor([[9, 5, 6, 2, 7], [9, 2, 5, 5, 5]]), 1, [2])
        [[5, 6], []]
        ```
    """
    eos = set(int(e) for e in eos_token_ids)
    rows = sequences.tolist() if isinstance(sequences, torch.Tensor) else [list(row) for row in sequences]
    return [cut_at_eos((int(t) for t in row[prompt_length:]), eos) for row in rows]


def completion_texts(
    tokenizer: Any,
    sequences: Union[torch.Tensor, Sequence[Sequence[int]]],
    prompt_length: int,
    eos_token_ids: Iterable[int],
) -> list[str]:
    """The completions of `sequences` `[B, P + L]`: each row's generated ids up to its first EOS id, decoded without
    special tokens (a `[MASK]` left undecided decodes as nothing) and stripped of surrounding whitespace.

    Example:
        ```python
        >>> import hf_unmask
        >>> model, tokenizer = hf_unmask.load_builtin_model("tiny-dllm")
        >>> batch = encode_prompts(tokenizer, ["sort : 3 1 2", "sort : 5 2 7 1"])
        >>> eos = completion_eos_ids(model, tokenizer)
        >>> out = model.generate(**batch.model_inputs(), max_new_tokens=16, eos_token_id=eos)
        >>> completion_texts(tokenizer, out, batch.prompt_length, eos)
        ['1 2 3', '1 2 5 7']
        ```
    """
    return [
        tokenizer.decode(ids, skip_special_tokens=True).strip()
        for ids in completion_token_ids(sequences, prompt_length, eos_token_ids)
    ]
