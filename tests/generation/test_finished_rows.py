"""Rows with nothing left to decide leave the forward batch (`drop_finished_rows`, on by default): a padded batch
still gives each row's tokens and NFE alone, the result equals the path that feeds every row, and a finished row
is never fed again in its block (no cache, prefix and dual cache; the tiny dLLM and the native LLaDA / Dream)."""

from __future__ import annotations

import pytest
import torch
from hub_layouts import hub_checkpoint

import hf_unmask
from hf_unmask import AutoDiffusionLM
from hf_unmask.strategies import ConfidenceThreshold, TopKConfidence, load_builtin_policy

PROMPTS = [
    "trace : 3 | +4 *3 +1 *7 +2 *9 +3 +1 *3 +4 +2 | run 6",
    "sort : 3 1 2",
    "trace : 5 | *2 +7 *9 +3 +1 *3 +8 | run 4",
    "sort : 9 2 7 1 3",
]
CACHES = {"no cache": {}, "prefix": {"use_cache": True, "cache_mode": "prefix"}}
CACHES["dual"] = {"use_cache": True, "cache_mode": "dual"}
POLICY = "tiny-dllm-program_trace-bl8-alpha1"


@pytest.fixture(scope="module")
def tiny():
    model, tokenizer = hf_unmask.load_builtin_model("tiny-dllm")
    tokenizer.padding_side = "left"
    return model, tokenizer


@pytest.fixture(scope="module")
def policy():
    return load_builtin_policy(POLICY)


class FedRows:
    """Records the rows of every forward call (each row's prompt tokens identify it)."""

    def __init__(self, model, prompt_length: int, gen_length: int = 16):
        self.calls: list[torch.Tensor] = []
        self.P, self.T = prompt_length, prompt_length + gen_length
        self.handle = model.register_forward_pre_hook(self._record, with_kwargs=True)

    def _record(self, module, args, kwargs):
        self.calls.append(kwargs["input_ids"].clone())

    def rows_of(self, call: torch.Tensor, prompts: torch.Tensor) -> list[int]:
        """Which batch rows a full forward fed (a cached window need not hold the prompt: None)."""
        if call.shape[1] == self.T:
            return [next(i for i in range(len(prompts)) if torch.equal(prompts[i], row[: self.P])) for row in call]
        return None


def _policy_deterministic(policy):
    """A deterministic strategy that runs the learned policy's network: unmask where its probability > 0.5 (the
    shipped policy samples, and sampled draws depend on the batch, so rows alone could not be compared)."""

    def strategy(state):
        return policy.unmask_probabilities(state) > 0.5

    return strategy


STRATEGIES = {
    "threshold": lambda policy: ({"strategy": ConfidenceThreshold(0.9)}),
    "policy": lambda policy: ({"strategy": _policy_deterministic(policy)}),
    "stop_at_eos": lambda policy: ({"strategy": TopKConfidence(), "steps": 16, "stop_at_eos": True}),
}


@pytest.mark.parametrize("cache", list(CACHES))
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_padded_batch_equals_rows_alone_when_rows_finish_at_different_steps(tiny, policy, name, cache):
    model, tokenizer = tiny
    kwargs = {"max_new_tokens": 16, "block_length": 8, "return_dict_in_generate": True}
    kwargs.update(STRATEGIES[name](policy), **CACHES[cache])
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    out = model.generate(**batch, **kwargs)
    every_row = model.generate(**batch, drop_finished_rows=False, **kwargs)
    assert torch.equal(out.sequences, every_row.sequences) and torch.equal(out.nfe, every_row.nfe)
    assert len(set(out.nfe.tolist())) > 1, "the rows must finish at different steps for this test to mean anything"
    for i, prompt in enumerate(PROMPTS):
        alone = model.generate(**tokenizer(prompt, return_tensors="pt"), **kwargs)
        assert torch.equal(out.sequences[i, -16:], alone.sequences[0, -16:]), f"row {i} differs from its run alone"
        assert int(out.nfe[i]) == int(alone.nfe[0])
    # forward_positions counts only what was fed: the padded batch's row costs what the row alone costs
    if cache == "no cache":
        real = batch["attention_mask"].sum(-1) + 16
        assert torch.equal(out.forward_positions, out.nfe * real)


@pytest.mark.parametrize("cache", list(CACHES))
def test_a_finished_row_is_never_fed_again_in_its_block(tiny, cache):
    """Every forward call feeds exactly the rows that count a forward pass at that step (`trajectory.live`)."""
    model, tokenizer = tiny
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    P = batch["input_ids"].shape[1]
    fed = FedRows(model, P)
    try:
        out = model.generate(
            **batch, strategy=ConfidenceThreshold(0.9), max_new_tokens=16, block_length=8, output_trajectory=True,
            return_dict_in_generate=True, **CACHES[cache],
        )  # fmt: skip
    finally:
        fed.handle.remove()
    live = out.trajectory.live
    assert len(fed.calls) == live.shape[0]
    assert any(not bool(step.all()) for step in live), "some step must have finished rows"
    for t, call in enumerate(fed.calls):
        expected = live[t].nonzero().squeeze(-1).tolist()
        assert call.shape[0] == len(expected), f"step {t} fed {call.shape[0]} rows, {len(expected)} were live"
        assert fed.rows_of(call, batch["input_ids"]) in (expected, None)


