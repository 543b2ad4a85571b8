"""`AutoDiffusionLM.from_pretrained` on remote-code stand-ins and masked LMs, `enable_diffusion_generate` on loaded
models, PEFT. (The published LLaDA / Dream layouts with the native classes: test_native_dllms.py.)"""

from __future__ import annotations

import json
import logging

import pytest
import torch
from standins import EOS_ID, MASK_ID, build_bert, load_remote, one_torch_thread, prompts, standin

from hf_unmask import AutoDiffusionLM, diffusion_generate, enable_diffusion_generate
from hf_unmask.models import DreamAdapter, LLaDAAdapter, MaskedLMAdapter

GEN = dict(max_new_tokens=8, block_length=4)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    yield from one_torch_thread()


def _check_generation(model, kind):
    ids, keep = prompts()
    out = model.generate(ids, attention_mask=keep, **GEN)
    assert out.shape == (2, ids.shape[1] + 8)
    assert torch.equal(out[:, : ids.shape[1]], ids)
    assert not (out[:, ids.shape[1] :] == model.generation_config.mask_token_id).any()
    # the bound generate is diffusion_generate on that model with its adapter
    assert torch.equal(out, diffusion_generate(model, ids, attention_mask=keep, **GEN))
    return out


@pytest.mark.parametrize(
    ("kind", "adapter_cls", "class_name"),
    [("llada", LLaDAAdapter, "LLaDAModelLM"), ("dream", DreamAdapter, "DreamModel")],
)
def test_a_variant_the_native_classes_refuse_runs_its_own_code(tmp_path_factory, kind, adapter_cls, class_name):
    """The stand-ins ask for settings the native classes do not implement: with trust_remote_code=True their own
    modeling code runs, served by the family's adapter."""
    model = AutoDiffusionLM.from_pretrained(standin(tmp_path_factory, kind), trust_remote_code=True)
    assert type(model).__name__ == class_name  # the class the checkpoint's auto_map names...
    assert not type(model).__module__.startswith("hf_unmask")  # ...from the checkpoint folder, not the native one
    assert isinstance(model.diffusion_adapter, adapter_cls)
    assert not model.training
    assert model.generation_config.mask_token_id == MASK_ID
    assert model.generation_config.eos_token_id == EOS_ID
    _check_generation(model, kind)


def test_remote_code_needs_trust_remote_code(tmp_path_factory):
    with pytest.raises(ValueError, match="block_type='sequential'.*trust_remote_code=True"):
        AutoDiffusionLM.from_pretrained(standin(tmp_path_factory, "llada"))


def test_masked_lm_mask_id_comes_from_the_tokenizer(tmp_path_factory):
    folder = standin(tmp_path_factory, "bert")
    model = AutoDiffusionLM.from_pretrained(folder)
    assert type(model).__name__ == "BertForMaskedLM"
    assert isinstance(model.diffusion_adapter, MaskedLMAdapter)
    assert model.generation_config.mask_token_id == 4  # [MASK] in the saved tokenizer; BertConfig names none
    _check_generation(model, "bert")
    override = AutoDiffusionLM.from_pretrained(folder, mask_token_id=7)
    assert override.generation_config.mask_token_id == 7


def test_no_mask_id_known_is_a_clear_error(tmp_path, caplog):
    folder = build_bert(tmp_path / "bert_no_tokenizer", with_tokenizer=False)
    with caplog.at_level(logging.WARNING, logger="hf_unmask.models.auto"):
        model = AutoDiffusionLM.from_pretrained(folder)
    assert "No mask token id is known" in caplog.text
    ids, _ = prompts()
    with pytest.raises(ValueError, match="No mask token id is known"):
        model.generate(ids, **GEN)
    assert model.generate(ids, mask_token_id=4, **GEN).shape == (2, ids.shape[1] + 8)


