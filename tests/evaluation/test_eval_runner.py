"""hf_unmask.evaluation.runner: `evaluate_strategies` agrees with direct generation, seeds, batches, samples,
strategy objects and learned-policy folders, one curve per family, and clear errors before any compute."""

from __future__ import annotations

import pytest
import torch
from tiny_eval import EOS, L, ToyTask, parity_correct

from hf_unmask import diffusion_generate
from hf_unmask.evaluation import evaluate_strategies
from hf_unmask.strategies import ConfidenceThreshold, TopKConfidence


def _by_hand(model, tokenizer, prompts, references, strategy, block_length, seed, temperature):
    tokenizer.padding_side = "left"
    enc = tokenizer(prompts, return_tensors="pt", padding=True)
    tokenizer.padding_side = "right"
    out = diffusion_generate(
        model,
        enc["input_ids"],
        attention_mask=enc["attention_mask"],
        strategy=strategy,
        max_new_tokens=L,
        block_length=block_length,
        temperature=temperature,
        seed=seed,
        return_dict_in_generate=True,
    )
    correct = []
    for row, ref in zip(out.sequences[:, enc["input_ids"].shape[1] :].tolist(), references):
        cut = row.index(EOS) if EOS in row else len(row)
        correct.append(parity_correct(tokenizer.decode(row[:cut], skip_special_tokens=True), ref))
    return sum(correct) / len(correct), out.nfe.float().mean().item()


def test_table_agrees_with_direct_generation(model, tokenizer, sampled_result):
    rows = sampled_result.rows
    assert len(rows) == 2 * 3  # (2 steps budgets + 1 threshold) x 2 block lengths
    test = ToyTask().dataset(n_train=0, n_test=6)["test"]
    prompts, references = list(test["prompt"]), list(test["reference"])
    strategies = {
        ("top_k_confidence", "steps=4"): TopKConfidence(steps=4),
        ("top_k_confidence", "steps=8"): TopKConfidence(steps=8),
        ("confidence_threshold", "threshold=0.5"): ConfidenceThreshold(threshold=0.5),
    }
    some_spread = False
    for row in rows:
        strategy = strategies[(row["strategy"], row["budget"])]
        accs, nfes = zip(
            *(
                _by_hand(model, tokenizer, prompts, references, strategy, row["block_length"], seed, 1.0)
                for seed in (0, 1)
            )
        )
        assert row["accuracy_per_seed"] == pytest.approx(list(accs))
        assert row["nfe_per_seed"] == pytest.approx(list(nfes))
        assert row["accuracy_mean"] == pytest.approx(sum(accs) / 2)
        assert row["accuracy_std"] == pytest.approx(abs(accs[0] - accs[1]) / 2)  # population std of two values
        assert row["nfe_mean"] == pytest.approx(sum(nfes) / 2)
        assert row["nfe_std"] == pytest.approx(abs(nfes[0] - nfes[1]) / 2)
        assert row["n_examples"] == 6 and row["seeds"] == [0, 1] and row["gen_length"] == L
        assert row["mode"] == ("full_diffusion" if row["block_length"] == L else "semi_ar")
        assert row["wall_time_s"] > 0
        some_spread |= accs[0] != accs[1]
        if row["strategy"] == "top_k_confidence":  # a fixed count: NFE is exactly the step budget
            assert row["nfe_mean"] == row["params"]["steps"]
    assert some_spread, "temperature 1 should make some seeds disagree; the test would not check the seed axis"
    assert {r["block_length"] for r in rows} == {4, L}


def test_batch_size_does_not_change_greedy_results(model, tokenizer):
    kwargs = dict(
        strategies=["top_k_confidence:steps=4,8"], block_lengths=[None], n_examples=5, max_new_tokens=L, progress=False
    )
    one_batch = evaluate_strategies(model, tokenizer, ToyTask(), batch_size=5, **kwargs)
    small_batches = evaluate_strategies(model, tokenizer, ToyTask(), batch_size=2, **kwargs)
    for a, b in zip(one_batch.rows, small_batches.rows):
        assert (a["accuracy_mean"], a["nfe_mean"]) == (b["accuracy_mean"], b["nfe_mean"])
    assert tokenizer.padding_side == "right"  # the tokenizer is left as it was


def test_deterministic_strategies_run_once_for_all_seeds(model, tokenizer, monkeypatch):
    """Greedy dLLM + deterministic strategy: one run counted for every seed; random strategies run per seed."""
    calls = {"n": 0}
    generate = model.generate

    def counting_generate(*args, **kwargs):
        calls["n"] += 1
        return generate(*args, **kwargs)

    monkeypatch.setattr(model, "generate", counting_generate)
    kwargs = dict(
        block_lengths=[None], n_examples=5, max_new_tokens=L, batch_size=5, progress=False, keep_samples=True
    )
    once = evaluate_strategies(model, tokenizer, ToyTask(), ["top_k_confidence:steps=4"], seeds=[0, 1, 2], **kwargs)
    assert calls["n"] == 1
    row = once.rows[0]
    assert row["seeds"] == [0, 1, 2] and len(set(row["accuracy_per_seed"])) == 1 and row["accuracy_std"] == 0
    assert sorted({s["seed"] for s in once.samples}) == [0, 1, 2] and len(once.samples) == 15
    single = evaluate_strategies(model, tokenizer, ToyTask(), ["top_k_confidence:steps=4"], seeds=[0], **kwargs)
    assert (single.rows[0]["accuracy_mean"], single.rows[0]["nfe_mean"]) == (row["accuracy_mean"], row["nfe_mean"])
    calls["n"] = 0
    evaluate_strategies(model, tokenizer, ToyTask(), ["random:steps=4"], seeds=[0, 1, 2], **kwargs)
    assert calls["n"] == 3
    calls["n"] = 0
    evaluate_strategies(
        model, tokenizer, ToyTask(), ["top_k_confidence:steps=4"], seeds=[0, 1], temperature=1.0, **kwargs
    )
    assert calls["n"] == 2  # a sampling dLLM makes every seed count


