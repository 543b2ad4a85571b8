"""Native SDAR on checkpoints laid out as the published ones (see sdar_layouts.py): loading without remote code,
the block-causal forward against an independent reference (sdar_reference.py), the masks SDAR's own generation
passes, padded batches, the cache, and clear errors for checkpoints the native class does not implement."""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import torch
import torch.nn.functional as F
from sdar_layouts import END_OF_TURN_ID, EOS_ID, MASK_ID, read_sdar_checkpoint, sdar_checkpoint, sdar_weight_shapes
from sdar_reference import block_keep, published_generate_mask, sdar_logits

from hf_unmask import AutoDiffusionLM
from hf_unmask.generation import DiffusionKVCache
from hf_unmask.models import load_tokenizer
from hf_unmask.models.native import native_model_class
from hf_unmask.models.sdar import SDAR_TRAINED_BLOCK_LENGTH, SDARAdapter, SDARConfig, SDARForCausalLM

TOLERANCE = 1e-5


def _load(tmp_path_factory, kind="sdar", **kwargs):
    kwargs.setdefault("dtype", torch.float32)
    return AutoDiffusionLM.from_pretrained(sdar_checkpoint(tmp_path_factory, kind), **kwargs)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return _load(tmp_path_factory)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return read_sdar_checkpoint(sdar_checkpoint(tmp_path_factory))


