"""The word-level tokenizer of the built-in tiny dLLM, built with the `tokenizers` library."""

from __future__ import annotations

import itertools
import string

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

#: Special tokens, in id order: `[PAD]` 0, `[MASK]` 1, `[EOS]` 2, `[BOS]` 3, `[UNK]` 4.
SPECIAL_TOKENS = ["[PAD]", "[MASK]", "[EOS]", "[BOS]", "[UNK]"]
#: Every word the built-in tasks write (task keywords, letters, digits, symbols), plus a few spares.
WORDS = (
    ["trace", "cups", "sort", "run", "answer"]
    + list(string.ascii_lowercase)
    + list(string.digits)
    + [str(n) for n in range(10, 17)]
    + [f"+{c}" for c in range(1, 10)]
    + [f"-{c}" for c in range(1, 10)]
    + [f"*{c}" for c in range(2, 10)]
    + ["".join(pair) for pair in itertools.combinations("abcde", 2)]
    + [":", ";", ",", "|", "=", ">"]
    # appended later (ids above stay what the first shipped models saved): `trace_until` and its step counts
    + ["until"]
    + [str(n) for n in range(17, 33)]
)


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A whitespace-split, word-level `PreTrainedTokenizerFast` covering all built-in tasks.

    It prepends `[BOS]` to every encoded text, pads on the left (what diffusion generation needs) and decodes
    tokens joined by single spaces, so `decode(encode(text))` gives back any space-separated task text.

    Example:
        ```python
        >>> tok = build_tokenizer()
        >>> ids = tok("trace : x = 3").input_ids
        >>> tok.convert_ids_to_tokens(ids)
        ['[BOS]', 'trace', ':', 'x', '=', '3']
        >>> tok.decode(ids, skip_special_tokens=True)
        'trace : x = 3'
        ```
    """
    vocab = {token: i for i, token in enumerate(SPECIAL_TOKENS + WORDS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    backend.post_processor = processors.TemplateProcessing(
        single="[BOS] $A", pair="[BOS] $A $B", special_tokens=[("[BOS]", vocab["[BOS]"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        pad_token="[PAD]",
        mask_token="[MASK]",
        eos_token="[EOS]",
        bos_token="[BOS]",
        unk_token="[UNK]",
        padding_side="left",
        model_input_names=["input_ids", "attention_mask"],
    )