def test_unknown_model_type_lists_supported_types(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    with pytest.raises(ValueError, match="gpt2") as err:
        AutoDiffusionLM.from_pretrained(tmp_path)
    message = str(err.value)
    for expected in ("llada", "Dream", "bert", "register_adapter", "DiffusionAdapter"):
        assert expected in message


def test_unknown_already_loaded_model_lists_supported_types():
    from transformers import GPT2Config, GPT2LMHeadModel

    model = GPT2LMHeadModel(GPT2Config(vocab_size=16, n_embd=8, n_layer=1, n_head=2))
    with pytest.raises(ValueError, match="Supported model types: .*llada"):
        enable_diffusion_generate(model, mask_token_id=3)


def test_auto_diffusion_lm_is_not_instantiated():
    with pytest.raises(OSError, match="from_pretrained"):
        AutoDiffusionLM()


def test_enable_diffusion_generate_on_an_already_loaded_model(tmp_path_factory):
    folder = standin(tmp_path_factory, "dream")
    plain = enable_diffusion_generate(load_remote(folder))
    assert isinstance(plain.diffusion_adapter, DreamAdapter)
    loaded = AutoDiffusionLM.from_pretrained(folder, trust_remote_code=True)
    ids, keep = prompts()
    assert torch.equal(
        plain.generate(ids, attention_mask=keep, **GEN), loaded.generate(ids, attention_mask=keep, **GEN)
    )


# ---- PEFT --------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def lora_folder(tmp_path_factory):
    """A LoRA adapter for the LLaDA stand-in with non-zero B (so it changes the outputs), saved like a Hub repo."""
    from peft import LoraConfig, get_peft_model

    base = load_remote(standin(tmp_path_factory, "llada"))
    torch.manual_seed(0)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    folder = tmp_path_factory.mktemp("llada_lora")
    get_peft_model(base, config).save_pretrained(folder)
    return folder


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # raised inside peft
def test_peft_adapter_is_loaded_on_top(tmp_path_factory, lora_folder):
    from peft import PeftModel

    folder = standin(tmp_path_factory, "llada")
    base = AutoDiffusionLM.from_pretrained(folder, trust_remote_code=True)
    tuned = AutoDiffusionLM.from_pretrained(folder, trust_remote_code=True, peft_adapter=lora_folder)
    assert isinstance(tuned, PeftModel)
    assert isinstance(tuned.diffusion_adapter, LLaDAAdapter)
    assert tuned.get_base_model().generation_config.mask_token_id == MASK_ID
    ids, keep = prompts()
    base_logits, _ = base.diffusion_adapter.forward(ids, keep)
    tuned_logits, _ = tuned.diffusion_adapter.forward(ids, keep)
    assert not torch.allclose(base_logits, tuned_logits, atol=1e-3)  # LoRA really runs
    out = _check_generation(tuned, "llada")
    assert out.shape == (2, ids.shape[1] + 8)


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # raised inside peft
def test_enable_diffusion_generate_on_a_peft_model(tmp_path_factory, lora_folder):
    from peft import PeftModel

    folder = standin(tmp_path_factory, "llada")
    wrapped = PeftModel.from_pretrained(load_remote(folder), lora_folder).eval()
    wrapped = enable_diffusion_generate(wrapped)
    assert isinstance(wrapped.diffusion_adapter, LLaDAAdapter)
    loaded = AutoDiffusionLM.from_pretrained(folder, trust_remote_code=True, peft_adapter=lora_folder)
    ids, keep = prompts()
    assert torch.equal(
        wrapped.generate(ids, attention_mask=keep, **GEN), loaded.generate(ids, attention_mask=keep, **GEN)
    )


def test_the_old_name_of_the_built_in_models_folder_still_works():
    from hf_unmask.models.tiny import builtin

    with pytest.warns(FutureWarning, match="PRETRAINED_DIR is deprecated.*BUILTIN_MODEL_DIR") as caught:
        folder = builtin.PRETRAINED_DIR
    assert folder == builtin.BUILTIN_MODEL_DIR and (folder / "tiny-dllm" / "config.json").is_file()
    assert caught[0].filename == __file__
