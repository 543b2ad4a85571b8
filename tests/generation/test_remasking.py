"""The re-masking protocol (`remasks_decided_tokens`, `StrategyOutput.remask`): what the loop guarantees for any
strategy that sets decided tokens back to [MASK], whatever its rule: only decided positions of the current block
(never the prompt, never another block), the block still finishes within its step budget (NFE <= max_steps), the
re-masks beyond the budget are the least confident, a padded batch decodes as its rows alone (with and without the
cache, and on a block-causal model), the state and trajectory carry what a re-masking rule reads, and the errors."""

from __future__ import annotations

import pytest
import torch
from block_causal_toy import TOY_MASK, toy_block_model

import hf_unmask
from hf_unmask.generation.remasking import Remasking
from hf_unmask.generation.strategy import StrategyOutput

PROMPTS = ["trace : 3 | +4 *3 +1 *7 +2 *9 +3 +1 *3 +4 +2 | run 6", "sort : 3 1 2"]
CACHES = [{}, {"use_cache": True, "cache_mode": "prefix"}, {"use_cache": True, "cache_mode": "dual"}]


class UnsureRemasker:
    """Unmask what is > 0.5 confident; re-mask every decided token of the block now below `keep` (deterministic)."""

    remasks_decided_tokens = True

    def __init__(self, keep: float = 0.9) -> None:
        self.keep = keep
        self.seen: list[dict[str, torch.Tensor]] = []

    def __call__(self, state):
        self.seen.append(
            {
                "revisable": state.revisable.clone(),
                "token_confidence": state.token_confidence.clone(),
                "decided_time": state.decided_time.clone(),
                "time": state.time.clone(),
                "masked": state.masked.clone(),
            }
        )
        remask = state.revisable & (state.token_confidence < self.keep)
        return StrategyOutput(selection=state.eligible & (state.confidence > 0.5), remask=remask)


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = hf_unmask.load_builtin_model("tiny-dllm-long")
    tokenizer.padding_side = "left"
    return model, tokenizer


def _generate(model, ids, strategy, **kwargs):
    kwargs = {"max_new_tokens": 32, "return_dict_in_generate": True, **kwargs}
    return model.generate(**ids, strategy=strategy, **kwargs)


@pytest.mark.parametrize("block_length", [32, 8])
def test_remasks_stay_in_the_block_and_the_budget_holds(tiny, block_length):
    model, tokenizer = tiny
    ids = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    P = ids.input_ids.shape[1]
    out = _generate(
        model, ids, UnsureRemasker(0.99), block_length=block_length, output_trajectory=True, output_history=True
    )
    traj = out.trajectory
    assert bool(traj.remasked.any())  # the rule does re-mask on this model
    assert bool((traj.remasked <= traj.remask_action).all()) and bool((traj.remask_action <= traj.revisable).all())
    # revisable = decided positions of the current block only
    assert not bool((traj.revisable & traj.masked).any())
    blocks = torch.arange(32) // block_length
    for t in range(traj.num_steps):
        outside = blocks != int(traj.block[t])
        assert not bool(traj.revisable[t][:, outside].any())
    assert bool((out.history[:, :, :P] == ids.input_ids).all())  # the prompt never changes
    mask_id = model.generation_config.mask_token_id
    assert not bool((out.sequences[:, P:] == mask_id).any())  # every block finished
    assert bool((out.nfe <= 32).all())  # the default budget: one token per step at worst


def test_nfe_within_max_steps_and_cap_keeps_least_confident(tiny):
    model, tokenizer = tiny
    ids = tokenizer(PROMPTS[:1], return_tensors="pt")
    for max_steps in (6, 10):
        out = _generate(
            model, ids, UnsureRemasker(0.999), block_length=32, max_steps=max_steps, output_trajectory=True
        )
        assert int(out.nfe.max()) <= max_steps
        assert not bool((out.sequences == model.generation_config.mask_token_id).any())
        traj = out.trajectory
        capped = traj.remask_action & ~traj.remasked
        for t in range(traj.num_steps):  # a dropped re-mask is never less confident than a kept one
            for b in range(traj.remasked.shape[1]):
                kept, dropped = traj.remasked[t, b], capped[t, b]
                if kept.any() and dropped.any():
                    conf = traj.token_confidence[t, b]
                    assert float(conf[kept].max()) <= float(conf[dropped].min())
    assert bool(capped.any())  # with 6 steps the cap did bind


