"""The heuristic unmasking strategies: token-for-token agreement with reference loops of the originals, rule
details on hand-made states, serialisation, lookup by name and hyper-parameter validation.

The references live in `tests/reference_loops.py` and share nothing with hf_unmask but the tiny model.
"""

from __future__ import annotations

import copy
import json
import math
from collections import Counter
from typing import Optional

import pytest
import torch
from reference_loops import (
    dream_origin_generate,
    eb_sampler_generate,
    fast_dllm_generate,
    get_num_transfer_tokens,
    llada_generate,
)

from hf_unmask import DenoisingState, DiffusionGenerationConfig
from hf_unmask.generation import denoising as generation_loop
from hf_unmask.generation import num_transfer_tokens, num_transfer_tokens_at
from hf_unmask.strategies import (
    ConfidenceFactor,
    ConfidencePolicy,
    ConfidenceThreshold,
    EBSampler,
    RandomTimeGrid,
    RandomTopK,
    TopKConfidence,
    TopKEntropy,
    TopKMargin,
    UnmaskingStrategy,
    get_strategy_by_name,
    registered_strategy_names,
    resolve_strategy_name,
)

MASK = 3
L = 16
# (block_length, steps): semi-autoregressive (4 blocks of 4) and full diffusion (one block of 16). Step counts that
# do not divide the block (12 -> 3 per block of 4 -> [2, 1, 1]; 5 -> [4, 3, 3, 3, 3]) exercise "remainder first".
FIXED_CASES = [(4, 8), (4, 12), (4, 16), (16, 5), (16, 16)]
FIXED_IDS = [f"BL{bl}-steps{s}" for bl, s in FIXED_CASES]
MODES = [4, 16]
MODE_IDS = ["semi_ar", "full"]

ALL_STRATEGIES = [
    RandomTopK(steps=8),
    RandomTimeGrid(steps=8, eps=0.01),
    TopKConfidence(steps=8),
    TopKMargin(steps=8),
    TopKEntropy(steps=8),
    ConfidenceThreshold(threshold=0.75),
    ConfidenceFactor(factor=1.5),
    EBSampler(gamma=0.5),
]


@pytest.fixture(scope="module")
def prompt() -> torch.Tensor:
    """Two rows, equal length (no padding), ids outside the special range 0-3."""
    return torch.randint(4, 64, (2, 6), generator=torch.Generator().manual_seed(1))


def generate(model, prompt: torch.Tensor, strategy, block_length: int, steps: Optional[int] = None, **kwargs):
    return model.generate(
        prompt,
        strategy=strategy,
        max_new_tokens=L,
        block_length=block_length,
        steps=steps,
        return_dict_in_generate=True,
        **kwargs,
    )


def assert_same(out, ref_x: torch.Tensor, ref_nfe: torch.Tensor) -> None:
    assert not (out.sequences == MASK).any(), "generation left masks"
    assert torch.equal(out.sequences, ref_x), f"\nours:\n{out.sequences}\nreference:\n{ref_x}"
    assert torch.equal(out.nfe, ref_nfe), f"nfe ours {out.nfe.tolist()} reference {ref_nfe.tolist()}"


# ------------------------------------------------------------------------------ agreement with the originals
@pytest.mark.parametrize(("block_length", "steps"), FIXED_CASES, ids=FIXED_IDS)
@pytest.mark.parametrize(
    ("strategy_cls", "remasking"),
    [(TopKConfidence, "low_confidence"), (TopKMargin, "margin"), (TopKEntropy, "entropy")],
    ids=["confidence", "margin", "entropy"],
)
def test_fixed_count_matches_llada_loop(tiny_masked_lm, prompt, strategy_cls, remasking, block_length, steps):
    """LLaDA `low_confidence` and the Dream margin / entropy scores under LLaDA's schedule, greedy."""
    ref_x, ref_nfe = llada_generate(tiny_masked_lm, prompt, steps, L, block_length, remasking=remasking, mask_id=MASK)
    out = generate(tiny_masked_lm, prompt, strategy_cls(), block_length, steps=steps)
    assert_same(out, ref_x, ref_nfe)
    assert out.nfe.tolist() == [steps, steps]
    # the strategy's own `steps` wins over the generation config's
    out = generate(tiny_masked_lm, prompt, strategy_cls(steps=steps), block_length, steps=None)
    assert torch.equal(out.sequences, ref_x)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("block_length", "steps"), FIXED_CASES, ids=FIXED_IDS)
