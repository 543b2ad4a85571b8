"""Native LLaDA-MoE on checkpoints laid out as the published ones (see llada_moe_layouts.py): told apart from LLaDA-1
although both say model_type "llada", loaded without remote code, forward against an independent reference
(routing included), padded batches, strict loading, refused settings, the diffusion KV cache and generation."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import torch
from hub_layouts import hub_checkpoint, read_checkpoint
from llada_moe_layouts import LLADA_MOE_CONFIG, llada_moe_checkpoint, llada_moe_weight_shapes
from llada_moe_reference import llada_moe_logits, routing

from hf_unmask import AutoDiffusionLM, LLaDAModelLM
from hf_unmask.generation import DiffusionKVCache
from hf_unmask.models import LLaDAConfig
from hf_unmask.models.llada_moe import LLaDAMoEAdapter, LLaDAMoEConfig, LLaDAMoEModelLM, is_llada_moe_config
from hf_unmask.models.native import native_model_class

GEN = dict(max_new_tokens=8, block_length=4)


def _load(folder, **kwargs):
    kwargs.setdefault("dtype", torch.float32)
    return AutoDiffusionLM.from_pretrained(folder, **kwargs)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    return llada_moe_checkpoint(tmp_path_factory, "published")


@pytest.fixture(scope="module")
def model(published):
    return _load(published)


def _prompts(lengths=(9, 4, 6), seed=0):
    """A left-padded batch of ordinary-vocabulary ids (pad 0)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    keep = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, -n:] = torch.randint(16, 150000, (n,), generator=gen)
        keep[row, -n:] = 1
    return ids, keep


def _remote_modules():
    return [name for name in sys.modules if "transformers_modules" in name or name.startswith("modeling_")]


# ---- telling LLaDA-MoE from LLaDA-1 and loading -----------------------------------------------------------------
def test_the_dispatch_rule_reads_the_fields():
    moe = dict(LLADA_MOE_CONFIG)
    assert is_llada_moe_config(moe) and native_model_class("llada", moe) is LLaDAMoEModelLM
    assert native_model_class("lladamoe") is LLaDAMoEModelLM
    assert is_llada_moe_config({"model_type": "llada", "hidden_size": 64, "num_attention_heads": 4})
    llada = {"model_type": "llada", "d_model": 4096, "n_heads": 32, "n_kv_heads": 32, "mlp_hidden_size": 12288}
    assert not is_llada_moe_config(llada)
    assert native_model_class("llada", llada) is LLaDAModelLM and native_model_class("llada") is LLaDAModelLM


@pytest.mark.parametrize("trust_remote_code", [False, True])
def test_published_layout_loads_natively_without_running_its_code(published, trust_remote_code):
    before = set(_remote_modules())
    # the folder's configuration_lladamoe.py / modeling_lladamoe.py raise on import
    model = _load(published, trust_remote_code=trust_remote_code)
    assert type(model) is LLaDAMoEModelLM and type(model.diffusion_adapter) is LLaDAMoEAdapter
    assert set(_remote_modules()) == before
    assert model.config.model_type == "lladamoe" and "auto_map" not in model.config.to_dict()
    assert not model.training and model.dtype == torch.float32
    config = model.generation_config
    assert (config.mask_token_id, config.eos_token_id, config.pad_token_id) == (156895, 156892, 156892)


def test_a_llada1_layout_still_loads_llada(tmp_path_factory):
    model = _load(hub_checkpoint(tmp_path_factory, "llada_gqa"))
    assert type(model) is LLaDAModelLM and model.config.model_type == "llada"


def test_llada_config_names_llada_moe_instead_of_crashing(published):
    from transformers import AutoConfig

    fields = json.loads((published / "config.json").read_text())
    with pytest.raises(ValueError, match="LLaDA-MoE") as err:
        LLaDAConfig(**fields)
    assert "LLaDAMoEModelLM" in str(err.value) and "AutoDiffusionLM" in str(err.value)
    with pytest.raises(ValueError, match="LLaDA-MoE"):  # transformers' own Auto class reaches LLaDAConfig
        AutoConfig.from_pretrained(published)
    assert type(LLaDAMoEConfig.from_pretrained(published)) is LLaDAMoEConfig


def test_loading_reads_every_weight(model, published):
    config, weights = read_checkpoint(published)
    state = model.state_dict()
    assert set(weights) == set(llada_moe_weight_shapes(config)) == set(state)
    assert any(name.endswith("mlp.expert_bias") for name in weights)
    for name, value in weights.items():
        assert torch.equal(state[name], value), name


