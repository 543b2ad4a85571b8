"""WINO (`hf_unmask.strategies.WINO`) and its verification forward (`generation/shadow_block.py`): token for token
and NFE for NFE the independent reference decoder of tests/wino_reference.py (built-in tiny dLLMs, full diffusion and
semi-AR blocks, a block-causal toy); a left-padded batch decodes as its rows alone; re-masks stay in the current
block; NFE <= max_steps; the shadow never leaks into the real rows; shadow logits equal a dense-mask reference on
LLaDA- and Dream-layout checkpoints; the clear errors."""

from __future__ import annotations

import pytest
import torch
from block_causal_toy import TOY_MASK, ToyBlockAdapter, toy_block_model
from hub_layouts import hub_checkpoint, read_checkpoint
from reference_dllms import dream_logits, llada_logits
from wino_reference import (
    dense_shadow_mask,
    shadow_positions,
    tiny_segments,
    wino_reference,
)

import hf_unmask
from hf_unmask import AutoDiffusionLM
from hf_unmask.evaluation.specs import StrategySpec
from hf_unmask.generation.adapter import get_adapter
from hf_unmask.generation.shadow_block import ShadowBlock
from hf_unmask.generation.strategy import as_strategy
from hf_unmask.models.tiny.modeling_tiny_dllm import TinyDLLMLocalMixer
from hf_unmask.strategies import WINO, UnmaskingStrategy

PROMPTS = ["trace : 3 | +4 *3 +1 *7 +2 *9 +3 +1 *3 +4 +2 | run 6", "sort : 9 4 7 1 8 2", "sort : 3 1 2"]
L = 64


class NoShadowAdapter(ToyBlockAdapter):
    """The block-causal toy's adapter, declared unable to run the shadow-block forward."""

    supports_shadow_block = False


@pytest.fixture(scope="module")
def tiny_models():
    models = {name: hf_unmask.load_builtin_model(name) for name in ("tiny-dllm", "tiny-dllm-long")}
    for _, tokenizer in models.values():
        tokenizer.padding_side = "left"
    return models


def _generate(model, ids, strategy, **kwargs):
    kwargs = {"max_new_tokens": L, "return_dict_in_generate": True, **kwargs}
    return model.generate(**ids, strategy=strategy, **kwargs)


@pytest.mark.filterwarnings("ignore:.*was trained to generate")
@pytest.mark.parametrize("name", ["tiny-dllm", "tiny-dllm-long"])
@pytest.mark.parametrize("block_length", [L, 16])
@pytest.mark.parametrize("threshold", [0.6, 0.3])
def test_matches_the_reference_decoder(tiny_models, name, block_length, threshold):
    model, tokenizer = tiny_models[name]
    mask_id = model.generation_config.mask_token_id
    remasked = 0
    for prompt in PROMPTS[:2]:
        ids = tokenizer(prompt, return_tensors="pt")
        out = _generate(model, ids, WINO(threshold=threshold), block_length=block_length, output_trajectory=True)
        expected, nfe = wino_reference(
            model, ids.input_ids[0].tolist(), L, block_length, mask_id, threshold, extra_inputs=tiny_segments
        )
        assert out.sequences[0].tolist() == expected
        assert int(out.nfe[0]) == nfe == out.trajectory.num_steps
        remasked += int(out.trajectory.remasked.sum())
    assert remasked > 0  # the narrow-out side did work


