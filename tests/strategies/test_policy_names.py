"""The names of the learned policies: `UnmaskingPolicy` (the base, an Auto-class-like loader), `ConfidencePolicy`,
`unmask_beta` (the policy's test-time scale, apart from the trainer's KL weight `beta`), their deprecated old names,
and the configs saved before the renames, which load as they did without a warning."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch

import hf_unmask
from hf_unmask.evaluation.specs import StrategySpec
from hf_unmask.strategies import (
    ConfidencePolicy,
    HiddenStatePolicy,
    RemaskingPolicy,
    UnmaskingPolicy,
    UnmaskingStrategy,
    builtin_policy_path,
    get_strategy_by_name,
    load_builtin_policy,
)

BUILTIN = "tiny-dllm-program_trace-bl8-alpha1"


def states(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {
        "confidence": torch.rand(3, 8, generator=g),
        "masked": torch.ones(3, 8, dtype=torch.bool),
        "eligible": torch.ones(3, 8, dtype=torch.bool),
        "time": torch.rand(3, generator=g),
    }


def small_policy(seed: int = 0, **kwargs) -> ConfidencePolicy:
    torch.manual_seed(seed)
    policy = ConfidencePolicy(hidden_size=16, num_heads=2, ffn_size=32, **kwargs)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return policy.eval()


def as_old_config(folder) -> dict:
    """Rewrite a saved ConfidencePolicy's config.json as the releases before the renames wrote it."""
    config = json.loads((folder / "config.json").read_text())
    config["_class_name"] = "UnmaskingPolicy"
    config["beta"] = config.pop("unmask_beta")
    (folder / "config.json").write_text(json.dumps(config))
    return config


