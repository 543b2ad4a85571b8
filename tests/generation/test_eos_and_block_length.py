"""The shared small helpers of `hf_unmask.generation`: EOS ids as a list, cutting at the first EOS, and the block
length check, each used by generation, the text API, evaluation, tasks and the trainer config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hf_unmask
from hf_unmask.generation import (
    DiffusionGenerationConfig,
    check_block_length,
    completion_texts,
    cut_at_eos,
    eos_id_list,
)
from hf_unmask.tasks.evaluate import decode_completion


@pytest.fixture(scope="module")
def tiny():
    return hf_unmask.load_builtin_model("tiny-dllm")


def test_eos_id_list():
    assert eos_id_list(2) == [2]
    assert eos_id_list([2, 7]) == [2, 7]
    assert eos_id_list((2, 7)) == [2, 7]
    assert eos_id_list(None) == []
    assert eos_id_list(torch.tensor(5)) == [torch.tensor(5)]  # one id of any type stays one id


def test_cut_at_eos():
    assert cut_at_eos([4, 5, 2, 6, 3], {2, 3}) == [4, 5]
    assert cut_at_eos([4, 5, 3, 6, 2], [2, 3]) == [4, 5]  # the first EOS of any kind
    assert cut_at_eos([4, 5, 2, 6], {2}, keep_eos=True) == [4, 5, 2]
    assert cut_at_eos([4, 5], {2}) == [4, 5] and cut_at_eos([4, 5], {2}, keep_eos=True) == [4, 5]
    assert cut_at_eos([2, 4], {2}) == [] and cut_at_eos([], {2}) == []
    assert cut_at_eos(iter([4, 2, 5]), {2}) == [4]


def test_every_decoder_cuts_at_the_first_eos(tiny):
    model, tokenizer = tiny
    eos = tokenizer.eos_token_id
    words = tokenizer("1 2 3 ; answer : 4", add_special_tokens=False).input_ids
    prompt = tokenizer("sort : 3 1 2", add_special_tokens=False).input_ids
    rows = [words + [eos] + words, words[:3] + [eos, eos], words]
    width = max(map(len, rows))
    generated = torch.tensor([row + [eos] * (width - len(row)) for row in rows])
    sequences = torch.cat([torch.tensor([prompt] * 3), generated], dim=1)
    expected = ["1 2 3 ; answer : 4", "1 2 3", "1 2 3 ; answer : 4"]

    assert completion_texts(tokenizer, sequences, len(prompt), {eos}) == expected
    assert [decode_completion(tokenizer, row) for row in generated.tolist()] == expected
    texts = hf_unmask.DiffusionTextGenerator(model, tokenizer).decode(sequences, len(prompt))
    assert [t.strip() for t in texts] == expected


@pytest.mark.parametrize(
    "block_length, gen_length, expected",
    [(None, 16, 16), (16, 16, 16), (4, 16, 4), (1, 7, 1), (np.int64(8), 16, 8)],
)
def test_check_block_length_accepts_divisors(block_length, gen_length, expected):
    assert check_block_length(block_length, gen_length) == expected


@pytest.mark.parametrize("block_length", [0, -4, 2.0, True, "8"])
def test_check_block_length_rejects_non_positive_integers(block_length):
    with pytest.raises(ValueError, match=r"block_length must be a positive integer or None \(full diffusion\)"):
        check_block_length(block_length, 16)


def test_check_block_length_suggests_the_closest_divisor():
    with pytest.raises(ValueError, match=r"block_length=12 does not divide max_new_tokens=32.* such as 8 \(divisors"):
        check_block_length(12, 32)
    with pytest.raises(ValueError, match=r"such as 16 "):
        check_block_length(15, 32)
    with pytest.raises(ValueError, match=r"BL=5 does not divide gen_length=12: .*or 'full' for full diffusion"):
        check_block_length(5, 12, name="BL", length_name="gen_length", full="'full'")


def test_generate_and_evaluation_report_block_lengths_with_the_shared_check(tiny):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match=r"block_length=5 does not divide max_new_tokens=16.*such as 4"):
        DiffusionGenerationConfig(max_new_tokens=16, block_length=5).validate_diffusion()
    from hf_unmask.evaluation import plan_sweep

    with pytest.raises(ValueError, match=r"does not divide the generation length L=16.*or 'full' for full"):
        plan_sweep(["top_k_confidence:steps=16"], [5], 16)
