"""generate(..., use_cache=True): the first step of each block is exact (a fresh full forward), the cache is
refreshed at every block start, positions not recomputed show the block's refresh, padded batches equal single
rows, learned policies reproduce their sampling log-probabilities, and misuse is a clear error."""

from __future__ import annotations

import copy

import pytest
import torch
from hub_layouts import hub_checkpoint

import hf_unmask
from hf_unmask import AutoDiffusionLM
from hf_unmask.strategies import ConfidencePolicy, TopKConfidence

PROMPTS = [
    "trace : 3 | +4 *3 +1 *7 +2 *9 +3 +1 *3 +4 +2 | run 6",
    "trace : 5 | *2 +7 *9 +3 +1 *3 +8 | run 4",
    "cups : ab ac bc | ball a",
]


@pytest.fixture(scope="module")
def tiny():
    return hf_unmask.load_builtin_model("tiny-dllm")


@pytest.fixture(scope="module")
def natives(tmp_path_factory):
    load = AutoDiffusionLM.from_pretrained
    return {
        "llada": load(hub_checkpoint(tmp_path_factory, "llada"), dtype=torch.float32),
        "dream": load(hub_checkpoint(tmp_path_factory, "dream"), dtype=torch.float32),
    }


def _batch(tokenizer):
    return tokenizer(PROMPTS, return_tensors="pt", padding=True)


def _confidence_of_a_fresh_forward(model, canvas, attention_mask, prompt_length):
    from hf_unmask.models import get_adapter

    logits, _ = get_adapter(model).forward(canvas, attention_mask)
    logits = logits[:, prompt_length:].clone()
    logits[..., model.generation_config.mask_token_id] = float("-inf")
    return logits.softmax(-1).max(-1).values


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("block_length", [4, 16])
def test_each_block_starts_with_a_fresh_full_forward(tiny, mode, block_length):
    """At the first step of every block the strategy sees exactly what a full forward on that canvas gives (a stale
    cache reused across blocks fails this); later steps of the block see the refresh where nothing was recomputed."""
    model, tokenizer = tiny
    batch = _batch(tokenizer)
    P = batch["input_ids"].shape[1]
    out = model.generate(
        **batch, max_new_tokens=16, block_length=block_length, strategy=TopKConfidence(), steps=16, use_cache=True,
        cache_mode=mode, output_history=True, output_trajectory=True, return_dict_in_generate=True,
    )  # fmt: skip
    traj, blocks = out.trajectory, out.trajectory.block.tolist()
    keep = torch.cat([batch["attention_mask"], torch.ones(3, 16, dtype=torch.long)], dim=1)
    first_steps = [t for t in range(len(blocks)) if t == 0 or blocks[t] != blocks[t - 1]]
    assert len(first_steps) == 16 // block_length
    for t in first_steps:
        expected = _confidence_of_a_fresh_forward(model, out.history[t], keep, P)
        assert torch.allclose(traj.confidence[t], expected, atol=1e-6), f"step {t}"
    if mode == "dual" and block_length < 16:
        # positions after the block are never recomputed inside it: their confidence is the refresh's
        for t in range(len(blocks)):
            start = first_steps[blocks[t]]
            after = slice((blocks[t] + 1) * block_length, 16)
            assert torch.equal(traj.confidence[t][:, after], traj.confidence[start][:, after])


def test_later_steps_differ_from_an_uncached_run_only_through_the_cache(tiny):
    """The cache is an approximation after the first step of a block: the confidences there are not those of a fresh
    forward (so the exactness test above is not vacuous), while the tokens stay close on this model."""
    model, tokenizer = tiny
    batch = _batch(tokenizer)
    settings = dict(max_new_tokens=16, block_length=8, output_history=True, output_trajectory=True)
    out = model.generate(**batch, use_cache=True, cache_mode="dual", return_dict_in_generate=True, **settings)
    keep = torch.cat([batch["attention_mask"], torch.ones(3, 16, dtype=torch.long)], dim=1)
    P = batch["input_ids"].shape[1]
    t = 1  # the second step of the first block
    fresh = _confidence_of_a_fresh_forward(model, out.history[t], keep, P)
    assert not torch.allclose(out.trajectory.confidence[t], fresh, atol=1e-4)


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("strategy", ["top_k_confidence", "confidence_threshold"])
def test_padded_batch_equals_each_row_alone_builtin(tiny, mode, strategy):
    model, tokenizer = tiny
    _rows_match_alone(model, _batch(tokenizer), strategy, mode, block_length=4, gen_length=16)


