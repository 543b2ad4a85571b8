"""`ConfidencePolicy(confidence_feature="log_odds")`: the confidence enters the network as log(c / (1 - c))."""

from __future__ import annotations

import json

import pytest
import torch

from hf_unmask.strategies import ConfidencePolicy
from hf_unmask.strategies.learned import UnmaskingPolicy


def test_the_paper_feature_is_the_default():
    assert ConfidencePolicy().confidence_feature == "probability"


def test_log_odds_feeds_the_network_the_logit_of_the_confidence():
    torch.manual_seed(0)
    policy = ConfidencePolicy(hidden_size=32, num_heads=2, ffn_size=64, confidence_feature="log_odds")
    with torch.no_grad():  # the output layer starts at zero (every logit = the initial bias): move it
        for p in policy.parameters():
            p.add_(0.1 * torch.randn_like(p))
    confidence = torch.tensor([[0.5, 0.9, 0.99, 1.0, 0.0]])
    masked, time = torch.ones(1, 5, dtype=torch.bool), torch.zeros(1)
    expected_feature = torch.tensor([[0.0, 2.1972, 4.5951, 13.8155, -13.8155]]).unsqueeze(-1)
    expected = policy.network(expected_feature, masked, time, None)
    assert torch.allclose(policy(confidence, masked, time), expected, atol=1e-3)
    # the same weights reading the probability give other logits: the option is live
    policy.confidence_feature = "probability"
    assert not torch.allclose(policy(confidence, masked, time), expected, atol=1e-3)


def test_the_feature_is_saved_and_old_configs_load_as_probability(tmp_path):
    policy = ConfidencePolicy(hidden_size=32, num_heads=2, ffn_size=64, confidence_feature="log_odds")
    policy.save_pretrained(tmp_path / "p")
    assert json.loads((tmp_path / "p" / "config.json").read_text())["confidence_feature"] == "log_odds"
    loaded = UnmaskingPolicy.from_pretrained(tmp_path / "p")
    assert loaded.confidence_feature == "log_odds"
    config = json.loads((tmp_path / "p" / "config.json").read_text())
    del config["confidence_feature"]  # a policy saved before the option existed
    (tmp_path / "p" / "config.json").write_text(json.dumps(config))
    assert UnmaskingPolicy.from_pretrained(tmp_path / "p").confidence_feature == "probability"


def test_an_unknown_feature_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="log_odds"):
        ConfidencePolicy(confidence_feature="logit")


def test_the_model_card_says_how_the_confidence_is_read():
    from hf_unmask.strategies.card import build_model_card

    card = str(
        build_model_card(ConfidencePolicy(hidden_size=32, num_heads=2, ffn_size=64, confidence_feature="log_odds"))
    )
    assert "dLLM confidence (as log-odds)" in card
    assert "(as log-odds)" not in str(build_model_card(ConfidencePolicy(hidden_size=32, num_heads=2, ffn_size=64)))