@pytest.mark.filterwarnings("ignore:.*was trained to generate")
@pytest.mark.parametrize("block_length", [L, 16])
def test_a_left_padded_batch_decodes_as_its_rows_alone(tiny_models, block_length):
    model, tokenizer = tiny_models["tiny-dllm"]
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    out = _generate(model, batch, WINO(threshold=0.5), block_length=block_length, output_trajectory=True)
    P = batch.input_ids.shape[1]
    for row, prompt in enumerate(PROMPTS):
        alone = _generate(
            model, tokenizer(prompt, return_tensors="pt"), WINO(threshold=0.5), block_length=block_length
        )
        assert out.sequences[row, P:].tolist() == alone.sequences[0, -L:].tolist()
        assert int(out.nfe[row]) == int(alone.nfe[0])
    traj = out.trajectory
    assert int(out.nfe.min()) < int(out.nfe.max())  # rows finish at different steps: later steps feed subsets
    # the verification confidence is read at decided positions of the current block only
    assert not bool(((traj.verification_confidence > 0) & ~traj.revisable).any())
    assert bool((traj.verification_confidence[traj.revisable] > 0).any())


def test_remasks_stay_in_the_current_block_and_the_prompt_never_changes(tiny_models):
    model, tokenizer = tiny_models["tiny-dllm-long"]
    ids = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    P, BL = ids.input_ids.shape[1], 16
    out = _generate(model, ids, WINO(threshold=0.3), block_length=BL, output_trajectory=True, output_history=True)
    traj = out.trajectory
    assert bool(traj.remasked.any())
    assert bool((traj.remasked <= traj.revisable).all()) and not bool((traj.revisable & traj.masked).any())
    blocks = torch.arange(L) // BL
    for t in range(traj.num_steps):
        assert not bool(traj.revisable[t][:, blocks != int(traj.block[t])].any())
    assert bool((out.history[:, :, :P] == ids.input_ids).all())
    assert not bool((out.sequences[:, P:] == model.generation_config.mask_token_id).any())


@pytest.mark.parametrize("block_length", [L, 16])
def test_nfe_stays_within_max_steps(tiny_models, block_length):
    model, tokenizer = tiny_models["tiny-dllm-long"]
    ids = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    out = _generate(model, ids, WINO(threshold=0.9, verify_threshold=0.999), block_length=block_length, max_steps=8)
    assert bool((out.nfe <= 8).all())
    assert not bool((out.sequences[:, ids.input_ids.shape[1] :] == model.generation_config.mask_token_id).any())


def test_the_shadow_does_not_leak_into_the_real_rows(tiny_models):
    model, tokenizer = tiny_models["tiny-dllm-long"]
    adapter = get_adapter(model)
    ids = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    P, BL = ids.input_ids.shape[1], 16
    canvas = torch.cat([ids.input_ids, torch.randint(5, 40, (3, L), generator=torch.Generator().manual_seed(0))], 1)
    canvas[:, P + 20 :] = adapter.mask_token_id()
    attn = torch.cat([ids.attention_mask, torch.ones(3, L, dtype=torch.long)], 1)
    inputs = adapter.model_inputs(canvas, attn)
    normal, _ = adapter.forward_inputs(inputs)
    shadow = ShadowBlock(adapter, P, BL, adapter.mask_token_id())
    real, _ = shadow.forward(inputs, block_start=16, in_block=None)
    keep = attn.bool()
    assert torch.allclose(real[keep], normal[keep], atol=1e-5)
    assert shadow.logits.shape == (3, BL, normal.shape[-1]) and shadow.starts.tolist() == [P + 16] * 3


def test_the_local_mixer_convolves_each_segment_alone(tiny_models):
    model, _ = tiny_models["tiny-dllm-long"]
    mixer = model.layers[0].mixer
    assert isinstance(mixer, TinyDLLMLocalMixer)
    x = torch.randn(2, 12, model.config.hidden_size, generator=torch.Generator().manual_seed(1))
    segments = torch.tensor([[1] * 8 + [2] * 4, [0, 0] + [1] * 6 + [2] * 4])
    with torch.no_grad():
        got = mixer(x, (segments != 0).float().unsqueeze(-1), None, segments)
        assert torch.allclose(got[0, :8], mixer(x[:1, :8], None)[0], atol=1e-6)
        assert torch.allclose(got[:, 8:], mixer(x[:, 8:], None), atol=1e-6)
        assert torch.allclose(got[1, 2:8], mixer(x[1:, 2:8], None)[0], atol=1e-6)


