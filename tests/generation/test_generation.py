"""The diffusion generation loop: config, batching, guarantees, outputs and bad input."""

from __future__ import annotations

import io
import json

import pytest
import torch
from tiny_bert import seeded_tiny_bert
from transformers import BertConfig, BertForMaskedLM, GenerationConfig, LogitsProcessorList

import hf_unmask
from hf_unmask import DiffusionGenerationConfig, DiffusionTextStreamer, diffusion_generate
from hf_unmask.strategies import TopKConfidence

MASK = 3
EOS = 2
VOCAB = 40


def make_model(seed: int = 0, scale: float = 4.0) -> BertForMaskedLM:
    model = seeded_tiny_bert(seed, vocab_size=VOCAB, pad_token_id=0)
    with torch.no_grad():  # spread the confidences so greedy choices are far from ties
        model.cls.predictions.decoder.weight.mul_(scale)
    return hf_unmask.enable_diffusion_generate(model, mask_token_id=MASK)


@pytest.fixture(scope="module")
def model() -> BertForMaskedLM:
    return make_model()


def prompts() -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    rows = [torch.tensor([5, 6, 7, 8, 9]), torch.tensor([10, 11]), torch.tensor([12, 13, 14])]
    width = max(len(r) for r in rows)
    ids = torch.zeros(len(rows), width, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :] = r
        mask[i, width - len(r) :] = 1
    return ids, mask, rows


# ---------------------------------------------------------------------------------------------- config
def test_config_roundtrip_and_kwargs_override(tmp_path, model):
    config = DiffusionGenerationConfig(max_new_tokens=16, block_length=4, steps=8, stop_at_eos=True, temperature=0.7)
    assert config.do_sample and config.num_blocks == 4
    config.save_pretrained(tmp_path)
    data = json.loads((tmp_path / "generation_config.json").read_text())
    assert data["block_length"] == 4 and data["steps"] == 8
    loaded = DiffusionGenerationConfig.from_pretrained(tmp_path)
    assert isinstance(loaded, DiffusionGenerationConfig)
    assert (loaded.max_new_tokens, loaded.block_length, loaded.steps, loaded.stop_at_eos) == (16, 4, 8, True)

    ids = torch.tensor([[5, 6, 7]])
    greedy = DiffusionGenerationConfig(max_new_tokens=8, block_length=8)
    out = model.generate(ids, generation_config=greedy, block_length=4, return_dict_in_generate=True)
    direct = model.generate(ids, max_new_tokens=8, block_length=4, return_dict_in_generate=True)
    assert torch.equal(out.sequences, direct.sequences)
    assert greedy.block_length == 8, "generate must not mutate the caller's config"


def test_plain_generation_config_is_accepted(model):
    ids = torch.tensor([[5, 6, 7]])
    out = model.generate(ids, generation_config=GenerationConfig(max_new_tokens=8), return_dict_in_generate=True)
    assert out.sequences.shape == (1, 11)


def test_temperature_zero_is_greedy_and_sampling_is_seeded(model):
    ids = torch.tensor([[5, 6, 7]])
    greedy = model.generate(ids, max_new_tokens=8, temperature=0.0)
    assert torch.equal(greedy, model.generate(ids, max_new_tokens=8))
    a = model.generate(ids, max_new_tokens=8, temperature=1.5, seed=123)
    b = model.generate(ids, max_new_tokens=8, temperature=1.5, generator=torch.Generator().manual_seed(123))
    assert torch.equal(a, b)
    draws = {tuple(model.generate(ids, max_new_tokens=8, temperature=5.0, seed=s)[0].tolist()) for s in range(6)}
    assert len(draws) > 1, "sampling at a high temperature should vary with the seed"


