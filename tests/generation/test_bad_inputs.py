"""Every bad input to `generate` and the loaders gets a clear error (or a warning where legal but
suspicious) raised by hf_unmask, naming the problem and the fix, before any forward pass unless stated."""

from __future__ import annotations

import io
import math
from contextlib import redirect_stdout

import pytest
import torch
from transformers import TextStreamer

import hf_unmask
from hf_unmask.generation import validation
from hf_unmask.strategies import ConfidencePolicy, StrategyOutput, TopKConfidence

PROMPT = "trace : 3 | +4 *3 +1 *7 +2 *9 +3 +1 *3 +4 +2 | run 6"
VOCAB, MASK, EOS = 95, 1, 2


@pytest.fixture(scope="module")
def tiny():
    return hf_unmask.load_builtin_model("tiny-dllm")


@pytest.fixture
def model(tiny):
    """The built-in model, counting its forward passes in `model.forwards`."""
    model = tiny[0]
    model.forwards = 0

    def count(*_):
        model.forwards += 1

    handle = model.register_forward_pre_hook(count)
    yield model
    handle.remove()


@pytest.fixture(scope="module")
def ids(tiny):
    return tiny[1](PROMPT, return_tensors="pt").input_ids


def refused(model, ids, error, match, **kwargs):
    """`generate` raises `error` matching `match` before any forward pass."""
    with pytest.raises(error, match=match):
        model.generate(ids, **kwargs)
    assert model.forwards == 0, "the error must come before any forward pass"


# ---------------------------------------------------------------------------------------------- arguments
@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"max_new_tokens": "16"}, TypeError, r"max_new_tokens must be an integer, got '16'"),
        ({"max_new_tokens": 16.0}, TypeError, "max_new_tokens must be an integer"),
        ({"max_new_tokens": 8, "block_length": 2.5}, TypeError, r"block_length must be an integer, got 2\.5"),
        ({"max_new_tokens": 8, "steps": "4"}, TypeError, "steps must be an integer"),
        ({"max_new_tokens": 8, "top_k": 2.0}, TypeError, "top_k must be an integer"),
        ({"max_new_tokens": 8, "top_p": "0.5"}, TypeError, "top_p must be a number"),
        ({"temperature": math.nan}, ValueError, r"temperature must be a finite number >= 0 .*got nan"),
        ({"temperature": math.inf}, ValueError, r"temperature must be a finite number >= 0 .*got inf"),
        ({"temperature": -0.5}, ValueError, r"temperature must be a finite number >= 0 .*got -0\.5"),
        ({"temperature": "hot"}, TypeError, "temperature must be a number"),
        ({"output_scores": True}, ValueError, r"`output_scores=True` is not supported.*callback_on_step_end"),
        ({"output_logits": True}, ValueError, r"`output_logits=True` is not supported.*step\.state\.logits"),
        ({"output_attentions": True}, ValueError, "`output_attentions=True` is not supported"),
        ({"mask_token_id": VOCAB}, ValueError, r"mask_token_id=95 is not a token of this model.*\[0, 95\)"),
        ({"mask_token_id": -1}, ValueError, r"mask_token_id=-1 is not a token of this model"),
        ({"mask_token_id": EOS}, ValueError, r"mask_token_id=2 is also an EOS id"),
        ({"eos_token_id": 200}, ValueError, r"eos_token_id=200 is not a token of this model"),
        ({"eos_token_id": -3}, ValueError, r"eos_token_id=-3 is not a token of this model"),
        ({"pad_token_id": 95}, ValueError, r"pad_token_id=95 is not a token of this model"),
        ({"pad_token_id": -1}, ValueError, r"pad_token_id=-1 is not a token of this model"),
        ({"stop_at_eos": True, "pad_token_id": MASK}, ValueError, "which is the mask id: they would stay masked"),
        ({"strategy": TopKConfidence}, TypeError, r"a strategy class.*TopKConfidence\(\)"),
        (
            {"streamer": object()},
            TypeError,
            r"streamer must have put\(value\) and end\(\) methods.*DiffusionTextStreamer",
        ),
        ({"callback_on_step_end": 3}, TypeError, "callback_on_step_end must be callable"),
        ({"callback_on_step_end": lambda pipe, i, t, kw: kw}, TypeError, "called with one argument, a hf_unmask.Diff"),
        ({"inputs_embeds": torch.zeros(1, 3, 8)}, ValueError, "inputs_embeds is not supported"),
    ],
)
def test_bad_arguments_are_refused_before_any_forward(model, ids, kwargs, error, match):
    refused(model, ids, error, match, **kwargs)


