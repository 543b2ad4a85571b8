"""Native LLaDA2.x (`llada2_moe`) on a checkpoint laid out as the published ones (see llada2_layouts.py): loading
without remote code, the forward against an independent reference (block-causal attention, partial RoPE, QK norm,
group-limited expert routing with the selection bias), padded batches, the published generate's 4-D mask, the
diffusion cache, and clear errors for checkpoints the native class does not implement."""

from __future__ import annotations

import json
import logging
import shutil
import sys

import pytest
import torch
from hub_layouts import read_checkpoint
from llada2_layouts import LLADA2_CONFIG, llada2_checkpoint, llada2_weight_shapes
from llada2_reference import llada2_logits, route

from hf_unmask import AutoDiffusionLM, DiffusionKVCache
from hf_unmask.models.llada2 import (
    LLADA2_TRAINED_BLOCK_LENGTH,
    LLaDA2Adapter,
    LLaDA2MoeConfig,
    LLaDA2MoeModelLM,
)

TOL = 1e-5


def _load(tmp_path_factory, **kwargs):
    kwargs.setdefault("dtype", torch.float32)
    return AutoDiffusionLM.from_pretrained(llada2_checkpoint(tmp_path_factory), **kwargs)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return _load(tmp_path_factory)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return read_checkpoint(llada2_checkpoint(tmp_path_factory))


