"""ReMDM and ReMDM-LLaDA: token-for-token (and NFE) agreement with the reference loops of `tests/remdm_reference.py`
on the built-in tiny dLLM, in full diffusion and semi-AR blocks, with and without the KV cache; re-masks stay in
the current block and off the prompt; step budgets hold; batches equal their rows; bad parameters are explained;
saving, loading and spec strings work."""

from __future__ import annotations

import json

import pytest
import remdm_reference as ref
import torch

import hf_unmask
from hf_unmask.evaluation.specs import StrategySpec
from hf_unmask.strategies import ReMDM, ReMDMLLaDA, UnmaskingStrategy, get_strategy_by_name, registered_strategy_names

PROMPTS = ["trace : 3 | +4 *3 +1 *7 +2 | run 6", "cups : ab ac bc | ball a"]
L = 16
#: settings that re-mask often on 16 steps (the published defaults re-mask rarely on so few steps)
STRONG = {
    "cap": dict(eta=0.3),
    "rescale": dict(eta=0.6),
    "conf": dict(),
    "loop": dict(eta=0.5, t_on=0.7, t_off=0.2, alpha_on=0.6),
}


@pytest.fixture(scope="module")
def tiny():
    return hf_unmask.load_builtin_model("tiny-dllm")


@pytest.fixture(scope="module")
def batch(tiny):
    return tiny[1](PROMPTS, return_tensors="pt", padding=True)


def generate(model, batch, strategy, block_length, seed=0, **kwargs):
    return model.generate(
        **batch, strategy=strategy, max_new_tokens=L, block_length=block_length, return_dict_in_generate=True,
        generator=torch.Generator().manual_seed(seed), **kwargs,
    )  # fmt: skip


def remdm_reference(model, batch, schedule, block_length, budget, seed=0, cache_mode=None, steps=None, **rules):
    """`steps`: the time grid's steps per block (default: the block's step budget)."""
    params = ReMDM(schedule=schedule, **STRONG[schedule])
    loop = dict(t_on=params.t_on, t_off=params.t_off, alpha_on=params.alpha_on) if schedule == "loop" else {}
    rule = ref.remdm_rule(schedule, steps or budget, torch.Generator().manual_seed(seed), eta=params.eta, **loop)
    return ref.denoise(model, batch["input_ids"], batch["attention_mask"], L, block_length, budget, rule,
                       model.generation_config.mask_token_id, cache_mode=cache_mode, **rules)  # fmt: skip


def llada_reference(model, batch, block_length, budget, r, cache_mode=None, steps=None, **rules):
    rule = ref.llada_rule(steps or budget, r)
    return ref.denoise(model, batch["input_ids"], batch["attention_mask"], L, block_length, budget, rule,
                       model.generation_config.mask_token_id, cache_mode=cache_mode, eos_id=2, **rules)  # fmt: skip


def assert_same(out, expected):
    x, nfe = expected
    assert torch.equal(out.sequences, x), f"\nours:\n{out.sequences}\nreference:\n{x}"
    assert torch.equal(out.nfe, nfe), f"nfe ours {out.nfe.tolist()} reference {nfe.tolist()}"


# ---------------------------------------------------------------------------------------------- ReMDM sampler
@pytest.mark.parametrize("block_length", [16, 4], ids=["full", "semi_ar"])
@pytest.mark.parametrize("schedule", ["cap", "rescale", "conf", "loop"])
def test_remdm_matches_reference(tiny, batch, schedule, block_length):
    model, _ = tiny
    for seed in (0, 1):
        out = generate(model, batch, ReMDM(schedule=schedule, **STRONG[schedule]), block_length, seed)
        assert_same(out, remdm_reference(model, batch, schedule, block_length, block_length, seed))


