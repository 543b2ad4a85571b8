"""Model-family adapters: ids, logit alignment, attention-mask formats, padded batches = single rows."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from standins import EOS_ID, MASK_ID, VOCAB_SIZE, load_remote, one_torch_thread, prompts, standin, tiny_bert_config

from hf_unmask.models import (
    ADAPTER_REGISTRY,
    DreamAdapter,
    LLaDAAdapter,
    MaskedLMAdapter,
    RobertaMaskedLMAdapter,
    get_adapter,
    resolve_adapter_class,
)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    yield from one_torch_thread()


def _load_remote(tmp_path_factory, kind):
    return load_remote(standin(tmp_path_factory, kind))


@pytest.fixture(scope="module")
def llada(tmp_path_factory):
    return _load_remote(tmp_path_factory, "llada")


@pytest.fixture(scope="module")
def dream(tmp_path_factory):
    return _load_remote(tmp_path_factory, "dream")


def _bare(model_type):
    return SimpleNamespace(config=SimpleNamespace(model_type=model_type))


# ---- registry and ids ------------------------------------------------------------------------------------------
def test_registry_resolves_each_family(llada, dream):
    from transformers import BertForMaskedLM, BertLMHeadModel, RobertaConfig, RobertaForMaskedLM

    assert resolve_adapter_class(llada) is LLaDAAdapter
    assert resolve_adapter_class(dream) is DreamAdapter
    assert resolve_adapter_class(BertForMaskedLM(tiny_bert_config())) is MaskedLMAdapter
    # a BERT head that is not *ForMaskedLM still resolves through its model_type
    assert resolve_adapter_class(BertLMHeadModel(tiny_bert_config())) is MaskedLMAdapter
    roberta = RobertaForMaskedLM(
        RobertaConfig(
            vocab_size=VOCAB_SIZE, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32
        )
    )
    assert resolve_adapter_class(roberta) is RobertaMaskedLMAdapter
    for model_type in ("llada", "Dream", "bert", "roberta", "modernbert"):
        assert model_type in ADAPTER_REGISTRY


def test_default_ids_are_the_real_checkpoint_ids():
    llada = LLaDAAdapter(_bare("llada"))
    assert llada.mask_token_id() == 126336
    assert llada.eos_token_ids() == [126081, 126348]  # <|endoftext|>, <|eot_id|>
    assert llada.pad_token_id() == 126081
    dream = DreamAdapter(_bare("Dream"))
    assert dream.mask_token_id() == 151666
    assert dream.eos_token_ids() == [151643, 151645]  # <|endoftext|>, <|im_end|>
    assert dream.pad_token_id() == 151643
    assert dream.shift_logits and not llada.shift_logits
    assert MaskedLMAdapter(_bare("bert")).mask_token_id() is None  # masked LMs: from config or tokenizer only


def test_config_ids_override_defaults(llada, dream):
    for model in (llada, dream):
        adapter = get_adapter(model)
        assert adapter.mask_token_id() == MASK_ID
        assert adapter.eos_token_ids() == [EOS_ID]
    # a config naming LLaDA's <|endoftext|> still stops at the Instruct end-of-turn token
    config = SimpleNamespace(model_type="llada", eos_token_id=126081, mask_token_id=None)
    assert LLaDAAdapter(SimpleNamespace(config=config)).eos_token_ids() == [126081, 126348]
    config = SimpleNamespace(model_type="Dream", eos_token_id=[151643], mask_token_id=None)
    assert DreamAdapter(SimpleNamespace(config=config)).eos_token_ids() == [151643, 151645]


# ---- attention-mask formats ------------------------------------------------------------------------------------
def test_dream_adapter_passes_2d_mask_and_positions_only_when_padded(dream):
    adapter = get_adapter(dream)
    ids, keep = prompts()
    inputs = adapter.model_inputs(ids, keep)
    assert torch.equal(inputs["attention_mask"], keep)
    # positions counted from each row's first real token, as Dream's generation_utils computes them
    assert inputs["position_ids"].tolist() == (keep.cumsum(-1) - 1).clamp_min(0).tolist()
    assert set(adapter.model_inputs(ids, None)) == {"input_ids"}


def test_llada_adapter_passes_2d_mask_and_no_position_ids(llada):
    adapter = get_adapter(llada)
    ids, keep = prompts()
    inputs = adapter.model_inputs(ids, keep)
    assert set(inputs) == {"input_ids", "attention_mask"}
    assert torch.equal(inputs["attention_mask"], keep)


# ---- logit alignment -------------------------------------------------------------------------------------------
@torch.no_grad()
def test_dream_logits_are_shifted_back_into_place(dream):
    adapter = get_adapter(dream)
    ids, keep = prompts()
    for attention_mask in (None, keep):
        raw = dream(**adapter.model_inputs(ids, attention_mask)).logits
        aligned, _ = adapter.forward(ids, attention_mask)
        assert torch.equal(aligned, torch.cat([raw[:, :1], raw[:, :-1]], dim=1))
        # and the shift goes the right way: position i now holds the network's prediction *for* token i
        inputs = adapter.model_inputs(ids, attention_mask)
        per_position = dream.position_logits(ids, inputs.get("attention_mask"), inputs.get("position_ids"))
        assert torch.allclose(aligned[:, 1:], per_position[:, 1:], atol=1e-5)
        assert not torch.allclose(raw[:, 1:], per_position[:, 1:], atol=1e-3)


@torch.no_grad()
def test_dream_hidden_states_are_aligned_like_logits(dream):
    adapter = get_adapter(dream)
    ids, _ = prompts()
    logits, hidden = adapter.forward(ids, None, output_hidden_states=True)
    assert torch.allclose(dream.lm_head(hidden), logits, atol=1e-5)


@torch.no_grad()
def test_llada_logits_are_used_as_is(llada):
    ids, keep = prompts()
    aligned, _ = get_adapter(llada).forward(ids, keep)
    assert torch.equal(aligned, llada(ids, attention_mask=keep).logits)


# ---- left padding gives the same result per row as batch size 1 -------------------------------------------------
def _assert_rows_match_single(model, adapter=None, **kwargs):
    from hf_unmask import diffusion_generate

    ids, keep = prompts((6, 3, 4))
    settings = dict(max_new_tokens=8, block_length=4, adapter=adapter, **kwargs)
    batch = diffusion_generate(model, ids, attention_mask=keep, **settings)
    P = ids.shape[1]
    for row in range(ids.shape[0]):
        alone = diffusion_generate(model, ids[row : row + 1, keep[row].bool()], **settings)
        assert torch.equal(batch[row, P:], alone[0, -8:]), f"row {row} differs from its unpadded run"


@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_left_padded_batch_matches_single_rows_remote_families(kind, llada, dream):
    model = {"llada": llada, "dream": dream}[kind]
    _assert_rows_match_single(model)


@torch.no_grad()
@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_padding_would_matter_without_the_mask(kind, llada, dream):
    """The stand-ins really attend to pads when no mask is given, so the padded-batch test is not vacuous."""
    model = {"llada": llada, "dream": dream}[kind]
    adapter = get_adapter(model)
    ids, keep = prompts((6, 3))
    with_mask, _ = adapter.forward(ids, keep)
    without, _ = adapter.forward(ids, None)
    assert not torch.allclose(with_mask[1, -3:], without[1, -3:], atol=1e-3)


def test_left_padded_batch_matches_single_rows_bert():
    from transformers import BertForMaskedLM

    torch.manual_seed(0)
    model = BertForMaskedLM(tiny_bert_config()).eval()
    _assert_rows_match_single(model, mask_token_id=4)


def test_left_padded_batch_matches_single_rows_roberta_positions():
    from transformers import RobertaConfig, RobertaForMaskedLM

    torch.manual_seed(0)
    config = RobertaConfig(
        vocab_size=VOCAB_SIZE,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=40,
        pad_token_id=1,
        initializer_range=0.3,
    )
    model = RobertaForMaskedLM(config).eval()
    _assert_rows_match_single(model, mask_token_id=4)
    # positions start at padding_idx + 1 on the first real token, like RoBERTa's own numbering
    inputs = get_adapter(model).model_inputs(*prompts((3, 1)))
    assert inputs["position_ids"].tolist() == [[2, 3, 4], [1, 1, 2]]


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # raised inside peft
def test_peft_wrapped_model_without_position_ids_runs_padded(llada):
    """The generic adapter inspects the wrapped model's forward, not PEFT's `(*args, **kwargs)`: a model that takes
    no `position_ids` (and no **kwargs) must not receive them through a PeftModel."""
    from peft import LoraConfig, get_peft_model

    from hf_unmask.models import DiffusionAdapter

    model = get_peft_model(llada, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], init_lora_weights=False))
    try:
        assert set(get_adapter(model, DiffusionAdapter).model_inputs(*prompts())) == {"input_ids", "attention_mask"}
        _assert_rows_match_single(model, adapter=DiffusionAdapter)
    finally:
        model.unload()  # give the shared fixture its plain layers back


# ---- model inputs are built once per generate call ------------------------------------------------------------
class _CountingDreamAdapter(DreamAdapter):
    calls = 0

    def model_inputs(self, input_ids, attention_mask):
        type(self).calls += 1
        return super().model_inputs(input_ids, attention_mask)


class _CopyingDreamAdapter(_CountingDreamAdapter):
    """Hands the model a copy of the canvas: its inputs go stale after each step, so they must be rebuilt."""

    def model_inputs(self, input_ids, attention_mask):
        inputs = super().model_inputs(input_ids, attention_mask)
        return {**inputs, "input_ids": input_ids.clone()}


@pytest.mark.parametrize("adapter_cls, calls", [(_CountingDreamAdapter, 1), (_CopyingDreamAdapter, 1 + 8)])
def test_model_inputs_built_once_per_call_unless_the_adapter_copies_the_canvas(dream, adapter_cls, calls):
    """The mask and positions are built once for a padded batch (the canvas is written in place), and an adapter
    that copies input_ids gets fresh inputs at every step: both give the default adapter's tokens."""
    from hf_unmask import diffusion_generate

    ids, keep = prompts((6, 3, 4))
    settings = dict(attention_mask=keep, max_new_tokens=8, block_length=4, steps=8, strategy="top_k_confidence")
    expected = diffusion_generate(dream, ids, **settings)
    adapter_cls.calls = 0
    out = diffusion_generate(dream, ids, adapter=adapter_cls, return_dict_in_generate=True, **settings)
    assert torch.equal(out.sequences, expected)
    assert int(out.nfe.max()) == 8
    assert adapter_cls.calls == calls