def _prompts(lengths=(11, 5, 8), seed=0):
    """A left-padded batch of ordinary-vocabulary ids (pad 0) and its 2-D mask."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.zeros(len(lengths), max(lengths), dtype=torch.long)
    keep = torch.zeros_like(ids)
    for row, n in enumerate(lengths):
        ids[row, -n:] = torch.randint(16, 150000, (n,), generator=gen)
        keep[row, -n:] = 1
    return ids, keep


def _remote_modules():
    return [name for name in sys.modules if "transformers_modules" in name or name.startswith(("modeling_", "token"))]


def _max_error(ours, theirs, rows):
    return (ours.double() - theirs)[rows].abs().max().item()


# ---- loading --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("trust_remote_code", [False, True])
def test_published_layout_loads_natively_without_running_its_code(tmp_path_factory, trust_remote_code):
    before = set(_remote_modules())
    # the folder's configuration_sdar.py / modeling_sdar.py / tokenization_qwen2*.py raise on import
    model = _load(tmp_path_factory, trust_remote_code=trust_remote_code)
    assert type(model) is SDARForCausalLM and isinstance(model.diffusion_adapter, SDARAdapter)
    assert set(_remote_modules()) == before
    assert not model.training and model.dtype == torch.float32
    config = model.generation_config
    ids = (config.mask_token_id, config.eos_token_id, config.pad_token_id)
    assert ids == (MASK_ID, [END_OF_TURN_ID, EOS_ID], EOS_ID)
    # config.json names flex_attention (SDAR's training backend): not taken as the inference backend
    assert model.config._attn_implementation == "sdpa" and model.config.block_size == SDAR_TRAINED_BLOCK_LENGTH == 4
    assert model.diffusion_adapter.block_causal and model.diffusion_adapter.trained_block_length == 4
    assert "auto_map" not in model.config.to_dict() and model.config.fuse_cross_entropy is True


def test_transformers_auto_classes_resolve_the_native_class(tmp_path_factory):
    from transformers import AutoConfig, AutoModel

    folder = sdar_checkpoint(tmp_path_factory)
    assert native_model_class("sdar") is SDARForCausalLM
    assert type(AutoConfig.from_pretrained(folder)) is SDARConfig
    assert type(AutoModel.from_pretrained(folder)) is SDARForCausalLM
    assert type(AutoModel.from_pretrained(folder, trust_remote_code=True)) is SDARForCausalLM


def test_loading_reads_every_shard(model, checkpoint):
    config, weights = checkpoint
    state = model.state_dict()
    assert set(weights) == set(sdar_weight_shapes(config)) == set(state)
    for name, value in weights.items():
        assert torch.equal(state[name], value), name


def test_tokenizer_keeps_the_published_special_ids(tmp_path_factory):
    folder = sdar_checkpoint(tmp_path_factory)
    for trust_remote_code in (False, True):  # the remote tokenization_qwen2.py is never run
        tokenizer = load_tokenizer(folder, trust_remote_code=trust_remote_code)
        assert type(tokenizer).__name__ == "Qwen2Tokenizer"
        assert (tokenizer.mask_token, tokenizer.mask_token_id) == ("<|MASK|>", MASK_ID)
        assert (tokenizer.eos_token_id, tokenizer.pad_token_id) == (EOS_ID, EOS_ID)
    chat = tokenizer.apply_chat_template([{"role": "user", "content": "the"}], add_generation_prompt=True)
    ids = chat["input_ids"] if isinstance(chat, dict) or hasattr(chat, "keys") else chat
    assert ids[0] == 151644 and END_OF_TURN_ID in ids  # <|im_start|> ... <|im_end|>
    assert tokenizer.decode(tokenizer("the cat").input_ids) == "the cat"


def test_tied_single_file_layout(tmp_path_factory):
    model = _load(tmp_path_factory, "sdar_tied")
    config, weights = read_sdar_checkpoint(sdar_checkpoint(tmp_path_factory, "sdar_tied"))
    assert "lm_head.weight" not in weights
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    ids, keep = _prompts(seed=7)
    reference_keep, positions = block_keep(keep, ids.shape[1], 4)
    with torch.no_grad():
        ours = model(ids, attention_mask=keep).logits
    theirs = sdar_logits(config, weights, ids, reference_keep, positions)
    # the embedding as head gives logits of about +-15 (the untied head's stay within about +-5): relative tolerance
    assert _max_error(ours, theirs, keep.bool()) <= TOLERANCE * theirs.abs().max().item() / 5


# ---- forward ----------------------------------------------------------------------------------------------------
@torch.no_grad()
def test_block_causal_forward_matches_the_reference_on_a_left_padded_batch(model, checkpoint):
    config, weights = checkpoint
    ids, keep = _prompts((12, 7, 10), seed=1)
    reference_keep, positions = block_keep(keep, ids.shape[1], 4)
    ours = model(ids, attention_mask=keep).logits
    assert _max_error(ours, sdar_logits(config, weights, ids, reference_keep, positions), keep.bool()) <= TOLERANCE
    # no padding: the same without a mask
    reference_keep, _ = block_keep(None, ids.shape[1], 4)
    every = torch.ones_like(ids, dtype=torch.bool)
    assert _max_error(model(ids).logits, sdar_logits(config, weights, ids, reference_keep), every) <= TOLERANCE


@torch.no_grad()
def test_attention_bias_variant_matches_the_reference(tmp_path_factory):
    model = _load(tmp_path_factory, "sdar_bias")
    config, weights = read_sdar_checkpoint(sdar_checkpoint(tmp_path_factory, "sdar_bias"))
    assert any(name.endswith("o_proj.bias") for name in weights)
    ids, keep = _prompts(seed=8)
    reference_keep, positions = block_keep(keep, ids.shape[1], 4)
    ours = model(ids, attention_mask=keep).logits
    assert _max_error(ours, sdar_logits(config, weights, ids, reference_keep, positions), keep.bool()) <= TOLERANCE


@torch.no_grad()
def test_the_mask_sdar_generate_passes_gives_the_default_forward(model, checkpoint):
    """SDAR's generate.py: one unpadded row, positions 0..T-1, a [1, T, T] float 0/1 block-triangular mask."""
    config, weights = checkpoint
    ids, _ = _prompts((13,), seed=2)
    mask_3d = published_generate_mask(13, 4)
    default = model(ids).logits
    published = model(ids, attention_mask=mask_3d, position_ids=torch.arange(13).unsqueeze(0)).logits
    four_d = model(ids, attention_mask=mask_3d.bool().unsqueeze(1)).logits
    assert torch.allclose(published, default, atol=1e-6) and torch.allclose(four_d, default, atol=1e-6)
    every = torch.ones_like(ids, dtype=torch.bool)
    assert _max_error(published, sdar_logits(config, weights, ids, mask_3d.bool()), every) <= TOLERANCE
    with pytest.raises(ValueError, match="3-D attention_mask"):
        model(ids, attention_mask=mask_3d[:, :5])


@torch.no_grad()
def test_a_later_block_never_reaches_an_earlier_one(model):
    ids, keep = _prompts((12, 12), seed=3)
    before = model(ids, attention_mask=keep).logits
    changed = ids.clone()
    changed[:, 9] = 4242  # third block (positions 8-11)
    after = model(changed, attention_mask=keep).logits
    assert torch.equal(after[:, :8], before[:, :8])
    assert not torch.allclose(after[:, 8:], before[:, 8:], atol=1e-3)  # ... but its own block sees it