def test_prompt_ids_outside_the_vocabulary(model, ids):
    refused(model, ids.clamp_max(0) + VOCAB, ValueError, r"input_ids holds the id 95, outside this model's vocabulary")
    refused(model, ids - 10, ValueError, r"input_ids holds the id -\d+, outside this model's vocabulary")


def test_prompt_holding_the_mask_id_is_refused_unless_allowed(model, ids):
    masked = ids.clone()
    masked[0, 4] = MASK
    refused(model, masked, ValueError, r"holds the mask id 1 \(row 0, position 4\).*allow_mask_in_prompt=True")
    out = model.generate(masked, allow_mask_in_prompt=True, return_dict_in_generate=True)
    assert int(out.sequences[0, 4]) == MASK, "the prompt is never filled"
    assert not (out.sequences[0, ids.shape[1] :] == MASK).any()


def test_mask_id_at_padding_is_not_in_the_prompt(model, ids):
    """Padding is not prompt: a pad id equal to the mask id (left padding) is fine."""
    padded = torch.cat([torch.full((1, 2), MASK), ids], dim=1)
    keep = torch.cat([torch.zeros(1, 2, dtype=torch.long), torch.ones_like(ids)], dim=1)
    out = model.generate(padded, attention_mask=keep)
    assert torch.equal(out[0, 2:], model.generate(ids)[0])


def test_attention_mask_values_other_than_zero_and_one(model, ids):
    refused(
        model,
        ids,
        ValueError,
        r"attention_mask must hold only 0 \(padding\) and 1.*\[2\.0\]",
        attention_mask=ids * 0 + 2,
    )
    assert model.generate(ids, attention_mask=torch.ones_like(ids, dtype=torch.bool)).shape[1] == ids.shape[1] + 16


def test_whole_tokenizer_output_passed_positionally(tiny, model):
    batch = tiny[1]([PROMPT], return_tensors="pt")
    refused(model, batch, TypeError, r"`inputs` is a BatchEncoding.*model.generate\(\*\*batch")


def test_prompt_and_inputs_both_given(model, ids):
    with pytest.raises(ValueError, match="Pass the prompt once"):
        model.generate(ids, input_ids=ids)


# ---------------------------------------------------------------------------------------------- lengths
def test_length_beyond_a_learned_position_table():
    from tiny_bert import seeded_tiny_bert

    bert = hf_unmask.enable_diffusion_generate(seeded_tiny_bert(0, max_position_embeddings=64), mask_token_id=3)
    prompt = torch.tensor([[5, 6, 7, 8]])
    with pytest.raises(ValueError, match=r"learned table of 64 positions.*needs 65\. Use max_new_tokens <= 60"):
        bert.generate(prompt, max_new_tokens=61)
    assert bert.generate(prompt, max_new_tokens=60).shape == (1, 64)
    # padded rows count their real tokens only (positions start at each row's first token)
    padded = torch.tensor([[0, 0, 5, 6], [5, 6, 7, 8]])
    assert bert.generate(padded, attention_mask=(padded != 0).long(), max_new_tokens=60).shape == (2, 64)


def test_roberta_position_table_excludes_its_offset():
    from transformers import RobertaConfig, RobertaForMaskedLM

    config = RobertaConfig(
        vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
        max_position_embeddings=20, pad_token_id=1,
    )  # fmt: skip
    model = hf_unmask.enable_diffusion_generate(RobertaForMaskedLM(config).eval(), mask_token_id=3)
    assert validation.position_table_size(model) == 18  # 20 rows, positions counted from padding_idx + 1 = 2
    with pytest.raises(ValueError, match="learned table of 18 positions"):
        model.generate(torch.tensor([[5, 6]]), max_new_tokens=17)
    assert model.generate(torch.tensor([[5, 6]]), max_new_tokens=16).shape == (1, 18)