# ---- forward ------------------------------------------------------------------------------------------------------
@torch.no_grad()
@pytest.mark.parametrize("kind", ["published", "variant"])
def test_forward_matches_an_independent_reference(tmp_path_factory, model, kind):
    folder = llada_moe_checkpoint(tmp_path_factory, kind)
    ours_model = model if kind == "published" else _load(folder)
    config, weights = read_checkpoint(folder)
    ids, keep = _prompts((12, 7, 10), seed=1)
    for mask in (None, keep):
        ours = ours_model(ids, attention_mask=mask).logits.double()
        theirs = llada_moe_logits(config, weights, ids, mask)
        rows = torch.ones_like(ids, dtype=torch.bool) if mask is None else keep.bool()
        assert (ours - theirs)[rows].abs().max().item() <= 1e-5
    # routing is exercised: the tokens of the last MoE layer do not all pick the same experts
    layer = config["num_hidden_layers"] - 1
    seen = []
    norm = ours_model.model.layers[layer].post_attention_layernorm
    handle = norm.register_forward_hook(lambda module, args, out: seen.append(out))
    try:
        ours_model(ids, attention_mask=keep)
    finally:
        handle.remove()
    picks = routing(config, weights, layer, seen[0])[keep.bool()]
    chosen = {tuple(row.nonzero().flatten().tolist()) for row in picks}
    assert len(chosen) > 2


@torch.no_grad()
def test_eager_attention_gives_the_same_logits(published, model):
    eager = _load(published, attn_implementation="eager")
    ids, keep = _prompts(seed=2)
    sdpa = model(ids, attention_mask=keep).logits
    assert torch.allclose(eager(ids, attention_mask=keep).logits[keep.bool()], sdpa[keep.bool()], atol=1e-5)


@torch.no_grad()
def test_a_padded_batch_gives_each_row_its_logits_alone(model):
    ids, keep = _prompts(seed=3)
    batch = model(ids, attention_mask=keep).logits
    for row in range(ids.shape[0]):
        alone = model(ids[row : row + 1, keep[row].bool()]).logits[0]
        assert (batch[row, keep[row].bool()] - alone).abs().max().item() <= 1e-5, row
    without_mask = model(ids).logits
    assert not torch.allclose(batch[1, -4:], without_mask[1, -4:], atol=1e-3)  # the mask is what hides the pads


@pytest.mark.parametrize("strategy", ["top_k_confidence", "confidence_threshold"])
def test_left_padded_generation_equals_each_row_alone(model, strategy):
    ids, keep = _prompts()
    settings = dict(GEN, strategy=strategy, return_dict_in_generate=True)
    batch = model.generate(ids, attention_mask=keep, **settings)
    prompt = ids.shape[1]
    assert not (batch.sequences[:, prompt:] == 156895).any()
    for row in range(ids.shape[0]):
        alone = model.generate(ids[row : row + 1, keep[row].bool()], **settings)
        assert torch.equal(batch.sequences[row, prompt:], alone.sequences[0, -8:]), row


# ---- the diffusion KV cache ----------------------------------------------------------------------------------------
@torch.no_grad()
def test_a_window_against_a_fresh_cache_gives_the_full_forward(model):
    gen = torch.Generator().manual_seed(4)
    ids = torch.randint(16, 150000, (3, 20), generator=gen)
    keep = torch.ones_like(ids)
    keep[0, :5] = 0
    keep[2, :2] = 0
    full = model(ids, attention_mask=keep).logits
    cache = DiffusionKVCache()
    assert torch.equal(model(ids, attention_mask=keep, cache=cache).logits, full)  # the refresh is the full forward
    for start, end in [(8, 12), (8, 20), (0, 20), (12, 16)]:
        cache.window = (start, end)
        part = model(ids[:, start:end], attention_mask=keep, cache=cache).logits
        assert (part - full[:, start:end]).abs().max().item() <= 1e-5, (start, end)


@torch.no_grad()
def test_a_window_of_the_variant_against_a_cache_gives_the_full_forward(tmp_path_factory):
    variant = _load(llada_moe_checkpoint(tmp_path_factory, "variant"))  # partial RoPE, shared expert, dense layer
    ids, keep = _prompts((16, 12), seed=5)
    full = variant(ids, attention_mask=keep).logits
    cache = DiffusionKVCache()
    variant(ids, attention_mask=keep, cache=cache)
    cache.window = (8, 12)
    part = variant(ids[:, 8:12], attention_mask=keep, cache=cache).logits
    assert (part - full[:, 8:12]).abs().max().item() <= 1e-5


