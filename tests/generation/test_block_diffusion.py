"""Block diffusion in `generate`: absolute block alignment, the exact block cache, the families' own decoders
against reference loops written from the published algorithms, token editing, and policies on a block-causal
model."""

from __future__ import annotations

import logging

import block_decoder_references as references
import pytest
import torch
from block_causal_toy import TOY_BLOCK, TOY_EOS, TOY_MASK, published_block_mask, toy_block_model

from hf_unmask.generation.blocks import BlockLayout
from hf_unmask.strategies import (
    ConfidencePolicy,
    ConfidenceThreshold,
    LLaDA2Decoder,
    LLaDA21Decoder,
    SDARDecoder,
    StrategyOutput,
    TopKConfidence,
    UnmaskingStrategy,
)


@pytest.fixture(scope="module")
def model():
    return toy_block_model(0)


def prompt(length: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(3, TOY_MASK, (1, length), generator=g)


def left_padded(*rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(r.shape[1] for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - r.shape[1] :] = r[0]
        mask[i, width - r.shape[1] :] = 1
    return ids, mask


def cut(ids: list[int]) -> list[int]:
    return references.cut(ids, {TOY_EOS})


# ---------------------------------------------------------------------------------------------- reference loops
def greedy_step(model):
    """The published samplers' forward: the canvas up to the block's end, block-causal mask, absolute positions."""

    def step(x, end):
        mask = published_block_mask(end, TOY_BLOCK)
        out = model(x[:, :end], attention_mask=mask, position_ids=torch.arange(end)[None])
        logits = out.logits[0, -TOY_BLOCK:].float()
        logits[:, TOY_MASK] = float(
            "-inf"
        )  # hf_unmask never proposes [MASK]; the reference decides on the same logits
        probs, tokens = torch.softmax(logits, -1).max(-1)
        return tokens, probs

    return step


def reference_llada2(model, ids, L, BL, steps, threshold):
    tokens, nfe, _ = references.reference_llada2(greedy_step(model), ids, L, BL, steps, threshold, TOY_MASK, {TOY_EOS})
    return tokens, nfe


def reference_llada21(model, ids, L, BL, threshold, edit_threshold, max_post):
    tokens, nfe, edits, _ = references.reference_llada21(
        greedy_step(model), ids, L, BL, threshold, edit_threshold, max_post, TOY_MASK, {TOY_EOS}
    )
    return tokens, nfe, edits


def reference_sdar(model, ids, L, BL, steps, rule, threshold):
    tokens, _ = references.reference_sdar(greedy_step(model), ids, L, BL, steps, rule, threshold, TOY_MASK, {TOY_EOS})
    return tokens


# ---------------------------------------------------------------------------------------------- layout
def test_blocks_are_aligned_to_each_rows_positions():
    layout = BlockLayout.aligned(torch.tensor([6, 8]), gen_length=8, block_length=4)
    # row 0: its prompt ends 2 positions into a block, which takes the first 2 generated tokens
    assert layout.block_of_position[0].tolist()[:4] == [0, 0, 1, 1]
    assert layout.block_of_position[1].tolist()[:4] == [0, 0, 0, 0]
    assert layout.canvas_length == 10 and layout.num_blocks == 3
    # every row's decoded region ends at a block boundary of its own positions
    for p, row in zip((6, 8), layout.block_of_position):
        assert (p + int((row >= 0).sum())) % 4 == 0


def test_generated_region_runs_to_the_block_end_and_is_cut(model):
    out = model.generate(prompt(6), max_new_tokens=8, return_dict_in_generate=True, output_trajectory=True)
    assert out.sequences.shape == (1, 14)
    assert out.trajectory.masked.shape[-1] == 10  # 8 asked + 2 more to finish the last block (6 + 10 = 16)
    assert (out.sequences[:, 6:] != TOY_MASK).all()


# ---------------------------------------------------------------------------------------------- exact block cache
def _logits_per_step(model, ids, mask, **kwargs):
    seen = []
    out = model.generate(
        ids,
        attention_mask=mask,
        max_new_tokens=12,
        strategy=ConfidenceThreshold(0.5),
        drop_finished_rows=False,
        callback_on_step_end=lambda s: seen.append(s.state.logits.clone()),
        return_dict_in_generate=True,
        **kwargs,
    )
    return out, seen


@pytest.mark.parametrize("prompts", [(5,), (5, 9, 3)])
def test_cached_logits_equal_uncached_logits_at_every_step(model, prompts):
    ids, mask = left_padded(*(prompt(n, seed=n) for n in prompts))
    plain, plain_logits = _logits_per_step(model, ids, mask)
    cached, cached_logits = _logits_per_step(model, ids, mask, use_cache=True)
    assert len(plain_logits) == len(cached_logits) > 3
    for a, b in zip(plain_logits, cached_logits):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert torch.equal(plain.sequences, cached.sequences) and torch.equal(plain.nfe, cached.nfe)
    # the cache feeds fewer positions than the prefix forwards
    assert (cached.forward_positions < plain.forward_positions).all()


@pytest.mark.parametrize("use_cache", [False, True])
@pytest.mark.parametrize(
    "strategy", [TopKConfidence(), LLaDA2Decoder(threshold=0.5, steps_per_block=4), LLaDA21Decoder(0.5, 0.3)]
)
def test_padded_batch_equals_rows_alone(model, use_cache, strategy):
    rows = [prompt(n, seed=n) for n in (5, 9, 2)]
    ids, mask = left_padded(*rows)
    kwargs = dict(max_new_tokens=8, strategy=strategy, use_cache=use_cache, return_dict_in_generate=True)
    batch = model.generate(ids, attention_mask=mask, **kwargs)
    for i, row in enumerate(rows):
        alone = model.generate(row, **kwargs)
        assert batch.sequences[i, -8:].tolist() == alone.sequences[0, -8:].tolist()
        assert int(batch.nfe[i]) == int(alone.nfe[0])


# ---------------------------------------------------------------------------------------------- families' decoders
@pytest.mark.parametrize("prompt_length", [5, 8])
@pytest.mark.parametrize("threshold,steps", [(0.5, 4), (0.95, 4), (0.3, 2)])
def test_llada2_decoder_matches_the_published_algorithm(model, prompt_length, threshold, steps):
    ids = prompt(prompt_length, seed=prompt_length)
    expected, nfe = reference_llada2(model, ids, 16, TOY_BLOCK, steps, threshold)
    for use_cache in (False, True):
        out = model.generate(
            ids,
            max_new_tokens=16,
            strategy=LLaDA2Decoder(threshold=threshold, steps_per_block=steps),
            use_cache=use_cache,
            return_dict_in_generate=True,
        )
        assert cut(out.sequences[0, prompt_length:].tolist()) == expected
        assert int(out.nfe[0]) == nfe


@pytest.mark.parametrize("prompt_length", [5, 8])
@pytest.mark.parametrize("threshold,edit_threshold,max_post", [(0.5, 0.3, 16), (0.9, 0.2, 2), (0.4, 0.9, 16)])
def test_llada21_decoder_with_editing_matches_the_published_algorithm(
    model, prompt_length, threshold, edit_threshold, max_post
):
    ids = prompt(prompt_length, seed=prompt_length + 1)
    expected, nfe, edits = reference_llada21(model, ids, 12, TOY_BLOCK, threshold, edit_threshold, max_post)
    strategy = LLaDA21Decoder(threshold=threshold, editing_threshold=edit_threshold, max_post_steps=max_post)
    for use_cache in (False, True):
        out = model.generate(
            ids, max_new_tokens=12, strategy=strategy, use_cache=use_cache, return_dict_in_generate=True,
            output_trajectory=True,
        )  # fmt: skip
        assert cut(out.sequences[0, prompt_length:].tolist()) == expected
        assert int(out.nfe[0]) == nfe
        assert int(out.trajectory.revised.sum()) == edits
    if edit_threshold < 0.5:
        assert edits > 0  # the case exercises editing


def test_editing_touches_neither_the_prompt_nor_other_blocks_and_stays_within_max_steps(model):
    ids = prompt(6, seed=3)
    out = model.generate(
        ids,
        max_new_tokens=16,
        strategy=LLaDA21Decoder(threshold=0.5, editing_threshold=0.05),
        max_steps=20,
        return_dict_in_generate=True,
        output_trajectory=True,
        output_history=True,
    )
    traj = out.trajectory
    assert int(out.nfe[0]) <= 20
    assert traj.revised.any()
    assert not (traj.revised & ~traj.revisable).any()
    for t in range(traj.num_steps):
        block = int(traj.block[t])
        in_block = BlockLayout.aligned(torch.tensor([6]), 16, TOY_BLOCK).block_of_position == block
        assert not (traj.revised[t] & ~in_block).any()
        before, after = out.history[t], out.history[t + 1]
        assert torch.equal(before[:, :6], after[:, :6])  # the prompt never changes
        changed = (before != after)[:, 6:]
        assert not (changed & ~in_block[:, : changed.shape[1]]).any()


@pytest.mark.parametrize("rule", SDARDecoder.RULES)
@pytest.mark.parametrize("steps", [4, 2])
def test_sdar_decoder_matches_the_published_algorithm(model, rule, steps):
    ids = prompt(7, seed=4)
    expected = reference_sdar(model, ids, 16, TOY_BLOCK, steps, rule, 0.5)
    strategy = SDARDecoder(remasking_strategy=rule, confidence_threshold=0.5, denoising_steps=steps)
    for use_cache in (False, True):
        out = model.generate(ids, max_new_tokens=16, strategy=strategy, use_cache=use_cache)
        assert cut(out[0, 7:].tolist()) == expected


# ---------------------------------------------------------------------------------------------- policies
@pytest.mark.parametrize("use_cache", [False, True])
def test_policy_log_probs_reproduce_on_a_block_causal_model(model, use_cache):
    torch.manual_seed(0)
    policy = ConfidencePolicy(mode="bernoulli", temperature=0.7)
    ids, mask = left_padded(prompt(5), prompt(9, seed=2))
    out = model.generate(
        ids, attention_mask=mask, max_new_tokens=8, strategy=policy, seed=0, use_cache=use_cache,
        output_trajectory=True, return_dict_in_generate=True,
    )  # fmt: skip
    traj = out.trajectory
    assert traj.log_prob is not None
    torch.testing.assert_close(policy.log_prob(traj), traj.log_prob, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------- bad input
def test_block_length_other_than_trained_warns_once(model, caplog):
    with caplog.at_level(logging.WARNING, logger="hf_unmask.generation.block_diffusion"):
        model.generate(prompt(4), max_new_tokens=8, block_length=8)
        model.generate(prompt(4), max_new_tokens=8, block_length=8)
    warnings = [r for r in caplog.records if "trained with blocks of 4" in r.getMessage()]
    assert len(warnings) <= 1  # once per family and size (it may have been given by an earlier test)


def test_length_not_a_multiple_of_the_trained_block_is_refused(model):
    with pytest.raises(ValueError, match="not a multiple of the block size 4"):
        model.generate(prompt(4), max_new_tokens=6)


def test_revision_without_opting_in_is_refused(model):
    class Sneaky(UnmaskingStrategy):
        def __call__(self, state):
            return StrategyOutput(selection=state.eligible, revision=torch.zeros_like(state.eligible))

    with pytest.raises(ValueError, match="revises_decided_tokens = True"):
        model.generate(prompt(4), max_new_tokens=8, strategy=Sneaky())


def test_a_revising_strategy_that_reads_only_eligible_positions_is_refused(model):
    class Blind(LLaDA21Decoder):
        reads_only_eligible = True

    with pytest.raises(ValueError, match="reads_only_eligible"):
        model.generate(prompt(4), max_new_tokens=8, strategy=Blind())


@pytest.mark.parametrize("use_cache", [False, True])
def test_editing_on_a_full_attention_model_stays_in_the_current_block(use_cache):
    import hf_unmask

    tiny, tokenizer = hf_unmask.load_builtin_model("tiny-dllm")
    ids = tokenizer("trace : 2 | +1 *7 *9 *9 *7 +3 +2 +4 +1 +4 *9 | run 5", return_tensors="pt").input_ids
    out = tiny.generate(
        ids, max_new_tokens=16, block_length=8, strategy=LLaDA21Decoder(threshold=0.5, editing_threshold=0.0),
        use_cache=use_cache, return_dict_in_generate=True, output_trajectory=True, output_history=True, max_steps=24,
    )  # fmt: skip
    traj, P = out.trajectory, ids.shape[1]
    assert int(out.nfe[0]) <= 24
    for t in range(traj.num_steps):
        in_block = (torch.arange(16) // 8 == int(traj.block[t])).unsqueeze(0)
        changed = (out.history[t] != out.history[t + 1])[:, P:]
        assert not (changed & ~in_block).any()
        assert torch.equal(out.history[t][:, :P], out.history[t + 1][:, :P])
    assert (out.sequences[:, P:] != tokenizer.mask_token_id).all()


def test_the_policy_time_input_counts_steps_over_max_new_tokens(model):
    out = model.generate(
        prompt(6), max_new_tokens=8, strategy=ConfidencePolicy(), seed=0, output_trajectory=True,
        return_dict_in_generate=True,
    )  # fmt: skip
    traj = out.trajectory
    assert traj.masked.shape[-1] == 10  # the canvas runs past L = 8 to the end of the last block
    torch.testing.assert_close(traj.time[:, 0], torch.arange(traj.num_steps, dtype=torch.float32) / 8)


@pytest.mark.parametrize("use_cache", [False, True])
def test_a_learned_policy_decodes_a_padded_row_as_alone(model, use_cache):
    torch.manual_seed(3)
    # a near-zero temperature makes every draw certain (probabilities 0 or 1), so the batch and the rows alone,
    # which draw different random numbers, decide the same; random weights make the policy read its inputs
    policy = ConfidencePolicy(mode="bernoulli", temperature=1e-3)
    for p in policy.parameters():
        torch.nn.init.normal_(p, std=0.3)
    reader = ConfidencePolicy(mode="bernoulli", temperature=1.0)  # the same network, probabilities not saturated
    reader.load_state_dict(policy.state_dict())
    rows = [prompt(n, seed=n) for n in (6, 3, 9)]  # canvases of 10, 9 and 11 positions for L = 8
    ids, mask = left_padded(*rows)

    def run(ids, mask):
        probs = []
        kwargs = dict(max_new_tokens=8, strategy=policy, use_cache=use_cache, return_dict_in_generate=True)
        record = lambda s: probs.append(reader.unmask_probabilities(s.state.over_full_batch()))  # noqa: E731
        out = model.generate(ids, attention_mask=mask, output_trajectory=True, callback_on_step_end=record, **kwargs)
        return out, probs

    batch, batch_probs = run(ids, mask)
    assert batch.trajectory.padding_mask is not None and not batch.trajectory.padding_mask.all()
    for i, row in enumerate(rows):
        alone, alone_probs = run(row, None)
        assert batch.sequences[i, -8:].tolist() == alone.sequences[0, -8:].tolist()
        assert int(batch.nfe[i]) == int(alone.nfe[0])
        width = alone_probs[0].shape[-1]
        for t in range(int(alone.nfe[0])):  # the policy's probabilities over the row's canvas, step by step
            torch.testing.assert_close(batch_probs[t][i, :width], alone_probs[t][0], atol=1e-5, rtol=0)


def test_rollouts_of_different_canvas_lengths_concatenate_with_a_padding_mask():
    from hf_unmask.trainer.rollouts import concat_rollouts

    def part(width, with_mask):
        p = {
            "sequences": torch.zeros(1, 3, dtype=torch.long),
            "nfe": torch.ones(1, dtype=torch.long),
            "live": torch.ones(1, 2, dtype=torch.bool),
            "time": torch.zeros(1, 2),
            **{k: torch.ones(1, 2, width, dtype=torch.bool) for k in ("masked", "eligible", "action")},
            "confidence": torch.ones(1, 2, width),
        }
        if with_mask:
            p["padding_mask"] = torch.ones(1, 2, width, dtype=torch.bool)
        return p

    batch = concat_rollouts([part(5, True), part(3, False)])
    assert batch["masked"].shape == (2, 2, 5)
    assert batch["padding_mask"][0].all() and batch["padding_mask"][1, :, :3].all()
    assert not batch["padding_mask"][1, :, 3:].any() and not batch["eligible"][1, :, 3:].any()


def test_the_block_cache_feeds_only_the_rows_at_work(model):
    """Rows that finish a block early leave the forward batch with the cache too, and come back at the next block
    (whose first step re-feeds the block they left): the same tokens as feeding every row."""
    ids, mask = left_padded(*(prompt(n, seed=n) for n in (5, 9, 2, 7)))
    subsets = []
    kwargs = dict(attention_mask=mask, max_new_tokens=16, strategy=LLaDA2Decoder(threshold=0.3, steps_per_block=4))
    every_row = model.generate(ids, use_cache=True, drop_finished_rows=False, **kwargs)
    record = lambda s: subsets.append(s.state.rows is not None)  # noqa: E731
    at_work = model.generate(ids, use_cache=True, callback_on_step_end=record, **kwargs)
    uncached = model.generate(ids, **kwargs)
    assert any(subsets)  # some steps fed only some rows
    assert torch.equal(at_work, every_row) and torch.equal(at_work, uncached)


@pytest.mark.parametrize("name", sorted(__import__("hf_unmask").strategies.registered_strategy_names()))
def test_every_registered_strategy_runs_on_a_block_causal_model(model, name):
    from hf_unmask.strategies import get_strategy_by_name

    strategy = get_strategy_by_name(name)
    ids, mask = left_padded(prompt(5), prompt(9, seed=2))
    out = model.generate(
        ids, attention_mask=mask, max_new_tokens=8, strategy=strategy, seed=0, return_dict_in_generate=True
    )
    assert out.sequences.shape == (2, 9 + 8)
    assert (out.sequences[:, -8:] != TOY_MASK).all()  # every block is finished


@pytest.mark.parametrize("use_cache", [False, True])
def test_a_shipped_policy_runs_on_a_block_causal_model(model, use_cache):
    import warnings

    import hf_unmask

    policy = hf_unmask.load_builtin_policy("tiny-dllm-program_trace-bl8-alpha1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # trained for another setting: it says so, and runs
        out = model.generate(prompt(6), max_new_tokens=8, strategy=policy, use_cache=use_cache, seed=0)
    assert (out[:, -8:] != TOY_MASK).all()


def test_a_subclass_does_not_take_over_its_parents_short_name():
    from hf_unmask.strategies import registered_strategy_names

    class Variant(LLaDA21Decoder):
        pass

    assert registered_strategy_names()["llada2.1"] is LLaDA21Decoder
