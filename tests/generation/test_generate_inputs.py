"""`generate` takes its inputs exactly as transformers' `generate` does, on every way in: the built-in model (mixin),
`AutoDiffusionLM`, `enable_diffusion_generate`, PEFT models and transformers' `custom_generate` hook."""

from __future__ import annotations

import shutil

import pytest
import torch
from standins import BERT_SPECIALS, VOCAB_SIZE, copy_custom_generate_repo, one_torch_thread, standin
from transformers import BertForMaskedLM, BertLMHeadModel, BertTokenizer

import hf_unmask
from hf_unmask import diffusion_generate

GEN = dict(strategy="top_k_confidence", max_new_tokens=8, block_length=4)
TEXTS = ["a b c d", "e f"]
CHATS = [[{"role": "user", "content": "a b c"}], [{"role": "user", "content": "d"}]]
CHAT_TEMPLATE = "{% for m in messages %}{{ m['content'] }} {% endfor %}{% if add_generation_prompt %}w1{% endif %}"


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    yield from one_torch_thread()


def bert_tokenizer() -> BertTokenizer:
    """A word-level BERT tokenizer over the stand-in's 48 ids (mask 4), returning token_type_ids."""
    words = BERT_SPECIALS + [chr(ord("a") + i) for i in range(26)]
    words += [f"w{i}" for i in range(VOCAB_SIZE - len(words))]
    tokenizer = BertTokenizer(vocab={w: i for i, w in enumerate(words)})
    tokenizer.padding_side = "left"
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bert_with_tokenizer") / "bert"
    shutil.copytree(standin(tmp_path_factory, "bert"), folder)
    bert_tokenizer().save_pretrained(folder)
    return folder


def tiny_tokenizer():
    _, tokenizer = hf_unmask.load_builtin_model("tiny-dllm")
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }} {% endfor %}"
    return tokenizer


def assert_every_way_of_passing_inputs_agrees(model, tokenizer, reference, texts=TEXTS, chats=CHATS, **gen):
    """generate(**batch), input_ids=, inputs=, positional, **apply_chat_template(return_dict=True): all equal to
    `reference(input_ids, attention_mask)`."""
    gen = {**GEN, **gen}
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    assert (batch["attention_mask"] == 0).any(), "the batch must be padded"
    expected = reference(batch["input_ids"], batch["attention_mask"], **gen)
    ids, mask = batch["input_ids"], batch["attention_mask"]
    results = {
        "**batch": model.generate(**batch, **gen),
        "input_ids=": model.generate(input_ids=ids, attention_mask=mask, **gen),
        "inputs=": model.generate(inputs=ids, attention_mask=mask, **gen),
        "positional": model.generate(ids, None, None, attention_mask=mask, **gen),
    }
    for how, out in results.items():
        assert torch.equal(out, expected), how
    chat = tokenizer.apply_chat_template(
        chats, add_generation_prompt=True, return_dict=True, return_tensors="pt", padding=True
    )
    out = model.generate(**chat, **gen)
    assert torch.equal(out, reference(chat["input_ids"], chat["attention_mask"], **gen)), "**apply_chat_template"
    return expected


def test_builtin_model():
    model, _ = hf_unmask.load_builtin_model("tiny-dllm")
    tokenizer = tiny_tokenizer()
    texts = ["trace : 3 | +4 *3 +1 | run 2", "sort : 3 1"]
    chats = [[{"role": "user", "content": t}] for t in texts]

    def reference(ids, mask, **gen):
        return diffusion_generate(model, ids, attention_mask=mask, **gen)

    assert_every_way_of_passing_inputs_agrees(model, tokenizer, reference, texts, chats)


def test_auto_diffusion_lm_with_token_type_ids(bert_folder):
    model = hf_unmask.AutoDiffusionLM.from_pretrained(bert_folder)
    tokenizer = bert_tokenizer()
    assert "token_type_ids" in tokenizer(TEXTS)

    def reference(ids, mask, **gen):
        return diffusion_generate(model, ids, attention_mask=mask, mask_token_id=4, **gen)

    assert_every_way_of_passing_inputs_agrees(model, tokenizer, reference)


