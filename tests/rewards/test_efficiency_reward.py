"""hf_unmask.rewards.efficiency: the paper's multiplicative and the additive reward."""

from __future__ import annotations

import pytest
import torch

from hf_unmask.rewards import efficiency_reward


def test_efficiency_reward_forms():
    r, nfe = torch.tensor([1.0, 1.0, 0.0, 0.5]), torch.tensor([1, 16, 4, 8])
    mult = efficiency_reward(r, nfe, 16, alpha=2.0)
    assert torch.allclose(mult, r * ((16 - nfe + 1) / 16) ** 2)
    assert mult[0] == 1.0 and mult[2] == 0.0  # one step is free; a wrong answer gets nothing however fast
    add = efficiency_reward(r, nfe, 16, alpha=2.0, form="additive")
    assert torch.allclose(add, r - 2.0 * nfe / 16)
    assert torch.equal(efficiency_reward(r, nfe, 16, alpha=0.0), r)


def test_unknown_reward_form_names_the_forms():
    with pytest.raises(ValueError, match="multiplicative"):
        efficiency_reward(torch.ones(1), torch.ones(1), 4, alpha=1.0, form="exponential")