def test_a_config_saved_before_the_renames_loads_the_same_policy_without_a_warning(tmp_path):
    policy = small_policy(unmask_beta=1.5, temperature=0.7)
    policy.save_pretrained(tmp_path / "new")
    saved = json.loads((tmp_path / "new" / "config.json").read_text())
    assert saved["_class_name"] == "ConfidencePolicy" and saved["unmask_beta"] == 1.5 and "beta" not in saved
    shutil.copytree(tmp_path / "new", tmp_path / "old")
    assert as_old_config(tmp_path / "old")["beta"] == 1.5
    s = states()
    expected = policy(s["confidence"], s["masked"], s["time"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an old config is data: loading it must not warn
        loaded = [
            UnmaskingStrategy.from_pretrained(tmp_path / "old"),
            UnmaskingPolicy.from_pretrained(tmp_path / "old"),
            ConfidencePolicy.from_pretrained(tmp_path / "old"),
            get_strategy_by_name(str(tmp_path / "old")),
        ]
    for other in loaded:
        assert type(other) is ConfidencePolicy and other.unmask_beta == 1.5 and other.temperature == 0.7
        assert torch.equal(other(s["confidence"], s["masked"], s["time"]), expected)


def test_builtin_policies_with_old_configs_load_by_name_without_a_warning():
    config = json.loads((builtin_policy_path(BUILTIN) / "config.json").read_text())
    assert config["_class_name"] == "UnmaskingPolicy" and "beta" in config  # as they were saved
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        policy = load_builtin_policy(BUILTIN)
        again = UnmaskingPolicy.from_pretrained(builtin_policy_path(BUILTIN))
    assert type(policy) is ConfidencePolicy and policy.unmask_beta == config["beta"]
    s = states(1)
    assert torch.equal(policy(s["confidence"], s["masked"], s["time"]), again(s["confidence"], s["masked"], s["time"]))


def test_unmasking_policy_is_the_base_of_every_learned_policy_and_loads_any_of_them(tmp_path):
    from transformers import BertConfig

    hidden = HiddenStatePolicy(BertConfig(hidden_size=16, num_attention_heads=2, intermediate_size=32))
    for policy in (small_policy(), RemaskingPolicy(hidden_size=16, num_heads=2, ffn_size=32), hidden):
        assert isinstance(policy, UnmaskingPolicy)
        policy.save_pretrained(tmp_path / type(policy).__name__)
        assert type(UnmaskingPolicy.from_pretrained(tmp_path / type(policy).__name__)) is type(policy)
    with pytest.raises(TypeError, match="holds a HiddenStatePolicy, which is not a ConfidencePolicy"):
        ConfidencePolicy.from_pretrained(tmp_path / "HiddenStatePolicy")
    assert not isinstance(hf_unmask.TopKConfidence(), UnmaskingPolicy)


def test_constructing_the_base_with_the_old_arguments_builds_a_confidence_policy_with_a_future_warning():
    with pytest.warns(FutureWarning, match=r"ConfidencePolicy\(\.\.\.\)") as caught:
        torch.manual_seed(0)
        old = UnmaskingPolicy(64, 2, 128, temperature=0.5)  # positional, as the confidence policy took them
    assert caught[0].filename == __file__  # the warning points at the caller's line
    torch.manual_seed(0)
    new = ConfidencePolicy(64, 2, 128, temperature=0.5)
    assert type(old) is ConfidencePolicy and old.hidden_size == 64 and old.get_config() == new.get_config()
    s = states()
    assert torch.equal(old(s["confidence"], s["masked"], s["time"]), new(s["confidence"], s["masked"], s["time"]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ConfidencePolicy()  # the new names do not warn
        RemaskingPolicy()


@pytest.mark.parametrize(
    "get",
    [
        lambda: hf_unmask.LearnedUnmaskingPolicy,
        lambda: hf_unmask.strategies.LearnedUnmaskingPolicy,
        lambda: hf_unmask.strategies.learned.LearnedUnmaskingPolicy,
    ],
)
def test_learned_unmasking_policy_is_a_deprecated_alias_of_the_base(get):
    with pytest.warns(FutureWarning, match="LearnedUnmaskingPolicy is deprecated.*UnmaskingPolicy") as caught:
        assert get() is UnmaskingPolicy
    assert caught[0].filename == __file__


def test_beta_is_the_deprecated_name_of_unmask_beta(tmp_path):
    with pytest.warns(FutureWarning, match="unmask_beta=") as caught:
        policy = small_policy(beta=2.0)
    assert caught[0].filename == __file__ and policy.unmask_beta == 2.0
    assert "beta" not in policy.get_config() and policy.get_config()["unmask_beta"] == 2.0
    with pytest.warns(FutureWarning, match="policy.unmask_beta") as caught:
        assert policy.beta == 2.0
    assert caught[0].filename == __file__
    with pytest.warns(FutureWarning, match="policy.unmask_beta"):
        policy.beta = 3.0
    assert policy.unmask_beta == 3.0
    policy.save_pretrained(tmp_path / "p")
    for load in (UnmaskingStrategy.from_pretrained, ConfidencePolicy.from_pretrained):
        with pytest.warns(FutureWarning, match="unmask_beta=") as caught:
            loaded = load(tmp_path / "p", beta=0.5)  # an override under the old name
        assert caught[0].filename == __file__ and loaded.unmask_beta == 0.5
    with pytest.warns(FutureWarning, match="unmask_beta=") as caught:
        assert load_builtin_policy(BUILTIN, beta=4.0).unmask_beta == 4.0
    assert caught[0].filename == __file__


def test_strategy_specs_take_unmask_beta_and_still_accept_beta(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = StrategySpec.parse(f"{BUILTIN}:unmask_beta=0.5,2")
    assert [s.unmask_beta for _, s in spec.instances()] == [0.5, 2.0]
    with pytest.warns(FutureWarning, match="knob 'beta'.*'unmask_beta'") as caught:
        old = StrategySpec.parse(f"{BUILTIN}:beta=0.5,2")
    assert caught[0].filename == __file__
    assert old.grid == spec.grid and [s.unmask_beta for _, s in old.instances()] == [0.5, 2.0]
    assert StrategySpec.parse(f"{BUILTIN}:0.5,2").grid == {"unmask_beta": [0.5, 2.0]}  # the budget knob


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"{not json", "is not valid JSON"),
        (b"\xff\xfe\x00garbage", "is not valid JSON"),
        (b"[1, 2]", "not an object|has no '_class_name'"),
    ],
)
def test_a_corrupted_config_is_a_clear_error_naming_the_file_on_every_entry_point(tmp_path, content, problem):
    small_policy().save_pretrained(tmp_path / "p")
    config_file = tmp_path / "p" / "config.json"
    config_file.write_bytes(content)
    for load in (
        UnmaskingStrategy.from_pretrained,
        UnmaskingPolicy.from_pretrained,
        ConfidencePolicy.from_pretrained,
        lambda p: get_strategy_by_name(str(p)),
    ):
        with pytest.raises(ValueError, match=problem) as err:
            load(tmp_path / "p")
        assert str(config_file) in str(err.value)
    model, tokenizer = hf_unmask.load_builtin_model()
    with pytest.raises(ValueError, match=problem):
        model.generate(tokenizer("1", return_tensors="pt").input_ids, strategy=str(tmp_path / "p"), max_new_tokens=8)


def test_the_builtin_policy_folder_and_helpers_say_builtin():
    from hf_unmask._builtin import builtin_names, builtin_path
    from hf_unmask.strategies import builtin

    assert builtin.BUILTIN_POLICY_DIR.name == "builtin_policies"
    assert BUILTIN in builtin_names(builtin.BUILTIN_POLICY_DIR)
    assert builtin_path(builtin.BUILTIN_POLICY_DIR, BUILTIN, "policy", "policies") == builtin_policy_path(BUILTIN)
    with pytest.raises(ValueError, match="Unknown built-in policy 'nope'. Built-in policies: "):
        builtin_policy_path("nope")
    with pytest.warns(FutureWarning, match="BUILTIN_POLICY_DIR") as caught:
        assert builtin.PRETRAINED_POLICY_DIR == builtin.BUILTIN_POLICY_DIR
    assert caught[0].filename == __file__
