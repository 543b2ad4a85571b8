"""`hf_unmask.models.load_dllm`, the one dLLM loader behind the CLI, the demo, evaluation and the GRPO trainer:
every way in (built-in alias, saved tiny-model folder, a local BERT folder with its tokenizer, PEFT on top, dtype,
device) and its errors."""

from __future__ import annotations

import pytest
import torch
from standins import build_bert

import hf_unmask
from hf_unmask.evaluation import load_model_and_tokenizer
from hf_unmask.models import load_dllm

PROMPT = "trace : 3 | +4 *3 +1 *7 +2 *9 +3 +1 *3 +4 +2 | run 6"
GEN = dict(max_new_tokens=16, block_length=8)


def _generate(model, tokenizer, prompt=PROMPT, **kwargs):
    ids = tokenizer(prompt, return_tensors="pt").input_ids
    return model.generate(ids, **{**GEN, **kwargs})


@pytest.fixture(scope="module")
def builtin():
    return hf_unmask.load_builtin_model("tiny-dllm")


@pytest.fixture(scope="module")
def bert_folder(tmp_path_factory):
    return build_bert(tmp_path_factory.mktemp("bert"))


@pytest.fixture(scope="module")
def tiny_lora(builtin, tmp_path_factory):
    """A LoRA adapter for the built-in dLLM with non-zero B, so it changes the outputs."""
    from peft import LoraConfig, get_peft_model

    model, _ = hf_unmask.load_builtin_model("tiny-dllm")  # get_peft_model changes its base in place
    with torch.random.fork_rng():
        torch.manual_seed(0)
        lora = get_peft_model(model, LoraConfig(r=2, target_modules=["qkv"], init_lora_weights=False))
    folder = tmp_path_factory.mktemp("tiny_lora")
    lora.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("alias", ["builtin", None, "builtin:tiny-dllm"])
def test_builtin_aliases_load_the_shipped_model(builtin, alias):
    model, tokenizer = load_dllm(alias)
    reference, _ = builtin
    assert isinstance(model, hf_unmask.TinyDLLMForMaskedDiffusion) and not model.training
    assert tokenizer.mask_token == "[MASK]"
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), reference.state_dict().values()))


def test_another_shipped_model_by_name():
    model, _ = load_dllm("builtin:tiny-dllm-small")
    default, _ = load_dllm("builtin")
    assert sum(p.numel() for p in model.parameters()) < sum(p.numel() for p in default.parameters())


def test_a_saved_tiny_model_folder_generates_like_the_builtin(builtin, tmp_path):
    reference, reference_tokenizer = builtin
    reference.save_pretrained(tmp_path)
    reference_tokenizer.save_pretrained(tmp_path)
    model, tokenizer = load_dllm(str(tmp_path))
    assert type(model) is type(reference) and not model.training
    assert torch.equal(_generate(model, tokenizer), _generate(reference, reference_tokenizer))


def test_a_bert_folder_gets_its_tokenizer_and_a_diffusion_generate(bert_folder):
    model, tokenizer = load_dllm(str(bert_folder))
    assert type(tokenizer).__name__.startswith("BertTokenizer") and tokenizer.mask_token_id == 4
    assert model.generation_config.mask_token_id == 4  # the mask id comes from the tokenizer
    ids = tokenizer("a b c", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=4)
    assert out.shape == (1, ids.shape[1] + 4) and not (out == 4).any()