@torch.no_grad()
def test_a_padded_batch_equals_each_row_alone(model):
    ids, keep = _prompts(seed=4)
    batch = model(ids, attention_mask=keep).logits
    for row in range(ids.shape[0]):
        alone = model(ids[row : row + 1, keep[row].bool()]).logits
        assert (batch[row, keep[row].bool()] - alone[0]).abs().max() <= TOLERANCE, row
    # not vacuous: without the mask the pads count (they shift the blocks and are attended to)
    assert not torch.allclose(model(ids).logits[1, -4:], batch[1, -4:], atol=1e-3)


@torch.no_grad()
def test_block_length_one_is_causal_and_a_whole_sequence_block_is_bidirectional(model, checkpoint):
    config, weights = checkpoint
    ids, keep = _prompts(seed=5)
    length, real = ids.shape[1], keep.bool()
    causal_keep, positions = block_keep(keep, length, 1)
    assert torch.equal(causal_keep[0], torch.tril(torch.ones(length, length, dtype=torch.bool)))
    ours = model(ids, attention_mask=keep, block_length=1).logits
    assert _max_error(ours, sdar_logits(config, weights, ids, causal_keep, positions), real) <= TOLERANCE
    # what the original forward does with a plain all-ones 2-D mask: every position sees every position
    every = torch.ones(1, length, length, dtype=torch.bool)
    ours = model(ids[:1], block_length=length).logits
    assert _max_error(ours, sdar_logits(config, weights, ids[:1], every), real[:1]) <= TOLERANCE
    with pytest.raises(ValueError, match="block_length must be a positive integer"):
        model(ids, block_length=0)


@torch.no_grad()
def test_eager_attention_gives_the_same_logits(tmp_path_factory, model):
    eager = _load(tmp_path_factory, attn_implementation="eager")
    assert eager.config._attn_implementation == "eager"
    ids, keep = _prompts(seed=6)
    real = keep.bool()
    assert torch.allclose(eager(ids, attention_mask=keep).logits[real], model(ids, attention_mask=keep).logits[real],
                          atol=TOLERANCE)  # fmt: skip
    mask_3d = published_generate_mask(ids.shape[1], 4)
    assert torch.allclose(eager(ids[:1], attention_mask=mask_3d).logits, model(ids[:1]).logits, atol=TOLERANCE)


@torch.no_grad()
def test_cached_window_forward_equals_the_full_forward(model):
    ids, keep = _prompts((16, 11, 14), seed=9)
    positions = (keep.cumsum(-1) - 1).clamp_min(0)
    full = model(ids, attention_mask=keep, position_ids=positions).logits
    cache = DiffusionKVCache()
    refreshed = model(ids, attention_mask=keep, position_ids=positions, cache=cache).logits
    assert torch.equal(refreshed, full)
    start, end = 6, 13
    cache.window = (start, end)
    window = model(ids[:, start:end], attention_mask=keep, position_ids=positions[:, start:end], cache=cache).logits
    assert (window - full[:, start:end])[keep[:, start:end].bool()].abs().max() <= TOLERANCE
    # default positions are taken from the whole sequence
    cache.window = (start, end)
    window = model(ids[:, start:end], attention_mask=keep, cache=cache).logits
    assert (window - full[:, start:end])[keep[:, start:end].bool()].abs().max() <= TOLERANCE


@torch.no_grad()
def test_a_block_aligned_window_is_exact_after_its_tokens_change(model):
    """Block-causal attention: earlier blocks never see the window, so their cached keys stay exact."""
    ids, _ = _prompts((16,), seed=10)
    cache = DiffusionKVCache()
    model(ids, cache=cache)
    changed = ids.clone()
    changed[0, 9:14] = torch.tensor([7, 77, 777, 7777, 77777])
    cache.window = (8, 16)
    window = model(changed[:, 8:], cache=cache).logits
    assert (window - model(changed).logits[:, 8:]).abs().max() <= TOLERANCE