def test_random_top_k_matches_llada_random_loop(tiny_masked_lm, prompt, block_length, steps, seed):
    """LLaDA `remasking='random'`: exact comparison, the reference drawing the same `[B, L]` uniforms from an
    identically seeded generator in the same order (one draw per forward pass), see `llada_generate`."""
    generator = torch.Generator().manual_seed(seed)
    ref_x, ref_nfe = llada_generate(
        tiny_masked_lm, prompt, steps, L, block_length, remasking="random", mask_id=MASK, generator=generator
    )
    out = generate(tiny_masked_lm, prompt, RandomTopK(), block_length, steps=steps, seed=seed)
    assert_same(out, ref_x, ref_nfe)


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(("block_length", "steps"), FIXED_CASES, ids=FIXED_IDS)
def test_random_time_grid_matches_dream_origin_loop(tiny_masked_lm, prompt, block_length, steps, seed):
    """Dream `alg='origin'`: exact comparison, the reference drawing the same `[B, L]` uniforms from an identically
    seeded generator (one draw per forward pass); see `dream_origin_generate` for how this relates to Dream's draws
    and for the progress rule. The count per step is random, so NFE may be below `steps`."""
    generator = torch.Generator().manual_seed(seed)
    ref_x, ref_nfe = dream_origin_generate(
        tiny_masked_lm, prompt, steps, L, block_length, eps=1e-3, mask_id=MASK, generator=generator
    )
    out = generate(tiny_masked_lm, prompt, RandomTimeGrid(eps=1e-3), block_length, steps=steps, seed=seed)
    assert_same(out, ref_x, ref_nfe)
    assert (out.nfe <= steps).all()


