"""Token choice: greedy proposal and confidence, Gumbel-max sampling with top-k / top-p."""

from __future__ import annotations

import torch

from hf_unmask.generation.token_choice import choose_tokens


def test_greedy_is_the_argmax_with_its_probability():
    logits = torch.randn(3, 7, 50, generator=torch.Generator().manual_seed(0)) * 4
    proposal, confidence = choose_tokens(logits)
    assert torch.equal(proposal, logits.argmax(-1))
    expected = torch.softmax(logits, -1).gather(-1, proposal.unsqueeze(-1)).squeeze(-1)
    assert torch.equal(confidence, expected)
    assert proposal.dtype == torch.long and confidence.dtype == torch.float32


def test_greedy_ties_take_the_lowest_index_and_minus_inf_is_never_chosen():
    logits = torch.tensor([[[float("-inf"), 2.0, 5.0, 5.0, 1.0]]], dtype=torch.bfloat16)
    proposal, confidence = choose_tokens(logits)
    assert proposal.tolist() == [[2]]
    assert torch.allclose(confidence, torch.softmax(logits.float(), -1)[..., 2])
    only_masked_left = torch.tensor([[[float("-inf"), float("-inf"), 0.0]]])
    assert choose_tokens(only_masked_left)[0].tolist() == [[2]]


def test_sampling_is_seeded_and_top_k_one_is_greedy_with_the_unrestricted_confidence():
    logits = torch.randn(2, 5, 30, generator=torch.Generator().manual_seed(1))
    draw = lambda seed, **kw: choose_tokens(logits, 1.0, torch.Generator().manual_seed(seed), **kw)  # noqa: E731
    assert torch.equal(draw(3)[0], draw(3)[0])
    assert not torch.equal(draw(3)[0], draw(4)[0])
    proposal, confidence = draw(3, top_k=1)
    greedy_proposal, greedy_confidence = choose_tokens(logits)
    assert torch.equal(proposal, greedy_proposal)
    assert torch.allclose(confidence, greedy_confidence)
    nucleus, _ = draw(5, top_p=1e-6)  # the smallest nucleus holds the top token only
    assert torch.equal(nucleus, greedy_proposal)