@torch.no_grad()
def test_a_window_past_the_cached_positions_grows_the_cache(model):
    """Block-causal generation caches the canvas up to the current block and appends the next one."""
    ids, keep = _prompts((13, 9), seed=12)
    full = model(ids, attention_mask=keep).logits
    cache = DiffusionKVCache()
    model(ids[:, :9], attention_mask=keep[:, :9], cache=cache)
    cache.window = (5, 13)
    window = model(ids[:, 5:13], attention_mask=keep, cache=cache).logits
    assert cache.get_seq_length() == 13
    assert (window - full[:, 5:13])[keep[:, 5:13].bool()].abs().max() <= TOLERANCE


def test_labels_give_the_aligned_cross_entropy(model):
    ids, _ = _prompts((8,), seed=11)
    labels = ids.clone()
    labels[0, :3] = -100
    out = model(ids, labels=labels)
    expected = F.cross_entropy(out.logits[0, 3:].float(), ids[0, 3:])
    assert torch.allclose(out.loss, expected, atol=1e-6)


def test_bfloat16_load(tmp_path_factory, model):
    low = _load(tmp_path_factory, dtype=None)  # "auto": the checkpoint's torch_dtype, bfloat16
    assert {p.dtype for p in low.parameters()} == {torch.bfloat16}
    ids, keep = _prompts()
    with torch.no_grad():
        logits = low(ids, attention_mask=keep).logits
        full = model(ids, attention_mask=keep).logits
    assert logits.dtype == torch.bfloat16
    assert (logits.float() - full)[keep.bool()].abs().max() < 0.25


def test_cache_arguments_are_refused(model):
    ids, _ = _prompts()
    with pytest.raises(ValueError, match="use_cache=True is not supported"):
        model(ids, use_cache=True)
    with pytest.raises(ValueError, match="past_key_values= is not supported"):
        model(ids, past_key_values=object())
    assert SDARForCausalLM.supports_diffusion_cache is True


# ---- what the native class refuses, clearly --------------------------------------------------------------------
def _variant(tmp_path_factory, tmp_path, **fields):
    folder = tmp_path / "sdar"
    shutil.copytree(sdar_checkpoint(tmp_path_factory), folder)
    config = json.loads((folder / "config.json").read_text())
    config.update(fields)
    (folder / "config.json").write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"rope_scaling": {"type": "yarn", "factor": 4.0}}, "rope_type='yarn'"),
        ({"use_sliding_window": True, "sliding_window": 4096}, "use_sliding_window=True"),
        ({"hidden_act": "gelu"}, "hidden_act='gelu'"),
    ],
)
def test_an_unimplemented_variant_is_named(tmp_path_factory, tmp_path, fields, named):
    folder = _variant(tmp_path_factory, tmp_path, **fields)
    with pytest.raises(ValueError, match="does not implement") as err:
        AutoDiffusionLM.from_pretrained(folder)
    assert named in str(err.value) and "trust_remote_code=True" in str(err.value)
    # with trust_remote_code the checkpoint's own code is tried; here it fails on import, and the error says so
    with pytest.raises(RuntimeError, match="modeling code it ships") as err:
        AutoDiffusionLM.from_pretrained(folder, trust_remote_code=True)
    assert named in str(err.value)


def test_missing_unexpected_and_misshapen_weights_are_named(tmp_path_factory, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = _variant(tmp_path_factory, tmp_path)
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    shard = folder / "model-00001-of-00002.safetensors"
    tensors = load_file(str(shard))
    del tensors["model.layers.0.self_attn.q_norm.weight"]
    tensors["model.layers.0.self_attn.k_proj.weight"] = torch.zeros(3, 3, dtype=torch.bfloat16)
    tensors["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.zeros(2, dtype=torch.bfloat16)
    save_file(tensors, str(shard), metadata={"format": "pt"})
    index["weight_map"] = {k: v for k, v in index["weight_map"].items() if v != shard.name}
    index["weight_map"].update({k: shard.name for k in tensors})
    index_path.write_text(json.dumps(index))
    with pytest.raises(ValueError) as err:
        AutoDiffusionLM.from_pretrained(folder)
    message = str(err.value)
    assert "lacks these weights: model.layers.0.self_attn.q_norm.weight" in message
    assert "model.layers.0.self_attn.k_proj.weight (checkpoint (3, 3), model (32, 32))" in message
    assert "does not use: model.layers.0.self_attn.rotary_emb.inv_freq" in message