@pytest.mark.parametrize("block_length", [16, 8], ids=["full", "semi_ar"])
@pytest.mark.parametrize("schedule", ["cap", "conf", "loop"])
def test_remdm_without_the_loops_guarantees_is_the_published_sampler(tiny, batch, schedule, block_length):
    """progress_fallback=False, finish_blocks=False: nothing but the sampler's own draws (its last step fills)."""
    model, _ = tiny
    rules = dict(progress_fallback=False, finish_blocks=False)
    out = generate(model, batch, ReMDM(schedule=schedule, **STRONG[schedule]), block_length, output_trajectory=True,
                   **rules)  # fmt: skip
    assert out.trajectory.remasked.any(), "no re-mask: the test would not exercise re-masking"
    assert torch.equal(out.trajectory.remasked, out.trajectory.remask_action)  # nothing capped
    expected = remdm_reference(model, batch, schedule, block_length, block_length, fallback=False, finish_blocks=False)
    assert_same(out, expected)


@pytest.mark.parametrize("block_length", [16, 8], ids=["full", "semi_ar"])
def test_remdm_conf_weighs_the_confidence_at_decision(tiny, batch, block_length):
    """On flattened logits (the model's confidences spread out) "conf" re-masks by the confidences kept of each
    position's decision step, as the reference does."""
    model, _ = tiny
    flat = lambda ids, scores: scores * 0.25  # noqa: E731
    for seed in (0, 1, 2):
        out = generate(model, batch, ReMDM(schedule="conf"), block_length, seed, logits_processor=flat,
                       output_trajectory=True)  # fmt: skip
        assert out.trajectory.remasked.any()
        assert_same(out, remdm_reference(model, batch, "conf", block_length, block_length, seed, scale=0.25))


@pytest.mark.parametrize("mode", ["prefix", "dual"])
@pytest.mark.parametrize("schedule", ["cap", "conf"])
def test_remdm_with_the_cache_matches_reference(tiny, batch, schedule, mode):
    model, _ = tiny
    for block_length in (16, 8):
        out = generate(model, batch, ReMDM(schedule=schedule, **STRONG[schedule]), block_length, use_cache=True,
                       cache_mode=mode)  # fmt: skip
        assert_same(out, remdm_reference(model, batch, schedule, block_length, block_length, cache_mode=mode))


@pytest.mark.parametrize("schedule", ["rescale", "loop"])
def test_remdm_within_max_steps_matches_reference(tiny, batch, schedule):
    """A budget below BL (the pace rule binds) and NFE within max_steps."""
    model, _ = tiny
    out = generate(model, batch, ReMDM(schedule=schedule, **STRONG[schedule]), 8, max_steps=10)
    assert_same(out, remdm_reference(model, batch, schedule, 8, 5))
    assert (out.nfe <= 10).all() and not (out.sequences == model.generation_config.mask_token_id).any()


def test_remdm_steps_shortens_the_time_grid(tiny, batch):
    model, _ = tiny
    out = generate(model, batch, ReMDM(schedule="conf", steps=8), 8, output_trajectory=True)
    assert_same(out, remdm_reference(model, batch, "conf", 8, 8, steps=4))
    assert (out.nfe <= 8).all()


def test_remdm_draws_do_not_depend_on_the_rows_fed(tiny, batch):
    model, _ = tiny
    strategy = ReMDM(schedule="conf")
    at_work = generate(model, batch, strategy, 8, seed=3)
    every_row = generate(model, batch, strategy, 8, seed=3, drop_finished_rows=False)
    assert torch.equal(at_work.sequences, every_row.sequences) and torch.equal(at_work.nfe, every_row.nfe)


