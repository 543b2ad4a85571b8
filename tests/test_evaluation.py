"""hf_unmask.evaluation: strategy specs, data loading, correctness, the accuracy/NFE table and the Pareto plot."""

from __future__ import annotations

import csv
import json
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.image  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from tiny_eval import EOS, ToyTask, make_model, make_tokenizer, parity_correct  # noqa: E402

from hf_unmask import diffusion_generate  # noqa: E402
from hf_unmask.evaluation import (  # noqa: E402
    EvaluationData,
    StrategySpec,
    default_strategy_specs,
    evaluate_strategies,
    exact_match,
    math_verify_correct,
    pareto_front,
    resolve_correctness,
)
from hf_unmask.strategies import ConfidenceThreshold, TopKConfidence  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
L = 8


@pytest.fixture(scope="module")
def model():
    return make_model()


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer()


@pytest.fixture(scope="module")
def sampled_result(model, tokenizer):
    """Temperature 1 so that seeds change the outcome; one batch so a hand computation can repeat it exactly."""
    return evaluate_strategies(
        model,
        tokenizer,
        ToyTask(),
        strategies=["top_k_confidence:steps=4,8", "confidence_threshold:threshold=0.5"],
        block_lengths=[4, None],
        seeds=[0, 1],
        n_examples=6,
        max_new_tokens=L,
        batch_size=6,
        temperature=1.0,
        progress=False,
    )


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


# ---------------------------------------------------------------------------------------------- the table
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


def test_save_writes_csv_json_and_a_valid_png(sampled_result, tmp_path):
    paths = sampled_result.save(tmp_path / "out")
    with paths["csv"].open() as f:
        table = list(csv.DictReader(f))
    assert len(table) == len(sampled_result.rows)
    assert {"strategy", "budget", "block_length", "accuracy_mean", "accuracy_std", "nfe_mean", "nfe_std"} <= set(
        table[0]
    )
    assert {"wall_time_s", "seeds", "n_examples"} <= set(table[0])
    assert float(table[0]["accuracy_mean"]) == pytest.approx(sampled_result.rows[0]["accuracy_mean"])
    assert table[0]["seeds"] == "0 1"
    data = json.loads(paths["json"].read_text())
    assert data["rows"] == json.loads(json.dumps(sampled_result.rows))
    assert data["meta"]["gen_length"] == L and data["meta"]["seeds"] == [0, 1]
    png = paths["png"].read_bytes()
    assert png[:8] == PNG_SIGNATURE
    image = matplotlib.image.imread(paths["png"])
    assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 2 * image.shape[0]  # two panels side by side
    text = sampled_result.format_table()
    assert "top_k_confidence" in text and "steps=4" in text and "(full)" in text


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
    from hf_unmask.strategies import UnmaskingPolicy

    with torch.random.fork_rng():
        torch.manual_seed(0)
        UnmaskingPolicy().save_pretrained(tmp_path / "policy")
    result = evaluate_strategies(
        model,
        tokenizer,
        ToyTask(),
        [f"{tmp_path / 'policy'}:beta=1,4", f"{tmp_path / 'policy'}:tau=0.5"],
        block_lengths=[None],
        n_examples=6,
        max_new_tokens=L,
        progress=False,
    )
    by_budget = {row["budget"]: row for row in result.rows}
    assert set(by_budget) == {"beta=1", "beta=4", "temperature=0.5"}
    # beta scales the unmasking probabilities up: fewer forward passes (initial policy: sigmoid(-2) ~ 0.12 each)
    assert by_budget["beta=4"]["nfe_mean"] < by_budget["beta=1"]["nfe_mean"]
    assert by_budget["beta=1"]["strategy"] == "policy:beta=1,4"  # a different fixed setting is its own curve
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


# ---------------------------------------------------------------------------------------------- specs
def test_spec_parsing():
    spec = StrategySpec.parse("top_k_confidence:steps=16,32,64")
    assert spec.grid == {"steps": [16, 32, 64]} and spec.label == "top_k_confidence"
    assert [s for _, s in spec.instances()] == [TopKConfidence(steps=s) for s in (16, 32, 64)]
    bare = StrategySpec.parse("confidence_threshold:0.9,0.7")
    assert bare.budgets() == [{"threshold": 0.9}, {"threshold": 0.7}]
    assert StrategySpec.parse("top_k_margin:32").budgets() == [{"steps": 32}]
    assert StrategySpec.parse("eb_sampler").budgets() == [{}]
    crossed = StrategySpec.parse("random_time_grid:steps=8,16:eps=0.01")
    assert crossed.budgets() == [{"steps": 8, "eps": 0.01}, {"steps": 16, "eps": 0.01}]
    assert str(crossed) == "random_time_grid:steps=8,16:eps=0.01"


def test_saved_strategy_folder_with_budgets(tmp_path):
    TopKConfidence(steps=8).save_pretrained(tmp_path / "my_strategy")
    spec = StrategySpec.parse(f"{tmp_path / 'my_strategy'}:steps=4,8")
    assert spec.label == "my_strategy"
    assert [s for _, s in spec.instances()] == [TopKConfidence(steps=4), TopKConfidence(steps=8)]
    as_saved = StrategySpec.parse(str(tmp_path / "my_strategy"))
    assert [s for _, s in as_saved.instances()] == [TopKConfidence(steps=8)]


