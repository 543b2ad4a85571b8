"""`hf-unmask train` on a user's own model and task: a reward written for `--correctness`, no reward call before the
first rollout, the held-out split and `--eval_datasets` on the command line, and no absolute local path in what is
saved."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from grpo_toys import make_trainer, tiny_dllm

from hf_unmask.trainer import rollouts as rollouts_module
from hf_unmask.trainer.script import load_prompts, main, make_parser

# One optimiser step of 2 prompts x 8 rollouts on the built-in tiny dLLM, a small policy, no checkpoints.
FAST = [
    "--dllm_name_or_path", "builtin", "--gen_length", "16", "--block_length", "8", "--max_steps", "1",
    "--num_generations", "8", "--per_device_train_batch_size", "16", "--num_iterations", "1", "--warmup_steps", "0",
    "--policy_hidden_size", "32", "--policy_ffn_size", "64", "--save_strategy", "no", "--disable_tqdm", "true",
    "--report_to", "none", "--use_cpu", "true", "--logging_steps", "1", "--eval_batch_size", "4",
    "--eval_strategies", "confidence_threshold:threshold=0.9",
]  # fmt: skip


def parse(*argv):
    return make_parser().parse_args_and_config([str(a) for a in argv])


def write_jsonl(path: Path, n: int, start: int = 0, prompt: str = "prompt", answer: str = "answer") -> Path:
    """`n` rows `{prompt: "sort : ...", answer: "ref-<i>"}` for i = start, start + 1, ..."""
    rows = [{prompt: f"sort : {i % 10} {(3 * i) % 10}", answer: f"ref-{i}"} for i in range(start, start + n)]
    path.write_text("\n".join(json.dumps(r) for r in rows))
    return path


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """`own_task_checks.py` in the working directory with a `--correctness`-style function that records its calls
    (a module name no other test uses: a module of the same name imported by another test would be reused)."""
    monkeypatch.delitem(sys.modules, "own_task_checks", raising=False)
    (tmp_path / "own_task_checks.py").write_text(
        "CALLS = []\n\n\ndef is_correct(completion, reference):\n"
        "    CALLS.append((completion, reference))\n    return completion.strip() == reference.strip()\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    yield "own_task_checks"
    sys.modules.pop("own_task_checks", None)


def test_a_reward_written_for_correctness_trains_and_scores_the_final_evaluation(tmp_path, user_module):
    """`--reward_funcs own_task_checks:is_correct` takes the function `hf-unmask evaluate --correctness` takes; the
    reference comes from the answer column (`--answer_column`), the test prompts from `--eval_datasets`."""
    from hf_unmask.evaluation import resolve_correctness

    write_jsonl(tmp_path / "train.jsonl", 8, answer="gold")
    write_jsonl(tmp_path / "test.jsonl", 3, start=50, answer="gold")
    script_args, args = parse(
        "--dataset_name", "train.jsonl", "--eval_datasets", "test.jsonl", "--answer_column", "gold",
        "--reward_funcs", f"{user_module}:is_correct", "--eval_num_examples", "3", "--output_dir", "policy", *FAST,
    )  # fmt: skip
    trainer = main(script_args, args)
    calls = sys.modules[user_module].CALLS
    assert trainer.state.global_step == 1 and "correctness" in trainer.state.log_history[0]
    training, evaluation = calls[:16], calls[16:]  # 16 rollouts, then the policy and the heuristic on 3 test prompts
    assert {r for _, r in training} <= {f"ref-{i}" for i in range(8)} and len(evaluation) == 2 * 3
    assert {r for _, r in evaluation} == {f"ref-{i}" for i in range(50, 53)}
    assert all(isinstance(c, str) and "[MASK]" not in c for c, _ in calls)
    assert json.loads(Path("policy/evaluation/evaluation.json").read_text())["meta"]["n_examples"] == 3
    assert resolve_correctness(f"{user_module}:is_correct")("7", "7") is True  # the same function evaluates


def test_no_reward_is_called_before_the_first_rollout(tmp_path, monkeypatch):
    events = []

    def reward(prompts, completions, **kwargs):
        events.append("reward")
        return [0.0] * len(completions)

    real = rollouts_module.diffusion_generate

    def recording(*args, **kwargs):
        events.append("rollout")
        return real(*args, **kwargs)

    monkeypatch.setattr(rollouts_module, "diffusion_generate", recording)
    trainer = make_trainer(tiny_dllm(), tmp_path, reward=reward, max_steps=1)
    assert events == []  # building the trainer checks the signature without calling the reward
    trainer.train()
    assert events[0] == "rollout" and "reward" in events


def test_the_held_out_split_is_announced_and_eval_datasets_works_on_the_command_line(tmp_path, caplog):
    data = write_jsonl(tmp_path / "data.jsonl", 10, prompt="question")
    test = write_jsonl(tmp_path / "test.jsonl", 4, start=20, prompt="question")
    base = ["--dataset_name", data, "--prompt_column", "question", "--output_dir", tmp_path / "out"]
    from hf_unmask.rewards import get_reward_functions

    script_args, _ = parse(*base, "--eval_num_examples", "3")
    with caplog.at_level(logging.INFO, logger="hf_unmask"):
        train, held_out = load_prompts(script_args, get_reward_functions(script_args.reward_specs()))
    assert (len(train), len(held_out)) == (7, 3)
    warning = next(r for r in caplog.records if "held out" in r.getMessage())
    assert warning.levelno == logging.WARNING
    message = warning.getMessage()
    assert str(data) in message and "3 of its 10 rows" in message
    assert "--eval_num_examples 0" in message and "--eval_datasets test.jsonl" in message

    caplog.clear()
    script_args, _ = parse(*base, "--eval_datasets", test, "--eval_num_examples", "3")
    assert [d.path for d in script_args.eval_datasets] == [str(test)]
    with caplog.at_level(logging.INFO, logger="hf_unmask"):
        train, test_rows = load_prompts(script_args, get_reward_functions(script_args.reward_specs()))
    assert (len(train), len(test_rows)) == (10, 4)  # every row trains; the test file keeps --prompt_column
    assert test_rows[0]["prompt"] == "sort : 0 0" and "held out" not in caplog.text
    assert "Final evaluation on" in caplog.text


@pytest.mark.parametrize("given_as", ["absolute", "relative"])
def test_no_absolute_local_path_is_saved(tmp_path, monkeypatch, given_as):
    """The dLLM, the data and the output folder given by absolute or relative paths: config.json, the card and
    training_config.json record the names as typed (an absolute path: relative to the working directory)."""
    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    model, tokenizer = tiny_dllm()
    model.save_pretrained(work / "my-dllm")
    tokenizer.save_pretrained(work / "my-dllm")
    write_jsonl(work / "data" / "train.jsonl", 10)
    monkeypatch.chdir(work)
    root = f"{work}/" if given_as == "absolute" else ""
    script_args, args = parse(
        *FAST, "--dllm_name_or_path", f"{root}my-dllm", "--dataset_name", f"{root}data/train.jsonl",
        "--output_dir", f"{root}runs/policy", "--eval_num_examples", "2",
    )  # fmt: skip
    main(script_args, args)
    out = work / "runs" / "policy"
    saved = {name: (out / name).read_text() for name in ("config.json", "README.md", "training_config.json")}
    for name, text in saved.items():
        assert str(tmp_path) not in text, name
    trained_for = json.loads(saved["config.json"])["trained_for"]
    assert (trained_for["base_model"], trained_for["dataset"]) == ("my-dllm", "data/train.jsonl")
    assert 'from_pretrained("runs/policy")' in saved["README.md"] and 'load_tokenizer("my-dllm")' in saved["README.md"]
    assert json.loads(saved["training_config.json"])["output_dir"] == "runs/policy"
