"""Native LLaDA and Dream on checkpoints laid out as the published ones (see hub_layouts.py): loading without
remote code, forward against an independent reference, padded batches, bf16, PEFT, gradient checkpointing, and
clear errors for checkpoints the native classes do not implement."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import torch
from hub_layouts import hub_checkpoint, llada_weight_shapes, read_checkpoint
from reference_dllms import dream_logits, llada_logits

import hf_unmask
from hf_unmask import AutoDiffusionLM, DreamModel, LLaDAModelLM
from hf_unmask.models import DreamAdapter, LLaDAAdapter, load_tokenizer

FAMILIES = {
    "llada": (LLaDAModelLM, LLaDAAdapter, llada_logits),
    "llada_gqa": (LLaDAModelLM, LLaDAAdapter, llada_logits),
    "dream": (DreamModel, DreamAdapter, dream_logits),
}
GEN = dict(max_new_tokens=8, block_length=4)


def _load(tmp_path_factory, kind, **kwargs):
    kwargs.setdefault("dtype", torch.float32)
    return AutoDiffusionLM.from_pretrained(hub_checkpoint(tmp_path_factory, kind), **kwargs)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return {kind: _load(tmp_path_factory, kind) for kind in FAMILIES}


def _prompts(lengths=(9, 4, 6), seed=0):
    """A left-padded batch of ordinary-vocabulary ids (pad 0)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    keep = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, -n:] = torch.randint(16, 120000, (n,), generator=gen)
        keep[row, -n:] = 1
    return ids, keep


def _remote_modules():
    return [name for name in sys.modules if "transformers_modules" in name or name.startswith(("modeling_", "token"))]


# ---- loading --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["llada", "dream"])
@pytest.mark.parametrize("trust_remote_code", [False, True])
def test_published_layout_loads_natively_without_running_its_code(tmp_path_factory, kind, trust_remote_code):
    model_class, adapter_class, _ = FAMILIES[kind]
    before = set(_remote_modules())
    # the folder's configuration_*.py / modeling_*.py / tokenization_dream.py raise on import
    model = _load(tmp_path_factory, kind, trust_remote_code=trust_remote_code)
    assert type(model) is model_class and isinstance(model.diffusion_adapter, adapter_class)
    assert set(_remote_modules()) == before
    assert not model.training and model.dtype == torch.float32
    config = model.generation_config
    if kind == "llada":
        assert (config.mask_token_id, config.eos_token_id, config.pad_token_id) == (126336, [126081, 126348], 126081)
    else:
        assert (config.mask_token_id, config.eos_token_id, config.pad_token_id) == (151666, [151643, 151645], 151643)


@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_transformers_auto_classes_resolve_the_native_classes(tmp_path_factory, kind):
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

    folder = hub_checkpoint(tmp_path_factory, kind)
    model_class = FAMILIES[kind][0]
    assert type(AutoConfig.from_pretrained(folder)) is model_class.config_class
    assert type(AutoModel.from_pretrained(folder)) is model_class
    assert type(AutoModelForMaskedLM.from_pretrained(folder)) is model_class
    # a registered class wins over the checkpoint's auto_map even with trust_remote_code=True (the folder's
    # modeling files raise on import)
    assert type(AutoModel.from_pretrained(folder, trust_remote_code=True)) is model_class


def test_loading_reads_every_shard(tmp_path_factory):
    model = _load(tmp_path_factory, "llada")
    config, weights = read_checkpoint(hub_checkpoint(tmp_path_factory, "llada"))
    state = model.state_dict()
    assert set(weights) == set(llada_weight_shapes(config)) == set(state)
    for name, value in weights.items():
        assert torch.equal(state[name], value), name


