"""The validation split of `hf-unmask train` (`--validation_size`): with `--eval_strategy steps`, the evaluation
during training (and the best checkpoint it picks) runs on prompts held out of the training ones, never on the test
prompts of the final evaluation; for a built-in task, a local file, a Hub-style dataset and a mixture alike."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from hf_unmask.rewards import get_reward_functions
from hf_unmask.tasks import get_task
from hf_unmask.trainer.data import UnmaskingScriptArguments, load_prompts, split_validation
from hf_unmask.trainer.script import main, make_parser

RECIPES = Path(__file__).resolve().parents[2] / "scripts" / "recipes"
TASK = ["--task", "program_trace", "--task_train_size", "72", "--task_test_size", "8"]


def parse(*argv):
    return make_parser().parse_args_and_config([str(a) for a in argv])


def splits(script_args):
    """`(train, validation, test)` as the script makes them with evaluation during training."""
    train, test = load_prompts(script_args, get_reward_functions(script_args.reward_specs()))
    train, validation = split_validation(train, script_args)
    return train, validation, test


def write_jsonl(path: Path, n: int) -> Path:
    path.write_text("\n".join(json.dumps({"prompt": f"sort : {i} {i % 7}", "answer": f"#### {i}"}) for i in range(n)))
    return path


def test_a_builtin_task_holds_out_the_last_training_prompts(tmp_path, caplog):
    script_args, _ = parse(*TASK, "--validation_size", "8", "--output_dir", tmp_path)
    with caplog.at_level(logging.WARNING, logger="hf_unmask.trainer.data"):
        train, validation, test = splits(script_args)
    assert (len(train), len(validation), len(test)) == (64, 8, 8)
    generated = get_task("program_trace").dataset(n_train=72, n_test=8, seed=0)
    assert validation["prompt"] == generated["train"]["prompt"][64:]  # the last rows of the train split
    assert test["prompt"] == generated["test"]["prompt"]  # the test split is untouched
    assert not set(validation["prompt"]) & (set(train["prompt"]) | set(test["prompt"]))
    # training keeps the prompts (and their order) of a run with 8 fewer generated and no validation
    assert train["prompt"] == get_task("program_trace").dataset(n_train=64, n_test=8, seed=0)["train"]["prompt"]
    (record,) = [r for r in caplog.records if r.getMessage().startswith("Validation:")]
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "8 of the 72 training prompts of the built-in task program_trace (its last rows)" in message
    assert "trains on the other 64" in message and "--validation_size N" in message

    script_args, _ = parse(*TASK, "--validation_size", "0", "--output_dir", tmp_path)
    train, validation, _ = splits(script_args)
    assert (len(train), validation) == (72, None)


def test_a_file_a_hub_dataset_and_a_mixture_hold_out_a_seeded_choice(tmp_path, caplog):
    import datasets

    data = write_jsonl(tmp_path / "data.jsonl", 30)
    script_args, _ = parse("--dataset_name", data, "--eval_num_examples", "5", "--validation_size", "6",
                           "--output_dir", tmp_path / "out")  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="hf_unmask.trainer.data"):
        train, validation, test = splits(script_args)
    assert (len(train), len(validation), len(test)) == (19, 6, 5)  # the final evaluation's 5 rows, then 6
    everything = {*train["answer"], *validation["answer"], *test["answer"]}
    assert len(everything) == 30 and not set(validation["answer"]) & set(test["answer"])
    assert f"6 of the 25 training prompts of {data} (a seeded choice)" in caplog.text
    held_again = splits(script_args)[1]
    assert held_again["answer"] == validation["answer"]  # seeded: the same rows every run
    first_train, _ = load_prompts(script_args, get_reward_functions(script_args.reward_specs()))
    order = [a for a in first_train["answer"] if a not in set(validation["answer"])]
    assert train["answer"] == order  # the training rows keep their order

    # a dataset with train and test splits, as from the Hub (here a save_to_disk folder)
    folder = tmp_path / "hub"
    rows = [{"question": f"sort : {i} 1", "answer": f"#### {i}"} for i in range(40)]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows[:32]),
                          "test": datasets.Dataset.from_list(rows[32:])}).save_to_disk(folder)  # fmt: skip
    script_args, _ = parse("--dataset_name", folder, "--prompt_column", "question", "--validation_size", "4",
                           "--output_dir", tmp_path / "out")  # fmt: skip
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hf_unmask.trainer.data"):
        train, validation, test = splits(script_args)
    assert (len(train), len(validation), len(test)) == (28, 4, 8)
    assert not set(validation["answer"]) & (set(train["answer"]) | set(test["answer"]))
    assert set(validation["answer"]) | set(train["answer"]) == {r["answer"] for r in rows[:32]}
    assert f"4 of the 32 training prompts of split 'train' of {folder} (a seeded choice)" in caplog.text

    # a `datasets:` mixture (YAML)
    script_args = UnmaskingScriptArguments(datasets=[{"path": str(data)}], validation_size=3)
    train, validation, _ = splits(script_args)
    assert (len(train), len(validation)) == (27, 3) and not set(validation["answer"]) & set(train["answer"])


def test_a_negative_or_too_large_validation_size_names_the_fix(tmp_path):
    with pytest.raises(ValueError, match=r"validation_size must be a number of rows >= 0, got -1.*--validation_size"):
        UnmaskingScriptArguments(task="program_trace", validation_size=-1)
    script_args, _ = parse(*TASK, "--validation_size", "72", "--output_dir", tmp_path)
    with pytest.raises(ValueError, match=r"--validation_size 72 would hold out all 72 training prompts of the built-in "
                                         r"task program_trace.*a smaller --validation_size \(e\.g\. 7\) or more "
                                         r"training prompts \(--task_train_size\).*--eval_strategy no"):  # fmt: skip
        splits(script_args)
    script_args, _ = parse(*TASK, "--max_train_samples", "10", "--validation_size", "10", "--output_dir", tmp_path)
    with pytest.raises(ValueError, match=r"all 10 training prompts.*\(e\.g\. 1\) or a larger --max_train_samples"):
        splits(script_args)
    # the script checks it before loading the dLLM
    script_args, args = parse("--config", RECIPES / "builtin_cpu.yaml", *TASK, "--output_dir", tmp_path)
    with pytest.raises(ValueError, match="--validation_size 200 would hold out all 72 training prompts"):
        main(script_args, args)


class Stop(Exception):
    """Raised by the stand-in trainer once it has what the script passed."""


@pytest.mark.parametrize("validation_size", [8, 0])
def test_the_script_evaluates_during_training_on_the_validation_prompts(
    tmp_path, monkeypatch, caplog, validation_size
):
    from hf_unmask.trainer import trainer as trainer_module

    seen = {}

    def stand_in(**kwargs):
        seen.update(kwargs)
        raise Stop

    monkeypatch.setattr(trainer_module, "UnmaskingGRPOTrainer", stand_in)
    flags = ["--config", RECIPES / "builtin_cpu.yaml", *TASK, "--output_dir", tmp_path]
    script_args, args = parse(*flags, "--validation_size", validation_size)
    with caplog.at_level(logging.WARNING, logger="hf_unmask.trainer"), pytest.raises(Stop):
        main(script_args, args)
    generated = get_task("program_trace").dataset(n_train=72, n_test=8, seed=0)
    if validation_size:
        assert seen["eval_dataset"]["prompt"] == generated["train"]["prompt"][64:]
        assert seen["train_dataset"]["prompt"] == generated["train"]["prompt"][:64]
        assert "evaluate during training on the test prompts" in caplog.text  # how to change it
    else:  # as before: on the test prompts, with a warning that it flatters the chosen checkpoint
        assert seen["eval_dataset"]["prompt"] == generated["test"]["prompt"]
        assert len(seen["train_dataset"]) == 72
        assert "--validation_size 0: the evaluation during training runs on the test prompts" in caplog.text
    seen.clear()
    script_args, args = parse(*flags, "--eval_strategy", "no", "--load_best_model_at_end", "false")
    with pytest.raises(Stop):
        main(script_args, args)
    assert seen["eval_dataset"] is None and len(seen["train_dataset"]) == 72  # no evaluation: every prompt trains


@pytest.mark.parametrize("recipe", ["builtin_cpu", "builtin_long_cpu"])
def test_the_cpu_recipes_keep_the_best_checkpoint_by_validation_reward(recipe, tmp_path):
    script_args, args = parse("--config", RECIPES / f"{recipe}.yaml", "--output_dir", tmp_path)
    assert script_args.validation_size == 200 and script_args.task_train_size - script_args.validation_size == 5000
    assert args.eval_strategy == "steps" and args.save_strategy == "steps" and args.load_best_model_at_end
    assert args.save_steps % args.eval_steps == 0 and args.max_steps % args.eval_steps == 0
    assert (args.metric_for_best_model, args.greater_is_better) == ("reward", True)
    assert (args.num_generations_eval, args.per_device_eval_batch_size) == (1, 100)
    assert args.save_total_limit >= 1  # the best checkpoint is kept besides the latest ones
