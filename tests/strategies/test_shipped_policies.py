"""The learned policies shipped with hf_unmask: offline loading by name, what they were trained for, that they
behave as trained on the built-in dLLM, and the helpers that compare them with the heuristics."""

from __future__ import annotations

import json
import warnings

import pytest
import torch

import hf_unmask
from hf_unmask.evaluation import StrategySpec, evaluate_strategies, front_accuracy_at
from hf_unmask.strategies import (
    ConfidencePolicy,
    builtin_policy_path,
    get_strategy_by_name,
    list_builtin_policies,
    load_builtin_policy,
)
from hf_unmask.strategies.card import usage_code

SEMI_AR = {
    0.3: "tiny-dllm-program_trace-bl8-alpha0.3",
    1.0: "tiny-dllm-program_trace-bl8-alpha1",
    3.0: "tiny-dllm-program_trace-bl8-alpha3",
}
FULL = "tiny-dllm-program_trace-full-alpha1"


@pytest.fixture(scope="module")
def tiny():
    return hf_unmask.load_builtin_model("tiny-dllm")


@pytest.fixture(scope="module")
def prompts(tiny):
    from hf_unmask.tasks import get_task

    _, tokenizer = tiny
    test = get_task("program_trace").dataset(n_train=1, n_test=48, seed=0)["test"]
    tokenizer.padding_side = "left"
    batch = tokenizer(list(test["prompt"]), return_tensors="pt", padding=True)
    return batch, list(test["reference"])


def test_every_shipped_policy_is_listed_and_loads_offline_with_its_training_record():
    names = list_builtin_policies()
    assert set(SEMI_AR.values()) | {FULL} <= set(names)
    for alpha, name in SEMI_AR.items():
        policy = load_builtin_policy(name)
        assert isinstance(policy, ConfidencePolicy)
        record = policy.trained_for
        assert (record["gen_length"], record["block_length"], record["alpha"]) == (16, 8, alpha)
        assert record["task"] == "program_trace" and record["reward_form"] == "multiplicative"
        assert record["base_model"] == "builtin:tiny-dllm"
        assert policy.mode == "bernoulli-argmax" and policy.temperature == 0.5  # the paper's semi-AR inference setting
        files = {p.name for p in builtin_policy_path(name).iterdir()}
        assert {"config.json", "model.safetensors", "README.md"} <= files
        assert not any(f.endswith((".bin", ".pt", ".pkl")) for f in files)
    full = load_builtin_policy(FULL)
    assert full.trained_for["block_length"] == 16 and full.temperature == 1.0
    # overrides apply on load, like from_pretrained
    assert load_builtin_policy(FULL, temperature=0.7).temperature == 0.7


def test_unknown_policy_name_lists_the_shipped_ones():
    with pytest.raises(ValueError, match="Built-in policies: .*tiny-dllm-program_trace-bl8-alpha1"):
        load_builtin_policy("tiny-dllm-nope")
    with pytest.raises(ValueError, match="Unknown built-in policy"):
        builtin_policy_path("../pretrained")


def test_shipped_policies_are_usable_by_name_wherever_a_strategy_name_is(tiny):
    assert isinstance(get_strategy_by_name(SEMI_AR[1.0]), ConfidencePolicy)
    spec = StrategySpec.parse(f"{SEMI_AR[1.0]}:unmask_beta=0.5,2")
    built = [s for _, s in spec.instances()]
    assert [s.unmask_beta for s in built] == [0.5, 2.0] and spec.label == SEMI_AR[1.0]


def test_the_highest_alpha_policy_is_the_fastest(tiny, prompts):
    """alpha = 3 was trained to spend fewer forward passes than alpha = 0.3 and 1 (48 held-out examples, greedy
    dLLM; alpha 0.3 and 1 land within 0.1 NFE of each other on this task, so their order is not asserted)."""
    model, _ = tiny
    batch, _ = prompts
    mean_nfe = {}
    for alpha, name in SEMI_AR.items():
        out = model.generate(
            batch.input_ids,
            attention_mask=batch.attention_mask,
            strategy=load_builtin_policy(name),
            max_new_tokens=16,
            block_length=8,
            return_dict_in_generate=True,
            seed=0,
        )
        assert not (out.sequences == model.generation_config.mask_token_id).any()
        mean_nfe[alpha] = out.nfe.float().mean().item()
    assert mean_nfe[3.0] < min(mean_nfe[0.3], mean_nfe[1.0]) - 0.15
    assert max(mean_nfe.values()) < 8  # all far faster than one token per step (16)


def test_shipped_policies_beat_the_confidence_threshold_they_were_compared_with(tiny):
    """The shipped alpha = 1 policy is at least as accurate as the Fast-dLLM threshold front at its NFE on a
    small fixed sample (the full comparison is benchmarks/policy_vs_heuristics.py)."""
    model, tokenizer = tiny
    result = evaluate_strategies(
        model,
        tokenizer,
        "program_trace",
        [SEMI_AR[1.0], "confidence_threshold:threshold=0.95,0.9,0.8,0.7,0.5"],
        block_lengths=[8],
        n_examples=100,
        progress=False,
    )
    policy = next(r for r in result.rows if r["strategy"] == SEMI_AR[1.0])
    points = [(r["nfe_mean"], r["accuracy_mean"]) for r in result.rows if r["strategy"] != SEMI_AR[1.0]]
    assert policy["accuracy_mean"] >= front_accuracy_at(points, policy["nfe_mean"]) - 0.03


def test_the_card_usage_snippet_of_a_shipped_policy_runs(capsys):
    policy = load_builtin_policy(SEMI_AR[1.0])
    readme = (builtin_policy_path(SEMI_AR[1.0]) / "README.md").read_text()
    code = usage_code(policy, f"builtin:{SEMI_AR[1.0]}")
    assert code in readme
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the snippet's settings match what the policy was trained for
        exec(compile(code, "<card>", "exec"), {})
    assert "| NFE:" in capsys.readouterr().out
    yaml_header = readme.split("---")[1]
    assert "base_model" not in yaml_header  # "builtin:..." is not a Hub id


def test_demo_compares_each_shipped_policy_in_the_panel_it_was_trained_for():
    from hf_unmask.demo import demo_policies

    found = demo_policies("tiny-dllm", "program_trace", 16, 8)
    assert sorted(found[8]) == sorted(SEMI_AR.values()) and found[16] == [FULL]
    assert demo_policies("tiny-dllm-small", "program_trace", 16, 8) == {8: [], 16: []}
    assert demo_policies("tiny-dllm", "shell_game", 16, 8) == {8: [], 16: []}


def test_policy_configs_are_plain_json():
    for name in list_builtin_policies():
        config = json.loads((builtin_policy_path(name) / "config.json").read_text())
        # saved before the confidence policy was named ConfidencePolicy: the old name loads it (SAVED_CLASS_ALIASES)
        assert config["_class_name"] == ("RemaskingPolicy" if name.endswith("-remask") else "UnmaskingPolicy")