def test_top_k_one_equals_greedy_and_processors_apply(model):
    ids = torch.tensor([[5, 6, 7]])
    greedy = model.generate(ids, max_new_tokens=8)
    assert torch.equal(model.generate(ids, max_new_tokens=8, temperature=3.0, top_k=1, seed=0), greedy)
    assert torch.equal(model.generate(ids, max_new_tokens=8, temperature=3.0, top_p=1e-6, seed=0), greedy)

    def ban_token(token: int):
        def processor(input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
            assert scores.dim() == 3 and input_ids.shape[1] == ids.shape[1] + 8
            scores = scores.clone()
            scores[..., token] = float("-inf")
            return scores

        return processor

    banned = int(greedy[0, 3:].mode().values)
    out = model.generate(ids, max_new_tokens=8, logits_processor=LogitsProcessorList([ban_token(banned)]))
    assert banned not in out[0, 3:].tolist()


# ---------------------------------------------------------------------------------------------- batching
@pytest.mark.parametrize("block_length", [4, 16])
@pytest.mark.parametrize("strategy", [TopKConfidence(), TopKConfidence(steps=8)])
def test_left_padded_batch_equals_rows_alone(model, block_length, strategy):
    ids, mask, rows = prompts()
    batch = model.generate(
        ids,
        attention_mask=mask,
        max_new_tokens=16,
        block_length=block_length,
        strategy=strategy,
        return_dict_in_generate=True,
    )
    for i, row in enumerate(rows):
        alone = model.generate(
            row.unsqueeze(0),
            max_new_tokens=16,
            block_length=block_length,
            strategy=strategy,
            return_dict_in_generate=True,
        )
        assert torch.equal(batch.sequences[i, -16:], alone.sequences[0, -16:]), f"row {i} differs"
        assert int(batch.nfe[i]) == int(alone.nfe[0])


def test_nfe_counts_only_live_rows(model):
    """A row that stops at EOS early stops counting forward passes while the other keeps going."""
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])

    def finish_row0_first(state):
        # state.rows: the batch rows this step feeds (None: all); a finished row is left out of the step
        rows = state.rows.tolist() if state.rows is not None else list(range(state.batch_size))
        sel = torch.zeros_like(state.eligible)
        for i, row in enumerate(rows):
            if row == 0:
                sel[i] = state.eligible[i]  # row 0 unmasks its whole block at once
            else:
                sel[i, state.eligible[i].nonzero()[:1, 0]] = True  # row 1 one token per step
        return sel

    out = model.generate(
        ids, max_new_tokens=8, block_length=4, strategy=finish_row0_first, return_dict_in_generate=True
    )
    assert out.nfe.tolist() == [2, 8]


# ---------------------------------------------------------------------------------------------- guarantees
def _select_nothing(state):
    return torch.zeros_like(state.eligible)


def _select_everything(state):
    return torch.ones_like(state.eligible)


def _select_outside_block(state):
    return ~state.eligible


def _garbage(state):
    return torch.rand(state.eligible.shape, generator=torch.Generator().manual_seed(state.step)) > 0.7