@pytest.mark.parametrize("block_length", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("threshold", [0.5, 0.9, 0.999])
def test_confidence_threshold_matches_fast_dllm_loop(tiny_masked_lm, prompt, threshold, block_length):
    """Fast-dLLM threshold rule; 0.999 is above every confidence of the tiny model, so every step falls back on
    the always-unmasked most confident position (the at-least-one rule)."""
    stats: Counter = Counter()
    ref_x, ref_nfe = fast_dllm_generate(
        tiny_masked_lm, prompt, L, block_length, threshold=threshold, mask_id=MASK, stats=stats
    )
    out = generate(tiny_masked_lm, prompt, ConfidenceThreshold(threshold=threshold), block_length)
    assert_same(out, ref_x, ref_nfe)
    if threshold == 0.999:
        assert stats["forced"] > 0 and stats["parallel"] == 0 and out.nfe.tolist() == [L, L]
    if threshold == 0.5:
        assert stats["parallel"] > 0 and (out.nfe < L).all()


@pytest.mark.parametrize("block_length", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("factor", [0.2, 1.0, 3.0])
def test_confidence_factor_matches_fast_dllm_loop(tiny_masked_lm, prompt, factor, block_length):
    """Fast-dLLM factor rule: rank-r entry accepted while its confidence >= 1 - factor / (r + 1)."""
    stats: Counter = Counter()
    ref_x, ref_nfe = fast_dllm_generate(
        tiny_masked_lm, prompt, L, block_length, factor=factor, mask_id=MASK, stats=stats
    )
    out = generate(tiny_masked_lm, prompt, ConfidenceFactor(factor=factor), block_length)
    assert_same(out, ref_x, ref_nfe)
    if factor == 0.2:
        assert stats["forced"] > 0
    if factor == 3.0:
        assert stats["parallel"] > 0 and (out.nfe < L).all()


@pytest.mark.parametrize("block_length", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("gamma", [0.0, 0.3, 2.0])
def test_eb_sampler_matches_reference_loop(tiny_masked_lm, prompt, gamma, block_length):
    """EB-Sampler: lowest-entropy prefix with cumulative entropy minus its max <= gamma, at least one."""
    stats: Counter = Counter()
    ref_x, ref_nfe = eb_sampler_generate(
        tiny_masked_lm, prompt, L, block_length, gamma=gamma, mask_id=MASK, stats=stats
    )
    out = generate(tiny_masked_lm, prompt, EBSampler(gamma=gamma), block_length)
    assert_same(out, ref_x, ref_nfe)
    if gamma == 0.0:
        assert stats["parallel"] == 0 and out.nfe.tolist() == [L, L]
    if gamma == 2.0:
        assert stats["parallel"] > 0 and (out.nfe < L).all()


def test_schedule_is_llada_remainder_first(tiny_masked_lm, prompt):
    """Per-step counts of a fixed-count strategy: 12 steps over 4 blocks of 4 tokens is [2, 1, 1] per block."""
    out = generate(tiny_masked_lm, prompt, RandomTopK(), 4, steps=12, seed=0, output_trajectory=True)
    counts = out.trajectory.unmasked.sum(-1).T  # [B, steps]
    assert counts.tolist() == [[2, 1, 1] * 4] * 2
    assert get_num_transfer_tokens(torch.ones(1, 16, dtype=torch.bool), 5).tolist() == [[4, 3, 3, 3, 3]]


@pytest.mark.parametrize("strategy_cls", [RandomTopK, RandomTimeGrid], ids=["random", "random_time_grid"])
def test_random_strategies_are_deterministic_per_seed(tiny_masked_lm, prompt, strategy_cls):
    """Same seed: same result; a generator passed explicitly is the same as a seed; other seeds: other orders."""
    runs = [
        generate(tiny_masked_lm, prompt, strategy_cls(), 16, steps=8, seed=s, output_trajectory=True)
        for s in (0, 0, 1)
    ]
    explicit = generate(
        tiny_masked_lm,
        prompt,
        strategy_cls(),
        16,
        steps=8,
        generator=torch.Generator().manual_seed(0),
        output_trajectory=True,
    )
    assert torch.equal(runs[0].sequences, runs[1].sequences)
    assert torch.equal(runs[0].trajectory.unmasked, runs[1].trajectory.unmasked)
    assert torch.equal(runs[0].trajectory.unmasked, explicit.trajectory.unmasked)
    first, other = runs[0].trajectory.unmasked, runs[2].trajectory.unmasked
    assert first.shape != other.shape or not torch.equal(first, other)


# --------------------------------------------------------------- token choice at eligible positions only
class _Recorder(UnmaskingStrategy):
    """Delegates to `inner` and keeps copies of what it was shown."""

    def __init__(self, inner: UnmaskingStrategy, reads_only_eligible: bool) -> None:
        self.inner = inner
        self.reads_only_eligible = reads_only_eligible
        self.seen: list[dict[str, torch.Tensor]] = []

    def __call__(self, state: DenoisingState) -> torch.Tensor:
        names = ("confidence", "proposal", "masked", "eligible")
        self.seen.append({name: getattr(state, name).clone() for name in names})
        return self.inner(state)


def _full_reading(strategy: UnmaskingStrategy) -> UnmaskingStrategy:
    """The same strategy, but the loop believes it reads every position (token choice over all L)."""
    clone = copy.copy(strategy)
    clone.reads_only_eligible = False
    return clone


@pytest.fixture
def eligible_token_choice_always(monkeypatch):
    """The tiny test models have far fewer logits than the size from which the loop gathers eligible positions:
    lower that size to 0 so the eligible-only path runs."""
    monkeypatch.setattr(generation_loop, "ELIGIBLE_TOKEN_CHOICE_MIN_LOGITS", 0)


@pytest.mark.usefixtures("eligible_token_choice_always")
@pytest.mark.parametrize("strategy", ALL_STRATEGIES, ids=lambda s: s.name)
@pytest.mark.parametrize("block_length", MODES, ids=MODE_IDS)
@pytest.mark.parametrize("temperature", [None, 1.5])
def test_eligible_only_token_choice_changes_no_result(tiny_masked_lm, prompt, strategy, block_length, temperature):
    """Every heuristic reads confidence and proposal only at eligible positions; letting the loop skip the rest
    changes no token and no NFE, greedy or sampled, with or without a recorded trajectory."""
    assert strategy.reads_only_eligible
    kwargs = {"steps": 8, "seed": 0, "temperature": temperature}
    fast = generate(tiny_masked_lm, prompt, strategy, block_length, **kwargs)
    full = generate(tiny_masked_lm, prompt, _full_reading(strategy), block_length, **kwargs)
    recorded = generate(tiny_masked_lm, prompt, strategy, block_length, output_trajectory=True, **kwargs)
    for other in (full, recorded):
        assert torch.equal(fast.sequences, other.sequences)
        assert torch.equal(fast.nfe, other.nfe)


@pytest.mark.usefixtures("eligible_token_choice_always")
@pytest.mark.parametrize("block_length", MODES, ids=MODE_IDS)
def test_eligible_only_state_shows_the_canvas_elsewhere(tiny_masked_lm, prompt, block_length):
    assert not UnmaskingStrategy.reads_only_eligible and not ConfidencePolicy.reads_only_eligible
    fast, full = _Recorder(TopKConfidence(), True), _Recorder(TopKConfidence(), False)
    out = generate(tiny_masked_lm, prompt, fast, block_length, steps=8)
    generate(tiny_masked_lm, prompt, full, block_length, steps=8)
    assert len(fast.seen) == len(full.seen) == 8
    final = out.sequences[:, prompt.shape[1] :]
    for seen, seen_full in zip(fast.seen, full.seen):
        eligible = seen["eligible"]
        assert torch.equal(seen["confidence"][eligible], seen_full["confidence"][eligible])
        assert torch.equal(seen["proposal"][eligible], seen_full["proposal"][eligible])
        assert (seen["confidence"][~eligible] == 0).all()
        # elsewhere a position shows what the canvas holds: its final token if decided, else the mask
        canvas = torch.where(seen["masked"], torch.full_like(final, MASK), final)
        assert torch.equal(seen["proposal"][~eligible], canvas[~eligible])
        assert (seen_full["confidence"] > 0).all(), "a strategy reading all positions gets every confidence"


def test_small_canvases_keep_the_full_token_choice(tiny_masked_lm, prompt):
    """Below ELIGIBLE_TOKEN_CHOICE_MIN_LOGITS logits per step the loop computes every position even for a strategy
    that reads only eligible ones (gathering would cost more than it saves)."""
    vocab = tiny_masked_lm.config.vocab_size
    assert prompt.shape[0] * L * vocab < generation_loop.ELIGIBLE_TOKEN_CHOICE_MIN_LOGITS
    recorder = _Recorder(TopKConfidence(), True)
    generate(tiny_masked_lm, prompt, recorder, 4, steps=8)
    assert all((seen["confidence"] > 0).all() for seen in recorder.seen)


def test_num_transfer_tokens_at_is_a_column_of_the_schedule():
    counts = torch.arange(0, 40)
    for steps in (1, 3, 7, 16):
        schedule = num_transfer_tokens(counts, steps)
        for step in range(steps):
            assert torch.equal(num_transfer_tokens_at(counts, steps, step), schedule[:, step])
    with pytest.raises(ValueError, match="step must be in"):
        num_transfer_tokens_at(counts, 4, 4)


# ------------------------------------------------------------------------------------- rules on hand-made states
def make_state(
    confidence: Optional[torch.Tensor] = None,
    logits: Optional[torch.Tensor] = None,
    eligible: Optional[torch.Tensor] = None,
    block_length: Optional[int] = None,
    block: int = 0,
    block_step: int = 0,
    steps: Optional[int] = None,
    generator: Optional[torch.Generator] = None,
) -> DenoisingState:
    """A `DenoisingState` as the loop would build it, from confidences or logits `[B, L(, V)]`."""
    if logits is not None:
        probs = torch.softmax(logits.float(), dim=-1)
        confidence, proposal = probs.max(dim=-1)
    else:
        proposal = torch.zeros(confidence.shape, dtype=torch.long)
    B, length = confidence.shape
    block_length = block_length or length
    start, end = block * block_length, (block + 1) * block_length
    in_block = torch.zeros(length, dtype=torch.bool)
    in_block[start:end] = True
    masked = torch.ones(B, length, dtype=torch.bool) if eligible is None else eligible.clone()
    masked[:, :start] = False
    return DenoisingState(
        confidence=confidence,
        proposal=proposal,
        masked=masked,
        eligible=masked & in_block,
        nfe=torch.zeros(B, dtype=torch.long),
        step=block_step,
        block=block,
        block_start=start,
        block_end=end,
        block_step=block_step,
        block_mask_count=torch.full((B,), block_length),
        config=DiffusionGenerationConfig(max_new_tokens=length, block_length=block_length, steps=steps),
        generator=generator,
        _logits=logits,
    )


def test_confidence_threshold_rule():
    confidence = torch.tensor([[0.95, 0.30, 0.75, 0.74], [0.40, 0.20, 0.10, 0.50], [0.99, 0.99, 0.99, 0.99]])
    eligible = torch.tensor([[True, True, True, True], [True, True, True, False], [False] * 4])
    selection = ConfidenceThreshold(threshold=0.75)(make_state(confidence, eligible=eligible))
    # >= threshold is kept (Fast-dLLM drops only `< threshold`; 0.75 is exact in float32); a row with nothing above
    # keeps its best eligible position (0.40: 0.50 is not eligible); a finished row selects nothing
    assert selection.tolist() == [[True, False, True, False], [True, False, False, False], [False] * 4]


def test_confidence_factor_rule():
    # thresholds for factor 1: rank 2 -> 1 - 1/3 = 0.667, rank 3 -> 0.75, rank 4 -> 0.8
    confidence = torch.tensor([[0.70, 0.95, 0.76, 0.10], [0.10, 0.20, 0.60, 0.30], [0.99, 0.98, 0.97, 0.79]])
    selection = ConfidenceFactor(factor=1.0)(make_state(confidence))
    assert selection.tolist() == [
        [False, True, True, False],  # 0.95, 0.76 (>= .667), then 0.70 (< .75 at rank 3) stops the prefix
        [False, False, True, False],  # rank 2 (0.30) fails: only the top one
        [True, True, True, False],  # the last-ranked 0.79 < 0.8 is not accepted (Fast-dLLM's loop would)
    ]


def test_eb_sampler_rule():
    generator = torch.Generator().manual_seed(0)
    scale = torch.tensor([0.1, 8.0, 1.0, 3.0, 0.5, 12.0]).view(1, 6, 1)  # spread entropies
    logits = torch.randn(3, 6, 64, generator=generator) * scale
    entropy = torch.distributions.Categorical(logits=logits).entropy()
    eligible = torch.ones(3, 6, dtype=torch.bool)
    eligible[1, [5, 1]] = False
    state = make_state(logits=logits, eligible=eligible)
    for gamma in [0.0, 0.05, 0.5, 2.0, 5.0, 50.0]:
        selection = EBSampler(gamma=gamma)(state)
        for row in range(3):
            idx = eligible[row].nonzero().flatten()
            ranked = idx[entropy[row, idx].argsort()]
            k = max(
                1,
                sum(
                    float(entropy[row, ranked[:n]].sum() - entropy[row, ranked[n - 1]]) <= gamma
                    for n in range(1, len(idx) + 1)
                ),
            )
            assert set(selection[row].nonzero().flatten().tolist()) == set(ranked[:k].tolist()), (gamma, row)


def test_margin_and_entropy_scores():
    logits = torch.full((1, 3, 4), -10.0)
    logits[0, 0, :2] = 5.0  # two equally likely tokens: top-1 probability ~0.5, margin ~0, entropy ~log 2
    logits[0, 1, 0] = 5.0  # one sure token: margin ~1, entropy ~0
    logits[0, 2] = torch.tensor([5.0, 4.0, 3.9, 3.8])  # confident-ish but spread over 4
    state = make_state(logits=logits, steps=3)
    margin = TopKMargin().score(state)
    entropy = -TopKEntropy().score(state)
    probs = torch.softmax(logits, -1).sort(-1, descending=True).values
    torch.testing.assert_close(margin, probs[..., 0] - probs[..., 1])
    torch.testing.assert_close(entropy, torch.distributions.Categorical(logits=logits).entropy())
    assert TopKMargin()(state).tolist() == [[False, True, False]]  # one per step (3 steps for 3 tokens)
    assert TopKEntropy()(state).tolist() == [[False, True, False]]
    # top_k filtering gives -inf logits: entropy stays finite and counts them as zero probability
    filtered = logits.masked_fill(torch.tensor([False, False, True, True]), float("-inf"))
    finite = -TopKEntropy().score(make_state(logits=filtered, steps=3))
    assert torch.isfinite(finite).all()
    torch.testing.assert_close(finite[0, 0], torch.tensor(math.log(2)), atol=1e-4, rtol=0)


def test_uncertainty_scores_cover_only_the_current_block():
    logits = torch.randn(2, 8, 16, generator=torch.Generator().manual_seed(0))
    state = make_state(logits=logits, block_length=4, block=1, steps=8)
    for strategy in (TopKMargin(), TopKEntropy()):
        score = strategy.score(state)
        assert torch.isinf(score[:, :4]).all() and torch.isfinite(score[:, 4:]).all()
        assert strategy(state)[:, :4].sum() == 0


def test_random_top_k_counts_and_uniformity():
    """Exactly the scheduled count per row, only eligible positions, and every eligible position equally likely
    (frequencies within 5 standard deviations over 2000 draws)."""
    generator = torch.Generator().manual_seed(0)
    eligible = torch.ones(2000, 10, dtype=torch.bool)
    eligible[:, 7] = False  # a position already unmasked
    state = make_state(
        confidence=torch.rand(2000, 10, generator=generator), eligible=eligible, steps=3, generator=generator
    )
    state.block_mask_count.fill_(9)  # 9 masked over 3 steps: 3 per step
    selection = RandomTopK()(state)
    assert (selection.sum(-1) == 3).all() and not selection[:, 7].any()
    frequency = selection[:, eligible[0]].float().mean(0)
    sd = math.sqrt((1 / 3) * (2 / 3) / 2000)
    assert ((frequency - 1 / 3).abs() < 5 * sd).all(), frequency


def test_random_time_grid_probabilities():
    """Each eligible position is unmasked independently with probability 1 - t[i+1] / t[i] on a linear grid
    (checked within 5 standard deviations), all of them at the last step of the block, never an ineligible one."""
    generator = torch.Generator().manual_seed(0)
    B, length, steps, eps = 500, 64, 8, 1e-3
    eligible = torch.rand(B, length, generator=generator) < 0.7
    strategy = RandomTimeGrid(eps=eps)
    grid = torch.linspace(1, eps, steps + 1, dtype=torch.float64)
    for i in range(steps):
        state = make_state(
            confidence=torch.rand(B, length, generator=generator),
            eligible=eligible,
            block_step=i,
            steps=steps,
            generator=generator,
        )
        selection = strategy(state)
        assert not (selection & ~state.eligible).any()
        p = float(1 - grid[i + 1] / grid[i]) if i < steps - 1 else 1.0
        n = int(state.eligible.sum())
        rate = float(selection.sum()) / n
        assert abs(rate - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-9, (i, rate, p)
    assert strategy.unmask_probability(0, 4).item() == pytest.approx(1 - (1 - (1 - eps) / 4))


@pytest.mark.parametrize("strategy", ALL_STRATEGIES, ids=lambda s: s.name)
def test_strategies_return_eligible_bool_and_do_not_mutate(strategy):
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 16, 32, generator=generator) * 3
    eligible = torch.rand(3, 16, generator=generator) < 0.8
    eligible[2] = False  # a row that is not live
    state = make_state(logits=logits, eligible=eligible, block_length=4, block=1, steps=8, generator=generator)
    before = {k: getattr(state, k).clone() for k in ("confidence", "proposal", "masked", "eligible", "nfe")}
    selection = strategy(state)
    assert selection.dtype == torch.bool and selection.shape == (3, 16)
    assert not (selection & ~state.eligible).any()
    assert not selection[2].any()
    if not isinstance(strategy, RandomTimeGrid):  # which may draw nothing and rely on the loop's fallback
        live = state.eligible.any(-1)
        assert selection[live].any(-1).all(), "every live row selects something (no fallback needed)"
    for key, value in before.items():
        assert torch.equal(getattr(state, key), value), f"{strategy.name} modified state.{key}"


# ------------------------------------------------------------------------------------ config, Hub I/O, names
@pytest.mark.parametrize("strategy", ALL_STRATEGIES, ids=lambda s: s.name)
def test_save_and_load_round_trip(tmp_path, strategy):
    strategy.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["_class_name"] == type(strategy).__name__
    loaded = UnmaskingStrategy.from_pretrained(tmp_path)
    assert type(loaded) is type(strategy)
    assert loaded.get_config() == strategy.get_config() and loaded == strategy
    assert type(strategy).from_pretrained(tmp_path) == strategy
    assert get_strategy_by_name(str(tmp_path)) == strategy


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("random", RandomTopK),
        ("random_time_grid", RandomTimeGrid),
        ("top_k_confidence", TopKConfidence),
        ("top_k_margin", TopKMargin),
        ("top_k_entropy", TopKEntropy),
        ("confidence_threshold", ConfidenceThreshold),
        ("confidence_factor", ConfidenceFactor),
        ("eb_sampler", EBSampler),
    ],
)
def test_get_strategy_by_name(name, cls):
    strategy = get_strategy_by_name(name)
    assert type(strategy) is cls and strategy == cls()
    assert cls.name == name


def test_names_resolve_to_classes_and_sources(tmp_path):
    """One lookup serves `get_strategy_by_name`, `as_strategy` and `hf-unmask evaluate`: short names build from
    the class, saved folders load from where they are, unknown names and unreachable repos say what to pass."""
    assert resolve_strategy_name("eb_sampler") == (EBSampler, None)
    assert registered_strategy_names()["top_k_margin"] is TopKMargin
    ConfidenceThreshold(threshold=0.6).save_pretrained(tmp_path)
    assert resolve_strategy_name(str(tmp_path)) == (ConfidenceThreshold, str(tmp_path))
    assert get_strategy_by_name(str(tmp_path)) == ConfidenceThreshold(threshold=0.6)
    with pytest.raises(ValueError, match="Unknown strategy 'nope'.*Known names: .*top_k_confidence"):
        get_strategy_by_name("nope")
    with pytest.raises(ValueError, match="no such folder"):
        get_strategy_by_name("./not/here")
    with pytest.raises(ValueError, match="Could not load the saved strategy 'no-org/no-such-strategy'"):
        get_strategy_by_name("no-org/no-such-strategy")  # HF_HUB_OFFLINE=1: fails fast


def test_resolving_a_saved_policy_reads_only_its_config(monkeypatch):
    """`resolve_strategy_name` learns the class of a shipped or saved policy from its config, without loading
    the weights (evaluation then loads it once per budget); `get_strategy_by_name` does load it."""
    from hf_unmask.strategies import UnmaskingPolicy, builtin_policy_path, list_builtin_policies

    name = list_builtin_policies()[0]
    loads = []
    original = UnmaskingPolicy._from_config_and_files.__func__
    monkeypatch.setattr(
        UnmaskingPolicy,
        "_from_config_and_files",
        classmethod(lambda cls, *args: loads.append(1) or original(cls, *args)),
    )
    cls, source = resolve_strategy_name(name)
    assert issubclass(cls, UnmaskingPolicy) and source == builtin_policy_path(name) and not loads
    assert isinstance(get_strategy_by_name(name), cls) and loads == [1]


def test_defaults():
    assert ConfidenceThreshold().threshold == 0.9
    assert ConfidenceFactor().factor == 1.0
    assert EBSampler().gamma == 0.1
    assert RandomTimeGrid().eps == 1e-3


@pytest.mark.parametrize(
    ("build", "words"),
    [
        (lambda: ConfidenceThreshold(threshold=1.5), ["threshold", "[0.0, 1.0]", "threshold=0.9"]),
        (lambda: ConfidenceThreshold(threshold=-0.1), ["threshold", "[0.0, 1.0]"]),
        (lambda: ConfidenceThreshold(threshold="high"), ["threshold", "'high'"]),
        (lambda: ConfidenceThreshold(threshold=float("nan")), ["threshold"]),
        (lambda: ConfidenceFactor(factor=0), ["factor", "(0.0, +inf)", "factor=1.0"]),
        (lambda: ConfidenceFactor(factor=-1.0), ["factor"]),
        (lambda: EBSampler(gamma=-0.5), ["gamma", "[0.0, +inf)", "gamma=0.1"]),
        (lambda: EBSampler(gamma=float("inf")), ["gamma"]),
        (lambda: EBSampler(gamma=True), ["gamma"]),
        (lambda: RandomTimeGrid(eps=0.0), ["eps", "(0.0, 1.0)", "eps=1e-3"]),
        (lambda: RandomTimeGrid(eps=1.0), ["eps"]),
        (lambda: RandomTimeGrid(steps=0), ["steps", "positive integer", "steps=32"]),
        (lambda: RandomTopK(steps=-3), ["steps", "positive integer"]),
        (lambda: RandomTopK(steps=2.5), ["steps"]),
        (lambda: TopKMargin(steps=0), ["steps"]),
        (lambda: TopKEntropy(steps="8"), ["steps"]),
    ],
)
def test_bad_hyper_parameters_raise_helpful_errors(build, words):
    with pytest.raises(ValueError) as info:
        build()
    message = str(info.value)
    for word in words:
        assert word in message, message


def test_steps_incompatible_with_blocks_is_explained(tiny_masked_lm, prompt):
    with pytest.raises(ValueError, match="multiple of the number of blocks"):
        generate(tiny_masked_lm, prompt, RandomTimeGrid(steps=6), 4)