def test_tokenizers_keep_the_published_special_ids(tmp_path_factory):
    llada = load_tokenizer(hub_checkpoint(tmp_path_factory, "llada"))
    assert (llada.bos_token_id, llada.eos_token_id) == (126080, 126081)
    assert llada.convert_tokens_to_ids(["<|mdm_mask|>", "<|eot_id|>"]) == [126336, 126348]
    chat = llada.apply_chat_template(
        [{"role": "user", "content": "the cat"}], add_generation_prompt=True, return_dict=True
    )
    ids = chat["input_ids"]
    assert ids[:2] == [126080, 126346] and 126348 in ids and ids[-1] == 126347  # ... <|end_header_id|>
    dream = load_tokenizer(hub_checkpoint(tmp_path_factory, "dream"))  # the remote DreamTokenizer is not run
    assert type(dream).__name__ == "Qwen2Tokenizer"
    assert (dream.mask_token_id, dream.eos_token_id, dream.pad_token_id, dream.bos_token_id) == (
        151666,
        151643,
        151643,
        151665,
    )
    text = dream.apply_chat_template([{"role": "user", "content": "the"}], add_generation_prompt=True, tokenize=False)
    assert text.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>")
    assert dream.decode(dream("the cat").input_ids) == "the cat"


# ---- forward ----------------------------------------------------------------------------------------------------
@torch.no_grad()
@pytest.mark.parametrize("kind", list(FAMILIES))
def test_forward_matches_an_independent_reference(tmp_path_factory, models, kind):
    config, weights = read_checkpoint(hub_checkpoint(tmp_path_factory, kind))
    reference = FAMILIES[kind][2]
    ids, keep = _prompts((12, 7, 10), seed=1)
    for mask in (None, keep):
        ours = models[kind](ids, attention_mask=mask).logits.double()
        theirs = reference(config, weights, ids, mask)
        rows = torch.ones_like(ids, dtype=torch.bool) if mask is None else keep.bool()
        assert (ours - theirs)[rows].abs().max().item() <= 1e-5


@torch.no_grad()
@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_eager_attention_gives_the_same_logits(tmp_path_factory, models, kind):
    eager = _load(tmp_path_factory, kind, attn_implementation="eager")
    ids, keep = _prompts(seed=2)
    sdpa = models[kind](ids, attention_mask=keep).logits
    assert torch.allclose(eager(ids, attention_mask=keep).logits[keep.bool()], sdpa[keep.bool()], atol=1e-5)


@torch.no_grad()
def test_dream_takes_the_4d_mask_its_own_generation_code_builds(models):
    dream = models["dream"]
    ids, keep = _prompts(seed=3)
    positions = (keep.cumsum(-1) - 1).masked_fill(keep == 0, 1)
    mask_4d = keep.bool()[:, None, None, :] & keep.bool()[:, None, :, None]
    expected = dream(ids, attention_mask=keep).logits
    got = dream(ids, mask_4d, positions).logits  # positional, as Dream's generation_utils calls it
    assert torch.allclose(got[keep.bool()], expected[keep.bool()], atol=1e-5)
    assert torch.equal(dream(ids, attention_mask="full").logits, dream(ids).logits)


@torch.no_grad()
def test_dream_logits_are_shifted_by_the_adapter(models):
    dream = models["dream"]
    ids, keep = _prompts(seed=4)
    raw = dream(ids, attention_mask=keep).logits
    aligned, hidden = dream.diffusion_adapter.forward(ids, keep, output_hidden_states=True)
    assert torch.equal(aligned, torch.cat([raw[:, :1], raw[:, :-1]], dim=1))
    assert torch.allclose(dream.lm_head(hidden), aligned, atol=1e-5)


# ---- generation -------------------------------------------------------------------------------------------------
def test_adapters_pass_positions_counted_from_the_first_real_token(models):
    ids, keep = _prompts()
    for kind in ("llada", "dream"):
        inputs = models[kind].diffusion_adapter.model_inputs(ids, keep)
        assert torch.equal(inputs["position_ids"], (keep.cumsum(-1) - 1).clamp_min(0)), kind
        assert torch.equal(inputs["attention_mask"], keep)


