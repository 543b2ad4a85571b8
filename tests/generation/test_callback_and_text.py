"""`callback_on_step_end` (watch and stop generation) and `DiffusionTextGenerator` (text in, text out)."""

from __future__ import annotations

import pytest
import torch

import hf_unmask
from hf_unmask import DiffusionStep, DiffusionTextGenerator

PROMPTS = ["trace : 3 | +4 *3 +1 *7 +2 *9 +3 +1 *3 +4 +2 | run 6", "sort : 3 1 2"]
MASK, EOS = 1, 2


@pytest.fixture(scope="module")
def tiny():
    return hf_unmask.load_builtin_model("tiny-dllm")


def left_padded(tokenizer, texts):
    encoded = [tokenizer(t).input_ids for t in texts]
    width = max(len(e) for e in encoded)
    ids = torch.zeros(len(encoded), width, dtype=torch.long)
    keep = torch.zeros_like(ids)
    for row, e in enumerate(encoded):
        ids[row, width - len(e) :] = torch.tensor(e)
        keep[row, width - len(e) :] = 1
    return ids, keep


# ---------------------------------------------------------------------------------------------- callback
def test_callback_sees_every_step(tiny):
    model, tokenizer = tiny
    ids, keep = left_padded(tokenizer, PROMPTS)
    steps: list[DiffusionStep] = []
    out = model.generate(
        ids,
        attention_mask=keep,
        strategy="confidence_threshold",
        callback_on_step_end=steps.append,
        return_dict_in_generate=True,
        output_history=True,
        output_trajectory=True,
    )
    assert [s.step for s in steps] == list(range(out.trajectory.num_steps))
    assert out.stopped.tolist() == [False, False]
    for t, s in enumerate(steps):
        assert torch.equal(s.sequences, out.history[t + 1])
        assert torch.equal(s.unmasked, out.trajectory.unmasked[t])
        assert torch.equal(s.live, out.trajectory.live[t])
        assert torch.equal(s.masked, s.generated == MASK) and s.prompt_length == ids.shape[1]
        assert s.block == int(out.trajectory.block[t]) and s.state.step == t
        # the state covers the rows fed at this step: the live ones (a finished row leaves the forward batch)
        fed = s.live.nonzero().squeeze(-1)
        assert s.state.logits.shape == (len(fed), 16, 95)
        assert s.state.rows is None if len(fed) == 2 else torch.equal(s.state.rows, fed)
    assert torch.equal(steps[-1].nfe, out.nfe)


def test_callback_stops_every_row_and_masks_remain(tiny):
    model, tokenizer = tiny
    ids = tokenizer(PROMPTS[0], return_tensors="pt").input_ids
    seen = []

    def watch(step):
        seen.append(int(step.unmasked.sum()))
        return step.step == 3

    out = model.generate(ids, callback_on_step_end=watch, return_dict_in_generate=True)
    assert seen == [1, 1, 1, 1] and out.nfe.tolist() == [4] and out.stopped.tolist() == [True]
    assert int((out.sequences[0, ids.shape[1] :] == MASK).sum()) == 12, "undecided positions keep the mask id"
    full = model.generate(ids)
    decided = out.sequences != MASK
    assert torch.equal(out.sequences[decided], full[decided]), "the same tokens up to the stop"


def test_callback_stops_one_row_the_others_go_on(tiny):
    model, tokenizer = tiny
    ids, keep = left_padded(tokenizer, PROMPTS)
    out = model.generate(
        ids,
        attention_mask=keep,
        callback_on_step_end=lambda step: torch.tensor([step.step >= 2, False]),
        return_dict_in_generate=True,
    )
    assert out.nfe.tolist() == [3, 16] and out.stopped.tolist() == [True, False]
    alone = model.generate(tokenizer(PROMPTS[1], return_tensors="pt").input_ids)
    assert torch.equal(out.sequences[1, -16:], alone[0, -16:])


def test_stopping_a_complete_row_does_not_count_as_stopped(tiny):
    model, tokenizer = tiny
    ids = tokenizer(PROMPTS[0], return_tensors="pt").input_ids
    out = model.generate(ids, callback_on_step_end=lambda step: not step.masked.any(), return_dict_in_generate=True)
    assert out.stopped.tolist() == [False] and out.nfe.tolist() == [16]


def test_callback_changing_its_copy_changes_nothing(tiny):
    model, tokenizer = tiny
    ids = tokenizer(PROMPTS[0], return_tensors="pt").input_ids

    def scribble(step):
        step.sequences.fill_(7)
        step.unmasked.fill_(True)
        step.nfe.fill_(100)

    out = model.generate(ids, callback_on_step_end=scribble, return_dict_in_generate=True)
    expected = model.generate(ids, return_dict_in_generate=True)
    assert torch.equal(out.sequences, expected.sequences) and torch.equal(out.nfe, expected.nfe)


