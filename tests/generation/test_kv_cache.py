"""The diffusion key/value cache at the model level: a refresh is the full forward, a window fed against it gives the
full forward's logits when nothing changed, for the built-in tiny dLLM (with its local convolution), LLaDA and
Dream (published layouts, see hub_layouts.py)."""

from __future__ import annotations

import pytest
import torch
from hub_layouts import hub_checkpoint
from transformers import DynamicCache

import hf_unmask
from hf_unmask import AutoDiffusionLM
from hf_unmask.generation import DiffusionKVCache


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return {
        "tiny": hf_unmask.load_builtin_model("tiny-dllm")[0],
        "llada": AutoDiffusionLM.from_pretrained(hub_checkpoint(tmp_path_factory, "llada"), dtype=torch.float32),
        "dream": AutoDiffusionLM.from_pretrained(hub_checkpoint(tmp_path_factory, "dream"), dtype=torch.float32),
    }


def _batch(kind):
    gen = torch.Generator().manual_seed(0)
    high = 90 if kind == "tiny" else 100000
    ids = torch.randint(5, high, (3, 20), generator=gen)
    keep = torch.ones_like(ids)
    keep[0, :5] = 0
    keep[2, :2] = 0
    return ids, keep


@torch.no_grad()
@pytest.mark.parametrize("kind", ["tiny", "llada", "dream"])
def test_a_window_against_a_fresh_cache_gives_the_full_forward(models, kind):
    model = models[kind]
    ids, keep = _batch(kind)
    full = model(ids, attention_mask=keep).logits
    cache = DiffusionKVCache()
    assert torch.equal(model(ids, attention_mask=keep, cache=cache).logits, full)  # the refresh is the full forward
    for start, end in [(8, 12), (8, 20), (0, 20), (12, 16)]:
        cache.window = (start, end)
        part = model(ids[:, start:end], attention_mask=keep, cache=cache).logits
        assert torch.allclose(part, full[:, start:end], atol=1e-5), (start, end)


@torch.no_grad()
@pytest.mark.parametrize("kind", ["tiny", "llada", "dream"])
def test_a_window_sees_the_rest_of_the_sequence_as_cached(models, kind):
    """Tokens changed outside the window after the refresh are not seen (their cached states are); tokens changed
    inside it are."""
    model = models[kind]
    ids, keep = _batch(kind)
    cache = DiffusionKVCache()
    model(ids, attention_mask=keep, cache=cache)
    changed = ids.clone()
    changed[:, 16:] = 7  # outside the window
    cache.window = (8, 12)
    stale = model(changed[:, 8:12], attention_mask=keep, cache=cache).logits
    assert torch.allclose(stale, model(ids, attention_mask=keep).logits[:, 8:12], atol=1e-5)
    assert not torch.allclose(stale, model(changed, attention_mask=keep).logits[:, 8:12], atol=1e-4)
    inside = ids.clone()
    inside[:, 9] = 7
    fresh = model(inside[:, 8:12], attention_mask=keep, cache=cache).logits
    assert not torch.allclose(fresh, stale, atol=1e-4)


def test_cache_misuse_is_a_clear_error(models):
    model = models["llada"]
    ids, keep = _batch("llada")
    cache = DiffusionKVCache()
    cache.window = (8, 12)
    with pytest.raises(RuntimeError, match="run a full forward first"):
        model(ids[:, 8:12], cache=cache)
    cache.window = None
    model(ids, attention_mask=keep, cache=cache)
    cache.window = (8, 12)
    with pytest.raises(ValueError, match=r"window \(8, 12\) does not fit 5 fed positions"):
        model(ids[:, 8:13], attention_mask=keep, cache=cache)
    with pytest.raises(ValueError, match="must cover the whole sequence"):
        model(ids[:, 8:12], attention_mask=keep[:, 8:12], cache=cache)
    from transformers import DynamicCache

    with pytest.raises(TypeError, match="DiffusionKVCache"):
        model(ids, cache=DynamicCache())


@torch.no_grad()
@pytest.mark.parametrize("kind", ["tiny", "llada", "dream"])
def test_past_key_values_and_cache_position_give_the_full_forward(models, kind):
    """transformers' names: the cache as `past_key_values`, the window as the positions fed (`cache_position`);
    nothing is written on the cache for the model to read."""
    model = models[kind]
    ids, keep = _batch(kind)
    full = model(ids, attention_mask=keep).logits
    cache = DiffusionKVCache()
    assert torch.equal(model(ids, attention_mask=keep, past_key_values=cache).logits, full)
    for start, end in [(8, 12), (8, 20), (0, 20), (12, 16)]:
        positions = torch.arange(start, end)
        part = model(ids[:, start:end], attention_mask=keep, past_key_values=cache, cache_position=positions).logits
        assert torch.allclose(part, full[:, start:end], atol=1e-5), (start, end)
    assert cache.window is None
    with pytest.raises(ValueError, match="past_key_values= is not supported with a DynamicCache"):
        model(ids, past_key_values=DynamicCache())
