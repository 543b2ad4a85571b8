"""What `generate` does with `seed`, `do_sample`, a prompt beyond a learned position table and `output_history`, and
where its warnings point: each bad input gets an error naming the argument and the fix, each warning names the
user's line."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from tiny_bert import seeded_tiny_bert

import hf_unmask
from hf_unmask.generation import DiffusionGenerationConfig, diffusion_generate
from hf_unmask.generation.adapter import LengthLimit
from hf_unmask.models.tiny.adapter import TinyDLLMAdapter

PROMPT = "trace : 3 | +4 *3 +1 *7 +2 *9 +3 +1 *3 +4 +2 | run 6"


@pytest.fixture(scope="module")
def tiny():
    return hf_unmask.load_builtin_model("tiny-dllm")


@pytest.fixture(scope="module")
def ids(tiny):
    return tiny[1](PROMPT, return_tensors="pt").input_ids


# ---------------------------------------------------------------------------------------------- seed
@pytest.mark.parametrize(
    "seed, error, match",
    [
        ("abc", TypeError, r"seed must be an integer, got 'abc' \(str\)\. Pass e\.g\. seed=0"),
        ("3", TypeError, r"seed must be an integer, got '3'"),
        (1.5, TypeError, r"seed must be an integer, got 1\.5 \(float\)"),
        (True, TypeError, r"seed must be an integer, got True"),
        (2**70, ValueError, r"seed=\d+ is out of range: torch seeds are 64-bit"),
    ],
)
def test_a_bad_seed_is_refused_naming_seed(tiny, ids, seed, error, match):
    with pytest.raises(error, match=match):
        tiny[0].generate(ids, max_new_tokens=8, temperature=0.7, seed=seed)


def test_integer_seeds_of_any_integer_type_give_the_same_draw(tiny, ids):
    model = tiny[0]
    kwargs = dict(max_new_tokens=16, temperature=1.0)
    plain = model.generate(ids, seed=7, **kwargs)
    assert torch.equal(model.generate(ids, seed=np.int64(7), **kwargs), plain)
    assert torch.equal(model.generate(ids, seed=torch.tensor(7).item(), **kwargs), plain)
    with pytest.raises(ValueError, match="either `generator` or `seed`"):
        model.generate(ids, seed=7, generator=torch.Generator(), **kwargs)


# ---------------------------------------------------------------------------------------------- do_sample
def test_do_sample_true_samples_at_temperature_one(tiny_masked_lm):
    model, ids = tiny_masked_lm, torch.tensor([[5, 6, 7, 8]])
    greedy = model.generate(ids, max_new_tokens=8)
    draws = [model.generate(ids, max_new_tokens=8, do_sample=True, seed=s) for s in range(4)]
    assert any(not torch.equal(d, greedy) for d in draws), "do_sample=True must sample, not stay greedy"
    # transformers' default temperature (1.0) when none is given; the same seed gives the same draw
    assert torch.equal(draws[1], model.generate(ids, max_new_tokens=8, temperature=1.0, seed=1))
    assert torch.equal(draws[1], model.generate(ids, max_new_tokens=8, do_sample=True, seed=1))


def test_do_sample_false_is_greedy_whatever_the_temperature_and_warns_at_the_caller(tiny_masked_lm):
    model, ids = tiny_masked_lm, torch.tensor([[5, 6, 7, 8]])
    greedy = model.generate(ids, max_new_tokens=8)
    assert not torch.equal(model.generate(ids, max_new_tokens=8, temperature=5.0, seed=0), greedy)
    with pytest.warns(UserWarning, match=r"do_sample=False with temperature=5\.0: tokens are chosen greedily") as w:
        out = model.generate(ids, max_new_tokens=8, do_sample=False, temperature=5.0, seed=0)
    assert torch.equal(out, greedy)
    assert [r.filename for r in w] == [__file__]


def test_sampling_temperature_follows_transformers():
    assert DiffusionGenerationConfig().sampling_temperature is None
    assert DiffusionGenerationConfig(temperature=0.5).sampling_temperature == 0.5
    assert DiffusionGenerationConfig(do_sample=True).sampling_temperature == 1.0
    assert DiffusionGenerationConfig(do_sample=False, temperature=0.5).sampling_temperature is None
    config = DiffusionGenerationConfig()
    config.update(temperature=0.3)
    assert config.sampling_temperature == 0.3
    config.update(temperature=0)
    assert config.sampling_temperature is None


# ---------------------------------------------------------------------------------------------- lengths
def test_a_prompt_longer_than_the_position_table_is_told_to_shorten_the_prompt():
    bert = hf_unmask.enable_diffusion_generate(seeded_tiny_bert(0, max_position_embeddings=16), mask_token_id=3)
    prompt = torch.arange(4, 24).unsqueeze(0)  # 20 tokens, 16 positions
    with pytest.raises(ValueError) as raised:
        bert.generate(prompt, max_new_tokens=4)
    message = str(raised.value)
    assert "The prompt (20 tokens) is too long for BertForMaskedLM" in message
    assert "learned table of 16 positions" in message
    assert "truncation=True, max_length=12" in message
    assert "max_new_tokens <= 0" not in message
    # a prompt that fits but leaves too little room still gets the max_new_tokens advice
    with pytest.raises(ValueError, match=r"Use max_new_tokens <= 6 or a shorter prompt"):
        bert.generate(prompt[:, :10], max_new_tokens=8)


class ShortTrainedAdapter(TinyDLLMAdapter):
    """The tiny dLLM's adapter, declaring a shorter trained generation length than its config."""

    def trained_generation_length(self):
        return LengthLimit(8, "ShortTrainedAdapter")


def test_trained_lengths_are_asked_of_the_adapter(tiny, ids):
    model = tiny[0]
    adapter = TinyDLLMAdapter(model)
    assert adapter.trained_generation_length() == LengthLimit(16, "config.trained_gen_length")
    assert adapter.max_generation_length() is None
    assert adapter.trained_sequence_length() == LengthLimit(model.config.max_position_embeddings,
                                                            "config.max_position_embeddings")  # fmt: skip
    with pytest.warns(UserWarning, match=r"trained to generate L = 8 positions \(ShortTrainedAdapter\)"):
        model.generate(ids, max_new_tokens=16, adapter=ShortTrainedAdapter)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.generate(ids, max_new_tokens=16)  # within the config's 16


def test_length_warnings_point_at_the_callers_line(tiny, ids):
    model = tiny[0]
    for call in (
        lambda: model.generate(ids, max_new_tokens=32),
        lambda: diffusion_generate(model, ids, max_new_tokens=32),
    ):
        with pytest.warns(UserWarning, match="trained to generate L = 16") as w:
            call()
        assert {r.filename for r in w} == {__file__}


# ---------------------------------------------------------------------------------------------- history
def test_history_holds_the_canvas_before_the_first_step_and_after_each_step(tiny, ids):
    out = tiny[0].generate(
        ids, max_new_tokens=16, block_length=8, output_history=True, stop_at_eos=True, return_dict_in_generate=True
    )
    steps = int(out.nfe.max())
    assert out.history.shape == (steps + 1, 1, ids.shape[1] + 16)
    assert (out.history[0, :, ids.shape[1] :] == 1).all()  # all [MASK] before the first step
    assert torch.equal(out.history[-1], out.sequences)