def test_enable_diffusion_generate(bert_folder):
    model = hf_unmask.enable_diffusion_generate(BertForMaskedLM.from_pretrained(bert_folder).eval(), bert_tokenizer())
    plain = BertForMaskedLM.from_pretrained(bert_folder).eval()

    def reference(ids, mask, **gen):
        return diffusion_generate(plain, ids, attention_mask=mask, mask_token_id=4, **gen)

    assert_every_way_of_passing_inputs_agrees(model, bert_tokenizer(), reference)


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # raised inside peft
def test_peft_models(bert_folder, tmp_path):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    lora = LoraConfig(r=2, target_modules=["query", "value"], init_lora_weights=False)
    tuned = get_peft_model(BertForMaskedLM.from_pretrained(bert_folder), lora).eval()
    tuned.save_pretrained(tmp_path / "lora")
    enabled = hf_unmask.enable_diffusion_generate(tuned, bert_tokenizer())

    def reference(ids, mask, **gen):
        return diffusion_generate(tuned, ids, attention_mask=mask, mask_token_id=4, **gen)

    out = assert_every_way_of_passing_inputs_agrees(enabled, bert_tokenizer(), reference)
    loaded = hf_unmask.AutoDiffusionLM.from_pretrained(bert_folder, peft_adapter=tmp_path / "lora")
    assert_every_way_of_passing_inputs_agrees(loaded, bert_tokenizer(), reference)
    base = BertForMaskedLM.from_pretrained(bert_folder).eval()
    batch = bert_tokenizer()(TEXTS, return_tensors="pt", padding=True)
    assert not torch.equal(out, diffusion_generate(base, **batch, mask_token_id=4, **GEN)), "LoRA must run"


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> str:
    return str(copy_custom_generate_repo(tmp_path_factory.mktemp("cg") / "diffusion-generate"))


def test_custom_generate_with_a_tokenizer_batch(bert_folder, repo):
    """transformers' own generate (BertLMHeadModel) handing every argument to hf_unmask through custom_generate."""
    model = BertLMHeadModel.from_pretrained(bert_folder).eval()

    def generate(*args, **kwargs):
        return model.generate(*args, custom_generate=repo, trust_remote_code=True, mask_token_id=4, **kwargs)

    class Routed:  # the calls of assert_every_way_of_passing_inputs_agrees, through custom_generate
        pass

    routed = Routed()
    routed.generate = generate

    def reference(ids, mask, **gen):
        return diffusion_generate(model, ids, attention_mask=mask, mask_token_id=4, **gen)

    assert_every_way_of_passing_inputs_agrees(routed, bert_tokenizer(), reference)


def test_custom_generate_dream_standin_with_a_dict_batch(tmp_path_factory, repo):
    from standins import load_remote, prompts

    dream = load_remote(standin(tmp_path_factory, "dream"))
    ids, keep = prompts()
    batch = {"input_ids": ids, "attention_mask": keep}
    expected = diffusion_generate(dream, ids, attention_mask=keep, **GEN)
    assert torch.equal(dream.generate(**batch, custom_generate=repo, trust_remote_code=True, **GEN), expected)
    assert torch.equal(
        dream.generate(inputs=ids, attention_mask=keep, custom_generate=repo, trust_remote_code=True, **GEN), expected
    )


# ---------------------------------------------------------------------------------------------- token_type_ids
def test_sentence_pair_segments_reach_the_model_and_continue_over_the_canvas(bert_folder):
    model = hf_unmask.AutoDiffusionLM.from_pretrained(bert_folder)
    pair = bert_tokenizer()("a b", "c d e", return_tensors="pt")
    assert pair["token_type_ids"].tolist() == [[0, 0, 0, 0, 1, 1, 1, 1]]
    seen = []
    handle = model.register_forward_pre_hook(lambda m, a, kw: seen.append(kw.get("token_type_ids")), with_kwargs=True)
    try:
        out = model.generate(**pair, **GEN)
    finally:
        handle.remove()
    assert seen and all(torch.equal(t, torch.tensor([[0, 0, 0, 0] + [1] * 12])) for t in seen)
    without = model.generate(pair["input_ids"], **GEN)
    assert not torch.equal(out, without), "segment 1 changes the predictions of a BERT"


def test_zero_token_type_ids_are_ignored_and_segments_refused_without_segment_embeddings():
    model, tokenizer = hf_unmask.load_builtin_model("tiny-dllm")
    ids = tokenizer("sort : 3 1 2", return_tensors="pt").input_ids
    assert torch.equal(model.generate(ids, token_type_ids=torch.zeros_like(ids)), model.generate(ids))
    with pytest.raises(ValueError, match="has no segment embeddings.*drop token_type_ids"):
        model.generate(ids, token_type_ids=torch.ones_like(ids))
    with pytest.raises(ValueError, match="token_type_ids must be a tensor of the same shape"):
        model.generate(ids, token_type_ids=torch.zeros(1, 2, dtype=torch.long))


def test_custom_generate_argument_on_a_diffusion_model_is_refused(bert_folder):
    model = hf_unmask.AutoDiffusionLM.from_pretrained(bert_folder)
    builtin, _ = hf_unmask.load_builtin_model("tiny-dllm")
    for m in (model, builtin):
        with pytest.raises(ValueError, match=r"already generates by diffusion \(hf_unmask\); drop custom_generate"):
            m.generate(torch.tensor([[5, 6]]), custom_generate="org/repo", **GEN)