def test_remdm_rates_follow_the_paper():
    steps, dt = 10, (1 - 1e-5) / 10
    cap = ReMDM(schedule="cap", eta=0.05)
    a_t, a_s, sigma = cap.rates(3, steps)
    assert (a_t, a_s) == pytest.approx((3 * dt, 4 * dt)) and sigma == 0.05
    assert ReMDM(schedule="cap", eta=1.0).rates(8, steps)[2] == pytest.approx((1 - 9 * dt) / (8 * dt))
    assert ReMDM(schedule="rescale", eta=0.5).rates(8, steps)[2] == pytest.approx(0.5 * (1 - 9 * dt) / (8 * dt))
    assert ReMDM(schedule="conf").rates(0, steps) == (0.0, pytest.approx(dt), 1.0)  # sigma_max = 1 at t = 1
    loop = ReMDM(schedule="loop")  # t_on 0.55, t_off 0.05, alpha_on 0.9
    assert loop.rates(5, steps) == (0.9, 0.9, 0.02)  # t = 0.50005: held
    assert loop.rates(4, steps)[1] == 0.9  # t = 0.6 crosses t_on: alpha_s stops at alpha_on
    a_t, a_s, sigma = loop.rates(2, 20)  # phase 1 at t = 0.9: alpha = 0.9 (1 - t) / 0.45
    assert (a_t, sigma) == (pytest.approx(0.9 * (1 - (1 - 2 * dt / 2)) / 0.45), 0.0)
    for strategy in (cap, loop, ReMDM(schedule="conf")):
        assert strategy.rates(steps - 1, steps)[1:] == (1.0, 0.0)  # the last step fills, re-masks nothing
        for i in range(steps):
            a_t, a_s, sigma = strategy.rates(i, steps)
            unmask = (a_s - (1 - sigma) * a_t) / (1 - a_t)
            assert 0.0 <= unmask <= 1.0 + 1e-12 and 0.0 <= sigma <= 1.0


# ----------------------------------------------------------------------------------------------- ReMDM-LLaDA
@pytest.mark.parametrize("block_length", [16, 8], ids=["full", "semi_ar"])
@pytest.mark.parametrize("r", [1, 2])
def test_remdm_llada_is_the_published_recipe(tiny, batch, r, block_length):
    """Without the loop's guarantees, one step returning commits and the next loop step's re-masks gives exactly
    the published order (re-mask before the forward pass, commit after it)."""
    model, _ = tiny
    out = generate(model, batch, ReMDMLLaDA(remask_number=r), block_length, output_trajectory=True,
                   progress_fallback=False, finish_blocks=False)  # fmt: skip
    assert out.trajectory.remasked.any()
    expected = ref.published_llada(model, batch["input_ids"], batch["attention_mask"], L, block_length, block_length,
                                   r, model.generation_config.mask_token_id, eos_id=2)  # fmt: skip
    assert_same(out, expected)


@pytest.mark.parametrize("block_length", [16, 8], ids=["full", "semi_ar"])
@pytest.mark.parametrize("r", [1, 3])
def test_remdm_llada_matches_reference_under_the_loops_rules(tiny, batch, r, block_length):
    model, _ = tiny
    out = generate(model, batch, ReMDMLLaDA(remask_number=r), block_length)
    assert_same(out, llada_reference(model, batch, block_length, block_length, r))


@pytest.mark.parametrize("mode", ["prefix", "dual"])
def test_remdm_llada_with_the_cache_matches_reference(tiny, batch, mode):
    model, _ = tiny
    for block_length in (16, 8):
        out = generate(model, batch, ReMDMLLaDA(remask_number=2), block_length, use_cache=True, cache_mode=mode)
        assert_same(out, llada_reference(model, batch, block_length, block_length, 2, cache_mode=mode))


def test_remdm_llada_within_max_steps_matches_reference(tiny, batch):
    model, _ = tiny
    out = generate(model, batch, ReMDMLLaDA(remask_number=1), 8, max_steps=12)
    assert_same(out, llada_reference(model, batch, 8, 6, 1))
    assert (out.nfe <= 12).all()
    out = generate(model, batch, ReMDMLLaDA(remask_number=1, steps=8), 8)
    assert_same(out, llada_reference(model, batch, 8, 8, 1, steps=4))


def test_remdm_llada_phases():
    assert ReMDMLLaDA().phases(64) == (28, 32, 4)  # the published block of 32 with 2 x 32 forward passes
    assert ReMDMLLaDA().phases(32) == (14, 16, 2)
    assert ReMDMLLaDA(remask_number=0).phases(8) == (7, 0, 1)  # no loop: LLaDA's plain steps
    assert ReMDMLLaDA(alpha_on=1.0, loop_fraction=0.25).phases(8) == (6, 2, 0)