@pytest.mark.parametrize("strategy", [_select_nothing, _select_everything, _select_outside_block, _garbage])
@pytest.mark.parametrize("block_length", [4, 16])
@pytest.mark.parametrize("fallback", [True, False])
def test_any_strategy_terminates_with_no_mask_left(model, strategy, block_length, fallback):
    ids, mask, _ = prompts()
    out = model.generate(
        ids,
        attention_mask=mask,
        max_new_tokens=16,
        block_length=block_length,
        strategy=strategy,
        progress_fallback=fallback,
        return_dict_in_generate=True,
        output_history=True,
    )
    assert not (out.sequences[:, -16:] == MASK).any()
    assert torch.equal(out.sequences[:, : ids.shape[1]], ids), "the prompt must never change"
    assert (out.nfe <= 16).all() and (out.nfe >= 1).all()
    if strategy is _select_everything:
        assert out.nfe.tolist() == [16 // block_length] * 3
    if strategy in (_select_nothing, _select_outside_block):
        assert out.nfe.tolist() == [16] * 3  # one forced position per step
    # canvas changes monotonically: a decided token is never changed or re-masked
    hist = out.history[:, :, -16:]
    decided_before = hist[:-1] != MASK
    assert torch.equal(hist[1:][decided_before], hist[:-1][decided_before])


def _one_position_or_all(state):
    """Garbage that alternates between selecting nothing and everything, per row and step."""
    rows = (torch.arange(state.batch_size) + state.step) % 3
    return torch.where((rows == 0).unsqueeze(-1), torch.zeros_like(state.eligible), torch.ones_like(state.eligible))


@pytest.mark.parametrize("strategy", [_select_nothing, _garbage, _one_position_or_all, "top_k_confidence"])
@pytest.mark.parametrize("block_length", [4, 16])
@pytest.mark.parametrize("stop_at_eos", [False, True])
def test_skipping_the_pace_rule_changes_nothing_when_it_cannot_bind(
    model, monkeypatch, strategy, block_length, stop_at_eos
):
    """With the fallback on and BL steps per block the loop skips the pace rule; forcing it gives the same run."""
    import hf_unmask.generation.denoising as loop

    ids, mask, _ = prompts()
    settings = dict(
        attention_mask=mask,
        max_new_tokens=16,
        block_length=block_length,
        strategy=strategy,
        stop_at_eos=stop_at_eos,
        eos_token_id=EOS,
        return_dict_in_generate=True,
        output_trajectory=True,
    )
    assert not loop._pace_can_bind(block_length, block_length, True)
    skipped = model.generate(ids, **settings)
    monkeypatch.setattr(loop, "_pace_can_bind", lambda *_: True)
    forced = model.generate(ids, **settings)
    assert torch.equal(skipped.sequences, forced.sequences) and torch.equal(skipped.nfe, forced.nfe)
    assert torch.equal(skipped.trajectory.unmasked, forced.trajectory.unmasked)


def test_max_steps_caps_forward_passes(model):
    ids = torch.tensor([[5, 6, 7]])
    out = model.generate(
        ids, max_new_tokens=16, block_length=4, max_steps=8, strategy=_select_nothing, return_dict_in_generate=True
    )
    assert int(out.nfe[0]) == 8 and not (out.sequences == MASK).any()


def test_fallback_off_allows_empty_actions_and_records_them(model):
    ids = torch.tensor([[5, 6, 7]])

    def every_other_step(state):
        if state.step % 2 == 1:
            return torch.zeros_like(state.eligible)
        return state.eligible & (
            state.confidence >= state.confidence.masked_fill(~state.eligible, -1).amax(-1, keepdim=True)
        )

    out = model.generate(
        ids,
        max_new_tokens=8,
        block_length=8,
        max_steps=8,
        strategy=every_other_step,
        progress_fallback=False,
        return_dict_in_generate=True,
        output_trajectory=True,
    )
    traj = out.trajectory
    assert traj.action.shape == (traj.num_steps, 1, 8)
    empty_steps = (traj.action.sum(-1) == 0).squeeze(-1)
    assert empty_steps.any(), "an empty action must be possible with progress_fallback=False"
    assert torch.equal(traj.action & ~traj.eligible, torch.zeros_like(traj.action))
    assert (traj.unmasked | ~traj.action).all(), "everything the strategy chose is unmasked"
    assert int(out.nfe[0]) == traj.num_steps <= 8


def test_trajectory_contents_match_the_loop(model):
    ids, mask, _ = prompts()
    out = model.generate(
        ids,
        attention_mask=mask,
        max_new_tokens=8,
        block_length=4,
        return_dict_in_generate=True,
        output_trajectory=True,
    )
    traj = out.trajectory
    T = traj.num_steps
    assert traj.confidence.shape == (T, 3, 8) and traj.time.shape == (T, 3)
    assert torch.equal(traj.live.sum(0), out.nfe)
    assert torch.allclose(traj.time[:, 0], torch.arange(T, dtype=torch.float32) / 8)
    assert traj.block.tolist() == [0] * 4 + [1] * 4
    assert (traj.eligible <= traj.masked).all()
    assert torch.equal(traj.unmasked.sum(0), torch.ones(3, 8, dtype=torch.long))  # each position once


# ---------------------------------------------------------------------------------------------- EOS
def test_stop_at_eos_fills_the_tail_without_forward_passes(model):
    ids = torch.tensor([[5, 6, 7]])

    class EosAtThree:
        """Left to right; forces EOS as the proposal at generated position 2."""

        def __call__(self, state):
            sel = torch.zeros_like(state.eligible)
            first = state.eligible.float().argmax(-1)
            sel[0, first] = True
            return sel

    def eos_processor(input_ids, scores):
        scores = scores.clone()
        scores[:, 2, :] = float("-inf")
        scores[:, 2, EOS] = 0.0
        return scores

    out = model.generate(
        ids,
        max_new_tokens=12,
        block_length=4,
        strategy=EosAtThree(),
        logits_processor=eos_processor,
        stop_at_eos=True,
        eos_token_id=EOS,
        pad_token_id=EOS,
        return_dict_in_generate=True,
    )
    gen = out.sequences[0, 3:]
    assert int(gen[2]) == EOS and (gen[3:] == EOS).all()
    assert int(out.nfe[0]) == 3
    off = model.generate(
        ids,
        max_new_tokens=12,
        block_length=4,
        strategy=EosAtThree(),
        logits_processor=eos_processor,
        return_dict_in_generate=True,
    )
    assert int(off.nfe[0]) == 12


# ---------------------------------------------------------------------------------------------- streamer
def test_streamer_receives_every_step():
    model = make_model()

    class Tok:
        mask_token_id = MASK

        def decode(self, ids, skip_special_tokens=True):
            return " ".join(str(i) for i in ids) + " "

    buffer = io.StringIO()
    streamer = DiffusionTextStreamer(Tok(), stream=buffer, mask_placeholder="_ ")
    out = model.generate(torch.tensor([[5, 6]]), max_new_tokens=4, streamer=streamer, return_dict_in_generate=True)
    lines = buffer.getvalue().strip().splitlines()
    assert len(lines) == int(out.nfe[0]) == 4
    assert lines[0].count("_") == 3 and "_" not in lines[-1]
    assert lines[-1].endswith(" ".join(str(t) for t in out.sequences[0, 2:].tolist()))


# ---------------------------------------------------------------------------------------------- bad input
def test_missing_mask_token_is_explained():
    torch.manual_seed(0)
    bare = BertForMaskedLM(
        BertConfig(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
    )
    with pytest.raises(ValueError, match="mask token id"):
        diffusion_generate(bare.eval(), torch.tensor([[5, 6]]), max_new_tokens=4)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"max_new_tokens": 16, "block_length": 5}, ValueError, "does not divide"),
        ({"max_new_tokens": 0}, ValueError, "max_new_tokens"),
        ({"max_new_tokens": -4}, ValueError, "max_new_tokens"),
        ({"max_new_tokens": 16, "block_length": 4, "steps": 6}, ValueError, "multiple of the number of blocks"),
        ({"max_new_tokens": 16, "steps": 32}, ValueError, "at most one step per token"),
        ({"max_new_tokens": 16, "block_length": 4, "max_steps": 2}, ValueError, "max_steps"),
        ({"max_new_tokens": 8, "max_length": 20}, ValueError, "autoregressive"),
        ({"max_new_tokens": 8, "num_beams": 2}, ValueError, "autoregressive"),
        ({"max_new_tokens": 8, "seed": 1, "generator": torch.Generator()}, ValueError, "either `generator` or `seed`"),
        ({"max_new_tokens": 8, "output_trajectory": True}, ValueError, "return_dict_in_generate"),
        ({"max_new_tokens": 8, "blokc_length": 4}, TypeError, "unexpected arguments"),
        ({"max_new_tokens": 8, "top_p": 1.5}, ValueError, "top_p"),
        ({"max_new_tokens": 8, "stop_at_eos": True, "eos_token_id": None}, ValueError, "EOS"),
    ],
)
def test_bad_generation_arguments(model, kwargs, error, match):
    with pytest.raises(error, match=match):
        model.generate(torch.tensor([[5, 6, 7]]), **kwargs)