def test_keep_samples_records_every_completion(model, tokenizer, tmp_path):
    result = evaluate_strategies(
        model,
        tokenizer,
        ToyTask(),
        ["top_k_confidence:steps=8"],
        block_lengths=[None],
        n_examples=3,
        max_new_tokens=L,
        keep_samples=True,
        progress=False,
    )
    assert len(result.samples) == 3
    assert sum(s["correct"] for s in result.samples) / 3 == pytest.approx(result.rows[0]["accuracy_mean"])
    paths = result.save(tmp_path)
    assert len(paths["samples"].read_text().splitlines()) == 3


def test_strategy_objects_and_default_block_lengths(model, tokenizer):
    result = evaluate_strategies(
        model, tokenizer, ToyTask(), [TopKConfidence(steps=4)], n_examples=2, max_new_tokens=L, progress=False
    )
    assert len(result.rows) == 1 and result.rows[0]["mode"] == "full_diffusion"
    assert result.rows[0]["nfe_mean"] == 4


def test_learned_policy_folder_swept_over_beta(model, tokenizer, tmp_path):
    from hf_unmask.strategies import ConfidencePolicy

    with torch.random.fork_rng():
        torch.manual_seed(0)
        ConfidencePolicy().save_pretrained(tmp_path / "policy")
    result = evaluate_strategies(
        model,
        tokenizer,
        ToyTask(),
        [f"{tmp_path / 'policy'}:unmask_beta=1,4", f"{tmp_path / 'policy'}:tau=0.5"],
        block_lengths=[None],
        n_examples=6,
        max_new_tokens=L,
        progress=False,
    )
    by_budget = {row["budget"]: row for row in result.rows}
    assert set(by_budget) == {"unmask_beta=1", "unmask_beta=4", "temperature=0.5"}
    # beta scales the unmasking probabilities up: fewer forward passes (initial policy: sigmoid(-2) ~ 0.12 each)
    assert by_budget["unmask_beta=4"]["nfe_mean"] < by_budget["unmask_beta=1"]["nfe_mean"]
    assert (
        by_budget["unmask_beta=1"]["strategy"] == "policy:unmask_beta=1,4"
    )  # a different fixed setting is its own curve
    assert by_budget["temperature=0.5"]["strategy"] == "policy:temperature=0.5"


def test_one_family_split_over_several_specs_is_one_curve(model, tokenizer):
    result = evaluate_strategies(
        model,
        tokenizer,
        ToyTask(),
        ["confidence_threshold:0.9", "confidence_threshold:0.5"],
        block_lengths=[None],
        n_examples=2,
        max_new_tokens=L,
        progress=False,
    )
    assert [r["strategy"] for r in result.rows] == ["confidence_threshold"] * 2
    with pytest.raises(ValueError, match="listed twice"):
        evaluate_strategies(
            model,
            tokenizer,
            ToyTask(),
            ["top_k_confidence:8", "top_k_confidence:4,8"],
            block_lengths=[None],
            n_examples=2,
            max_new_tokens=L,
            progress=False,
        )


def test_run_errors_are_clear(model, tokenizer):
    common = dict(n_examples=2, max_new_tokens=L, progress=False)
    with pytest.raises(ValueError, match="Unknown task 'no_such_task'"):
        evaluate_strategies(model, tokenizer, "no_such_task", ["top_k_confidence"], **common)
    with pytest.raises(ValueError, match="does not divide the generation length"):
        evaluate_strategies(model, tokenizer, ToyTask(), ["top_k_confidence"], block_lengths=[3], **common)
    with pytest.raises(ValueError, match="steps must be a multiple of the number of blocks"):
        evaluate_strategies(model, tokenizer, ToyTask(), ["top_k_confidence:steps=2"], block_lengths=[2], **common)
    with pytest.raises(ValueError, match="Empty list of seeds"):
        evaluate_strategies(model, tokenizer, ToyTask(), ["top_k_confidence"], seeds=[], **common)
    with pytest.raises(ValueError, match="Empty list of block lengths"):
        evaluate_strategies(model, tokenizer, ToyTask(), ["top_k_confidence"], block_lengths=[], **common)
    with pytest.raises(ValueError, match="No strategies"):
        evaluate_strategies(model, tokenizer, ToyTask(), [], **common)
