"""`RemaskingPolicy`: a learned policy that unmasks and re-masks. Log-probabilities recorded while sampling reproduce
from the trajectory for both actions (full diffusion and semi-AR, with and without the KV cache), the action model
against brute-force enumeration, the warm start from a commit-only `ConfidencePolicy`, the two-output network,
save / load / model card, and the errors."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

import hf_unmask
from hf_unmask.strategies import (
    ConfidencePolicy,
    RemaskingPolicy,
    UnmaskingPolicy,
    UnmaskingStrategy,
    load_builtin_policy,
)
from hf_unmask.strategies.card import build_model_card
from hf_unmask.strategies.policy_network import PolicyNetwork

PROMPTS = ["trace : 3 | +4 *3 +1 *7 +2 *9 +3 +1 *3 +4 +2 | run 6", "sort : 3 1 2"]
SMALL = dict(hidden_size=32, num_heads=2, ffn_size=64)


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = hf_unmask.load_builtin_model("tiny-dllm")
    tokenizer.padding_side = "left"
    return model, tokenizer


def perturbed(policy, seed: int = 0, scale: float = 0.2):
    """Random weights everywhere so that outputs depend on every input."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * scale)
    return policy


def remasking(mode: str = "bernoulli", seed: int = 0, remask_init_bias: float = 1.0, **kwargs) -> RemaskingPolicy:
    """A small seeded policy with random weights that does re-mask (re-mask bias +1: p ~ 0.7 before the
    perturbation)."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        policy = RemaskingPolicy(**SMALL, mode=mode, remask_init_bias=remask_init_bias, **kwargs)
    return perturbed(policy, seed=seed)


def generate(tiny, policy, **kwargs):
    model, tokenizer = tiny
    ids = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    settings = dict(max_new_tokens=16, seed=0, output_trajectory=True, return_dict_in_generate=True, **kwargs)
    return model.generate(**ids, strategy=policy, **settings)


def states(revisable_at=(2, 3), eligible_at=(0, 1), length: int = 5, seed: int = 0) -> dict:
    """One state of `length` positions: the eligible ones masked, the revisable ones decided."""
    gen = torch.Generator().manual_seed(seed)
    eligible = torch.zeros(1, length, dtype=torch.bool)
    eligible[0, list(eligible_at)] = True
    revisable = torch.zeros(1, length, dtype=torch.bool)
    revisable[0, list(revisable_at)] = True
    return {
        "confidence": torch.rand(1, length, generator=gen),
        "masked": eligible.clone(),
        "eligible": eligible,
        "time": torch.tensor([0.5]),
        "revisable": revisable,
        "token_confidence": torch.rand(1, length, generator=gen) * ~eligible,
        "decided_time": torch.rand(1, length, generator=gen) * 0.5 * ~eligible,
    }


# ---------------------------------------------------------------------------------------------- log-probabilities
@pytest.mark.parametrize(
    "cache, block_length, mode",
    [
        (False, 16, "bernoulli"),
        (False, 8, "bernoulli-argmax"),
        (True, 16, "bernoulli-argmax"),
        (True, 8, "bernoulli"),
        (False, 8, "dpls"),
    ],
    ids=["full", "semi-ar", "full-cache", "semi-ar-cache", "semi-ar-dpls"],
)
def test_log_probs_recorded_while_sampling_reproduce_from_the_trajectory(tiny, cache, block_length, mode):
    policy = remasking(mode, seed=1, temperature=0.8, init_bias=0.0)  # unmasks several per step: room to re-mask
    out = generate(tiny, policy, block_length=block_length, use_cache=cache)
    traj, live = out.trajectory, out.trajectory.live
    assert bool(traj.remasked.any())  # the policy does re-mask
    assert not bool((traj.remask_action & ~traj.revisable).any()) and not bool((traj.action & ~traj.eligible).any())
    recomputed = policy.log_prob(traj)
    assert recomputed.shape == traj.log_prob.shape
    torch.testing.assert_close(recomputed[live], traj.log_prob[live], atol=1e-5, rtol=0)
    # the re-mask part counts: the same trajectory without its re-masks has another log-probability
    without = policy.log_prob(traj, remask=torch.zeros_like(traj.remask_action))
    changed = traj.remask_action.any(-1) & live
    assert bool((without[changed] - recomputed[changed]).abs().gt(1e-3).all())
    # the trainer's path: network_inputs + log_prob_from_states over the live steps, differentiable
    fields = ("masked", "eligible", "time", "action", *policy.trajectory_fields)
    flat = {k: getattr(traj, k)[live] for k in fields}
    logits = policy(*policy.network_inputs(flat))
    log_prob, entropy = policy.log_prob_from_states(logits, flat, with_entropy=True)
    torch.testing.assert_close(log_prob, traj.log_prob[live], atol=1e-5, rtol=0)
    assert (entropy is None) == (mode == "dpls")
    log_prob.sum().backward()
    head = policy.network.head.weight.grad
    assert head is not None and bool(head[1].abs().sum() > 0)  # the re-mask head gets a gradient


def test_sample_and_log_prob_agree_on_a_states_mapping():
    policy = remasking("bernoulli-argmax", seed=2)
    batch = {
        k: v.expand(4, *v.shape[1:])
        for k, v in states(length=8, eligible_at=(0, 1, 2), revisable_at=(4, 5, 6)).items()
    }
    out = policy.sample(batch, generator=torch.Generator().manual_seed(0))
    assert out.logits.shape == (4, 8, 2) and out.remask.shape == (4, 8)
    assert not bool((out.remask & ~batch["revisable"]).any()) and bool(out.action.any(-1).all())
    torch.testing.assert_close(policy.log_prob(batch, out.action, out.remask), out.log_prob)


@pytest.mark.parametrize("mode, beta", [("bernoulli", 1.3), ("bernoulli-argmax", 0.7), ("dpls", 1.2)])
def test_log_probs_and_entropy_match_brute_force_enumeration(mode, beta):
    """Over every (unmask, re-mask) pair on 5 positions: probabilities sum to 1, the entropy is -sum P log P."""
    policy = remasking(mode, seed=3, remask_init_bias=0.0, unmask_beta=beta, temperature=0.9)
    s = states(eligible_at=(0, 1, 4), revisable_at=(2, 3))
    subsets = [torch.tensor(bits) for bits in itertools.product([False, True], repeat=5)]
    pairs = [(u, r) for u in subsets for r in subsets if not (u & ~s["eligible"][0]).any()]
    pairs = [(u, r) for u, r in pairs if not (r & ~s["revisable"][0]).any()]
    assert len(pairs) == 8 * 4
    actions, remasks = torch.stack([u for u, _ in pairs]), torch.stack([r for _, r in pairs])
    batch = {k: v.expand(len(pairs), *v.shape[1:]) for k, v in s.items()}
    evaluation = policy.evaluate_actions(batch, actions, remasks)
    probs = evaluation.log_prob.double().exp()
    torch.testing.assert_close(probs.sum(), torch.tensor(1.0, dtype=torch.float64), atol=1e-6, rtol=0)
    if mode == "dpls":
        assert evaluation.entropy is None
        assert probs[actions.sum(-1) == 0].sum().item() == 0.0
        return
    entropy = -(probs * evaluation.log_prob.double().clamp_min(-1e9)).nan_to_num().sum()
    torch.testing.assert_close(evaluation.entropy[0].double(), entropy, atol=1e-5, rtol=1e-5)
    # the re-mask part alone: independent Bernoulli, p_r = min(1, sigmoid(z_r / tau) / beta)
    p_r = policy.remask_probabilities(s)[0]
    z_r = policy.sample(s).logits[0, :, 1] / policy.temperature
    torch.testing.assert_close(p_r[2:4], (torch.sigmoid(z_r) / beta).clamp(max=1)[2:4])


def test_beta_unmasks_more_and_remasks_less():
    s = states(length=8, eligible_at=(0, 1, 2), revisable_at=(4, 5, 6))
    policy = remasking(seed=4, remask_init_bias=-1.0)
    base_u, base_r = policy.unmask_probabilities(s), policy.remask_probabilities(s)
    policy.unmask_beta = 1.5
    faster_u, faster_r = policy.unmask_probabilities(s), policy.remask_probabilities(s)
    e, r = s["eligible"], s["revisable"]
    assert bool((faster_u[e] > base_u[e]).all()) and bool((faster_r[r] < base_r[r]).all())
    assert not bool(faster_r[~r].any()) and not bool(faster_u[~e].any())


# ---------------------------------------------------------------------------------------------- warm start
def test_from_unmasking_policy_decides_as_the_commit_only_policy(tiny):
    commit_only = load_builtin_policy("tiny-dllm-program_trace-bl8-alpha1")
    policy = RemaskingPolicy.from_unmasking_policy(commit_only)
    config, expected = policy.get_config(), commit_only.get_config()
    assert config.pop("remask_init_bias") == -6.0 and config == expected
    assert policy.num_parameters() == commit_only.num_parameters() + 2 * 128 + 129
    weights = policy.network.state_dict()
    assert torch.count_nonzero(weights["input_proj.weight"][:, 1:]) == 0
    assert torch.count_nonzero(weights["head.weight"][1]) == 0 and weights["head.bias"][1].item() == -6.0
    traj = generate(tiny, policy, block_length=8).trajectory
    torch.testing.assert_close(policy.unmask_probabilities(traj), commit_only.unmask_probabilities(traj), atol=1e-6,
                               rtol=1e-5)  # fmt: skip
    p_r = policy.remask_probabilities(traj)[traj.revisable]
    torch.testing.assert_close(p_r, torch.sigmoid(torch.tensor(-6.0 / policy.temperature)).expand_as(p_r))
    # with re-masking off (bias -30) it makes the very same decisions as the commit-only policy (same draws)
    silent = RemaskingPolicy.from_unmasking_policy(commit_only, remask_init_bias=-30.0, mode="bernoulli")
    commit_only.mode = "bernoulli"
    a, b = generate(tiny, silent, block_length=8), generate(tiny, commit_only, block_length=8)
    assert not bool(a.trajectory.remasked.any())
    assert torch.equal(a.sequences, b.sequences) and torch.equal(a.nfe, b.nfe)
    assert torch.equal(a.trajectory.action, b.trajectory.action)
    torch.testing.assert_close(a.trajectory.log_prob, b.trajectory.log_prob, atol=1e-5, rtol=0)


def test_from_unmasking_policy_keeps_the_paper_network_and_log_odds():
    torch.manual_seed(5)
    commit_only = perturbed(ConfidencePolicy(**SMALL, architecture="paper", confidence_feature="log_odds"), seed=5)
    policy = RemaskingPolicy.from_unmasking_policy(commit_only, remask_init_bias=-4.0)
    assert (policy.architecture, policy.confidence_feature, policy.time_features_bfloat16) == (
        "paper",
        "log_odds",
        True,
    )
    s = states(length=8, eligible_at=(0, 1, 2, 7), revisable_at=(3, 4))
    torch.testing.assert_close(
        policy.unmask_probabilities(s), commit_only.unmask_probabilities(s), atol=1e-6, rtol=1e-5
    )
    assert policy.network.head.bias[1].item() == -4.0


def test_policy_network_output_dim():
    torch.manual_seed(0)
    one = PolicyNetwork(architecture="paper")
    torch.manual_seed(0)
    default = PolicyNetwork(architecture="paper", output_dim=1)
    assert one.state_dict().keys() == default.state_dict().keys()
    assert all(torch.equal(v, default.state_dict()[k]) for k, v in one.state_dict().items())
    assert sum(p.numel() for p in default.parameters()) == 331_265
    two = PolicyNetwork(input_dim=3, output_dim=2, init_bias=-1.0)
    x, masked, time = torch.rand(2, 16, 3), torch.ones(2, 16, dtype=torch.bool), torch.zeros(2)
    assert default(x[..., :1], masked, time).shape == (2, 16) and two(x, masked, time).shape == (2, 16, 2)
    assert two.head.bias.tolist() == [-1.0, -1.0]
    with pytest.raises(ValueError, match="output_dim must be a positive integer"):
        PolicyNetwork(output_dim=0)


# ---------------------------------------------------------------------------------------------- saving
def test_save_load_and_model_card_round_trip(tmp_path, tiny):
    policy = remasking("bernoulli-argmax", seed=6, temperature=0.5, confidence_feature="log_odds")
    policy.trained_for = {"base_model": "builtin:tiny-dllm", "gen_length": 16, "block_length": 8, "alpha": 1.0}
    policy.save_pretrained(tmp_path)
    for loader in (UnmaskingStrategy, UnmaskingPolicy, RemaskingPolicy):
        loaded = loader.from_pretrained(tmp_path)
        assert type(loaded) is RemaskingPolicy and loaded.get_config() == policy.get_config()
        assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in policy.state_dict().items())
    card = (tmp_path / "README.md").read_text()
    assert "# RemaskingPolicy" in card and "re-masks" in card and "two logits per position (unmask, re-mask)" in card
    assert "- remasking" in card
    assert f"{policy.num_parameters():,}" in card
    assert "RemaskingPolicy" in build_model_card(policy, repo_id="me/remasker").text
    out = generate(tiny, loaded, block_length=8)  # it runs as a strategy of generate, as loaded
    assert not bool((out.sequences == tiny[1].mask_token_id).any())
    with pytest.raises(TypeError, match="holds a RemaskingPolicy, which is not a ConfidencePolicy"):
        ConfidencePolicy.from_pretrained(tmp_path)


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize("bias", [float("nan"), float("inf"), "-6", True])
def test_bad_remask_init_bias_is_a_clear_error(bias):
    with pytest.raises(ValueError, match="remask_init_bias must be a finite number"):
        RemaskingPolicy(**SMALL, remask_init_bias=bias)


def test_bad_inputs_are_clear_errors():
    policy = remasking(seed=7)
    s = states()
    with pytest.raises(ValueError, match="Unknown confidence_feature"):
        RemaskingPolicy(confidence_feature="logit")
    with pytest.raises(ValueError, match=r"reads \['token_confidence', 'decided_time'\]"):
        policy.sample({k: v for k, v in s.items() if k not in ("token_confidence", "decided_time")})
    with pytest.raises(ValueError, match="reads `revisable`"):
        policy.sample({k: v for k, v in s.items() if k != "revisable"})
    with pytest.raises(ValueError, match="No re-mask actions given.*pass remask="):
        policy.log_prob(s, s["eligible"])
    with pytest.raises(ValueError, match=r"logits are \[..., L, 2\]"):
        policy.log_prob_from_logits(torch.zeros(1, 5), s["eligible"], s["eligible"], revisable=s["revisable"])
    with pytest.raises(ValueError, match="needs `revisable`"):
        policy.log_prob_from_logits(torch.zeros(1, 5, 2), s["eligible"], s["eligible"])
    with pytest.raises(ValueError, match=r"reads \[B, L, 3\] features"):
        policy(torch.rand(1, 5), s["masked"], s["time"])
    with pytest.raises(TypeError, match="warm-starts from a commit-only ConfidencePolicy, got RemaskingPolicy"):
        RemaskingPolicy.from_unmasking_policy(policy)
    commit_only = ConfidencePolicy(**SMALL)
    with pytest.raises(ValueError, match="does not re-mask decided tokens"):
        commit_only.log_prob_from_logits(torch.zeros(1, 5), s["eligible"], s["eligible"], remask=s["revisable"])
    with pytest.raises(ValueError, match="does not re-mask decided tokens"):
        commit_only.log_prob(s, s["eligible"], remask=s["revisable"])
    # a commit-only policy ignores the re-masking fields of the states (zero head weight: p = sigmoid(-2) each)
    log_prob = commit_only.log_prob(s, s["eligible"]).detach()
    assert math.isclose(float(log_prob[0]), 2 * math.log(torch.sigmoid(torch.tensor(-2.0)).item()), rel_tol=1e-5)