@pytest.mark.parametrize("kind", ["llada", "dream"])
@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_padded_batch_equals_each_row_alone_native(natives, kind, mode):
    gen = torch.Generator().manual_seed(0)
    ids = torch.zeros(3, 9, dtype=torch.long)
    keep = torch.zeros_like(ids)
    for row, n in enumerate((9, 4, 6)):
        ids[row, -n:] = torch.randint(16, 120000, (n,), generator=gen)
        keep[row, -n:] = 1
    batch = {"input_ids": ids, "attention_mask": keep}
    _rows_match_alone(natives[kind], batch, "confidence_threshold", mode, block_length=4, gen_length=12)


def _rows_match_alone(model, batch, strategy, mode, block_length, gen_length):
    settings = dict(
        max_new_tokens=gen_length, block_length=block_length, strategy=strategy, use_cache=True, cache_mode=mode,
        return_dict_in_generate=True,
    )  # fmt: skip
    out = model.generate(**batch, **settings)
    P = batch["input_ids"].shape[1]
    for row in range(batch["input_ids"].shape[0]):
        keep = batch["attention_mask"][row].bool()
        alone = model.generate(batch["input_ids"][row : row + 1, keep], **settings)
        assert torch.equal(out.sequences[row, P:], alone.sequences[0, -gen_length:]), f"row {row}"
        assert int(out.nfe[row]) == int(alone.nfe[0])
        assert int(out.forward_positions[row]) == int(alone.forward_positions[0])


def test_forward_positions_count_what_ran_through_the_model(tiny):
    model, tokenizer = tiny
    batch = _batch(tokenizer)
    real = int(batch["attention_mask"][0].sum())
    settings = dict(max_new_tokens=16, block_length=8, strategy="top_k_confidence", return_dict_in_generate=True)
    plain = model.generate(**batch, **settings)
    assert int(plain.forward_positions[0]) == 16 * (real + 16)  # 16 full forwards
    prefix = model.generate(**batch, use_cache=True, cache_mode="prefix", **settings)
    # the built-in model's local mixer reads 4 neighbours: 4 more positions before the window (and after it in dual)
    assert model.diffusion_cache_margin == 4
    # per block: one refresh, then 7 steps over the margin, the block and what follows it (4 + 16, then 4 + 8)
    assert int(prefix.forward_positions[0]) == 2 * (real + 16) + 7 * 20 + 7 * 12
    dual = model.generate(**batch, use_cache=True, cache_mode="dual", **settings)
    # the first block's window has a margin on both sides (4 + 8 + 4), the last block's on the left only (4 + 8)
    assert int(dual.forward_positions[0]) == 2 * (real + 16) + 7 * 16 + 7 * 12