@pytest.mark.parametrize("use_cache", [False, True])
def test_generate_runs_with_and_without_the_cache(model, use_cache):
    ids, keep = _prompts()
    out = model.generate(ids, attention_mask=keep, use_cache=use_cache, **GEN)
    assert out.shape == (3, ids.shape[1] + 8) and not (out[:, ids.shape[1] :] == 156895).any()
    single = model.generate(ids[:1], use_cache=use_cache, **GEN)
    assert single.shape == (1, ids.shape[1] + 8)


def test_bfloat16_load_and_generate(published, model):
    low = _load(published, dtype=None)  # "auto": the checkpoint's torch_dtype, bfloat16
    assert {p.dtype for p in low.parameters()} == {torch.bfloat16}
    ids, keep = _prompts()
    with torch.no_grad():
        logits = low(ids, attention_mask=keep).logits
        full = model(ids, attention_mask=keep).logits
    assert logits.dtype == torch.bfloat16 and (logits.float() - full)[keep.bool()].abs().max() < 0.5
    assert low.generate(ids, attention_mask=keep, **GEN).shape == (3, ids.shape[1] + 8)


def test_save_pretrained_round_trip(model, tmp_path):
    model.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert saved["model_type"] == "lladamoe" and "auto_map" not in saved
    assert set(LLADA_MOE_CONFIG) - {"auto_map", "model_type", "torch_dtype", "rope_scaling"} <= set(saved)
    reloaded = _load(tmp_path / "saved")
    assert type(reloaded) is LLaDAMoEModelLM
    ids, keep = _prompts()
    with torch.no_grad():
        assert torch.equal(reloaded(ids, attention_mask=keep).logits, model(ids, attention_mask=keep).logits)


# ---- what the native class refuses, clearly ------------------------------------------------------------------------
def _variant(published, tmp_path, **fields):
    folder = tmp_path / "variant"
    shutil.copytree(published, folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(fields)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"rope_scaling": {"type": "yarn", "factor": 4.0}}, "rope_type='yarn'"),
        ({"partial_rotary_factor": -1}, "partial_rotary_factor=-1"),
        ({"moe_layer_freq": [1]}, "moe_layer_freq=[1]"),
        ({"num_experts_per_tok": 5}, "num_experts_per_tok=5"),
        ({"hidden_act": "swish_gelu"}, "hidden_act='swish_gelu'"),
        ({"shared_expert_intermediate_size": -1}, "shared_expert_intermediate_size=-1"),
    ],
)
def test_an_unimplemented_setting_is_named(published, tmp_path, fields, named):
    folder = _variant(published, tmp_path, **fields)
    with pytest.raises(ValueError, match="does not implement") as err:
        AutoDiffusionLM.from_pretrained(folder)
    assert named in str(err.value) and "LLaDAMoEModelLM" in str(err.value)
    with pytest.raises(ValueError, match=named.replace("[", r"\[").replace("(", r"\(")):
        LLaDAMoEModelLM(LLaDAMoEConfig.from_pretrained(folder))


def test_missing_unexpected_and_misshapen_weights_are_named(published, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = _variant(published, tmp_path)
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    shard = folder / index["weight_map"]["model.layers.0.mlp.experts.1.up_proj.weight"]
    tensors = load_file(str(shard))
    del tensors["model.layers.0.mlp.experts.1.up_proj.weight"]
    tensors["model.layers.0.mlp.gate.weight"] = torch.zeros(3, 32, dtype=torch.bfloat16)
    tensors["model.layers.0.mlp.experts.9.up_proj.weight"] = torch.zeros(16, 32, dtype=torch.bfloat16)
    save_file(tensors, str(shard), metadata={"format": "pt"})
    index["weight_map"] = {k: v for k, v in index["weight_map"].items() if v != shard.name}
    index["weight_map"].update({k: shard.name for k in tensors})
    index_path.write_text(json.dumps(index))
    with pytest.raises(ValueError) as err:
        AutoDiffusionLM.from_pretrained(folder)
    message = str(err.value)
    assert "lacks these weights: model.layers.0.mlp.experts.1.up_proj.weight" in message
    assert "model.layers.0.mlp.gate.weight (checkpoint (3, 32), model (4, 32))" in message
    assert "does not use: model.layers.0.mlp.experts.9.up_proj.weight" in message


def test_cache_arguments_of_autoregressive_models_are_refused(model):
    ids, _ = _prompts()
    with pytest.raises(ValueError, match="use_cache=True is not supported"):
        model(ids, use_cache=True)
