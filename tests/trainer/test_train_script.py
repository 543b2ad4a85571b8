"""scripts/train_unmasking_policy.py: recipes and flags, datasets (built-in task, local files, column names), the
final evaluation on the model card, `--push_to_hub`, and the same script under `accelerate launch` with 2 CPU
processes (gloo)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from grpo_toys import tiny_dllm
from interrupting import interrupt_when, subprocess_env

from hf_unmask.strategies import ConfidencePolicy, UnmaskingStrategy
from hf_unmask.trainer.script import UnmaskingScriptArguments, load_prompts, main, make_parser

REPO = Path(__file__).resolve().parents[2]
RECIPES = sorted((REPO / "scripts" / "recipes").glob("*.yaml"))
CPU_RECIPE = REPO / "scripts" / "recipes" / "builtin_cpu.yaml"
# A tiny run: 2 prompts x 8 rollouts per step, a small policy, no checkpoints, no evaluation during training.
TINY_FLAGS = [
    "--max_steps", "2", "--per_device_train_batch_size", "16", "--task_train_size", "64", "--task_test_size", "16",
    "--policy_hidden_size", "32", "--policy_ffn_size", "64", "--save_strategy", "no", "--disable_tqdm", "true",
    "--logging_steps", "1", "--warmup_steps", "0",  # the recipe's warm-up would leave lr ~0 for 2 steps
    "--eval_strategy", "no", "--load_best_model_at_end", "false",  # the recipe's best checkpoint needs checkpoints
]  # fmt: skip


@pytest.fixture(scope="module")
def dllm_folder(tmp_path_factory):
    """A random tiny dLLM saved like a real checkpoint (config, weights, tokenizer)."""
    folder = tmp_path_factory.mktemp("tiny-dllm")
    model, tokenizer = tiny_dllm()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def parse(*argv):
    return make_parser().parse_args_and_config([str(a) for a in argv])


@pytest.mark.parametrize("recipe", RECIPES, ids=[r.stem for r in RECIPES])
def test_recipes_parse_and_flags_override_them(recipe, tmp_path):
    script_args, args = parse("--config", recipe, "--output_dir", tmp_path, "--alpha", "3")
    assert args.alpha == 3.0 and args.output_dir == str(tmp_path)
    assert args.num_generations == 8 and args.epsilon == 0.5 and args.num_iterations == 2 and args.beta == 0.0
    assert args.gen_length % (args.block_length or args.gen_length) == 0
    if "llada" in recipe.stem or "dream" in recipe.stem:  # the paper's settings
        assert (args.learning_rate, args.adam_beta2, args.weight_decay, args.max_grad_norm) == (3e-5, 0.99, 0.1, 0.2)
        assert (args.warmup_steps, args.num_train_epochs, args.gen_length) == (100, 1, 256)
        assert [d.path for d in script_args.datasets] == ["openai/gsm8k", "DigitalLearningGmbH/MATH-lighteval"]
        assert script_args.reward_specs() == ["math"]
    if "expert" in recipe.stem:
        assert args.expert_steering and args.expert_threshold == 0.9 and args.expert_block_length == 32
        assert args.block_length == 256 and args.eval_policy_temperature == 1.0


def test_exactly_one_source_of_prompts():
    with pytest.raises(ValueError, match="exactly one source"):
        UnmaskingScriptArguments()
    with pytest.raises(ValueError, match="exactly one source"):
        UnmaskingScriptArguments(task="program_trace", dataset_name="openai/gsm8k")
    assert UnmaskingScriptArguments(dataset_name="x.jsonl").reward_specs() == ["math"]


def test_local_jsonl_with_other_column_names(tmp_path):
    rows = [{"question": f"sort : {i} 2", "solution": f"#### {i}", "extra": i} for i in range(6)]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    flags = ["--dataset_name", path, "--prompt_column", "question", "--answer_column", "solution",
             "--prompt_template", "Q: {prompt} A:", "--output_dir", tmp_path]  # fmt: skip
    from hf_unmask.rewards import get_reward_functions

    script_args, _ = parse(*flags, "--eval_num_examples", "2")
    train, test = load_prompts(script_args, get_reward_functions(script_args.reward_specs()))
    # one local file is one split: the final evaluation's rows are held out of training
    assert (len(train), len(test)) == (4, 2)
    assert sorted([*train["extra"], *test["extra"]]) == list(range(6))
    row = next(r for r in train if r["extra"] == train[0]["extra"])
    assert row["prompt"] == f"Q: sort : {row['extra']} 2 A:" and row["answer"] == f"#### {row['extra']}"  # for `math`
    assert {"prompt", "answer", "extra"} <= set(train.column_names) and test.column_names == train.column_names
    script_args, _ = parse(*flags, "--eval_num_examples", "0")
    train, test = load_prompts(script_args, get_reward_functions(script_args.reward_specs()))
    assert (len(train), test) == (6, None)  # no final evaluation: every row trains
    script_args, _ = parse(*flags)  # 200 rows to hold out from 6
    with pytest.raises(ValueError, match="single file with 6 rows.*--eval_num_examples"):
        load_prompts(script_args, get_reward_functions(script_args.reward_specs()))


def test_a_single_jsonl_file_gets_a_final_evaluation_with_progress(dllm_folder, tmp_path, capfd, caplog, monkeypatch):
    """A one-file dataset used to skip the final evaluation silently; it now holds rows out, and the evaluation
    shows a progress bar."""
    rows = [{"prompt": f"sort : {i % 10} {(3 * i) % 10}", "answer": f"#### {i}"} for i in range(20)]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    out = tmp_path / "policy"
    monkeypatch.chdir(dllm_folder.parent)  # the dLLM named by a relative path, as users often do
    script_args, args = parse(
        "--dataset_name", path, "--dllm_name_or_path", dllm_folder.name, "--output_dir", out, "--gen_length", "8",
        "--block_length", "4", "--num_generations", "8", "--num_iterations", "1", *TINY_FLAGS,
        "--max_steps", "1", "--disable_tqdm", "false", "--eval_num_examples", "4",
        "--eval_strategies", "confidence_threshold:threshold=0.9", "--eval_batch_size", "2",
    )  # fmt: skip
    main(script_args, args)
    table = json.loads((out / "evaluation" / "evaluation.json").read_text())
    assert table["meta"]["n_examples"] == 4 and len(table["rows"]) == 2  # the policy and the heuristic
    assert "4 of its 20 rows (--eval_num_examples) are held out" in caplog.text
    card = (out / "README.md").read_text()
    # no absolute path of this machine: the dLLM as typed, the policy and the data relative to the working directory
    here = dllm_folder.parent
    assert f'ConfidencePolicy.from_pretrained("{out.relative_to(here)}")' in card and str(here) not in card
    assert f'AutoDiffusionLM.from_pretrained("{dllm_folder.name}")' in card
    yaml = card.split("---")[1]  # local data and dLLM folders are no Hub ids: named in the text, not the metadata
    assert "datasets:" not in yaml and "base_model:" not in yaml
    assert f"| training prompts | {path.relative_to(here)} |" in card
    err = capfd.readouterr().err
    assert "evaluate: 100%" in err and "4/4 [" in err  # 2 strategies x 2 batches, with a progress bar


def test_script_trains_on_a_builtin_task_evaluates_and_pushes_the_card(dllm_folder, tmp_path, monkeypatch):
    import transformers.trainer

    from hf_unmask import hub

    pushed = {}

    def fake_push(folder, repo_id, **kwargs):
        pushed.update(repo_id=repo_id, files={p.name: p.read_bytes() for p in Path(folder).iterdir()})

    api = SimpleNamespace(create_repo=lambda repo_id, **kwargs: SimpleNamespace(repo_id=repo_id))
    monkeypatch.setattr(transformers.trainer, "hf_api", lambda: api)  # `--push_to_hub` creates the repo at start
    monkeypatch.setattr(hub, "push_folder", fake_push)
    out = tmp_path / "policy"
    script_args, args = parse(
        "--config", CPU_RECIPE, "--dllm_name_or_path", dllm_folder, "--output_dir", out, *TINY_FLAGS,
        "--eval_num_examples", "8", "--eval_strategies", "confidence_threshold:threshold=0.9",
        "--push_to_hub", "true", "--hub_model_id", "me/tiny-policy", "--hub_strategy", "end",
    )  # fmt: skip
    trainer = main(script_args, args)
    assert trainer.state.global_step == 2
    policy = UnmaskingStrategy.from_pretrained(out)
    assert isinstance(policy, ConfidencePolicy) and policy.mode == "bernoulli-argmax"
    assert policy.trained_for["task"] == "program_trace" and policy.trained_for["base_model"] == dllm_folder.name
    assert (out / "evaluation" / "evaluation.csv").is_file()
    card = (out / "README.md").read_text()
    assert "confidence_threshold" in card and "threshold=0.9" in card  # the evaluation table
    assert pushed["repo_id"] == "me/tiny-policy"
    assert {"README.md", "config.json", "model.safetensors", "pareto.png"} <= set(pushed["files"])
    assert "threshold=0.9" in pushed["files"]["README.md"].decode()


def test_the_same_script_runs_under_accelerate_launch_with_two_cpu_processes(dllm_folder, tmp_path):
    """`accelerate launch` with 2 CPU processes (gloo) runs the script file unchanged (as `__main__`, through
    tests/ddp_probe.py, which only records each rank's result): DDP-wrapped policy, one shared set of weights.

    accelerate 1.15 starts a single process for `--cpu` (multi-CPU needs MPI), so the multi-process launcher is
    asked for with `--multi_gpu`; the recipe's `use_cpu: true` keeps it on CPU with the gloo backend."""
    out = tmp_path / "ddp"
    env = dict(os.environ, HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        str(REPO / "tests" / "ddp_probe.py"), str(REPO / "scripts" / "train_unmasking_policy.py"),
        "--config", str(CPU_RECIPE), "--dllm_name_or_path", str(dllm_folder), "--output_dir", str(out), *TINY_FLAGS,
        "--per_device_train_batch_size", "8", "--eval_num_examples", "0", "--use_cpu", "true",
        # a reward with signal (faster is better) and no weight decay: the weights move only through gradients
        "--reward_funcs", "tests.grpo_toys:constant_reward", "--alpha", "1", "--weight_decay", "0",
        "--learning_rate", "1e-2", "--warmup_steps", "0",
        # start at unmask probability 0.5 so that the NFE (hence the reward) differs within a group at step 1
        "--policy_init_bias", "0",
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [json.loads((out / f"rank{i}.json").read_text()) for i in range(2)]
    for rank in ranks:
        assert rank["distributed_type"] == "MULTI_CPU" and rank["num_processes"] == 2 and rank["backend"] == "gloo"
        assert rank["wrapped"] == "DistributedDataParallel" and rank["global_step"] == 2
    assert ranks[0]["checksum"] == ranks[1]["checksum"]  # gradients were all-reduced: one policy
    policy = UnmaskingStrategy.from_pretrained(out)
    assert policy.trained_for["training_steps"] == 2
    torch.manual_seed(0)  # the script's seed: the same initial policy
    fresh = ConfidencePolicy(hidden_size=32, num_heads=2, ffn_size=64)
    assert any(not torch.equal(v, fresh.state_dict()[k]) for k, v in policy.state_dict().items())


def test_ctrl_c_in_training_saves_a_resumable_checkpoint(dllm_folder, tmp_path):
    """SIGINT to the running script: the current step finishes and is logged, `checkpoint-<step>/` and the policy
    are saved, one line names them, exit code 130; the checkpoint loads as a policy and resumes training."""
    out = tmp_path / "run"
    command = [
        sys.executable, str(REPO / "scripts" / "train_unmasking_policy.py"), "--config", str(CPU_RECIPE),
        "--dllm_name_or_path", str(dllm_folder), "--output_dir", str(out), *TINY_FLAGS, "--max_steps", "200",
        "--logging_steps", "50",  # nothing would be logged before the interrupt without the forced log
    ]  # fmt: skip
    done = interrupt_when(command, lambda stdout, stderr: "Training the policy" in stdout, cwd=tmp_path,
                          env=subprocess_env(), timeout=180)  # fmt: skip
    assert done.interrupted and done.returncode == 130, done.describe()
    assert "Traceback" not in done.stderr, done.describe()
    last = done.stderr.strip().splitlines()[-1]
    match = re.search(r"stopped at step (\d+); checkpoint saved to (\S+) ", last)
    assert last.startswith("train_unmasking_policy.py: interrupted: ") and match, last
    step, checkpoint = int(match.group(1)), Path(match.group(2))
    assert checkpoint == out / f"checkpoint-{step}" and f"the policy so far is saved in {out}" in last
    for folder in (checkpoint, out):
        assert isinstance(ConfidencePolicy.from_pretrained(folder), ConfidencePolicy)
    logged = json.loads((out / "trainer_state.json").read_text())["log_history"]
    assert any({"loss", "reward", "nfe/mean"} <= set(row) and row["step"] == step for row in logged)  # a training row
    assert {"optimizer.pt", "scheduler.pt", "trainer_state.json"} <= {p.name for p in checkpoint.iterdir()}

    script_args, args = parse(
        "--config", CPU_RECIPE, "--dllm_name_or_path", dllm_folder, "--output_dir", out, *TINY_FLAGS,
        "--max_steps", str(step + 1), "--eval_num_examples", "0", "--resume_from_checkpoint", checkpoint,
    )  # fmt: skip
    assert main(script_args, args).state.global_step == step + 1


def test_first_ctrl_c_asks_to_stop_and_a_second_one_interrupts():
    import signal
    import threading

    from hf_unmask.trainer import StopOnInterrupt

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signal handlers can only be set in the main thread")
    stopper = StopOnInterrupt()
    control = SimpleNamespace(should_log=False, should_save=False, should_training_stop=False)
    args = SimpleNamespace(device=torch.device("cpu"))
    with pytest.raises(KeyboardInterrupt), stopper.installed():
        stopper.on_step_end(args, None, control)
        assert not (control.should_save or control.should_training_stop)
        os.kill(os.getpid(), signal.SIGINT)
        assert stopper.requested  # the first Ctrl-C only asks
        stopper.on_step_end(args, None, control)
        assert control.should_log and control.should_save and control.should_training_stop
        os.kill(os.getpid(), signal.SIGINT)  # the second one interrupts at once
        pytest.fail("the second Ctrl-C did not interrupt")
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_hf_unmask_train_runs_the_training_script(dllm_folder, tmp_path, capsys):
    """`hf-unmask train` takes the script's recipe and flags; bad values are one error line naming the flag."""
    from hf_unmask.cli import build_parser
    from hf_unmask.cli import main as cli

    assert "train" in build_parser().format_help()
    with pytest.raises(SystemExit) as help_exit:
        cli(["train", "--help"])
    assert help_exit.value.code == 0 and capsys.readouterr().out.startswith("usage: hf-unmask train")
    out = tmp_path / "policy"
    flags = ["--config", CPU_RECIPE, "--dllm_name_or_path", dllm_folder, "--output_dir", out, *TINY_FLAGS]
    assert cli([str(f) for f in ["train", *flags, "--max_steps", "1", "--eval_num_examples", "0"]]) == 0
    policy = UnmaskingStrategy.from_pretrained(out)
    assert policy.trained_for["training_steps"] == 1 and policy.trained_for["task"] == "program_trace"
    assert policy.trained_for["base_model"] == dllm_folder.name  # never an absolute path
    capsys.readouterr()
    assert cli([str(f) for f in ["train", *flags, "--block_length", "5"]]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("hf-unmask train: error: block_length=5 does not divide gen_length=16"), err
