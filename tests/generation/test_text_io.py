"""The text boundary (`hf_unmask.generation.text_io`): encoding with the chat template and left padding, the EOS set
from the model family or the user, and decoding cut at the first end id; and the deprecated names that call it."""

from __future__ import annotations

import warnings

import pytest
import torch

import hf_unmask
from hf_unmask.generation import completion_eos_ids, completion_texts, completion_token_ids, encode_prompts
from hf_unmask.models.tiny import build_tokenizer

CHAT_TEMPLATE = "[BOS] {% for m in messages %}{{ m['role'] }} : {{ m['content'] }} {% endfor %}"


@pytest.fixture(scope="module")
def tiny():
    return hf_unmask.load_builtin_model("tiny-dllm")


def test_strings_are_left_padded_through_the_call_and_the_tokenizer_is_untouched():
    tokenizer = build_tokenizer()
    tokenizer.padding_side = "right"
    batch = encode_prompts(tokenizer, ["sort : 3 1 2", "sort : 1"])
    long_ids = tokenizer("sort : 3 1 2")["input_ids"]
    short_ids = tokenizer("sort : 1")["input_ids"]
    pad = len(long_ids) - len(short_ids)
    assert batch.input_ids[0].tolist() == long_ids
    assert batch.input_ids[1, pad:].tolist() == short_ids
    assert batch.attention_mask[1].tolist() == [0] * pad + [1] * len(short_ids)
    assert batch.input_ids[1, :pad].tolist() == [tokenizer.pad_token_id] * pad
    assert batch.texts == ["sort : 3 1 2", "sort : 1"] and not batch.templated
    assert batch.prompt_length == len(long_ids)
    assert tokenizer.padding_side == "right"


def test_a_tokenizer_without_a_pad_token_is_padded_by_hand_and_left_without_one():
    tokenizer = build_tokenizer()
    tokenizer.pad_token = None
    batch = encode_prompts(tokenizer, ["sort : 3 1 2", "sort : 1"])
    assert tokenizer.pad_token is None
    assert batch.attention_mask[1].tolist()[:2] == [0, 0]
    assert batch.input_ids[1, 0].item() == tokenizer.eos_token_id


def test_conversations_go_through_the_chat_template_without_special_tokens_added_twice():
    tokenizer = build_tokenizer()
    tokenizer.chat_template = CHAT_TEMPLATE
    chat = [{"role": "user", "content": "sort : 3 1 2"}]
    batch = encode_prompts(tokenizer, [chat, chat])
    rendered = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    assert batch.templated and batch.texts == [rendered, rendered]
    assert batch.input_ids[0].tolist() == tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert batch.input_ids[0].tolist().count(tokenizer.bos_token_id) == 1  # the template's [BOS] only
    # one conversation, and strings with chat_template=True, render the same way
    assert torch.equal(encode_prompts(tokenizer, chat).input_ids, batch.input_ids[:1])
    as_text = encode_prompts(tokenizer, ["sort : 3 1 2"], chat_template=True)
    assert as_text.texts == [rendered] and torch.equal(as_text.input_ids, batch.input_ids[:1])


def test_bad_prompts_name_the_problem():
    tokenizer = build_tokenizer()
    with pytest.raises(ValueError, match="has no chat template.*tokenizer.chat_template"):
        encode_prompts(tokenizer, [[{"role": "user", "content": "x"}]])
    with pytest.raises(TypeError, match="mixes kinds"):
        encode_prompts(tokenizer, ["x", [{"role": "user", "content": "x"}]])
    with pytest.raises(ValueError, match="prompts must be"):
        encode_prompts(tokenizer, [])