def test_huge_length_is_refused_before_allocating(model, ids):
    refused(
        model,
        ids,
        ValueError,
        r"canvas of 10,000,019 positions per row, more than generate accepts",
        max_new_tokens=10**7,
    )


def test_logits_larger_than_free_memory_are_refused(model, ids, monkeypatch):
    monkeypatch.setattr(validation, "_available_memory", lambda device: 1 << 30)
    # 3 rows x 1,000,019 positions x 95 x 4 bytes = 1.06 GiB of logits per forward pass > 1 GiB free
    refused(
        model,
        ids.expand(3, -1),
        ValueError,
        r"1\.1 GiB\) exceed the free memory of cpu \(1\.0 GiB\)",
        max_new_tokens=10**6,
    )


def test_memory_rule_passes_a_large_llada_run():
    """LLaDA-8B (vocabulary 126,464, bf16), 1,024 prompt tokens + L = 3,072, batch 4: 4 GiB of logits fit next to the
    16 GB of weights on a 40 GB GPU."""

    class FakeLLaDA(torch.nn.Module):
        config = type("Config", (), {"max_sequence_length": 4096})()
        dtype = torch.bfloat16

    ids = torch.zeros(4, 1024, dtype=torch.long)
    original = validation._available_memory
    try:
        validation._available_memory = lambda device: 20 << 30
        validation.check_lengths(FakeLLaDA(), ids, None, 3072, 126_464)
        validation._available_memory = lambda device: 3 << 30
        with pytest.raises(ValueError, match=r"3\.9 GiB\) exceed the free memory"):
            validation.check_lengths(FakeLLaDA(), ids, None, 3072, 126_464)
    finally:
        validation._available_memory = original


def test_length_beyond_training_warns_before_any_forward(model, ids):
    class Stop(Exception):
        pass

    def refuse(*_):
        raise Stop

    handle = model.register_forward_pre_hook(refuse)
    try:
        with pytest.warns(UserWarning, match=r"trained to generate L = 16 .*max_new_tokens=10000.*<= 16"):
            with pytest.warns(UserWarning, match=r"at most 128 positions \(config\.max_position_embeddings\)"):
                with pytest.raises(Stop):
                    model.generate(ids, max_new_tokens=10**4)
    finally:
        handle.remove()
    with pytest.warns(UserWarning, match="trained to generate L = 16"):
        model.generate(ids, max_new_tokens=32)


def test_trained_length_is_not_warned_within_it(model, ids, recwarn):
    model.generate(ids, max_new_tokens=16)
    assert not [w for w in recwarn if "trained" in str(w.message)]


# ---------------------------------------------------------------------------------------------- per step
def test_logits_processor_returning_none(model, ids):
    with pytest.raises(TypeError, match=r"logits_processor returned NoneType; it must return the scores tensor"):
        model.generate(ids, logits_processor=lambda input_ids, scores: None)
    assert model.forwards == 1, "refused at the first step"


@pytest.mark.parametrize(
    "processor, match",
    [
        (lambda input_ids, scores: scores[..., :-1], r"shape \[1, 16, 94\]; expected \[1, 16, 95\]"),
        (lambda input_ids, scores: scores[:, :-1], r"shape \[1, 15, 95\]; expected \[1, 16, 95\]"),
        (lambda input_ids, scores: scores[:, -1], r"shape \[1, 95\]; expected \[1, 16, 95\]"),
    ],
)
def test_logits_processor_returning_the_wrong_shape(model, ids, processor, match):
    with pytest.raises(ValueError, match=match):
        model.generate(ids, logits_processor=processor)
    assert model.forwards == 1


@pytest.mark.parametrize("value", [math.nan, -math.inf, math.inf])
def test_logits_giving_no_distribution_are_an_error_at_that_step(model, ids, value):
    def break_position_5_at_step_2(input_ids, scores):
        if model.forwards == 3:
            scores = scores.clone()
            scores[0, 5] = value
        return scores

    with pytest.raises(
        ValueError, match=r"At step 2 the logits of row 0, generated position 5 give no distribution \(NaN or \+inf"
    ):
        model.generate(ids, logits_processor=break_position_5_at_step_2)


