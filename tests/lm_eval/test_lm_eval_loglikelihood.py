"""`loglikelihood`: the Monte-Carlo estimate masked dLLMs are scored with, checked against computations written
here: the same seeded masks and the model's own logits give the same number; a one-token continuation is exact
whatever the masks (also for Dream, whose logits are shifted by one position)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from lm_eval.api.instance import Instance
from lm_eval.tasks import TaskManager
from lm_eval_runs import MC_TASK

from hf_unmask.lm_eval import TASKS_DIR, HFUnmaskLM, simple_evaluate
from hf_unmask.lm_eval.likelihood import request_seed
from hf_unmask.lm_eval.tasks import program_trace_mc_rows
from hf_unmask.models import load_dllm

MC_NUM, MC_BATCH = 12, 4


def independent_estimate(model, context_ids, continuation_ids, seed_text, seed=0) -> float:
    """LLaDA's estimator, written out: per forward pass of MC_BATCH rows a start count k ~ U{1..T}, counts spread as
    round(linspace(k, k + (b - 1) T / b)) wrapped into 1..T, a random permutation per row masks the positions whose
    rank is below the count; the masked cross-entropy weighted by T / count, averaged over rows and passes."""
    generator = torch.Generator().manual_seed(request_seed(seed, *seed_text))
    T, P = len(continuation_ids), len(context_ids)
    full = torch.tensor([context_ids + continuation_ids])
    total = 0.0
    for _ in range(MC_NUM // MC_BATCH):
        k = int(torch.randint(1, T + 1, (1,), generator=generator))
        rows = []
        for i in range(MC_BATCH):
            count = (round(k + i * T / MC_BATCH) - 1) % T + 1
            ranks = torch.randperm(T, generator=generator)
            rows.append((count, [j for j in range(T) if ranks[j] < count]))
        batch_loss = 0.0
        for count, masked in rows:
            noisy = full.clone()
            noisy[0, [P + j for j in masked]] = 1  # the built-in model's mask id
            logits = model(input_ids=noisy).logits[0]
            nll = sum(F.cross_entropy(logits[P + j][None].float(), full[0, P + j][None]).item() for j in masked)
            batch_loss += nll * T / count
        total += batch_loss / MC_BATCH
    return -total / (MC_NUM // MC_BATCH)


@pytest.fixture(scope="module")
def lm():
    return HFUnmaskLM(pretrained="tiny-dllm", mc_num=MC_NUM, mc_batch_size=MC_BATCH, seed=0)


def test_the_estimate_equals_an_independent_computation_with_the_same_seeded_masks(lm):
    model, tokenizer = load_dllm("builtin")
    row = program_trace_mc_rows(2)[1]
    pairs = [(row["prompt"], " " + choice) for choice in row["choices"]] + [(row["prompt"] + " ", row["choices"][0])]
    got = lm.loglikelihood([Instance("loglikelihood", {}, pair, 0) for pair in pairs])
    for (context, continuation), (ll, is_greedy) in zip(pairs, got):
        context_ids = tokenizer(context.rstrip()).input_ids
        continuation_ids = tokenizer(context.rstrip() + " " + continuation.lstrip()).input_ids[len(context_ids) :]
        with torch.no_grad():
            expected = independent_estimate(model, context_ids, continuation_ids, (context, continuation))
        assert ll == pytest.approx(expected, rel=1e-5, abs=1e-4) and is_greedy is False
    assert len({round(ll, 6) for ll, _ in got}) == len(got)
    again = HFUnmaskLM(pretrained="tiny-dllm", mc_num=MC_NUM, mc_batch_size=MC_BATCH, seed=0)
    reversed_order = again.loglikelihood([Instance("loglikelihood", {}, pair, 0) for pair in reversed(pairs)])
    assert reversed_order[::-1] == got  # a request's estimate does not depend on the others
    other_seed = HFUnmaskLM(pretrained="tiny-dllm", mc_num=MC_NUM, mc_batch_size=MC_BATCH, seed=1)
    assert other_seed.loglikelihood([Instance("loglikelihood", {}, pairs[0], 0)])[0][0] != got[0][0]


@pytest.mark.parametrize("kind", ["builtin", "dream"])
def test_a_one_token_continuation_is_scored_exactly_for_every_family(kind, lm, tmp_path_factory):
    from hub_layouts import hub_checkpoint

    if kind == "builtin":
        scorer, (context, continuation) = lm, ("trace : 3 | +4 *3 +1 *7 +2 *9 +3 +1 *3 +4 +2 | run 6", " 7")
    else:
        scorer = HFUnmaskLM(pretrained=str(hub_checkpoint(tmp_path_factory, "dream")), mc_num=4, mc_batch_size=2)
        context, continuation = "the", " the"
    model, tokenizer = scorer.model, scorer.tokenizer
    context_ids = tokenizer(context).input_ids
    [token] = tokenizer(context + continuation).input_ids[len(context_ids) :]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([[*context_ids, scorer.mask_id]])).logits[0].float()
    # Dream predicts position i at i - 1; the built-in model at i
    row = logits[len(context_ids) - 1] if kind == "dream" else logits[len(context_ids)]
    expected = torch.log_softmax(row, -1)[token].item()
    [(ll, _)] = scorer.loglikelihood([Instance("loglikelihood", {}, (context, continuation), 0)])
    assert ll == pytest.approx(expected, abs=1e-4) and not math.isclose(ll, 0.0)


def test_is_greedy_follows_greedy_decoding_when_asked_for():
    from hf_unmask.strategies import TopKConfidence

    model, tokenizer = load_dllm("builtin")
    row = program_trace_mc_rows(1)[0]
    ids = tokenizer(row["prompt"], return_tensors="pt").input_ids
    T = len(tokenizer(row["choices"][0], add_special_tokens=False).input_ids)
    # LLaDA's greedy check: T masked positions, the most confident one unmasked per step
    out = model.generate(ids, strategy=TopKConfidence(steps=T), max_new_tokens=T, block_length=T)
    greedy_text = tokenizer.decode(out[0, ids.shape[1] :])
    assert greedy_text not in row["choices"]  # the tiny model, given no room for EOS, does not write a reference
    scorer = HFUnmaskLM(pretrained="tiny-dllm", mc_num=4, mc_batch_size=4, check_greedy=True)
    candidates = [" " + greedy_text, " " + row["choices"][0]]
    got = scorer.loglikelihood([Instance("loglikelihood", {}, (row["prompt"], c), 0) for c in candidates])
    assert [is_greedy for _, is_greedy in got] == [True, False]


def test_the_multiple_choice_task_runs_through_lm_eval_with_the_same_scores():
    results = simple_evaluate(
        model="hf_unmask", model_args=f"pretrained=tiny-dllm,mc_num={MC_NUM},mc_batch_size={MC_BATCH}",
        tasks=[MC_TASK], task_manager=TaskManager(include_path=str(TASKS_DIR), include_defaults=False), limit=3, log_samples=True,
    )  # fmt: skip
    lm = HFUnmaskLM(pretrained="tiny-dllm", mc_num=MC_NUM, mc_batch_size=MC_BATCH)
    correct = []
    for sample in sorted(results["samples"][MC_TASK], key=lambda s: s["doc_id"]):
        doc = sample["doc"]
        scores = lm.loglikelihood([Instance("loglikelihood", {}, (doc["prompt"], " " + c), 0) for c in doc["choices"]])
        assert [r[0][0] for r in sample["resps"]] == pytest.approx([s for s, _ in scores])
        correct.append(max(range(4), key=lambda i: scores[i][0]) == doc["label"])
        assert "nfe" not in sample  # NFE is reported for generation only
    assert results["results"][MC_TASK]["acc,none"] == pytest.approx(sum(correct) / len(correct))