@pytest.fixture(scope="module")
def one_layer_tiny(tiny):
    """The built-in model cut to its first layer: there the cache's only error would be the local mixer's reach."""
    model, tokenizer = tiny
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = 1
    cut = type(model)(config)
    cut.load_state_dict(model.state_dict(), strict=False)
    cut.generation_config = copy.deepcopy(model.generation_config)
    return cut.eval(), tokenizer


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_the_margin_keeps_every_cached_step_exact_on_a_one_layer_model(one_layer_tiny, mode, monkeypatch):
    """With one layer, the keys and values the cache keeps change only where the mixer reads the window's tokens:
    feeding the margin with the window makes every step equal the uncached run; without it they differ."""
    model, tokenizer = one_layer_tiny
    batch = _batch(tokenizer)
    settings = dict(
        max_new_tokens=16, block_length=8, strategy="confidence_threshold", output_trajectory=True,
        return_dict_in_generate=True,
    )  # fmt: skip
    plain = model.generate(**batch, **settings)
    cached = model.generate(**batch, use_cache=True, cache_mode=mode, **settings)
    assert torch.equal(cached.sequences, plain.sequences)
    assert torch.equal(cached.nfe, plain.nfe)
    in_block = _in_block_positions(cached.trajectory.block, 8, 16)
    diff = (cached.trajectory.confidence - plain.trajectory.confidence).abs()
    assert diff[in_block.expand_as(diff)].max() < 1e-5
    monkeypatch.setattr(type(model), "diffusion_cache_margin", 0)
    stale = model.generate(**batch, use_cache=True, cache_mode=mode, **settings)
    steps = min(len(stale.trajectory.block), len(plain.trajectory.block))
    diff = (stale.trajectory.confidence[:steps] - plain.trajectory.confidence[:steps]).abs()
    assert diff[in_block[:steps].expand_as(diff)].max() > 1e-3


def _in_block_positions(blocks, block_length, gen_length):
    """`[steps, 1, L]` True at the positions of each step's block."""
    position = torch.arange(gen_length)
    return ((position // block_length)[None] == blocks[:, None])[:, None, :]


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_a_learned_policy_reproduces_its_sampling_log_probs(tiny, mode):
    model, tokenizer = tiny
    torch.manual_seed(0)
    policy = ConfidencePolicy(mode="bernoulli", trained_for={"gen_length": 16, "block_length": 8}).eval()
    out = model.generate(
        **_batch(tokenizer), max_new_tokens=16, block_length=8, strategy=policy, use_cache=True, cache_mode=mode,
        output_trajectory=True, return_dict_in_generate=True, progress_fallback=False, seed=3,
    )  # fmt: skip
    traj = out.trajectory
    recomputed = policy.log_prob(traj)
    live = traj.live
    assert torch.allclose(recomputed[live], traj.log_prob[live], atol=1e-5)


def test_cache_misuse_is_refused_before_any_work(tiny, tiny_masked_lm):
    model, tokenizer = tiny
    batch = _batch(tokenizer)
    with pytest.raises(ValueError, match="cache_mode must be 'prefix' or 'dual'"):
        model.generate(**batch, use_cache=True, cache_mode="triple")
    with pytest.raises(TypeError, match="use_cache must be True or False"):
        model.generate(**batch, use_cache="dual")
    ids = torch.randint(4, 60, (1, 5))
    with pytest.raises(ValueError, match=r"BertForMaskedLM has no diffusion KV cache.*LLaDA.*Dream"):
        tiny_masked_lm.generate(ids, use_cache=True, max_new_tokens=4)
    from hf_unmask.strategies import HiddenStatePolicy

    hidden_policy = HiddenStatePolicy(input_size=model.config.hidden_size)
    with pytest.raises(ValueError, match="reads the dLLM's hidden states"):
        model.generate(**batch, use_cache=True, strategy=hidden_policy)


def test_use_cache_and_cache_mode_are_saved_with_the_generation_config(tmp_path):
    from transformers import GenerationConfig

    from hf_unmask import DiffusionGenerationConfig
    from hf_unmask.generation.config import resolve_generation_config

    config = DiffusionGenerationConfig(max_new_tokens=16, use_cache=True, cache_mode="dual")
    config.save_pretrained(tmp_path)
    loaded = resolve_generation_config(None, GenerationConfig.from_pretrained(tmp_path), {})
    assert (loaded.use_cache, loaded.cache_mode) == (True, "dual")
    assert DiffusionGenerationConfig().use_cache is False
    # an autoregressive checkpoint's `use_cache: true` does not switch diffusion caching on
    plain = resolve_generation_config(None, GenerationConfig(use_cache=True, max_new_tokens=8), {})
    assert plain.use_cache is False