@pytest.mark.parametrize(
    "text, message",
    [
        ("no_such_strategy:steps=8", "Unknown strategy 'no_such_strategy'"),
        ("./missing/folder", "no such folder"),
        ("top_k_confidence:steps=", "Empty budget list"),
        ("confidence_threshold:threshold=", "Empty budget list"),
        ("top_k_confidence:", "Empty budget list"),
        ("top_k_confidence:steps=8,,16", "Empty value"),
        ("top_k_confidence:threshold=0.9", "has no knob 'threshold'"),
        ("top_k_confidence:steps=8:steps=16", "given twice"),
        (":steps=8", "no strategy name"),
        ("", "Empty strategy spec"),
    ],
)
def test_bad_specs_raise_clear_errors(text, message):
    with pytest.raises(ValueError, match=message):
        StrategySpec.parse(text)


def test_unknown_strategy_error_lists_the_names():
    with pytest.raises(ValueError) as info:
        StrategySpec.parse("top_k_confidance")
    assert "top_k_confidence" in str(info.value) and "hf-unmask list" in str(info.value)


def test_empty_grid_in_python_api():
    with pytest.raises(ValueError, match="Empty budget list for 'steps'"):
        StrategySpec("top_k_confidence", {"steps": []})


def test_default_specs_cover_the_registered_heuristics():
    specs = default_strategy_specs(64, [8, 64])
    names = {s.strategy for s in specs}
    assert {"top_k_confidence", "confidence_threshold"} <= names
    for spec in specs:
        for budget in spec.budgets():
            if "steps" in budget:
                assert budget["steps"] % 8 == 0 and budget["steps"] <= 64


# ---------------------------------------------------------------------------------------------- errors
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


# ---------------------------------------------------------------------------------------------- data
def test_dataset_from_local_files(tmp_path):
    rows = [{"q": f"{i}+1=", "a": str(i + 1), "other": i} for i in range(5)]
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = EvaluationData.from_dataset(
        str(jsonl),
        prompt_column="q",
        reference_column="a",
        correctness="exact_match",
        n_examples=3,
        prompt_template="Q: {prompt}",
    )
    assert data.prompts == ["Q: 0+1=", "Q: 1+1=", "Q: 2+1="] and data.references == ["1", "2", "3"]
    assert data.name == "data" and data.is_correct is exact_match
    csv_path = tmp_path / "data.csv"
    csv_path.write_text("q,a\n2+2=,4\n")
    assert EvaluationData.from_dataset(str(csv_path), "q", "a", "exact_match").references == ["4"]
    with pytest.raises(ValueError, match="no reference column 'answer'.*columns: q, a, other"):
        EvaluationData.from_dataset(str(jsonl), prompt_column="q", reference_column="answer")
    with pytest.raises(ValueError, match="unknown file type"):
        (tmp_path / "data.txt").write_text("q,a\n")
        EvaluationData.from_dataset(str(tmp_path / "data.txt"), "q", "a")


def test_dataset_object_and_split():
    from datasets import Dataset, DatasetDict

    ds = DatasetDict({"test": Dataset.from_dict({"question": ["1+1?"], "answer": ["... #### 2"]})})
    data = EvaluationData.from_dataset(ds, prompt_column="question", reference_column="answer")
    assert data.is_correct("so the answer is 2", data.references[0])
    with pytest.raises(ValueError, match="no split 'validation'"):
        EvaluationData.from_dataset(ds, "question", "answer", split="validation")


def test_builtin_task_data_is_a_stable_prefix():
    small = EvaluationData.from_task(ToyTask(), n_examples=3)
    large = EvaluationData.from_task(ToyTask(), n_examples=6)
    assert large.prompts[:3] == small.prompts and len(large) == 6


# ---------------------------------------------------------------------------------------------- correctness
def test_math_verify_correctness():
    gsm8k_reference = (
        "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nShe sold 48+24 = <<48+24=72>>72 clips.\n#### 72"
    )
    assert math_verify_correct("She sold 24 in May, so 48 + 24 = 72 in total. The answer is 72.", gsm8k_reference)
    assert math_verify_correct("so \\boxed{72}", gsm8k_reference)
    assert math_verify_correct("... #### 72", gsm8k_reference)
    assert not math_verify_correct("The answer is 71.", gsm8k_reference)
    assert not math_verify_correct("", gsm8k_reference)
    assert math_verify_correct("x = 0.5", "1/2")


def test_resolve_correctness(tmp_path, monkeypatch):
    assert resolve_correctness("math_verify") is math_verify_correct
    assert resolve_correctness(exact_match) is exact_match
    (tmp_path / "resolve_checks_mod.py").write_text("def first_char(c, r):\n    return c[:1] == r[:1]\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    fn = resolve_correctness("resolve_checks_mod:first_char")
    assert fn("abc", "axe") and not fn("b", "a")
    with pytest.raises(ValueError, match="Unknown correctness function 'nope'"):
        resolve_correctness("nope")
    with pytest.raises(ValueError, match="Cannot import module 'no_such_module_xyz'"):
        resolve_correctness("no_such_module_xyz:f")
    with pytest.raises(ValueError, match="has no attribute 'missing'"):
        resolve_correctness("resolve_checks_mod:missing")


def test_pareto_front():
    assert pareto_front([(10, 0.5), (20, 0.4), (30, 0.7), (30, 0.6), (10, 0.5)]) == [True, False, True, False, True]
    assert pareto_front([]) == []
    # equal accuracy at a higher NFE is dominated; equal NFE with lower accuracy too
    assert pareto_front([(10, 0.5), (20, 0.5)]) == [True, False]
    assert pareto_front([(20, 0.5), (10, 0.5)]) == [False, True]
    assert pareto_front([(10, 0.5), (10, 0.4)]) == [True, False]
    assert math.isclose(sum(pareto_front([(1, 0.1)])), 1)