def test_the_eos_set_comes_from_the_family_and_the_tokenizer_unless_the_user_names_one(tiny):
    model, tokenizer = tiny
    assert completion_eos_ids(model, tokenizer) == [tokenizer.eos_token_id]
    assert completion_eos_ids(model, tokenizer, eos_token_id=7) == [7]
    assert completion_eos_ids(model, tokenizer, eos_token_id=[7, 8]) == [7, 8]

    # a family that ends a turn with another id: both end a completion, the family's first
    from hf_unmask.generation import get_adapter

    adapter = get_adapter(model)
    adapter.end_of_turn_token_ids = (9,)
    adapter.default_eos_token_ids = (tokenizer.eos_token_id,)
    assert completion_eos_ids(model, tokenizer, adapter=adapter) == [tokenizer.eos_token_id, 9]
    # a tokenizer with an EOS the family does not name adds it last
    other = build_tokenizer()
    other.eos_token = "[UNK]"
    assert completion_eos_ids(model, other) == [tokenizer.eos_token_id, other.eos_token_id]
    with pytest.raises(TypeError, match="eos_token_id must be an integer token id"):
        completion_eos_ids(model, tokenizer, eos_token_id="2")
    with pytest.raises(ValueError, match="is not a token of this model"):
        completion_eos_ids(model, tokenizer, eos_token_id=10**6, vocab_size=len(tokenizer))


def test_decoding_cuts_at_the_first_end_id_and_drops_special_tokens():
    tokenizer = build_tokenizer()
    ids = tokenizer("1 2 3", add_special_tokens=False)["input_ids"]
    eos, mask = tokenizer.eos_token_id, tokenizer.mask_token_id
    prompt = tokenizer("sort : 3 1 2")["input_ids"]
    P = len(prompt)
    rows = [
        prompt + ids + [eos] + ids,  # cut at the first EOS
        prompt + ids[:1] + [mask] + ids[1:],  # a [MASK] left undecided decodes as nothing
        prompt + [eos] + ids,  # empty completion
        prompt + ids,  # no EOS: everything
    ]
    width = max(map(len, rows))
    rows = [r + [eos] * (width - len(r)) for r in rows]
    sequences = torch.tensor(rows)
    texts = completion_texts(tokenizer, sequences, P, [eos])
    assert texts[0] == "1 2 3" and texts[2] == "" and texts[3] == "1 2 3"
    assert "MASK" not in texts[1] and texts[1].split() == ["1", "2", "3"]
    assert completion_token_ids(sequences, P, [eos])[0] == ids and completion_token_ids(sequences, P, [eos])[2] == []
    # a second end id counts too, wherever it comes first
    assert completion_texts(tokenizer, sequences, P, [eos, ids[1]])[0] == "1"
    assert completion_texts(tokenizer, rows, P, [eos]) == texts  # lists of ids work as tensors do


def _warns_here(fn, *args):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = fn(*args)
    [warning] = [w for w in caught if issubclass(w.category, FutureWarning)]
    assert warning.filename == __file__, "the warning points at the caller's line"
    return result, str(warning.message)


def test_the_old_names_still_work_and_name_the_new_ones(tiny):
    from hf_unmask.evaluation import decode_completions
    from hf_unmask.evaluation.model_io import completion_eos_ids as old_eos_ids
    from hf_unmask.tasks.evaluate import decode_completion
    from hf_unmask.trainer.rollouts import decode_completions as rollout_decode
    from hf_unmask.trainer.rollouts import tokenize_prompts

    model, tokenizer = tiny
    batch = encode_prompts(tokenizer, ["sort : 3 1 2"])
    out = model.generate(**batch.model_inputs(), max_new_tokens=16)
    eos = completion_eos_ids(model, tokenizer)
    expected = completion_texts(tokenizer, out, batch.prompt_length, eos)

    ids, message = _warns_here(old_eos_ids, model, tokenizer)
    assert ids == set(eos) and "hf_unmask.generation.completion_eos_ids" in message
    texts, message = _warns_here(decode_completions, out, batch.prompt_length, tokenizer, eos)
    assert texts == expected and "completion_texts" in message
    (texts, token_ids), message = _warns_here(rollout_decode, tokenizer, out, batch.prompt_length, eos)
    assert texts == expected and token_ids == completion_token_ids(out, batch.prompt_length, eos)
    text, message = _warns_here(decode_completion, tokenizer, out[0, batch.prompt_length :].tolist())
    assert text == expected[0] and "completion_texts" in message
    (prompt_texts, input_ids, mask), message = _warns_here(tokenize_prompts, tokenizer, ["sort : 3 1 2"], {}, "cpu")
    assert prompt_texts == batch.texts and torch.equal(input_ids, batch.input_ids) and "encode_prompts" in message