@pytest.mark.parametrize(
    "input_ids, attention_mask, error, match",
    [
        (torch.zeros(1, 0, dtype=torch.long), None, ValueError, "Empty prompt"),
        (torch.tensor([5, 6, 7]), None, ValueError, "unsqueeze"),
        (torch.tensor([[5.0, 6.0]]), None, TypeError, "integer"),
        ([[5, 6]], None, TypeError, "torch.Tensor"),
        (torch.tensor([[5, 6, 7]]), torch.ones(1, 2, dtype=torch.long), ValueError, "same shape"),
        (torch.tensor([[5, 6, 7]]), torch.tensor([[1, 1, 0]]), ValueError, "padding_side = 'left'"),
        (torch.tensor([[5, 6, 7]]), torch.tensor([[0, 0, 0]]), ValueError, "all zeros"),
    ],
)
def test_bad_prompts(model, input_ids, attention_mask, error, match):
    with pytest.raises(error, match=match):
        model.generate(input_ids, attention_mask=attention_mask, max_new_tokens=4)


@pytest.mark.parametrize(
    "strategy, error, match",
    [
        (42, TypeError, "must be callable"),
        (lambda s: s.eligible.long(), TypeError, "torch.bool"),
        (lambda s: s.eligible[:, :-1], ValueError, "shape"),
        (
            lambda s: torch.ones(s.batch_size, s.gen_length + 3, dtype=torch.bool),
            ValueError,
            "generated positions only",
        ),
        (lambda s: s.eligible.tolist(), TypeError, "bool tensor"),
        ("no_such_strategy", ValueError, "Unknown strategy"),
    ],
)
def test_bad_strategies(model, strategy, error, match):
    with pytest.raises(error, match=match):
        model.generate(torch.tensor([[5, 6, 7]]), max_new_tokens=4, strategy=strategy)


