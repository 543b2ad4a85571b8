"""`stop_at_eos` keeps the loop's guarantees: a decided token never changes; the only writes outside the current
block are the fill of masked positions after a finished row's first EOS."""

from __future__ import annotations

import pytest
import torch

import hf_unmask
from hf_unmask.strategies import ConfidenceThreshold, RandomTopK, TopKConfidence, TopKEntropy

EOS, MASK = 2, 1


@pytest.fixture(scope="module")
def tiny():
    return hf_unmask.load_builtin_model("tiny-dllm")


@pytest.mark.filterwarnings("ignore:.*trained to generate L = 16")
def test_fuzz_reproducer_keeps_decided_tokens(tiny):
    """A fuzzed call that once failed: positions 13-18 are decided before the EOS at position 0, and stay."""
    model, _ = tiny
    ids = torch.tensor([[27, 15, 6, 86, 77, 77, 84, 26, 39, 35, 19]])
    out = model.generate(
        ids,
        strategy=TopKEntropy(),
        max_new_tokens=32,
        block_length=None,
        stop_at_eos=True,
        return_dict_in_generate=True,
        output_history=True,
    )
    canvas = out.history[:, 0, ids.shape[1] :]
    decided_before = canvas[:-1] != MASK
    assert torch.equal(canvas[1:][decided_before], canvas[:-1][decided_before])
    final = canvas[-1]
    assert (final != MASK).all() and int(final[0]) == EOS
    assert final[13:19].tolist() == canvas[-2][13:19].tolist() and (final[13:19] != EOS).all()
    assert int(out.nfe[0]) == out.history.shape[0] - 1 < 32  # stopped early: no forward pass after the EOS


def _random_batch(gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    rows = int(torch.randint(1, 4, (1,), generator=gen))
    lengths = torch.randint(1, 14, (rows,), generator=gen).tolist()
    width = max(lengths)
    ids = torch.zeros(rows, width, dtype=torch.long)
    keep = torch.zeros(rows, width, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, width - n :] = torch.randint(3, 95, (n,), generator=gen)
        keep[row, width - n :] = 1
    return ids, keep


@pytest.mark.filterwarnings("ignore:.*trained to generate L = 16")
@pytest.mark.parametrize("case", range(32))
def test_random_prompts_keep_the_guarantees(tiny, case):
    """Random prompts (mostly nonsense to the model, so EOS comes anywhere), L beyond the trained 16 for half of
    them, every block length, four strategies, greedy and sampled."""
    model, _ = tiny
    gen = torch.Generator().manual_seed(case)
    ids, keep = _random_batch(gen)
    L = 32 if case % 2 else 16
    BL = [4, 8, 16, L][(case // 2) % 4]
    strategy = [TopKEntropy(), TopKConfidence(), ConfidenceThreshold(0.5), RandomTopK()][(case // 8) % 4]
    P = ids.shape[1]
    steps = []

    def record(step):
        steps.append((step.block, step.sequences[:, P:]))

    out = model.generate(
        ids,
        attention_mask=keep,
        strategy=strategy,
        max_new_tokens=L,
        block_length=BL,
        stop_at_eos=True,
        pad_token_id=EOS,
        temperature=1.0 if case % 3 == 0 else 0.0,
        seed=case,
        callback_on_step_end=record,
        return_dict_in_generate=True,
    )
    assert torch.equal(out.sequences[:, :P], ids), "the prompt never changes"
    assert not (out.sequences[:, P:] == MASK).any() and (out.nfe <= L).all()
    before = torch.full((ids.shape[0], L), MASK)
    positions = torch.arange(L)
    for block, after in steps:
        written = after != before
        assert not (written & (before != MASK)).any(), "a decided token changed"
        outside = written & ((positions < block * BL) | (positions >= (block + 1) * BL))
        if outside.any():  # only the EOS fill of a finished row, after its first EOS
            rows = outside.any(-1).nonzero()[:, 0]
            for row in rows.tolist():
                first_eos = int((after[row] == EOS).nonzero()[0, 0])
                assert (after[row, :first_eos] != MASK).all() and not (after[row] == MASK).any()
                assert (after[row][outside[row]] == EOS).all()
                assert (positions[outside[row]] > first_eos).all()
        before = after
    assert torch.equal(before, out.sequences[:, P:])
