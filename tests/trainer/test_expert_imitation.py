"""Expert imitation and expert scoring over the policy's eligible sets (learning from the expert fast)."""

from __future__ import annotations

import pytest
import torch
from grpo_toys import make_trainer, policy_inputs, small_config, toy_dataset
from test_grpo_rollouts_and_loss import hand_loss

from hf_unmask.trainer.rollouts import policy_eligible


def perturb(policy, seed=2):
    with torch.no_grad(), torch.random.fork_rng():
        torch.manual_seed(seed)
        for p in policy.parameters():
            p.add_(0.2 * torch.randn_like(p))


def test_policy_eligible_is_the_leftmost_open_block():
    masked = torch.tensor([[True, True, False, True, True, True], [False, False, False, False, True, False]])
    assert policy_eligible(masked, 2).tolist() == [
        [True, True, False, False, False, False],
        [False, False, False, False, True, False],
    ]
    assert torch.equal(policy_eligible(masked, 6), masked)  # full diffusion: every masked position
    assert not policy_eligible(torch.zeros(2, 4, dtype=torch.bool), 2).any()  # nothing masked, nothing eligible


@pytest.mark.parametrize("scoring", ["expert", "policy"])
def test_expert_actions_are_scored_over_the_chosen_eligible_sets(dllm, tmp_path, scoring):
    trainer = make_trainer(
        dllm, tmp_path, expert_steering=True, expert_block_length=6, expert_threshold=0.3, block_length=12,
        expert_scoring=scoring,
    )  # fmt: skip
    batch = trainer._generate_and_score_completions(policy_inputs(trainer, [0, 1]))
    expert = batch["is_expert"]
    live = batch["live"][expert]
    eligible, masked, action = (batch[k][expert][live] for k in ("eligible", "masked", "action"))
    assert not (action & ~eligible).any()  # the expert's action is a choice among the scored positions
    if scoring == "policy":  # the paper's: full diffusion policy, every masked position, the EOS tail included
        assert torch.equal(eligible, masked)
    else:  # the expert's own block of 6
        assert torch.equal(eligible, policy_eligible(masked, 6))
        assert (eligible.sum(-1) < masked.sum(-1)).any()
    # the recorded pi_old is the policy's log-probability over those sets
    states = {k: batch[k][expert][live] for k in ("confidence", "masked", "eligible", "time")}
    assert torch.allclose(trainer.policy.log_prob(states, action), batch["old_logps"][expert][live], atol=1e-5)


def test_imitation_adds_the_expert_actions_nll_per_eligible_position(dllm, tmp_path):
    coef = 0.7
    trainer = make_trainer(
        dllm, tmp_path, expert_steering=True, expert_block_length=6, expert_threshold=0.3, block_length=12,
        expert_scoring="policy", expert_imitation_coef=coef, expert_imitation_steps=10,
    )  # fmt: skip
    batch = trainer._generate_and_score_completions(policy_inputs(trainer, [0, 1]))
    policy = trainer.policy
    perturb(policy)
    n = batch["live"].shape[0]
    nll = []
    for i in torch.nonzero(batch["is_expert"]).flatten().tolist():
        terms = []
        for t in torch.nonzero(batch["live"][i]).flatten().tolist():
            state = {k: batch[k][i, t][None] for k in ("confidence", "masked", "eligible", "time")}
            terms.append(-policy.log_prob(state, batch["action"][i, t][None])[0] / batch["eligible"][i, t].sum())
        nll.append(torch.stack(terms).mean())
    grpo = hand_loss(policy, batch, epsilon=0.5, expert_weight=(4 / 5, 1 / 5))
    for step, weight in [(0, coef), (5, coef / 2), (10, 0.0), (30, 0.0)]:  # linear decay over 10 steps
        trainer.state.global_step = step
        loss = trainer.compute_loss(trainer.model, batch)
        assert torch.allclose(loss, grpo + weight * torch.stack(nll).sum() / n, rtol=1e-5, atol=1e-6), step