def test_rows_stopped_at_eos_or_by_the_callback_are_not_fed(tiny):
    model, tokenizer = tiny
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    fed = FedRows(model, batch["input_ids"].shape[1])

    def stop_row_two(step):
        return torch.arange(len(PROMPTS)) == 2

    try:
        out = model.generate(
            **batch, strategy=TopKConfidence(), steps=16, max_new_tokens=16, block_length=4, stop_at_eos=True,
            callback_on_step_end=stop_row_two, return_dict_in_generate=True,
        )  # fmt: skip
    finally:
        fed.handle.remove()
    assert out.stopped.tolist() == [False, False, True, False] and int(out.nfe[2]) == 1
    fed_per_row = [sum(r in fed.rows_of(c, batch["input_ids"]) for c in fed.calls) for r in range(len(PROMPTS))]
    assert fed_per_row == out.nfe.tolist()  # each row fed exactly as often as it counted forward passes
    assert max(fed_per_row) > min(fed_per_row)


def test_sampled_strategies_draw_the_same_numbers_either_way(tiny, policy):
    """Random draws are taken for the whole batch, so a sampled policy, a random order and Gumbel token sampling
    give the same result whether finished rows are fed or not."""
    model, tokenizer = tiny
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    for kwargs in (
        {"strategy": policy},
        {"strategy": "random", "temperature": 0.8},
        {"strategy": policy, "temperature": 1.0},
    ):
        runs = [
            model.generate(**batch, max_new_tokens=16, block_length=8, seed=3, return_dict_in_generate=True,
                           drop_finished_rows=drop, **kwargs)
            for drop in (True, False)
        ]  # fmt: skip
        assert torch.equal(runs[0].sequences, runs[1].sequences) and torch.equal(runs[0].nfe, runs[1].nfe)


@pytest.fixture(scope="module")
def natives(tmp_path_factory):
    load = AutoDiffusionLM.from_pretrained
    return {name: load(hub_checkpoint(tmp_path_factory, name), dtype=torch.float32) for name in ("llada", "dream")}


def _uneven(state):
    """Row r of the batch unmasks r + 1 positions per step, so rows finish their blocks at different steps."""
    rows = state.rows if state.rows is not None else torch.arange(state.batch_size)
    score = state.confidence.masked_fill(~state.eligible, -1.0)
    order = score.argsort(dim=-1, descending=True, stable=True)
    take = torch.arange(score.shape[-1]).unsqueeze(0) < (rows + 1).unsqueeze(-1)
    return torch.zeros_like(state.eligible).scatter(-1, order, take) & state.eligible


@pytest.mark.parametrize("cache", list(CACHES))
@pytest.mark.parametrize("family", ["llada", "dream"])
def test_native_families_give_the_same_result_with_rows_dropped(natives, family, cache):
    model = natives[family]
    ids = torch.randint(5, 200, (3, 6), generator=torch.Generator().manual_seed(0))
    attention_mask = torch.ones_like(ids)
    attention_mask[0, :2] = 0  # a left-padded row
    kwargs = {"strategy": _uneven, "max_new_tokens": 16, "block_length": 8, "return_dict_in_generate": True}
    kwargs.update(CACHES[cache])
    fed = FedRows(model, ids.shape[1])
    try:
        out = model.generate(ids, attention_mask=attention_mask, **kwargs)
        rows_fed = sum(call.shape[0] for call in fed.calls)
        fed.calls.clear()
        every_row = model.generate(ids, attention_mask=attention_mask, drop_finished_rows=False, **kwargs)
    finally:
        fed.handle.remove()
    assert out.nfe.tolist() == [16, 8, 6]  # two blocks of ceil(8 / (r + 1)) steps
    assert torch.equal(out.sequences, every_row.sequences) and torch.equal(out.nfe, every_row.nfe)
    assert rows_fed == 16 + 8 + 6  # each row fed once per forward pass it counts
    assert sum(call.shape[0] for call in fed.calls) == 3 * 16  # the old path: every row at every step


def test_drop_finished_rows_must_be_a_bool(tiny):
    model, tokenizer = tiny
    with pytest.raises(TypeError, match="drop_finished_rows must be True or False"):
        model.generate(**tokenizer("sort : 3 1 2", return_tensors="pt"), drop_finished_rows="yes")