def _prompts(lengths=(40, 29, 35), seed=0):
    """A left-padded batch of ordinary-vocabulary ids (pad 0) and its 2-D mask."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    keep = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, -n:] = torch.randint(16, 150000, (n,), generator=gen)
        keep[row, -n:] = 1
    return ids, keep


def _max_gap(ours, theirs, rows):
    return (ours.double() - theirs)[rows].abs().max().item()


# ---- loading --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("trust_remote_code", [False, True])
def test_published_layout_loads_natively_without_running_its_code(tmp_path_factory, caplog, trust_remote_code):
    before = {name for name in sys.modules if "transformers_modules" in name}
    with caplog.at_level(logging.INFO, logger="hf_unmask.models.auto"):
        loaded = _load(tmp_path_factory, trust_remote_code=trust_remote_code)  # the folder's *.py raise on import
    assert type(loaded) is LLaDA2MoeModelLM and isinstance(loaded.diffusion_adapter, LLaDA2Adapter)
    assert {name for name in sys.modules if "transformers_modules" in name} == before
    assert not loaded.training and loaded.dtype == torch.float32
    config = loaded.generation_config
    assert (config.mask_token_id, config.pad_token_id) == (156895, 156892)
    assert loaded.diffusion_adapter.eos_token_ids() == [156892]
    noted = "modeling code it ships is not run" in caplog.text
    assert noted == trust_remote_code
    adapter = loaded.diffusion_adapter
    assert adapter.block_causal and adapter.trained_block_length == LLADA2_TRAINED_BLOCK_LENGTH == 32


def test_loading_reads_every_shard_and_keeps_the_published_names(model, checkpoint):
    config, weights = checkpoint
    state = model.state_dict()
    assert set(weights) == set(llada2_weight_shapes(config)) == set(state)
    for name, value in weights.items():
        assert torch.equal(state[name], value), name


def test_transformers_auto_classes_resolve_the_native_class(tmp_path_factory):
    from transformers import AutoConfig, AutoModel, AutoModelForMaskedLM

    folder = llada2_checkpoint(tmp_path_factory)
    assert type(AutoConfig.from_pretrained(folder)) is LLaDA2MoeConfig
    assert type(AutoModel.from_pretrained(folder)) is LLaDA2MoeModelLM
    assert type(AutoModelForMaskedLM.from_pretrained(folder, trust_remote_code=True)) is LLaDA2MoeModelLM


def test_the_published_config_reads_as_published():
    config = LLaDA2MoeConfig(**LLADA2_CONFIG)
    assert config.unsupported_fields() == []
    assert (config.head_dim, config.rotary_dimension(), config.num_key_value_heads) == (128, 64, 4)
    assert (config.mask_token_id, config.pad_token_id, config.vocab_size) == (156895, 156892, 157184)
    assert config.rope_parameters["rope_theta"] == 600000 and config.rope_parameters["rope_type"] == "default"
    assert [config.is_moe_layer(i) for i in (0, 1, 19)] == [False, True, True]
    saved = config.to_dict()
    assert "auto_map" not in saved and saved["routed_scaling_factor"] == 2.5 and saved["n_group"] == 8
    assert LLaDA2MoeConfig(num_attention_heads=16, num_key_value_heads=0).num_key_value_heads == 16  # 2.1's reading


# ---- forward ----------------------------------------------------------------------------------------------------
@torch.no_grad()
@pytest.mark.parametrize("block_length", [None, 8])
def test_forward_matches_an_independent_reference(model, checkpoint, block_length):
    config, weights = checkpoint
    ids, keep = _prompts(seed=1)
    trace: list = []
    theirs = llada2_logits(config, weights, ids, keep, block_length=block_length or 32, trace=trace)
    ours = model(ids, attention_mask=keep, block_length=block_length).logits
    assert ours.dtype == torch.float32  # as published: the head's output in float32
    assert _max_gap(ours, theirs, keep.bool()) <= TOL
    # the routing exercised is the published one: the selection bias and the group limit both change choices
    for prefix, hidden, chosen in trace:
        gate_weight = weights[prefix + "gate.weight"].double()
        bias = weights[prefix + "gate.expert_bias"].double()
        unbiased, _ = route(config, gate_weight, torch.zeros_like(bias), hidden)
        ungrouped, _ = route(config, gate_weight, bias, hidden, group_limited=False)
        assert sum(set(a) != set(b) for a, b in zip(chosen, unbiased)) > len(chosen) // 4, prefix
        assert any(set(a) != set(b) for a, b in zip(chosen, ungrouped)), prefix


@torch.no_grad()
def test_eager_attention_gives_the_same_logits(tmp_path_factory, model):
    eager = _load(tmp_path_factory, attn_implementation="eager")
    ids, keep = _prompts((12, 7), seed=10)
    for mask in (keep, keep.bool()[:, None, None, :] & keep.bool()[:, None, :, None]):
        expected = model(ids, attention_mask=mask, block_length=4).logits
        got = eager(ids, attention_mask=mask, block_length=4).logits
        assert (got - expected)[keep.bool()].abs().max().item() <= TOL


def test_save_pretrained_round_trip(tmp_path, model):
    model.save_pretrained(tmp_path / "saved")
    saved = json.loads((tmp_path / "saved" / "config.json").read_text())
    assert saved["model_type"] == "llada2_moe" and "auto_map" not in saved
    reloaded = AutoDiffusionLM.from_pretrained(tmp_path / "saved", dtype=torch.float32)
    assert reloaded.config.rope_parameters == model.config.rope_parameters
    assert reloaded.config.rotary_dimension() == 4 and reloaded.config.unsupported_fields() == []
    ids, keep = _prompts((9, 6), seed=11)
    with torch.no_grad():
        assert torch.equal(reloaded(ids, attention_mask=keep).logits, model(ids, attention_mask=keep).logits)


@torch.no_grad()
def test_default_block_length_is_the_trained_32(model):
    ids, keep = _prompts(seed=2)
    default = model(ids, attention_mask=keep).logits
    assert torch.equal(default, model(ids, attention_mask=keep, block_length=32).logits)
    assert not torch.allclose(default, model(ids, attention_mask=keep, block_length=8).logits, atol=1e-3)


@torch.no_grad()
@pytest.mark.parametrize("block_length", [4, None])
def test_attention_is_block_causal(model, block_length):
    size = block_length or 32
    ids, _ = _prompts((3 * size,), seed=3)
    base = model(ids, block_length=block_length).logits
    later = ids.clone()
    later[0, 2 * size + 1] = 4242  # a token of the third block
    changed = model(later, block_length=block_length).logits
    # unchanged up to float rounding (the experts' batches change size, so their matmuls may block differently)
    assert (base[:, : 2 * size] - changed[:, : 2 * size]).abs().max().item() <= 1e-6
    assert not torch.allclose(base[:, 2 * size :], changed[:, 2 * size :], atol=1e-4)
    earlier = ids.clone()
    earlier[0, 1] = 4242  # a token of the first block: every later block sees it
    changed = model(earlier, block_length=block_length).logits
    for block in (1, 2):
        span = slice(block * size, (block + 1) * size)
        assert (base[:, span] - changed[:, span]).abs().max() > 1e-4


@torch.no_grad()
@pytest.mark.parametrize("block_length", [None, 8, 1])
def test_padded_batch_equals_each_row_alone(model, block_length):
    ids, keep = _prompts(seed=4)
    batch = model(ids, attention_mask=keep, block_length=block_length).logits
    for row in range(ids.shape[0]):
        real = keep[row].bool()
        alone = model(ids[row : row + 1, real], block_length=block_length).logits
        assert (batch[row, real] - alone[0]).abs().max().item() <= TOL, row


@torch.no_grad()
def test_block_length_one_is_the_published_causal_forward(model, checkpoint):
    config, weights = checkpoint
    ids, keep = _prompts((14, 9), seed=5)
    ours = model(ids, attention_mask=keep, block_length=1).logits
    causal = llada2_logits(config, weights, ids, keep, block_length=1)
    assert _max_gap(ours, causal, keep.bool()) <= TOL
    positions = torch.arange(ids.shape[1])
    assert torch.equal(
        llada2_logits(config, weights, ids[:1], None, block_length=1, positions=positions[None]),
        llada2_logits(config, weights, ids[:1], None, block_length=1),
    )


@torch.no_grad()
def test_the_published_generate_mask_gives_the_same_logits(model):
    """The published generate passes `tril(blocks).repeat_interleave(...).log()` in bfloat16 with positions
    0..T-1: the same attention as block_length=32 on an unpadded row, and so is its boolean form."""
    size, blocks = 32, 2
    ids, _ = _prompts((size * blocks,), seed=6)
    block_matrix = torch.tril(torch.ones(blocks, blocks))
    keep = block_matrix.repeat_interleave(size, 0).repeat_interleave(size, 1)[None, None]
    positions = torch.arange(size * blocks)[None]
    expected = model(ids, block_length=size).logits
    for mask in (keep.log(), keep.log().to(torch.bfloat16), keep.bool()):
        got = model(ids, attention_mask=mask, position_ids=positions).logits
        assert (got - expected).abs().max().item() <= TOL, mask.dtype


@torch.no_grad()
@pytest.mark.parametrize(("start", "end"), [(24, 32), (16, 40)])
def test_cached_window_forward_equals_the_full_forward(model, start, end):
    ids, keep = _prompts(seed=7)
    counted = (keep.cumsum(-1) - 1).clamp_min(0)
    for block_length, positions in ((None, counted), (8, counted), (8, None)):
        full = model(ids, attention_mask=keep, position_ids=positions, block_length=block_length).logits
        cache = DiffusionKVCache()
        refreshed = model(ids, attention_mask=keep, position_ids=positions, cache=cache, block_length=block_length)
        assert torch.equal(refreshed.logits, full)
        cache.window = (start, end)
        window = model(
            ids[:, start:end],
            attention_mask=keep,
            position_ids=None if positions is None else positions[:, start:end],
            cache=cache,
            block_length=block_length,
        ).logits
        rows = keep[:, start:end].bool()
        assert (window - full[:, start:end])[rows].abs().max().item() <= TOL


def test_bfloat16_load_keeps_the_checkpoint_dtype(tmp_path_factory, model):
    low = _load(tmp_path_factory, dtype=None)  # "auto": the checkpoint's torch_dtype, bfloat16
    assert {p.dtype for p in low.parameters()} == {torch.bfloat16}
    ids, keep = _prompts((12, 9), seed=8)
    with torch.no_grad():
        logits = low(ids, attention_mask=keep).logits
        full = model(ids, attention_mask=keep).logits
    assert logits.dtype == torch.float32
    assert (logits - full)[keep.bool()].abs().max() < 0.25


def test_training_loss_and_gradients_reach_the_experts(tmp_path_factory):
    trained = _load(tmp_path_factory)
    trained.train()
    ids, _ = _prompts((10,), seed=9)
    out = trained(ids, labels=ids)
    out.loss.backward()
    layer = trained.model.layers[1].mlp
    assert torch.isfinite(out.loss) and layer.gate.weight.grad.abs().sum() > 0  # through the routing weights
    assert sum(expert.up_proj.weight.grad is not None for expert in layer.experts) >= 2
    assert layer.shared_experts.down_proj.weight.grad.abs().sum() > 0


# ---- what the native class refuses, clearly ----------------------------------------------------------------------
def _variant(tmp_path_factory, tmp_path, **fields):
    folder = tmp_path / "llada2"
    shutil.copytree(llada2_checkpoint(tmp_path_factory), folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(fields)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"rope_scaling": {"type": "yarn", "factor": 4.0}}, "rope_type='yarn'"),
        ({"use_sliding_window": True}, "use_sliding_window=True"),
        ({"norm_head": True}, "norm_head=True"),
        ({"score_function": "softmax"}, "score_function='softmax'"),
        ({"n_group": 3}, "n_group=3"),
    ],
)
def test_an_unimplemented_setting_is_named(tmp_path_factory, tmp_path, fields, named):
    folder = _variant(tmp_path_factory, tmp_path, **fields)
    with pytest.raises(ValueError, match="does not implement") as err:
        AutoDiffusionLM.from_pretrained(folder)
    assert named in str(err.value)
    with pytest.raises(ValueError, match="does not implement") as err:
        LLaDA2MoeModelLM(LLaDA2MoeConfig.from_pretrained(folder))
    assert named in str(err.value)


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


def test_missing_and_misshapen_weights_are_named(tmp_path_factory, tmp_path):
    folder = _variant(tmp_path_factory, tmp_path)

    def edit(tensors):
        del tensors["model.layers.1.mlp.gate.expert_bias"]
        tensors["model.layers.0.attention.query_key_value.weight"] = torch.zeros(3, 3, dtype=torch.bfloat16)

    _rewrite_shard(folder, edit)
    with pytest.raises(ValueError) as err:
        AutoDiffusionLM.from_pretrained(folder)
    message = str(err.value)
    assert "lacks these weights: model.layers.1.mlp.gate.expert_bias" in message
    assert "model.layers.0.attention.query_key_value.weight (checkpoint (3, 3), model (64, 32))" in message


def test_forward_refuses_what_it_does_not_compute(model):
    ids, _ = _prompts((4,))
    with pytest.raises(ValueError, match="use_cache=True is not supported"):
        model(ids, use_cache=True)
    with pytest.raises(ValueError, match="output_router_logits"):
        model(ids, output_router_logits=True)
    with pytest.raises(ValueError, match="block_length must be a positive integer"):
        model(ids, block_length=0)


def test_the_classes_are_exported():
    import hf_unmask.models as models
    from hf_unmask.models.native import native_model_class

    assert native_model_class("llada2_moe") is LLaDA2MoeModelLM
    assert models.LLaDA2MoeModelLM is LLaDA2MoeModelLM and models.LLaDA2Adapter is LLaDA2Adapter
    assert models.ADAPTER_REGISTRY["llada2_moe"] is LLaDA2Adapter