@pytest.mark.parametrize("kind", ["llada", "dream"])
@pytest.mark.parametrize("strategy", ["top_k_confidence", "confidence_threshold"])
def test_left_padded_batch_equals_each_row_alone(models, kind, strategy):
    model = models[kind]
    ids, keep = _prompts()
    settings = dict(GEN, strategy=strategy, return_dict_in_generate=True)
    batch = model.generate(ids, attention_mask=keep, **settings)
    prompt = ids.shape[1]
    mask_id = model.generation_config.mask_token_id
    assert not (batch.sequences[:, prompt:] == mask_id).any()
    for row in range(ids.shape[0]):
        alone = model.generate(ids[row : row + 1, keep[row].bool()], **settings)
        assert torch.equal(batch.sequences[row, prompt:], alone.sequences[0, -8:]), f"{kind} row {row}"
        assert int(batch.nfe[row]) == int(alone.nfe[0])


@torch.no_grad()
@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_padding_changes_the_logits_without_the_mask(models, kind):
    """The padded-batch test is not vacuous: the model attends to pads unless the mask hides them."""
    model = models[kind]
    ids, keep = _prompts()
    with_mask, _ = model.diffusion_adapter.forward(ids, keep)
    without, _ = model.diffusion_adapter.forward(ids, None)
    assert not torch.allclose(with_mask[1, -4:], without[1, -4:], atol=1e-3)


@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_bfloat16_load_and_generate(tmp_path_factory, models, kind):
    model = _load(tmp_path_factory, kind, dtype=None)  # "auto": the checkpoint's torch_dtype, bfloat16
    assert model.dtype == torch.bfloat16
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    ids, keep = _prompts()
    with torch.no_grad():
        low, _ = model.diffusion_adapter.forward(ids, keep)
        full, _ = models[kind].diffusion_adapter.forward(ids, keep)
    assert low.dtype == torch.bfloat16
    assert (low.float() - full)[keep.bool()].abs().max() < 0.25
    out = model.generate(ids, attention_mask=keep, **GEN)
    assert out.shape == (3, ids.shape[1] + 8)


def test_device_map_load(tmp_path_factory):
    model = _load(tmp_path_factory, "dream", device_map="cpu")
    assert model.device.type == "cpu"
    assert model.generate(_prompts()[0][:1], **GEN).shape == (1, 9 + 8)


@pytest.mark.filterwarnings("ignore:`(is_)?gradient_checkpointing.*` is deprecated:FutureWarning")  # transformers 5.24
@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_gradient_checkpointing_gives_the_same_gradients(tmp_path_factory, kind):
    ids, _ = _prompts((8,), seed=5)
    labels = ids.clone()
    grads = []
    for checkpointing in (False, True):
        model = _load(tmp_path_factory, kind)
        model.train()
        if checkpointing:
            model.gradient_checkpointing_enable()
            assert model.is_gradient_checkpointing
        model(ids, labels=labels).loss.backward()
        grads.append(model.get_input_embeddings().weight.grad[ids[0]].clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6) and grads[0].abs().sum() > 0


# ---- PEFT -------------------------------------------------------------------------------------------------------
LORA_TARGETS = {
    "llada": ["q_proj", "k_proj", "v_proj", "attn_out", "ff_proj", "up_proj", "ff_out"],
    "dream": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}