def test_strategy_log_prob_of_the_wrong_shape(model, ids):
    def wrong(state):
        return StrategyOutput(state.eligible & (state.confidence >= state.confidence.max()), torch.zeros(2))

    with pytest.raises(ValueError, match=r"log_prob is \(2,\); it must be a float tensor of shape \[batch\] = \[1\]"):
        model.generate(ids, strategy=wrong)


@pytest.mark.parametrize("field", ["proposal", "confidence", "eligible", "masked", "nfe"])
@pytest.mark.parametrize("inference_mode", [False, True])
def test_strategy_writing_into_the_state_is_an_error(model, ids, field, inference_mode):
    def vandal(state):
        tensor = getattr(state, field)
        tensor.fill_(MASK if tensor.dtype == torch.long else True)
        return state.eligible.clone()

    with torch.inference_mode(inference_mode):
        with pytest.raises(ValueError, match=rf"The strategy modified state\.{field} in place.*read-only"):
            model.generate(ids, strategy=vandal)


def test_callback_writing_into_the_state_is_an_error(model, ids):
    def vandal(step):
        step.state.masked.zero_()

    with pytest.raises(ValueError, match=r"The callback_on_step_end modified state\.masked in place"):
        model.generate(ids, callback_on_step_end=vandal)


def test_callback_returning_something_else(model, ids):
    with pytest.raises(TypeError, match=r"returned 'stop'; it must return None/False .*True .*bool tensor"):
        model.generate(ids, callback_on_step_end=lambda step: "stop")


# ---------------------------------------------------------------------------------------------- streamers
def test_transformers_text_streamer_gets_the_final_text_once(tiny, ids):
    model, tokenizer = tiny
    buffer = io.StringIO()
    with redirect_stdout(buffer), pytest.warns(UserWarning, match=r"receives the final tokens.*DiffusionTextStreamer"):
        out = model.generate(ids, streamer=TextStreamer(tokenizer, skip_prompt=True, skip_special_tokens=True))
    printed = buffer.getvalue()
    assert "[MASK]" not in printed and printed.strip() == tokenizer.decode(
        out[0, ids.shape[1] :], skip_special_tokens=True
    )
    with pytest.raises(ValueError, match=r"TextStreamer shows one sequence, but the batch has 2 rows.*row=i"):
        model.generate(ids.expand(2, -1), streamer=TextStreamer(tokenizer))


# ---------------------------------------------------------------------------------------------- loaders
@pytest.mark.parametrize("path", ["./no/such/policy", "/no/such/policy", "no/such/policy"])
def test_missing_local_folder_for_a_policy(path):
    with pytest.raises(hf_unmask.LocalFolderNotFoundError, match=r"No such folder: '.*no/such/policy'") as info:
        ConfidencePolicy.from_pretrained(path)
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("path", ["./no/such/model", "/no/such/model"])
def test_missing_local_folder_for_a_model(path):
    with pytest.raises(hf_unmask.LocalFolderNotFoundError, match=r"No such folder: '.*no/such/model'.*Hub"):
        hf_unmask.AutoDiffusionLM.from_pretrained(path)


def test_hub_ids_are_not_taken_for_folders():
    from hf_unmask._paths import check_local_folder, looks_like_local_path

    for name in ("GSAI-ML/LLaDA-8B-Instruct", "bert-base-uncased", "org/model.v2"):
        assert not looks_like_local_path(name)
        check_local_folder(name)


def test_vocabulary_size_comes_from_the_embeddings_else_the_config():
    class Remote(torch.nn.Module):
        config = type("Config", (), {"vocab_size": 50})()

        def get_output_embeddings(self):
            raise RuntimeError("not implemented by this remote code")

    assert validation.vocabulary_size(Remote()) == 50
    Remote.config = None
    assert validation.vocabulary_size(Remote()) is None
    from tiny_bert import seeded_tiny_bert

    bert = seeded_tiny_bert(0, vocab_size=40)
    bert.config.vocab_size = 30  # the tables decide, as for LLaDA's padded embedding
    assert validation.vocabulary_size(bert) == 40