def test_state_carries_token_confidence_and_decided_time(tiny):
    model, tokenizer = tiny
    ids = tokenizer(PROMPTS[:1], return_tensors="pt")
    strategy = UnsureRemasker(0.5)
    out = _generate(model, ids, strategy, block_length=32, output_trajectory=True)
    first, later = strategy.seen[0], strategy.seen[1:]
    assert not bool(first["revisable"].any()) and bool((first["token_confidence"] == 0).all())
    for seen in later:
        decided = ~seen["masked"]
        assert bool((seen["token_confidence"][decided] > 0).all()) and bool(
            (seen["token_confidence"][~decided] == 0).all()
        )
        assert bool((seen["decided_time"][decided] < seen["time"].unsqueeze(-1).expand_as(decided)[decided]).all())
    # the trajectory records what the strategy saw
    assert torch.equal(out.trajectory.token_confidence[-1], strategy.seen[-1]["token_confidence"])
    assert torch.equal(out.trajectory.decided_time[-1], strategy.seen[-1]["decided_time"])


@pytest.mark.parametrize("cache", CACHES, ids=["no-cache", "prefix", "dual"])
def test_padded_batch_equals_rows_alone(tiny, cache):
    model, tokenizer = tiny
    batch = _generate(model, tokenizer(PROMPTS, return_tensors="pt", padding=True), UnsureRemasker(0.95), **cache)
    for i, prompt in enumerate(PROMPTS):
        alone = _generate(model, tokenizer([prompt], return_tensors="pt"), UnsureRemasker(0.95), **cache)
        n = alone.sequences.shape[1]
        assert torch.equal(batch.sequences[i, -32:], alone.sequences[0, n - 32 :])
        assert int(batch.nfe[i]) == int(alone.nfe[0])


def test_block_causal_model_remasks_within_its_block():
    model = toy_block_model()
    prompt = torch.tensor([[5, 6, 7, 8, 9, 10], [0, 0, 11, 12, 13, 14]])
    attn = torch.tensor([[1] * 6, [0, 0, 1, 1, 1, 1]])
    kwargs = {"max_new_tokens": 8, "block_length": 4, "return_dict_in_generate": True, "output_trajectory": True}
    for cache in ({}, {"use_cache": True}):
        out = model.generate(prompt, attention_mask=attn, strategy=UnsureRemasker(0.99), **kwargs, **cache)
        assert bool((out.trajectory.remasked <= out.trajectory.revisable).all())
        assert not bool((out.sequences[:, 6:14] == TOY_MASK).any())
        alone = model.generate(prompt[1:, 2:], strategy=UnsureRemasker(0.99), **kwargs, **cache)
        assert torch.equal(out.sequences[1, 6:14], alone.sequences[0, 4:12])


def test_remasking_helpers():
    remask = torch.tensor([[True, True, True, False]])
    conf = torch.tensor([[0.5, 0.1, 0.3, 0.0]])
    assert Remasking.kept(remask, conf, torch.tensor([2])).tolist() == [[False, True, True, False]]
    assert Remasking.kept(remask, conf, torch.tensor([-1])).tolist() == [[False, False, False, False]]
    assert Remasking.kept(remask, conf, None) is remask
    logits = torch.tensor([[[0.0, 0.0], [2.0, 0.0]]])
    got = Remasking.token_confidence(logits, torch.tensor([[1, 0]]), torch.tensor([[True, False]]))
    assert torch.allclose(got, torch.tensor([[0.0, torch.sigmoid(torch.tensor(2.0)).item()]]))


class _NoFlag:
    def __call__(self, state):
        return StrategyOutput(selection=state.eligible, remask=torch.zeros_like(state.eligible))


class _BadShape(UnsureRemasker):
    def __call__(self, state):
        return StrategyOutput(selection=state.eligible, remask=torch.zeros(1, 3, dtype=torch.bool))


class _Both(UnsureRemasker):
    revises_decided_tokens = True


class _OnlyEligible(UnsureRemasker):
    reads_only_eligible = True


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        (_NoFlag(), "remasks_decided_tokens = True"),
        (_BadShape(), "remask is"),
        (_Both(), "not both"),
        (_OnlyEligible(), "reads_only_eligible"),
    ],
)
def test_bad_remasking_strategies_get_clear_errors(tiny, strategy, message):
    model, tokenizer = tiny
    with pytest.raises(ValueError, match=message):
        _generate(model, tokenizer(PROMPTS[:1], return_tensors="pt"), strategy)