@pytest.mark.filterwarnings("ignore:`is_gradient_checkpointing` is deprecated:FutureWarning")  # raised inside peft
@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_lora_adapter_saved_and_reloaded_gives_identical_outputs(tmp_path_factory, tmp_path, kind):
    from peft import LoraConfig, PeftModel, get_peft_model

    torch.manual_seed(0)
    base = _load(tmp_path_factory, kind)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=LORA_TARGETS[kind], init_lora_weights=False)
    tuned = get_peft_model(base, config).eval()
    tuned.save_pretrained(tmp_path / "lora")
    reloaded = _load(tmp_path_factory, kind, peft_adapter=tmp_path / "lora")
    assert isinstance(reloaded, PeftModel)
    ids, keep = _prompts()
    with torch.no_grad():
        expected = tuned(input_ids=ids, attention_mask=keep).logits
        plain = _load(tmp_path_factory, kind)(ids, attention_mask=keep).logits
        got, _ = reloaded.diffusion_adapter.forward(ids, keep)
    assert torch.equal(reloaded.diffusion_adapter.align_logits(expected), got)
    assert not torch.allclose(expected, plain, atol=1e-3)  # the LoRA layers really run
    out = reloaded.generate(**{"input_ids": ids, "attention_mask": keep}, **GEN)  # as **tokenizer(...) passes it
    assert out.shape == (3, ids.shape[1] + 8)


# ---- saving -----------------------------------------------------------------------------------------------------
def test_save_pretrained_keeps_the_published_names(tmp_path_factory, tmp_path, models):
    models["llada"].save_pretrained(tmp_path / "saved")
    published, _ = read_checkpoint(hub_checkpoint(tmp_path_factory, "llada"))
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert set(published) - {"auto_map", "torch_dtype"} <= set(saved) and "auto_map" not in saved
    reloaded = AutoDiffusionLM.from_pretrained(tmp_path / "saved")
    assert set(reloaded.state_dict()) == set(models["llada"].state_dict())
    ids, _ = _prompts()
    assert torch.equal(reloaded.generate(ids[:1], **GEN), models["llada"].generate(ids[:1], **GEN))


