"""The cache settings on transformers' conventions: `use_cache` / `cache_implementation` (with `cache_mode` a
deprecated alias), one resolver reused by the trainer, saved configs old and new, and models that take
`past_key_values` / `cache_position` with nothing written on the cache for them to read."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from transformers import GenerationConfig

import hf_unmask
from hf_unmask import DiffusionGenerationConfig, DiffusionKVCache
from hf_unmask.generation.cache_settings import CACHE_IMPLEMENTATIONS, resolve_cache_implementation
from hf_unmask.generation.config import resolve_generation_config

PROMPTS = ["trace : 3 | +4 *3 +1 *7 +2 *9 +3 +1 *3 +4 +2 | run 6", "cups : ab ac bc | ball a"]
SETTINGS = dict(max_new_tokens=16, block_length=8, return_dict_in_generate=True)


@pytest.fixture(scope="module")
def tiny():
    return hf_unmask.load_builtin_model("tiny-dllm")


def _batch(tokenizer):
    return tokenizer(PROMPTS, return_tensors="pt", padding=True)


# ---- the config fields -----------------------------------------------------------------------------------------
def test_cache_implementation_turns_caching_on_unless_use_cache_says_no():
    assert resolve_cache_implementation(DiffusionGenerationConfig()) is None
    config = DiffusionGenerationConfig(cache_implementation="dual")
    assert (config.use_cache, resolve_cache_implementation(config)) == (True, "dual")
    assert resolve_cache_implementation(DiffusionGenerationConfig(use_cache=True)) == "prefix"
    with pytest.raises(ValueError, match="use_cache=False with cache_implementation='dual'.*Drop use_cache=False"):
        DiffusionGenerationConfig(use_cache=False, cache_implementation="dual")
    with pytest.raises(ValueError, match="cache_implementation must be 'prefix' or 'dual', got 'static'"):
        DiffusionGenerationConfig(cache_implementation="static")
    update = DiffusionGenerationConfig()
    update.update(cache_implementation="prefix")
    assert update.use_cache is True


def test_cache_mode_is_a_deprecated_alias_pointing_at_the_caller(tiny):
    with pytest.warns(FutureWarning, match="cache_mode is deprecated.*cache_implementation") as caught:
        config = DiffusionGenerationConfig(use_cache=True, cache_mode="dual")
    assert caught[0].filename == __file__
    assert config.cache_implementation == "dual"
    with pytest.warns(FutureWarning, match="cache_mode is deprecated") as caught:
        assert config.cache_mode == "dual"
    assert caught[0].filename == __file__
    # as before, cache_mode alone does not turn caching on
    with pytest.warns(FutureWarning):
        assert DiffusionGenerationConfig(cache_mode="dual").use_cache is False
    with pytest.raises(ValueError, match="cache_implementation='prefix' and cache_mode='dual'"):
        with pytest.warns(FutureWarning):
            DiffusionGenerationConfig(cache_implementation="prefix", cache_mode="dual")

    model, tokenizer = tiny
    batch = _batch(tokenizer)
    new = model.generate(**batch, cache_implementation="dual", **SETTINGS)
    with pytest.warns(FutureWarning, match="cache_mode is deprecated") as caught:
        old = model.generate(**batch, use_cache=True, cache_mode="dual", **SETTINGS)
    assert {w.filename for w in caught} == {__file__}
    assert torch.equal(new.sequences, old.sequences) and torch.equal(new.forward_positions, old.forward_positions)
    uncached = model.generate(**batch, **SETTINGS)
    assert (new.forward_positions < uncached.forward_positions).all()  # the cache is on


def test_a_config_saved_with_cache_mode_loads_with_its_meaning(tmp_path):
    saved = {
        "block_length": 8, "steps": None, "max_steps": None, "mask_token_id": 4, "stop_at_eos": False,
        "progress_fallback": True, "output_trajectory": False, "output_history": False, "max_new_tokens": 16,
        "cache_mode": "dual", "use_cache": True, "transformers_version": "4.57.0",
    }  # fmt: skip
    (tmp_path / "generation_config.json").write_text(json.dumps(saved))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # saved data: no deprecation warning
        direct = DiffusionGenerationConfig.from_pretrained(tmp_path)
        through_plain = resolve_generation_config(None, GenerationConfig.from_pretrained(tmp_path), {})
    for config in (direct, through_plain):
        assert (config.use_cache, config.cache_implementation, config.block_length) == (True, "dual", 8)
    saved["use_cache"] = False
    (tmp_path / "generation_config.json").write_text(json.dumps(saved))
    off = DiffusionGenerationConfig.from_pretrained(tmp_path)
    assert (resolve_cache_implementation(off), off.cache_implementation) == (None, "dual")


def test_a_saved_config_stays_loadable_by_plain_transformers(tmp_path):
    DiffusionGenerationConfig(max_new_tokens=16, cache_implementation="dual").save_pretrained(tmp_path)
    on_disk = json.loads((tmp_path / "generation_config.json").read_text())
    assert on_disk["diffusion_cache_implementation"] == "dual" and "cache_implementation" not in on_disk
    plain = GenerationConfig.from_pretrained(tmp_path)  # transformers refuses cache_implementation='dual'
    assert plain.cache_implementation is None
    loaded = resolve_generation_config(None, plain, {})
    assert (loaded.use_cache, loaded.cache_implementation) == (True, "dual")
    assert DiffusionGenerationConfig.from_pretrained(tmp_path) == DiffusionGenerationConfig(
        max_new_tokens=16, cache_implementation="dual"
    )
    assert CACHE_IMPLEMENTATIONS == ("prefix", "dual")


# ---- the models' calling convention ------------------------------------------------------------------------------
@torch.no_grad()
def test_models_take_past_key_values_and_cache_position(tiny):
    model, tokenizer = tiny
    batch = _batch(tokenizer)
    ids, keep = batch.input_ids, batch.attention_mask
    full = model(ids, attention_mask=keep).logits
    cache = DiffusionKVCache()
    assert torch.equal(model(ids, attention_mask=keep, past_key_values=cache).logits, full)
    start, end = 6, ids.shape[1] - 2
    part = model(
        ids[:, start:end], attention_mask=keep, past_key_values=cache, cache_position=torch.arange(start, end)
    )
    assert torch.allclose(part.logits, full[:, start:end], atol=1e-5)
    assert cache.window is None  # nothing written on the cache
    with pytest.raises(ValueError, match=r"window \(6, 9\) does not fit 4 fed positions"):
        model(ids[:, 6:10], attention_mask=keep, past_key_values=cache, cache_position=torch.arange(6, 9))
    with pytest.raises(ValueError, match="consecutive"):
        model(ids[:, 6:8], attention_mask=keep, past_key_values=cache, cache_position=torch.tensor([6, 8]))
    with pytest.raises(ValueError, match="use_cache=False with past_key_values"):
        model(ids, attention_mask=keep, past_key_values=cache, use_cache=False)
    with pytest.warns(FutureWarning, match="cache= argument is deprecated.*past_key_values=") as caught:
        legacy = model(ids, attention_mask=keep, cache=DiffusionKVCache()).logits
    assert caught[0].filename == __file__ and torch.equal(legacy, full)


def test_generation_writes_nothing_on_the_cache_for_the_model_to_read(tiny, monkeypatch):
    """The window a cached step feeds reaches the model as `cache_position`: generation runs the same with a cache
    class that has no `window` at all, and every cached forward gets `past_key_values` (+ positions for a window)."""
    model, tokenizer = tiny
    batch = _batch(tokenizer)
    reference = model.generate(**batch, cache_implementation="prefix", **SETTINGS)

    def no_window(self):
        raise AssertionError("the window was read from the cache")

    monkeypatch.setattr(DiffusionKVCache, "window", property(no_window))
    calls = []
    hook = model.register_forward_pre_hook(lambda module, args, kwargs: calls.append(kwargs), with_kwargs=True)
    try:
        out = model.generate(**batch, cache_implementation="prefix", **SETTINGS)
    finally:
        hook.remove()
    assert torch.equal(out.sequences, reference.sequences)
    assert all(isinstance(call["past_key_values"], DiffusionKVCache) and "cache" not in call for call in calls)
    windows = [call["cache_position"] for call in calls if call["cache_position"] is not None]
    assert windows and all(w.dim() == 1 and torch.equal(w, torch.arange(int(w[0]), int(w[-1]) + 1)) for w in windows)
    assert len(windows) < len(calls)  # the refreshes have none


# ---- one set of checks, reused by the trainer ----------------------------------------------------------------------
def test_the_trainer_runs_generates_cache_checks(tmp_path, tiny):
    pytest.importorskip("trl")
    from hf_unmask.strategies import HiddenStatePolicy
    from hf_unmask.trainer import UnmaskingGRPOConfig

    model, tokenizer = tiny
    with pytest.raises(ValueError) as generate_error:
        model.generate(**_batch(tokenizer), use_cache=True, strategy=HiddenStatePolicy(input_size=8), **SETTINGS)
    with pytest.raises(ValueError) as trainer_error:
        UnmaskingGRPOConfig(output_dir=str(tmp_path), rollout_use_cache=True, policy_type="hidden_states")
    as_generate = str(trainer_error.value).replace("rollout_use_cache=True", "use_cache=True")
    assert as_generate.replace("--rollout_use_cache", "use_cache=True") == str(generate_error.value)
    with pytest.raises(ValueError) as generate_error:
        model.generate(**_batch(tokenizer), cache_implementation="full", **SETTINGS)
    with pytest.raises(ValueError) as trainer_error:
        UnmaskingGRPOConfig(output_dir=str(tmp_path), rollout_use_cache=True, rollout_cache_implementation="full")
    assert "must be 'prefix' or 'dual', got 'full'" in str(generate_error.value)
    assert str(trainer_error.value).startswith("rollout_cache_implementation must be 'prefix' or 'dual', got 'full'")


def test_lm_eval_model_args_take_cache_implementation():
    from hf_unmask.lm_eval.model_args import ModelArgumentError, parse_model_args

    settings = parse_model_args({"pretrained": "tiny-dllm", "cache_implementation": "dual"})
    assert settings.generate_options() == {"cache_implementation": "dual"}
    with pytest.warns(FutureWarning, match="cache_mode is deprecated"):
        legacy = parse_model_args({"pretrained": "tiny-dllm", "use_cache": "true", "cache_mode": "dual"})
    assert legacy.generate_options() == {"use_cache": True, "cache_implementation": "dual"}
    with pytest.raises(ModelArgumentError, match="cache_implementation must be 'prefix' or 'dual'"):
        parse_model_args({"pretrained": "tiny-dllm", "cache_implementation": "triple"})
    with pytest.raises(ModelArgumentError, match="use_cache=false with cache_implementation=dual"):
        parse_model_args({"pretrained": "tiny-dllm", "use_cache": "false", "cache_implementation": "dual"})