# ------------------------------------------------------------------------------------------- shared guarantees
STRATEGIES = [ReMDM(schedule="conf"), ReMDM(schedule="cap", eta=0.5), ReMDMLLaDA(remask_number=2)]


@pytest.mark.parametrize("use_cache", [False, True])
@pytest.mark.parametrize("strategy", STRATEGIES, ids=repr)
def test_remasks_stay_in_the_block_and_off_the_prompt(tiny, batch, strategy, use_cache):
    model, _ = tiny
    P = batch["input_ids"].shape[1]
    out = generate(model, batch, strategy, 8, use_cache=use_cache, output_trajectory=True, output_history=True,
                   max_steps=12)  # fmt: skip
    traj = out.trajectory
    assert traj.remasked.any()
    assert not (traj.remasked & ~traj.revisable).any()
    assert not (traj.remask_action & ~traj.revisable).any()
    block_of = torch.arange(L) // 8
    assert not (traj.revisable & (block_of != traj.block.view(-1, 1, 1))).any()
    assert not (traj.revisable & traj.masked).any()
    assert (out.history[:, :, :P] == batch["input_ids"]).all()
    assert (out.nfe <= 12).all() and not (out.sequences == model.generation_config.mask_token_id).any()


@pytest.mark.parametrize("block_length", [16, 8])
def test_remdm_llada_padded_batch_equals_rows_alone(tiny, batch, block_length):
    model, _ = tiny
    out = generate(model, batch, ReMDMLLaDA(remask_number=2), block_length)
    P = batch["input_ids"].shape[1]
    for row in range(len(PROMPTS)):
        keep = batch["attention_mask"][row].bool()
        alone = generate(model, {"input_ids": batch["input_ids"][row : row + 1, keep]}, ReMDMLLaDA(remask_number=2),
                         block_length)  # fmt: skip
        assert torch.equal(out.sequences[row, P:], alone.sequences[0, -L:]) and out.nfe[row] == alone.nfe[0]


def test_remdm_padded_batch_runs_each_row_as_the_reference(tiny, batch):
    """The reference runs each row on its own attention mask with the batch's draws: a padded row decodes as it
    would alone given the same draws."""
    model, _ = tiny
    out = generate(model, batch, ReMDM(schedule="rescale", **STRONG["rescale"]), 8, seed=5)
    assert batch["attention_mask"][1].eq(0).any()  # the second row is padded
    assert_same(out, remdm_reference(model, batch, "rescale", 8, 8, seed=5))


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: ReMDM(schedule="fast"), ["schedule", "'cap', 'rescale', 'conf', 'loop'", "schedule='cap'"]),
        (lambda: ReMDM(schedule="conf", eta=0.1), ["eta", "schedule='conf'", "leave eta unset"]),
        (lambda: ReMDM(schedule="cap", t_on=0.5), ["t_on", "schedule='loop' only"]),
        (lambda: ReMDM(schedule="cap", eta=1.5), ["eta", "[0.0, 1.0]", "eta=0.008"]),
        (lambda: ReMDM(schedule="rescale", eta=-0.1), ["eta", "eta=0.015"]),
        (lambda: ReMDM(schedule="loop", eta=0.5), ["eta", "(1 - alpha_on) / alpha_on"]),
        (lambda: ReMDM(schedule="loop", t_on=0.2, t_off=0.3), ["t_off", "t_on=0.2"]),
        (lambda: ReMDM(schedule="loop", alpha_on=1.0), ["alpha_on", "(0.0, 1.0)"]),
        (lambda: ReMDM(steps=0), ["steps", "positive integer"]),
        (lambda: ReMDMLLaDA(remask_number=-1), ["remask_number", "remask_number=1"]),
        (lambda: ReMDMLLaDA(remask_number=1.5), ["remask_number"]),
        (lambda: ReMDMLLaDA(alpha_on=1.2), ["alpha_on", "[0.0, 1.0]", "alpha_on=0.875"]),
        (lambda: ReMDMLLaDA(loop_fraction=1.0), ["loop_fraction", "[0.0, 1.0)", "loop_fraction=0.5"]),
        (lambda: ReMDMLLaDA(eos_early_stop="yes"), ["eos_early_stop", "True or False"]),
    ],
)
def test_bad_parameters_raise_helpful_errors(build, words):
    with pytest.raises(ValueError) as info:
        build()
    for word in words:
        assert word in str(info.value), str(info.value)


