"""A tiny random dLLM, a character-level tokenizer and a toy task for the evaluation / CLI / demo tests.

Not a test module (no `test_` prefix); imported by the tests of tests/evaluation/, test_cli.py and test_demo.py.
"""

from __future__ import annotations

import random

import torch
from tiny_bert import seeded_tiny_bert
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import BertForMaskedLM, PreTrainedTokenizerFast

import hf_unmask
from hf_unmask.tasks import VerifiableTask

PAD, EOS, UNK, MASK = 0, 1, 2, 3
SPECIALS = ["[PAD]", "[EOS]", "[UNK]", "[MASK]"]
CHARS = list("0123456789abcdefghijklmnopqrstuvwxyz +-=*.,:;?!()")
VOCAB = 64  # 4 specials + 49 characters, rounded up
L = 8  # generation length of the evaluation tests


def make_tokenizer() -> PreTrainedTokenizerFast:
    vocab = {tok: i for i, tok in enumerate(SPECIALS + CHARS)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    backend.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", eos_token="[EOS]", unk_token="[UNK]", mask_token="[MASK]"
    )


def make_model(seed: int = 0, scale: float = 3.0) -> BertForMaskedLM:
    model = seeded_tiny_bert(seed, vocab_size=VOCAB, max_position_embeddings=300, pad_token_id=PAD, eos_token_id=EOS)
    with torch.no_grad():  # spread the confidences so greedy choices are far from ties
        model.cls.predictions.decoder.weight.mul_(scale)
        # Keep proposals on printable characters: never [MASK] or [UNK].
        model.cls.predictions.bias[MASK] = -1e4
        model.cls.predictions.bias[UNK] = -1e4
    return hf_unmask.enable_diffusion_generate(model, mask_token_id=MASK)


def parity_correct(completion: str, reference: str) -> bool:
    """Toy verifier with a mix of outcomes on a random model: the completion's character sum has the parity of the
    reference's length."""
    return sum(map(ord, completion)) % 2 == len(reference) % 2


class ToyTask(VerifiableTask):
    """`a+b=` prompts; deliberately not registered (empty name) so it never leaks into TASK_REGISTRY."""

    name = ""

    def make_example(self, rng: random.Random) -> dict[str, str]:
        a, b = rng.randint(0, 99), rng.randint(0, 99)
        return {"prompt": f"{a}+{b}=", "reference": str(a + b)}

    def final_answer(self, text: str) -> str:
        return text.strip()

    def is_correct(self, completion: str, reference: str) -> bool:
        return parity_correct(completion, reference)