def test_unknown_model_type_lists_supported_ones():
    class Weird(torch.nn.Module):
        class config:  # noqa: N801
            model_type = "weird_lm"

    with pytest.raises(ValueError, match="Unsupported model type 'weird_lm'.*register_adapter"):
        hf_unmask.enable_diffusion_generate(Weird())


def test_a_saved_diffusion_config_is_honoured_after_from_pretrained(tmp_path):
    """transformers loads generation_config.json as a plain GenerationConfig; one saved from a
    DiffusionGenerationConfig (every diffusion field present) still sets the model's defaults."""
    saved = make_model()
    saved.generation_config = DiffusionGenerationConfig(
        max_new_tokens=8, block_length=4, max_steps=4, stop_at_eos=True, eos_token_id=9, mask_token_id=MASK
    )
    saved.save_pretrained(tmp_path)
    saved.generation_config.save_pretrained(tmp_path)  # transformers saves it only for models that can generate
    loaded = GenerationConfig.from_pretrained(tmp_path)
    assert type(loaded) is GenerationConfig  # as transformers gives it: the keys alone identify our file
    config = hf_unmask.generation.loop.resolve_generation_config(None, loaded, {})
    assert (config.max_new_tokens, config.block_length, config.max_steps, config.stop_at_eos) == (8, 4, 4, True)
    model = hf_unmask.AutoDiffusionLM.from_pretrained(tmp_path)  # reads generation_config.json for BERT too
    config = hf_unmask.generation.loop.resolve_generation_config(model, None, {})
    assert (config.max_new_tokens, config.block_length, config.max_steps, config.stop_at_eos) == (8, 4, 4, True)
    ids = torch.tensor([[5, 6, 7]])
    out = model.generate(ids, strategy="top_k_confidence", return_dict_in_generate=True)
    explicit = model.generate(
        ids,
        strategy="top_k_confidence",
        max_new_tokens=8,
        block_length=4,
        max_steps=4,
        stop_at_eos=True,
        eos_token_id=9,
        return_dict_in_generate=True,
    )
    assert torch.equal(out.sequences, explicit.sequences) and torch.equal(out.nfe, explicit.nfe)
    assert int(out.nfe[0]) <= 4  # the saved max_steps bounds the passes
    # kwargs still override the saved defaults
    assert model.generate(ids, max_new_tokens=6, block_length=None).shape == (1, 9)