@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_shadow_logits_match_a_dense_mask_reference(tmp_path_factory, kind):
    folder = hub_checkpoint(tmp_path_factory, kind)
    model = AutoDiffusionLM.from_pretrained(folder, dtype=torch.float32)
    config, weights = read_checkpoint(folder)
    adapter = get_adapter(model)
    mask_id, shift = adapter.mask_token_id(), int(adapter.shift_logits)
    dense = {"llada": llada_logits, "dream": dream_logits}[kind]
    prompts, gen, BL = [[11, 12, 13, 14, 15], [21, 22, 23]], [31, 32, 33, 34, 35, 36, mask_id, mask_id], 4
    P = max(map(len, prompts))
    canvas = torch.tensor([[0] * (P - len(p)) + p + gen for p in prompts])
    attn = torch.tensor([[0] * (P - len(p)) + [1] * (len(p) + len(gen)) for p in prompts])
    inputs = adapter.model_inputs(canvas, attn)
    normal, _ = adapter.forward_inputs(inputs)
    shadow = ShadowBlock(adapter, P, BL, mask_id)
    real, _ = shadow.forward(inputs, block_start=4, in_block=None)
    assert torch.allclose(real[attn.bool()], normal[attn.bool()], atol=1e-5)
    for row, prompt in enumerate(prompts):
        sequence = prompt + gen
        T, S, start = len(sequence), BL + shift, len(prompt) + 4
        keep = dense_shadow_mask([True] * T, start, S)
        positions = list(range(T)) + shadow_positions(list(range(T)), start, S, shift)
        ids = torch.tensor([sequence + [mask_id] * S])
        expected = dense(config, weights, ids, keep[None], torch.tensor([positions]))[0, T:]
        assert torch.allclose(shadow.logits[row].double(), expected, atol=1e-5)


@pytest.mark.parametrize("kind", ["llada", "dream"])
def test_llada_and_dream_layouts_decode_a_padded_batch_as_rows_alone(tmp_path_factory, kind):
    model = AutoDiffusionLM.from_pretrained(hub_checkpoint(tmp_path_factory, kind), dtype=torch.float32)
    prompts, P = [[11, 12, 13, 14, 15], [21, 22, 23]], 5
    ids = torch.tensor([[0] * (P - len(p)) + p for p in prompts])
    attn = torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in prompts])
    strategy = WINO(threshold=0.0, verify_threshold=0.999)  # random weights: draft wide, doubt everything
    kwargs = {"max_new_tokens": 16, "block_length": 8, "strategy": strategy, "return_dict_in_generate": True}
    out = model.generate(ids, attention_mask=attn, output_trajectory=True, **kwargs)
    assert bool(out.trajectory.remasked.any())
    for row, prompt in enumerate(prompts):
        alone = model.generate(torch.tensor([prompt]), **kwargs)
        assert out.sequences[row, P:].tolist() == alone.sequences[0, len(prompt) :].tolist()
        assert int(out.nfe[row]) == int(alone.nfe[0]) <= 16


@pytest.mark.parametrize("threshold", [0.6, 0.2])
def test_block_causal_matches_the_reference_and_rows_alone(threshold):
    model = toy_block_model(0)
    prompts = [[5, 6, 7], [8, 9, 10, 11, 12, 13], [14, 15, 16, 17, 18]]
    kwargs = {"max_new_tokens": 16, "block_length": 4}
    rows = []
    for prompt in prompts:
        strategy = WINO(threshold=threshold, verify_threshold=0.99)
        out = model.generate(torch.tensor([prompt]), strategy=strategy, return_dict_in_generate=True, **kwargs)
        expected, nfe = wino_reference(model, prompt, 16, 4, TOY_MASK, threshold, 0.99, block_causal=True)
        assert out.sequences[0].tolist() == expected and int(out.nfe[0]) == nfe
        rows.append(expected[len(prompt) :])
    P = max(map(len, prompts))
    ids = torch.tensor([[0] * (P - len(p)) + p for p in prompts])
    attn = torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in prompts])
    batch = model.generate(ids, attention_mask=attn, strategy=WINO(threshold, 0.99), **kwargs)
    assert batch[:, P:].tolist() == rows


