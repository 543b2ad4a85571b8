"""The learned unmasking policy: architecture, initialisation, action modes, log-probabilities, trained-for check."""

from __future__ import annotations

import itertools
import math
import warnings

import pytest
import torch

from hf_unmask import DenoisingState, DiffusionGenerationConfig
from hf_unmask.strategies import ConfidencePolicy, HiddenStatePolicy, StrategyOutput
from hf_unmask.strategies.action_models import MODES, dpls_sample, dpls_set_log_prob
from hf_unmask.strategies.policy_network import PolicyNetwork, modulate


def perturbed(policy, seed: int = 0, scale: float = 0.2):
    """Random weights everywhere (adaLN and head included) so that outputs depend on every input."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return policy


def random_states(batch: int, length: int, seed: int = 0, block: tuple[int, int] | None = None) -> dict:
    gen = torch.Generator().manual_seed(seed)
    masked = torch.rand(batch, length, generator=gen) < 0.7
    eligible = masked.clone()
    if block is not None:
        eligible[:, : block[0]] = False
        eligible[:, block[1] :] = False
    return {
        "confidence": torch.rand(batch, length, generator=gen),
        "masked": masked,
        "eligible": eligible,
        "time": torch.rand(batch, generator=gen),
    }


def generate_with(model, policy, seed: int = 0, **kwargs):
    ids = torch.tensor([[0, 0, 5, 9, 12], [7, 8, 9, 10, 11], [0, 4, 4, 20, 30]])
    mask = (ids != 0).long()
    settings = dict(max_new_tokens=16, block_length=8, output_trajectory=True, return_dict_in_generate=True)
    settings.update(kwargs)
    return model.generate(ids, attention_mask=mask, strategy=policy, seed=seed, **settings)


# ---------------------------------------------------------------------------------------------- architecture
def test_default_policy_has_exactly_331265_parameters():
    policy = ConfidencePolicy()
    assert policy.num_parameters() == 331_265
    assert sum(p.numel() for p in policy.network.parameters()) == 331_265
    assert (policy.hidden_size, policy.num_heads, policy.ffn_size) == (128, 2, 512)


def test_adaln_is_the_identity_at_initialisation():
    net = PolicyNetwork()
    block = net.block
    assert torch.count_nonzero(block.adaLN_modulation[1].weight) == 0
    assert torch.count_nonzero(block.adaLN_modulation[1].bias) == 0
    x, cond = torch.randn(2, 12, 128), torch.randn(2, 12, 128)
    shift, scale, gate, *_ = block.adaLN_modulation(cond).chunk(6, dim=-1)
    assert torch.equal(modulate(x, shift, scale), x) and torch.count_nonzero(gate) == 0
    # the whole block reduces to an unmodulated pre-LN transformer block, whatever the conditioning
    plain = x + block.attention(block.norm1(x), None)
    plain = plain + block.ffn(block.norm2(plain))
    torch.testing.assert_close(block(x, cond), plain)
    torch.testing.assert_close(block(x, torch.randn(2, 12, 128)), plain)
    # head: zero weight, bias -2
    assert torch.count_nonzero(net.head.weight) == 0 and net.head.bias.item() == -2.0


@pytest.mark.parametrize("length", [16, 64, 256])
def test_initial_unmask_probability_is_sigmoid_minus_two_on_every_eligible_position(length):
    policy = ConfidencePolicy()
    states = random_states(3, length, seed=length, block=(length // 4, length // 2))
    probs = policy.unmask_probabilities(states)
    assert probs.shape == (3, length)
    expected = torch.sigmoid(torch.tensor(-2.0))
    torch.testing.assert_close(probs[states["eligible"]], expected.expand(int(states["eligible"].sum())))
    assert torch.count_nonzero(probs[~states["eligible"]]) == 0


@pytest.mark.parametrize("length", [16, 64, 256])
def test_output_shape_at_any_length(length):
    policy = perturbed(ConfidencePolicy())
    s = random_states(2, length, seed=1)
    logits = policy(s["confidence"], s["masked"], s["time"])
    assert logits.shape == (2, length) and torch.isfinite(logits).all()


def test_padded_batch_matches_rows_run_alone():
    policy = perturbed(ConfidencePolicy(), seed=3)
    short, long = random_states(1, 10, seed=4), random_states(1, 16, seed=5)
    padded = {
        k: torch.cat([torch.nn.functional.pad(short[k], (0, 6)) if k != "time" else short[k], long[k]]) for k in short
    }
    padding_mask = torch.ones(2, 16, dtype=torch.bool)
    padding_mask[0, 10:] = False
    batched = policy(padded["confidence"], padded["masked"], padded["time"], padding_mask=padding_mask)
    alone_short = policy(short["confidence"], short["masked"], short["time"])
    alone_long = policy(long["confidence"], long["masked"], long["time"])
    assert batched.shape == (2, 16)
    torch.testing.assert_close(batched[0, :10], alone_short[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(batched[1], alone_long[0], atol=1e-5, rtol=1e-5)
    # log_prob over a padded mapping ignores the padding too
    padded["eligible"] = padded["eligible"] & padding_mask
    padded["padding_mask"] = padding_mask
    sample = policy.sample(padded, generator=torch.Generator().manual_seed(0))
    assert not sample.action[0, 10:].any()


def test_rope_makes_the_policy_position_aware():
    """Attention without positions is permutation-equivariant; with RoPE, permuting the inputs changes the outputs."""
    policy = perturbed(ConfidencePolicy(), seed=6)
    s = random_states(1, 16, seed=7)
    logits = policy(s["confidence"], s["masked"], s["time"])
    perm = torch.randperm(16, generator=torch.Generator().manual_seed(0))
    permuted = policy(s["confidence"][:, perm], s["masked"][:, perm], s["time"])
    assert (permuted - logits[:, perm]).abs().max() > 1e-3


# ---------------------------------------------------------------------------------------------- the two calls
def test_strategy_call_and_module_call_coexist():
    policy = perturbed(ConfidencePolicy(mode="bernoulli"))
    s = random_states(2, 8, seed=2)
    config = DiffusionGenerationConfig(max_new_tokens=8)
    state = DenoisingState(
        confidence=s["confidence"],
        proposal=torch.zeros(2, 8, dtype=torch.long),
        masked=s["masked"],
        eligible=s["eligible"],
        nfe=torch.tensor([0, 3]),
        step=0,
        block=0,
        block_start=0,
        block_end=8,
        block_step=0,
        block_mask_count=s["masked"].sum(-1),
        config=config,
        generator=torch.Generator().manual_seed(0),
    )
    calls = []
    policy.register_forward_hook(lambda *args: calls.append(1))
    out = policy(state)
    assert isinstance(out, StrategyOutput) and out.selection.dtype == torch.bool and out.log_prob.shape == (2,)
    assert not (out.selection & ~state.eligible).any()
    logits = policy(s["confidence"], s["masked"], s["time"])
    assert isinstance(logits, torch.Tensor) and logits.shape == (2, 8)
    assert len(calls) == 2  # both calls ran forward through nn.Module.__call__ (hooks fire)
    torch.testing.assert_close(policy.log_prob(state, out.selection), out.log_prob)


def test_invalid_hyper_parameters_are_clear_errors():
    with pytest.raises(ValueError, match="mode must be one of"):
        ConfidencePolicy(mode="greedy")
    with pytest.raises(ValueError, match="temperature"):
        ConfidencePolicy(temperature=0)
    with pytest.raises(ValueError, match="unmask_beta"):
        ConfidencePolicy(unmask_beta=-1)
    with pytest.raises(TypeError, match="JSON"):
        ConfidencePolicy(trained_for={"base_model": object()})
    with pytest.raises(ValueError, match="gen_length"):
        ConfidencePolicy(trained_for={"gen_length": "256"})


# ---------------------------------------------------------------------------------------------- log-probabilities
@pytest.mark.parametrize("mode", MODES)
def test_sampling_log_prob_equals_recomputed_log_prob(tiny_masked_lm, mode):
    policy = perturbed(
        ConfidencePolicy(mode=mode, temperature=0.7, unmask_beta=1.3 if mode == "dpls" else 1.0), seed=11
    )
    out = generate_with(tiny_masked_lm, policy, progress_fallback=mode != "bernoulli")
    traj = out.trajectory
    assert traj.log_prob is not None and traj.log_prob.shape == traj.live.shape
    recomputed = policy.log_prob(traj)
    assert recomputed.shape == traj.log_prob.shape
    assert torch.allclose(recomputed, traj.log_prob, atol=1e-5)
    assert (traj.log_prob[~traj.live] == 0).all()
    assert not (traj.action & ~traj.eligible).any()
    # the same from flattened [N, L] inputs, and differentiable
    flat = {k: getattr(traj, k).flatten(0, 1) for k in ("confidence", "masked", "eligible", "time", "action")}
    evaluation = policy.evaluate_actions(flat)
    assert evaluation.log_prob.shape == (traj.num_steps * 3,)
    assert torch.allclose(evaluation.log_prob, traj.log_prob.flatten(), atol=1e-5)
    (-evaluation.log_prob.sum()).backward()
    grads = [p.grad for p in policy.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)
    if mode == "dpls":
        assert evaluation.entropy is None
    else:
        assert evaluation.entropy.shape == (traj.num_steps * 3,) and (evaluation.entropy >= 0).all()


@pytest.mark.parametrize("mode", ["bernoulli", "bernoulli-argmax"])
def test_bernoulli_log_probs_and_entropy_match_enumeration(mode):
    """Over all 2^4 actions: probabilities sum to 1 and the entropy is -sum P log P (checks the argmax merge)."""
    policy = perturbed(ConfidencePolicy(mode=mode, unmask_beta=1.2), seed=12)
    s = random_states(1, 4, seed=13)
    s["eligible"] = torch.tensor([[True, True, False, True]])
    actions = torch.tensor(list(itertools.product([False, True], repeat=4)))
    actions = actions[~(actions & ~s["eligible"]).any(-1)]  # subsets of the eligible positions
    batch = {k: v.expand(len(actions), *v.shape[1:]) for k, v in s.items()}
    evaluation = policy.evaluate_actions(batch, actions)
    probs = evaluation.log_prob.exp()
    if mode == "bernoulli-argmax":
        assert probs[actions.sum(-1) == 0].item() == 0.0  # the empty action never happens
    torch.testing.assert_close(probs.sum(), torch.tensor(1.0))
    entropy = -(probs * evaluation.log_prob.clamp_min(-1e9)).nan_to_num().sum()
    torch.testing.assert_close(evaluation.entropy[0], entropy, atol=1e-5, rtol=1e-5)


def _dpls_enumerate(v: list[float], chosen: tuple[int, ...]) -> float:
    """P(set) for forced first pick + Plackett-Luce against STOP (weight 1), summed over every drawing order."""
    w = [math.exp(x) for x in v]
    total = 0.0
    for order in itertools.permutations(chosen):
        p, left = 1.0, set(range(len(v)))
        for i, k in enumerate(order):
            p *= w[k] / (sum(w[j] for j in left) + (1.0 if i else 0.0))
            left.remove(k)
        if left:
            p *= 1.0 / (sum(w[j] for j in left) + 1.0)
        total += p
    return total


def test_dpls_set_log_prob_is_exact():
    gen = torch.Generator().manual_seed(0)
    n = 4
    subsets = [c for r in range(1, n + 1) for c in itertools.combinations(range(n), r)]
    actions = torch.zeros(len(subsets), n, dtype=torch.bool)
    for i, c in enumerate(subsets):
        actions[i, list(c)] = True
    for scale in (0.5, 4.0, 12.0):
        v = torch.randn(n, generator=gen, dtype=torch.float64) * scale
        log_p = dpls_set_log_prob(v.expand(len(subsets), n), torch.ones_like(actions), actions)
        reference = torch.tensor([math.log(_dpls_enumerate(v.tolist(), c)) for c in subsets], dtype=torch.float64)
        torch.testing.assert_close(log_p, reference, atol=1e-9, rtol=0)
        torch.testing.assert_close(log_p.exp().sum(), torch.tensor(1.0, dtype=torch.float64))
    # the sampler draws from that distribution
    v = torch.tensor([0.5, -1.0, 1.5, -0.3], dtype=torch.float64)
    draws = dpls_sample(v.expand(20_000, n), torch.ones(20_000, n, dtype=torch.bool), gen)
    codes = (draws.long() * (2 ** torch.arange(n))).sum(-1)
    freq = torch.bincount(codes, minlength=2**n).double() / len(codes)
    for c in subsets:
        code = sum(2**k for k in c)
        expected = _dpls_enumerate(v.tolist(), c)
        assert abs(freq[code].item() - expected) < 4 * math.sqrt(expected * (1 - expected) / 20_000) + 1e-3
    assert freq[0] == 0


def test_dpls_gradients_are_consistent():
    """The probabilities of all subsets sum to 1 for any utilities, so their gradient vanishes."""
    v = torch.tensor([0.3, -2.0, 1.0], dtype=torch.float64, requires_grad=True)
    subsets = [c for r in range(1, 4) for c in itertools.combinations(range(3), r)]
    actions = torch.zeros(len(subsets), 3, dtype=torch.bool)
    for i, c in enumerate(subsets):
        actions[i, list(c)] = True
    total = dpls_set_log_prob(v.expand(len(subsets), 3), torch.ones_like(actions), actions).exp().sum()
    (grad,) = torch.autograd.grad(total, v)
    assert grad.abs().max() < 1e-9
    lp = dpls_set_log_prob(v.unsqueeze(0), torch.ones(1, 3, dtype=torch.bool), actions[:1])
    assert torch.autograd.gradcheck(
        lambda x: dpls_set_log_prob(x.unsqueeze(0), torch.ones(1, 3, dtype=torch.bool), actions[3:4]), (v,)
    )
    assert torch.isfinite(lp).all()


def test_dpls_always_unmasks_an_eligible_position(tiny_masked_lm):
    policy = perturbed(
        ConfidencePolicy(mode="dpls", unmask_beta=0.05), seed=14
    )  # STOP is very likely after the first pick
    s = random_states(256, 32, seed=15, block=(8, 16))
    s["eligible"][:8] = False  # a few rows with nothing eligible
    sample = policy.sample(s, generator=torch.Generator().manual_seed(1))
    live = s["eligible"].any(-1)
    assert (sample.action.sum(-1)[live] >= 1).all()
    assert not sample.action[~live].any() and not (sample.action & ~s["eligible"]).any()
    assert (sample.log_prob[~live] == 0).all()
    out = generate_with(tiny_masked_lm, policy, progress_fallback=False)
    traj = out.trajectory
    assert (traj.action.sum(-1)[traj.live] >= 1).all()


@pytest.mark.parametrize("mode", MODES)
def test_beta_and_temperature_move_the_number_of_unmasked_positions(mode):
    s = random_states(128, 16, seed=16)
    s["eligible"] = torch.ones(128, 16, dtype=torch.bool)

    def mean_unmasked(**kwargs) -> float:
        policy = ConfidencePolicy(mode=mode, **kwargs)  # initial logits -2 everywhere
        return policy.sample(s, generator=torch.Generator().manual_seed(0)).action.sum(-1).float().mean().item()

    betas = [mean_unmasked(unmask_beta=b) for b in (0.5, 1.0, 2.0, 4.0)]
    assert betas == sorted(betas) and betas[-1] > betas[0] + 1
    # logits are negative, so a higher temperature pulls the unmask probabilities up towards 1/2
    temperatures = [mean_unmasked(temperature=t) for t in (0.5, 1.0, 2.0)]
    assert temperatures == sorted(temperatures) and temperatures[-1] > temperatures[0] + 1
    if mode == "bernoulli":
        assert abs(betas[1] - 16 * torch.sigmoid(torch.tensor(-2.0)).item()) < 0.4


# ---------------------------------------------------------------------------------------------- generate
def test_policy_generates_in_any_block_layout(tiny_masked_lm):
    policy = perturbed(ConfidencePolicy(), seed=17)
    for block_length in (4, 16, None):
        out = generate_with(tiny_masked_lm, policy, block_length=block_length, output_trajectory=False)
        assert out.sequences.shape == (3, 5 + 16)
        assert not (out.sequences[:, 5:] == 3).any()
    first = generate_with(tiny_masked_lm, policy, seed=5).sequences
    again = generate_with(tiny_masked_lm, policy, seed=5).sequences
    assert torch.equal(first, again)


def test_generate_warns_once_when_used_outside_the_training_setting(tiny_masked_lm):
    policy = ConfidencePolicy(trained_for={"gen_length": 16, "block_length": 8, "base_model": "tiny"})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        generate_with(tiny_masked_lm, policy, max_new_tokens=16, block_length=8, output_trajectory=False)
        assert not [w for w in caught if "was trained with" in str(w.message)]
        generate_with(tiny_masked_lm, policy, max_new_tokens=32, block_length=8, output_trajectory=False)
        generate_with(tiny_masked_lm, policy, max_new_tokens=32, block_length=8, output_trajectory=False)
        length_warnings = [w for w in caught if "gen_length (L) = 16" in str(w.message)]
        assert len(length_warnings) == 1 and "max_new_tokens=32" in str(length_warnings[0].message)
        out = generate_with(tiny_masked_lm, policy, max_new_tokens=16, block_length=16, output_trajectory=False)
        block_warnings = [w for w in caught if "block_length (BL) = 8" in str(w.message)]
        assert len(block_warnings) == 1
    assert out.sequences.shape == (3, 21)  # warned, not refused


# ---------------------------------------------------------------------------------------------- hidden states
def test_hidden_state_policy(tiny_masked_lm):
    policy = HiddenStatePolicy(tiny_masked_lm.config, mode="bernoulli-argmax")
    assert policy.requires_hidden_states
    assert (policy.input_size, policy.hidden_size, policy.num_heads, policy.ffn_size) == (32, 32, 2, 64)
    assert isinstance(policy.network.input_proj, torch.nn.Identity)
    s = random_states(4, 16, seed=18)
    s["hidden_states"] = torch.randn(4, 16, 32)
    torch.testing.assert_close(
        policy.unmask_probabilities(s)[s["eligible"]],
        torch.sigmoid(torch.tensor(-2.0)).expand(int(s["eligible"].sum())),
    )
    perturbed(policy, seed=19)
    for mode in MODES:
        policy.mode = mode
        out = generate_with(tiny_masked_lm, policy, progress_fallback=mode != "bernoulli")
        traj = out.trajectory
        assert traj.hidden_states is not None and traj.hidden_states.shape[-1] == 32
        assert torch.allclose(policy.log_prob(traj), traj.log_prob, atol=1e-5)
    wider = HiddenStatePolicy(32, hidden_size=64, num_heads=4, ffn_size=128)
    assert isinstance(wider.network.input_proj, torch.nn.Linear)
    assert wider(s["hidden_states"], s["masked"], s["time"]).shape == (4, 16)
    with pytest.raises(ValueError, match="hidden states"):
        wider.log_prob({k: v for k, v in s.items() if k != "hidden_states"}, s["masked"])
