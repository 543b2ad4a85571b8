"""Collapse warnings (`collapse_*` fields, `collapse/*` metrics): the detector on synthetic metric streams, the config
checks, and seeded tiny runs where a collapse is forced (a warning) or not (none)."""

from __future__ import annotations

import logging

import pytest
import torch
from grpo_toys import MatchReward, make_trainer, small_config, tiny_dllm, toy_dataset

from hf_unmask.strategies import TopKConfidence
from hf_unmask.trainer import UnmaskingGRPOConfig
from hf_unmask.trainer.collapse import CONDITIONS, CollapseDetector, masked_at_end
from hf_unmask.trainer.monitoring import collapse_hints

LOGGER = "hf_unmask.trainer.monitoring"


def healthy(step: int) -> dict[str, float]:
    """A run that speeds up while its correctness rises (L = 16, BL = 8: 2 to 16 NFE)."""
    t = min(step / 500, 1.0)
    return {"nfe/mean": 16 - 10 * t, "correctness": 0.3 + 0.55 * t, "unmask_fraction": 0.12 + 0.3 * t,
            "masked_at_end": 0.3 * (1 - t), "frac_reward_zero_std": 0.2 + 0.6 * t}  # fmt: skip


def feed(detector: CollapseDetector, stream: list[tuple[int, dict]]) -> tuple[list[dict], list[tuple[int, str]]]:
    flags, messages = [], []
    for step, logs in stream:
        metrics, said = detector.update(step, logs)
        flags.append(metrics)
        messages += [(step, m) for m in said]
    return flags, messages


def detector(**overrides) -> CollapseDetector:
    return CollapseDetector(gen_length=16, block_length=8, **overrides)


def test_a_healthy_stream_raises_nothing():
    flags, messages = feed(detector(), [(s, healthy(s)) for s in range(25, 1001, 25)])
    assert messages == [] and all(v == 0.0 for f in flags for v in f.values())


def test_everything_at_once_after_a_correctness_drop_is_reported_once_per_episode():
    hints = collapse_hints(UnmaskingGRPOConfig(output_dir="out", learning_rate=3e-4))
    collapsed = {"nfe/mean": 2.1, "correctness": 0.14, "unmask_fraction": 0.9, "masked_at_end": 0.0,
                 "frac_reward_zero_std": 0.5}  # fmt: skip
    stream = [(s, healthy(s)) for s in range(25, 176, 25)]  # best correctness 0.63 at step 175
    stream += [(s, collapsed) for s in range(200, 451, 25)] + [(s, healthy(s)) for s in range(475, 551, 25)]
    stream += [(s, collapsed) for s in range(575, 651, 25)]
    flags, messages = feed(detector(hints=hints), stream)
    assert [f["collapse/everything_at_once"] for f in flags] == [0] * 7 + [1] * 11 + [0] * 4 + [1] * 4
    steps = [s for s, _ in messages]
    assert steps == [250, 475, 625], messages  # after 3 logged steps in a row; the end of the episode; again
    first = messages[0][1]
    for text in ("Training collapse at step 250", "everything at once", "mean NFE 2.10", "1.05 steps per block",
                 "correctness 14.0%", "since step 200", "--learning_rate (now 0.0003)", "--entropy_floor",
                 "--policy_init_bias", "--expert_steering", "--load_best_model_at_end"):  # fmt: skip
        assert text in first, (text, first)
    assert "is over" in messages[1][1] and "step 200" in messages[1][1]


def test_a_fast_policy_that_stays_correct_is_no_collapse():
    fast = {"nfe/mean": 2.0, "correctness": 0.9, "unmask_fraction": 0.95, "frac_reward_zero_std": 0.3}
    _, messages = feed(detector(), [(s, fast) for s in range(1, 20)])
    assert messages == []


@pytest.mark.parametrize(
    "signal", [{"unmask_fraction": 0.004, "masked_at_end": 0.0}, {"unmask_fraction": 0.1, "masked_at_end": 0.95}]
)
def test_never_unmask_by_the_actions_or_by_the_masked_positions_left(signal):
    logs = {"nfe/mean": 16.0, "correctness": 0.0, "frac_reward_zero_std": 0.0, **signal}
    flags, messages = feed(detector(patience=2), [(1, logs), (2, logs), (3, logs)])
    assert [f["collapse/never_unmask"] for f in flags] == [1, 1, 1]
    assert len(messages) == 1 and messages[0][0] == 2 and "almost never unmasks" in messages[0][1]
    assert "mean NFE 16.00 (L = 16, 2 blocks)" in messages[0][1]


def test_identical_rewards_need_consecutive_logged_steps():
    flat, varied = {"frac_reward_zero_std": 0.95}, {"frac_reward_zero_std": 0.5}
    _, messages = feed(detector(), [(1, flat), (2, flat), (3, varied), (4, flat), (5, flat)])
    assert messages == []
    _, messages = feed(detector(), [(1, flat), (2, flat), (3, flat)])
    assert len(messages) == 1 and "95% of the groups got identical rewards" in messages[0][1]


def test_missing_or_nan_metrics_are_skipped():
    _, messages = feed(detector(patience=1), [(1, {"nfe/mean": None, "correctness": float("nan")}), (2, {})])
    assert messages == []


def test_masked_at_end_counts_the_policy_rows_only():
    mask = 7
    sequences = torch.tensor([[1, 7, 7, 7, 7], [1, 2, 3, 7, 7], [1, 7, 7, 7, 7]])
    own = torch.tensor([False, True, True])
    assert masked_at_end(sequences, own, 4, mask, lambda t: t) == pytest.approx(6 / 8)
    assert masked_at_end(sequences, own, 4, None, lambda t: t) == 0.0