def test_foreign_keys_of_a_plain_generation_config_are_dropped(model):
    """A checkpoint's own generation_config.json may carry another project's diffusion keys (Dream's steps=512)."""
    foreign = GenerationConfig(max_new_tokens=8, steps=512, alg="entropy", eps=1e-3, mask_token_id=MASK)
    out = model.generate(torch.tensor([[5, 6, 7]]), generation_config=foreign, return_dict_in_generate=True)
    assert out.sequences.shape == (1, 11) and int(out.nfe[0]) == 8


def test_mask_id_zero_and_family_eos_ids_are_kept():
    model = make_model()
    model.generation_config.eos_token_id = 7
    hf_unmask.enable_diffusion_generate(model, mask_token_id=0)
    assert model.generation_config.mask_token_id == 0

    class TwoEnds(hf_unmask.DiffusionAdapter):
        def eos_token_ids(self):
            return [7, 9]

    model.config.eos_token_id = None
    hf_unmask.enable_diffusion_generate(model, adapter=TwoEnds)
    assert model.generation_config.eos_token_id == [7, 9]


def test_validate_covers_the_diffusion_fields_so_an_invalid_config_is_never_saved(tmp_path):
    with pytest.raises(ValueError, match="block_length=5 does not divide max_new_tokens=16"):
        DiffusionGenerationConfig(max_new_tokens=16, block_length=5)
    config = DiffusionGenerationConfig(max_new_tokens=16, block_length=8)
    config.block_length = 5  # set by hand, behind the constructor's back
    with pytest.raises(ValueError, match="does not divide"):
        config.validate()
    with pytest.raises(ValueError, match="does not divide"):
        config.save_pretrained(tmp_path)
    assert not (tmp_path / "generation_config.json").exists()
    with pytest.raises(TypeError, match="block_length must be an integer"):
        config.update(block_length=2.5)


@pytest.mark.parametrize("block_length", [4, 16])
def test_without_finish_blocks_a_block_ends_after_its_budget_with_masks_left(model, block_length):
    """The paper's training environment: no top-up; a strategy that never selects leaves every position [MASK]."""
    ids, mask, _ = prompts()
    kwargs = dict(attention_mask=mask, max_new_tokens=16, block_length=block_length, return_dict_in_generate=True)
    out = model.generate(ids, strategy=_select_nothing, progress_fallback=False, finish_blocks=False, **kwargs)
    assert (out.sequences[:, -16:] == MASK).all()
    assert out.nfe.tolist() == [16] * 3  # BL steps in each block, each one a forward pass
    # a smaller budget (max_steps = 8: half of each block's steps) ends the blocks earlier, again without a top-up
    out = model.generate(ids, strategy=_garbage, progress_fallback=False, finish_blocks=False, max_steps=8, **kwargs)
    assert (out.nfe <= 8).all()
    # with the budget binding, only what the strategy chose is unmasked: what it left stays masked
    half = model.generate(ids, strategy=_select_nothing, progress_fallback=True, finish_blocks=False, max_steps=8,
                          **kwargs)  # fmt: skip
    assert ((half.sequences[:, -16:] == MASK).sum(-1) == 8).all()  # the fallback unmasks one per step, 8 steps
    # the default keeps the guarantee: the same call finishes every block
    done = model.generate(ids, strategy=_select_nothing, progress_fallback=True, max_steps=8, **kwargs)
    assert not (done.sequences[:, -16:] == MASK).any() and (done.nfe == 8).all()


def test_finish_blocks_must_be_a_bool(model):
    ids, _, _ = prompts()
    with pytest.raises(TypeError, match="finish_blocks must be True or False"):
        model.generate(ids, max_new_tokens=8, finish_blocks="no")