def test_block_causal_re_masks_and_real_logits_stay_exact():
    model = toy_block_model(0)
    adapter = get_adapter(model)
    ids = torch.tensor([[0, 0, 5, 6, 7, 8, 9, TOY_MASK, 11, TOY_MASK], [4, 5, 6, 7, 8, 9, 10, 11, TOY_MASK, 12]])
    attn = torch.tensor([[0, 0] + [1] * 8, [1] * 10])
    inputs = {**adapter.model_inputs(ids, attn), "block_length": 4}
    normal, _ = adapter.forward_inputs(inputs)
    shadow = ShadowBlock(adapter, 6, 4, TOY_MASK)
    in_block = torch.tensor([[True, True, True, True], [True, True, False, False]])
    real, _ = shadow.forward(inputs, block_start=0, in_block=in_block)
    assert torch.allclose(real[attn.bool()], normal[attn.bool()], atol=1e-5)
    # each row's shadow covers its own aligned block, positions 4..7: row 0's columns 6..9, row 1's 4..7 (2 prompt)
    assert shadow.starts.tolist() == [6, 4]
    out = model.generate(
        torch.tensor([[5, 6, 7]]), max_new_tokens=16, block_length=8,
        strategy=WINO(threshold=0.2, verify_threshold=0.99), return_dict_in_generate=True, output_trajectory=True,
    )  # fmt: skip
    assert bool(out.trajectory.remasked.any())


def test_clear_errors(tiny_models, tiny_masked_lm):
    model, tokenizer = tiny_models["tiny-dllm"]
    ids = tokenizer(PROMPTS[2], return_tensors="pt").input_ids
    with pytest.raises(ValueError, match="use_cache=True with WINO"):
        model.generate(ids, max_new_tokens=16, strategy="wino", use_cache=True)
    with pytest.raises(ValueError, match="BertForMaskedLM .*does not support.*confidence_threshold"):
        tiny_masked_lm.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=4, strategy=WINO())
    with pytest.raises(ValueError, match="ToyBlockCausalLM \\(NoShadowAdapter\\) does not support"):
        toy_block_model(0).generate(
            torch.tensor([[5, 6, 7]]), max_new_tokens=4, strategy=WINO(), adapter=NoShadowAdapter
        )
    with pytest.raises(ValueError, match="threshold must be"):
        WINO(threshold=1.5)
    with pytest.raises(ValueError, match="draft_cap_max"):
        WINO(draft_cap_min=10, draft_cap_max=5)


def test_names_specs_and_saving(tiny_models, tmp_path):
    assert as_strategy("wino") == WINO()
    assert WINO.remasks_decided_tokens and WINO.requires_verification and WINO.deterministic
    spec = StrategySpec.parse("wino:threshold=0.5,0.6")
    assert [strategy for _, strategy in spec.instances()] == [WINO(threshold=0.5), WINO(threshold=0.6)]
    WINO(threshold=0.7, draft_cap_fraction=None, remask_limit=False).save_pretrained(tmp_path)
    assert UnmaskingStrategy.from_pretrained(tmp_path) == WINO(0.7, draft_cap_fraction=None, remask_limit=False)
    # one instance serves several calls (its per-row counts restart with each call and block)
    model, tokenizer = tiny_models["tiny-dllm-long"]
    strategy = WINO(threshold=0.3)
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    first = _generate(model, batch, strategy, block_length=16).sequences
    _generate(model, tokenizer(PROMPTS[0], return_tensors="pt"), strategy, block_length=16)
    assert torch.equal(_generate(model, batch, strategy, block_length=16).sequences, first)