def test_the_fields_have_defaults_and_are_checked(tmp_path):
    config = UnmaskingGRPOConfig(output_dir=str(tmp_path))
    assert config.collapse_warnings is True and config.collapse_patience == 3
    assert (config.collapse_unmask_fraction, config.collapse_masked_fraction) == (0.02, 0.9)
    assert (config.collapse_steps_per_block, config.collapse_correctness_drop) == (1.5, 0.3)
    assert config.collapse_zero_std_fraction == 0.9
    with pytest.raises(ValueError, match="collapse_zero_std_fraction must be a fraction"):
        small_config(tmp_path, collapse_zero_std_fraction=1.5)
    with pytest.raises(ValueError, match="collapse_steps_per_block must be >= 1"):
        small_config(tmp_path, collapse_steps_per_block=0.5)
    with pytest.raises(ValueError, match="collapse_patience must be an integer >= 1"):
        small_config(tmp_path, collapse_patience=0)


def test_the_fields_are_flags_with_help():
    from hf_unmask.trainer.script import make_parser

    text = make_parser().format_help()  # argparse %-formats help strings: a bare '%' would break --help
    for name in ("collapse_warnings", "collapse_patience", "collapse_steps_per_block", "collapse_correctness_drop"):
        assert f"--{name}" in text


# --------------------------------------------------------------------------------------------------- tiny runs


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER]


def test_a_forced_collapse_to_everything_at_once_is_reported(tmp_path, caplog):
    """The shipped alpha 1 policy on the built-in dLLM and task (~90% correct at ~6 NFE), pushed by a 10x heavier
    speed term (alpha 10) at a learning rate of 0.3: it falls to one step per block and most answers go wrong."""
    from hf_unmask.rewards import get_reward_function
    from hf_unmask.strategies import builtin_policy_path
    from hf_unmask.tasks import get_task
    from hf_unmask.trainer import UnmaskingGRPOTrainer

    data = get_task("program_trace").dataset(n_train=64, n_test=4, seed=0)["train"]
    args = small_config(tmp_path, dllm_name_or_path="builtin", gen_length=16, block_length=8, num_generations=8,
                        per_device_train_batch_size=32, num_iterations=1, max_steps=6, alpha=10.0, learning_rate=0.3,
                        policy_name_or_path=str(builtin_policy_path("tiny-dllm-program_trace-bl8-alpha1")),
                        policy_hidden_size=128, policy_ffn_size=512)  # fmt: skip
    trainer = UnmaskingGRPOTrainer(reward_funcs=get_reward_function("task:program_trace"), args=args,
                                   train_dataset=data)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        trainer.train()
    logs = [h for h in trainer.state.log_history if "nfe/mean" in h]
    assert logs[0]["nfe/mean"] > 5 and logs[-1]["nfe/mean"] < 3, logs
    assert [h["collapse/everything_at_once"] for h in logs][-3:] == [1.0] * 3
    said = [w for w in _warnings(caplog) if "everything at once" in w]
    assert len(said) == 1 and said[0].startswith("Training collapse at step"), _warnings(caplog)
    assert "steps per block" in said[0] and "down from" in said[0] and "--learning_rate (now 0.3)" in said[0]


def test_a_seeded_run_that_learns_reports_nothing(tmp_path, caplog):
    """Correctness = agreement with the random dLLM's own one-token-per-step decode (a graded toy reward, see
    tests/trainer/test_grpo_training.py), full diffusion at L = 8, the default slow start, a moderate learning
    rate."""
    model, tokenizer = tiny_dllm()
    data = toy_dataset(64)
    enc = tokenizer(list(data["prompt"]), return_tensors="pt", padding=True)
    careful = model.generate(enc["input_ids"], attention_mask=enc["attention_mask"], strategy=TopKConfidence(),
                             max_new_tokens=8, block_length=8, steps=8)  # fmt: skip
    prompt_length = enc["input_ids"].shape[1]
    data = data.add_column(
        "target", [tokenizer.decode(r, skip_special_tokens=True) for r in careful[:, prompt_length:]]
    )
    trainer = make_trainer((model, tokenizer), tmp_path, reward=MatchReward(8), dataset=data, gen_length=8,
                           block_length=8, num_generations=8, per_device_train_batch_size=32, num_iterations=1,
                           max_steps=16, learning_rate=3e-3)  # fmt: skip
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        trainer.train()
    logs = [h for h in trainer.state.log_history if "nfe/mean" in h]
    assert len(logs) == 16 and all("masked_at_end" in h for h in logs)
    assert _warnings(caplog) == [] and not any(h[f"collapse/{c}"] for h in logs for c in CONDITIONS), logs


def test_a_never_unmask_policy_is_reported_and_the_switch_silences_it(tmp_path, caplog):
    dllm = tiny_dllm()
    run = dict(policy_init_bias=-10.0, max_steps=4, num_iterations=1, learning_rate=1e-4)  # p = 4.5e-5: never unmasks
    trainer = make_trainer(dllm, tmp_path / "on", **run)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        trainer.train()
    messages = _warnings(caplog)
    assert len(messages) == 1 and messages[0].startswith("Training collapse at step 3"), messages
    assert "almost never unmasks" in messages[0] and "--policy_init_bias above -10" in messages[0]
    flags = [h["collapse/never_unmask"] for h in trainer.state.log_history if "collapse/never_unmask" in h]
    assert flags == [1.0] * 4
    caplog.clear()
    trainer = make_trainer(dllm, tmp_path / "off", collapse_warnings=False, **run)
    with caplog.at_level(logging.WARNING, logger=LOGGER):
        trainer.train()
    assert _warnings(caplog) == []
    assert [h["collapse/never_unmask"] for h in trainer.state.log_history if "collapse/never_unmask" in h] == flags