def test_defaults_follow_the_published_scripts():
    assert ReMDM().get_config() == dict(schedule="cap", eta=0.008, t_on=None, t_off=None, alpha_on=None, steps=None)
    assert ReMDM(schedule="rescale").eta == 0.015 and ReMDM(schedule="conf").eta is None
    loop = ReMDM(schedule="loop")
    assert (loop.eta, loop.t_on, loop.t_off, loop.alpha_on) == (0.02, 0.55, 0.05, 0.9)
    llada = ReMDMLLaDA()
    assert (llada.remask_number, llada.alpha_on, llada.loop_fraction, llada.eos_early_stop) == (1, 0.875, 0.5, True)
    assert ReMDM.remasks_decided_tokens and ReMDMLLaDA.remasks_decided_tokens and not ReMDM.deterministic


@pytest.mark.parametrize("strategy", [ReMDM(schedule="loop", eta=0.05), ReMDM(schedule="conf"), ReMDMLLaDA(2)])
def test_save_and_load_round_trip(tmp_path, strategy):
    strategy.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["_class_name"] == type(strategy).__name__
    assert UnmaskingStrategy.from_pretrained(tmp_path) == strategy
    assert get_strategy_by_name(str(tmp_path)) == strategy


def test_names_and_spec_strings():
    names = registered_strategy_names()
    assert names["remdm"] is ReMDM and names["remdm_llada"] is ReMDMLLaDA
    spec = StrategySpec.parse("remdm:schedule=cap:eta=0.01,0.02")
    assert [s for _, s in spec.instances()] == [ReMDM(schedule="cap", eta=0.01), ReMDM(schedule="cap", eta=0.02)]
    spec = StrategySpec.parse("remdm:schedule=cap,loop")
    assert [s.schedule for _, s in spec.instances()] == ["cap", "loop"]
    swept = [s for _, s in StrategySpec.parse("remdm_llada:4,8").instances()]  # bare values: steps
    assert swept == [ReMDMLLaDA(steps=4), ReMDMLLaDA(steps=8)]
    with pytest.raises(ValueError, match="schedule must be one of"):
        list(StrategySpec.parse("remdm:schedule=cap,eta=0.01").instances())  # a comma lists values of one knob


def test_published_defaults_on_a_longer_canvas():
    """tiny-dllm-long, 32 tokens in blocks of 16: the loop schedule with its published defaults and ReMDM-LLaDA with
    the TruthfulQA script's 4 re-masks, against their references."""
    model, tokenizer = hf_unmask.load_builtin_model("tiny-dllm-long")
    long_batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    ids, keep, mask_id = long_batch["input_ids"], long_batch["attention_mask"], model.generation_config.mask_token_id
    settings = dict(max_new_tokens=32, block_length=16, return_dict_in_generate=True)
    out = model.generate(**long_batch, strategy=ReMDM(schedule="loop"), generator=torch.Generator().manual_seed(0),
                         **settings)  # fmt: skip
    rule = ref.remdm_rule("loop", 16, torch.Generator().manual_seed(0), eta=0.02, t_on=0.55, t_off=0.05, alpha_on=0.9)
    assert_same(out, ref.denoise(model, ids, keep, 32, 16, 16, rule, mask_id))
    rules = dict(progress_fallback=False, finish_blocks=False)
    out = model.generate(
        **long_batch, strategy=ReMDMLLaDA(remask_number=4), output_trajectory=True, **rules, **settings
    )
    assert out.trajectory.remasked.any()
    assert_same(out, ref.published_llada(model, ids, keep, 32, 16, 16, 4, mask_id, eos_id=2))