def test_callback_reports_the_stop_at_eos_fill(tiny):
    model, tokenizer = tiny
    ids = tokenizer(PROMPTS[1], return_tensors="pt").input_ids
    steps = []
    out = model.generate(ids, stop_at_eos=True, callback_on_step_end=steps.append, return_dict_in_generate=True)
    assert int(out.nfe[0]) == 8, "'1 2 3' then EOS: the second block is filled without a forward pass"
    written = torch.stack([s.unmasked[0] for s in steps])
    assert torch.equal(written.sum(0), torch.ones(16, dtype=torch.long)), "each position reported once"
    assert int(written[-1].sum()) > 1 and (steps[-1].generated[0][written[-1]] != MASK).all()


def test_diffusion_step_docstring_example(tiny):
    model, tokenizer = tiny
    ids = tokenizer(PROMPTS[0], return_tensors="pt").input_ids
    seen = []

    def watch(step):
        seen.append(int(step.unmasked.sum()))
        return step.step == 3

    out = model.generate(ids, callback_on_step_end=watch, return_dict_in_generate=True)
    assert (seen, out.nfe.tolist(), out.stopped.tolist()) == ([1, 1, 1, 1], [4], [True])


# ---------------------------------------------------------------------------------------------- text API
def test_text_generator_matches_generate_on_a_left_padded_batch(tiny):
    model, tokenizer = tiny
    generator = DiffusionTextGenerator(model, tokenizer, strategy="top_k_confidence")
    out = generator(PROMPTS)
    ids, keep = left_padded(tokenizer, PROMPTS)
    expected = model.generate(ids, attention_mask=keep, strategy="top_k_confidence", return_dict_in_generate=True)
    assert torch.equal(out.sequences, expected.sequences) and torch.equal(out.nfe, expected.nfe)
    assert out.prompt_length == ids.shape[1]
    assert out.texts == ["7 1 2 4 6 4 ; answer : 4", "1 2 3"]  # the docstring example
    assert out.nfe.tolist() == [16, 16]
    one = generator(PROMPTS[1])
    assert one.texts == ["1 2 3"]


def test_text_output_holds_everything_generate_returns(tiny):
    model, tokenizer = tiny
    generator = DiffusionTextGenerator(model, tokenizer, strategy="top_k_confidence", output_history=True)
    out = generator(PROMPTS, callback_on_step_end=lambda step: None)
    ids, keep = left_padded(tokenizer, PROMPTS)
    expected = model.generate(ids, attention_mask=keep, strategy="top_k_confidence", output_history=True,
                              callback_on_step_end=lambda step: None, return_dict_in_generate=True)  # fmt: skip
    for name in expected.__dataclass_fields__:
        mine, theirs = getattr(out, name), getattr(expected, name)
        assert (mine is None) == (theirs is None), name
        if isinstance(theirs, torch.Tensor):
            assert torch.equal(mine, theirs), name
    assert out.forward_positions is not None and bool((out.forward_positions > 0).all())


def test_text_is_cut_at_the_first_eos(tiny):
    model, tokenizer = tiny
    generator = DiffusionTextGenerator(model, tokenizer)
    words = tokenizer("1 2 3", add_special_tokens=False).input_ids
    after = tokenizer("9", add_special_tokens=False).input_ids
    sequences = torch.tensor([[3] + words + [EOS] + after + [EOS, EOS]])
    assert generator.decode(sequences, prompt_length=1) == ["1 2 3"]
    assert generator.decode(sequences, prompt_length=1, eos_token_id=after[0]) == ["1 2 3"]  # [EOS] skipped as special


def test_text_generator_call_overrides_defaults(tiny):
    model, tokenizer = tiny
    generator = DiffusionTextGenerator(model, tokenizer, max_new_tokens=8, block_length=8)
    assert (
        generator(PROMPTS[0]).sequences.shape[1] == tokenizer(PROMPTS[0], return_tensors="pt").input_ids.shape[1] + 8
    )
    out = generator(PROMPTS[0], max_new_tokens=16, strategy="confidence_threshold")
    assert out.texts == ["7 1 2 4 6 4 ; answer : 4"] and int(out.nfe[0]) < 16


def test_text_generator_chat_messages(tiny):
    model, tokenizer = tiny
    tokenizer = type(tokenizer).from_pretrained(tokenizer.name_or_path)
    generator = DiffusionTextGenerator(model, tokenizer)
    with pytest.raises(ValueError, match="has no chat template.*tokenizer.chat_template"):
        generator([{"role": "user", "content": PROMPTS[0]}])
    tokenizer.chat_template = "[BOS] {% for m in messages %}{{ m['content'] }}{% endfor %}"
    conversations = [[{"role": "user", "content": p}] for p in PROMPTS]
    assert generator(conversations).texts == generator(PROMPTS).texts
    assert generator(conversations[0]).texts == generator(PROMPTS[:1]).texts  # one conversation


@pytest.mark.parametrize(
    "prompts, error, match",
    [
        ([], ValueError, "prompts must be a string"),
        (42, ValueError, "prompts must be a string"),
        (["a", [{"role": "user", "content": "b"}]], TypeError, "prompts mixes kinds"),
    ],
)
def test_text_generator_bad_prompts(tiny, prompts, error, match):
    generator = DiffusionTextGenerator(*tiny)
    with pytest.raises(error, match=match):
        generator(prompts)
    with pytest.raises(TypeError, match="input_ids comes from the prompts"):
        generator(PROMPTS, input_ids=torch.tensor([[5]]))