# ---- what the native classes refuse, clearly -------------------------------------------------------------------
def _variant(tmp_path_factory, tmp_path, kind, **fields):
    folder = tmp_path / kind
    shutil.copytree(hub_checkpoint(tmp_path_factory, kind), folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(fields)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(
    ("kind", "fields", "named"),
    [
        ("llada", {"block_type": "sequential"}, "block_type='sequential'"),
        ("llada", {"alibi": True}, "alibi=True"),
        ("llada", {"rope": False}, "rope=False"),
        ("llada", {"activation_type": "swiglu"}, "activation_type='swiglu'"),
        ("dream", {"use_sliding_window": True}, "use_sliding_window=True"),
        ("dream", {"rope_scaling": {"type": "yarn", "factor": 4.0}}, "rope_type='yarn'"),
    ],
)
def test_an_unimplemented_variant_is_named(tmp_path_factory, tmp_path, kind, fields, named):
    folder = _variant(tmp_path_factory, tmp_path, kind, **fields)
    with pytest.raises(ValueError, match="does not implement") as err:
        AutoDiffusionLM.from_pretrained(folder)
    assert named in str(err.value) and "trust_remote_code=True" in str(err.value)
    # with trust_remote_code the checkpoint's own code is tried; here it fails on import, and the error says so
    with pytest.raises(RuntimeError, match="modeling code it ships") as err:
        AutoDiffusionLM.from_pretrained(folder, trust_remote_code=True)
    assert named in str(err.value) and "native" in str(err.value)


def _rewrite_shard(folder, edit):
    from safetensors.torch import load_file, save_file

    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    shard = folder / "model-00001-of-00002.safetensors"
    tensors = load_file(str(shard))
    edit(tensors)
    save_file(tensors, str(shard), metadata={"format": "pt"})
    index["weight_map"] = {k: v for k, v in index["weight_map"].items() if v != shard.name}
    index["weight_map"].update({k: shard.name for k in tensors})
    index_path.write_text(json.dumps(index))


def test_missing_unexpected_and_misshapen_weights_are_named(tmp_path_factory, tmp_path):
    folder = _variant(tmp_path_factory, tmp_path, "llada")

    def edit(tensors):
        del tensors["model.transformer.blocks.0.q_proj.weight"]
        tensors["model.transformer.blocks.0.k_proj.weight"] = torch.zeros(3, 3, dtype=torch.bfloat16)
        tensors["model.transformer.blocks.0.attn_bias"] = torch.zeros(2, dtype=torch.bfloat16)

    _rewrite_shard(folder, edit)
    with pytest.raises(ValueError) as err:
        AutoDiffusionLM.from_pretrained(folder)
    message = str(err.value)
    assert "lacks these weights: model.transformer.blocks.0.q_proj.weight" in message
    assert "model.transformer.blocks.0.k_proj.weight (checkpoint (3, 3), model (32, 32))" in message
    assert "does not use: model.transformer.blocks.0.attn_bias" in message


def test_a_shard_listed_in_the_index_but_absent_is_an_error(tmp_path_factory, tmp_path):
    folder = _variant(tmp_path_factory, tmp_path, "dream")
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(OSError, match="model-00002-of-00002.safetensors"):
        AutoDiffusionLM.from_pretrained(folder)


def test_cache_arguments_are_refused(models):
    ids, _ = _prompts()
    with pytest.raises(ValueError, match="use_cache=True is not supported"):
        models["llada"](ids, use_cache=True)
    with pytest.raises(ValueError, match="past_key_values= is not supported"):
        models["dream"](ids, past_key_values=object())


def test_native_classes_are_exported():
    assert hf_unmask.LLaDAModelLM is LLaDAModelLM and hf_unmask.DreamModel is DreamModel
    from hf_unmask.models.native import native_model_class

    assert native_model_class("llada") is LLaDAModelLM and native_model_class("Dream") is DreamModel


# ---- the command line and the real-weights benchmark, on the published layouts ---------------------------------
def _gsm8k_file(folder):
    rows = [
        {"question": "what is two plus three ?", "answer": "two plus three is five\n#### 5"},
        {"question": "the cat sat on the mat .", "answer": "#### 3"},
    ]
    path = folder / "gsm8k_test.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_evaluate_cli_applies_the_published_chat_template(tmp_path_factory, tmp_path, kind):
    from hf_unmask.cli import main

    folder = hub_checkpoint(tmp_path_factory, kind)
    args = ["evaluate", "--model", str(folder), "--dataset", str(_gsm8k_file(tmp_path)), "--prompt-column"]
    args += ["question", "--reference-column", "answer", "--chat-template", "--max-new-tokens", "8"]
    args += ["--block-length", "4", "--strategy", "confidence_threshold:0.9", "--n-examples", "2", "--device", "cpu"]
    args += ["--dtype", "float32", "--save-completions", "--no-progress", "--output-dir", str(tmp_path / "out")]
    assert main(args) == 0
    rows = json.loads((tmp_path / "out" / "evaluation.json").read_text())["rows"]
    assert len(rows) == 1 and rows[0]["n_examples"] == 2
    # what the model was given: the template around the question
    from hf_unmask.evaluation.model_io import tokenize_batches

    _, ids, _ = tokenize_batches(load_tokenizer(folder), ["the cat"], 2, chat_template=True)[0]
    expected_start = {"llada": [126080, 126346], "dream": [151644]}[
        kind
    ]  # <|startoftext|><|start_header_id|>, <|im_start|>
    assert ids[0, : len(expected_start)].tolist() == expected_start


def test_real_checkpoint_check_runs_up_to_the_gpu_boundary(tmp_path_factory, tmp_path, capsys):
    from benchmarks import real_checkpoint_check as script

    folder = hub_checkpoint(tmp_path_factory, "llada")
    script.main(["--model", str(folder), "--dataset", str(_gsm8k_file(tmp_path)), "--n", "2", "--max-new-tokens", "8"]
                + ["--block-length", "4", "--dtype", "float32", "--device", "cpu"])  # fmt: skip
    out = capsys.readouterr().out
    assert "model: LLaDAModelLM (llada)" in out and "mask 126336, EOS [126081, 126348]" in out
    assert "finite logits: 100.0%" in out
    assert "GSM8K, 2 questions, L = 8, BL = 4" in out
    assert "top_k_confidence" in out and "confidence_threshold" in out