def test_a_tokenizer_given_by_folder_or_object_is_used(builtin, bert_folder, tmp_path):
    _, builtin_tokenizer = builtin
    builtin_tokenizer.save_pretrained(tmp_path)
    _, tokenizer = load_dllm("builtin", tokenizer=str(tmp_path))
    assert tokenizer.get_vocab() == builtin_tokenizer.get_vocab() and tokenizer is not builtin_tokenizer
    _, same = load_dllm(str(bert_folder), tokenizer=builtin_tokenizer)
    assert same is builtin_tokenizer


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # raised inside peft
def test_a_peft_adapter_goes_on_top(builtin, tiny_lora):
    from peft import PeftModel

    reference, tokenizer = builtin
    tuned, _ = load_dllm("builtin", peft_adapter=str(tiny_lora))
    assert isinstance(tuned, PeftModel) and not tuned.training
    ids = tokenizer(PROMPT, return_tensors="pt").input_ids
    with torch.no_grad():
        assert not torch.allclose(tuned(ids).logits, reference(ids).logits, atol=1e-3)  # the LoRA really runs
    assert _generate(tuned, tokenizer).shape == _generate(reference, tokenizer).shape


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # raised inside peft
def test_a_peft_adapter_on_a_folder_goes_through_auto_diffusion_lm(builtin, tiny_lora, tmp_path):
    from peft import PeftModel

    reference, tokenizer = builtin
    reference.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    from_folder, _ = load_dllm(str(tmp_path), peft_adapter=str(tiny_lora))
    from_alias, _ = load_dllm("builtin", peft_adapter=str(tiny_lora))
    assert isinstance(from_folder, PeftModel)
    assert torch.equal(_generate(from_folder, tokenizer), _generate(from_alias, tokenizer))


@pytest.mark.parametrize(
    "dtype, expected",
    [("bfloat16", torch.bfloat16), (torch.float16, torch.float16), ("auto", torch.float32), (None, torch.float32)],
)
def test_dtype(dtype, expected, bert_folder):
    model, _ = load_dllm("builtin", dtype=dtype)
    assert {p.dtype for p in model.parameters()} == {expected}
    bert, _ = load_dllm(str(bert_folder), dtype=dtype)
    assert {p.dtype for p in bert.parameters()} == {expected}


def test_device():
    model, _ = load_dllm("builtin", device="cpu")
    assert next(model.parameters()).device.type == "cpu"
    auto, _ = load_dllm("builtin", device="auto")
    assert next(auto.parameters()).device.type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_errors_are_clear(bert_folder, tmp_path):
    with pytest.raises(hf_unmask.LocalFolderNotFoundError, match=r"No model folder './no/such/model'.*'builtin'"):
        load_dllm("./no/such/model")
    with pytest.raises(ValueError, match="Unknown dtype 'float13'. Use float32, bfloat16, float16 or auto"):
        load_dllm("builtin", dtype="float13")
    (tmp_path / "config.json").write_text((bert_folder / "config.json").read_text())  # no weights
    with pytest.raises(ValueError, match=f"Could not load a dLLM from '{tmp_path}'"):
        load_dllm(str(tmp_path))
    with pytest.raises(ValueError, match="Could not load a tokenizer from './no/such/tokenizer'"):
        load_dllm("builtin", tokenizer="./no/such/tokenizer")
    with pytest.raises(TypeError):  # options are keywords: no positional order to get wrong
        load_dllm("builtin", "bfloat16")


def test_evaluation_and_trainer_loaders_delegate_to_it(tmp_path, builtin):
    _, builtin_tokenizer = builtin
    builtin_tokenizer.save_pretrained(tmp_path)
    model, tokenizer = load_model_and_tokenizer("builtin", str(tmp_path), dtype="bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16 and tokenizer.get_vocab() == builtin_tokenizer.get_vocab()
    from types import SimpleNamespace

    from hf_unmask.trainer.setup import load_dllm as trainer_load_dllm
    from hf_unmask.trainer.setup import load_environment_dllm

    args = SimpleNamespace(dllm_dtype="bfloat16", dllm_peft_adapter=None, trust_remote_code=False)
    model, _ = load_environment_dllm("builtin", args)
    assert next(model.parameters()).dtype == torch.bfloat16 and not model.training
    with pytest.warns(FutureWarning, match="hf_unmask.models.load_dllm") as caught:
        model, _ = trainer_load_dllm("builtin", "bfloat16")  # the deprecated name, positional as it was
    assert caught[0].filename == __file__
    assert next(model.parameters()).dtype == torch.bfloat16 and not model.training