def expert_log_prob_before_and_after_training(dllm, tmp_path, **overrides):
    """Two prompts, so every step rolls out the same (deterministic) expert trajectories; all rewards equal (alpha 0
    and a constant reward), so GRPO's advantages are 0 and only the imitation term can move the policy."""
    trainer = make_trainer(
        dllm, tmp_path, dataset=toy_dataset(2), expert_steering=True, expert_block_length=12, expert_threshold=0.9,
        block_length=12, expert_scoring="policy", max_steps=20, num_train_epochs=100, learning_rate=1e-2,
        warmup_steps=0, max_grad_norm=1.0, lr_scheduler_type="constant", alpha=0.0, **overrides,
    )  # fmt: skip
    torch.manual_seed(0)
    batch = trainer._generate_and_score_completions(policy_inputs(trainer, [0, 1]))
    expert, live = batch["is_expert"], batch["live"]
    states = {k: batch[k][expert][live[expert]] for k in ("confidence", "masked", "eligible", "time")}

    def expert_log_prob():
        with torch.no_grad():
            return trainer.policy.log_prob(states, batch["action"][expert][live[expert]]).mean().item()

    before = expert_log_prob()
    trainer.train()
    return before, expert_log_prob()


def test_imitation_moves_the_policy_towards_the_expert_where_the_mixture_alone_does_not(dllm, tmp_path):
    """Without an advantage the mixture passes no gradient at all (the step is skipped); imitation still learns."""
    before, plain = expert_log_prob_before_and_after_training(dllm, tmp_path / "plain")
    assert plain == before
    before, imitating = expert_log_prob_before_and_after_training(
        dllm, tmp_path / "imitating", expert_imitation_coef=1.0
    )
    assert imitating > before + 0.3, (before, imitating)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"expert_steering": True, "expert_block_length": 6, "expert_scoring": "both"}, "Unknown expert_scoring"),
        (
            {"expert_steering": True, "expert_block_length": 6, "expert_imitation_coef": -1.0},
            "expert_imitation_coef must be",
        ),
        (
            {"expert_steering": True, "expert_block_length": 6, "expert_imitation_steps": -2},
            "expert_imitation_steps must be",
        ),
        ({"expert_imitation_coef": 1.0}, "--expert_steering true"),
        ({"expert_scoring": "expert"}, "--expert_steering true"),
        (
            {"expert_steering": True, "expert_scoring": "policy", "block_length": 4, "expert_block_length": 6},
            "multiple of expert_block_length",
        ),
    ],
)
def test_bad_imitation_settings_are_refused_with_the_fix(tmp_path, overrides, message):
    with pytest.raises(ValueError, match=message):
        small_config(tmp_path, **overrides)


def test_the_paper_settings_stay_the_defaults(tmp_path):
    args = small_config(tmp_path)
    assert (args.expert_scoring, args.expert_imitation_coef, args.expert_imitation_steps) == ("policy", 0.0, 0)


def test_the_trainer_builds_the_policy_with_the_confidence_feature(dllm, tmp_path):
    trainer = make_trainer(dllm, tmp_path, policy_confidence_feature="log_odds")
    assert trainer.policy.confidence_feature == "log_odds"
    with pytest.raises(ValueError, match="Unknown policy_confidence_feature"):
        small_config(tmp_path, policy_confidence_feature="logit")


def test_the_policy_records_the_imitation_settings_it_was_trained_with(dllm, tmp_path):
    plain = make_trainer(dllm, tmp_path / "plain", expert_steering=True, expert_block_length=6)
    assert plain.trained_for()["expert_steering"] == {"threshold": 0.9, "block_length": 6, "scoring": "policy"}
    imitating = make_trainer(
        dllm, tmp_path / "imitating", expert_steering=True, expert_block_length=6, expert_scoring="policy",
        expert_imitation_coef=0.5, expert_imitation_steps=7,
    )  # fmt: skip
    record = imitating.trained_for()["expert_steering"]
    assert (record["scoring"], record["imitation_coef"], record["imitation_steps"]) == ("policy", 0.5, 7)
