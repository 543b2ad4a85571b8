"""Bad input gets a clear error naming the problem and the fix, before anything is generated, and the command line
writes nothing: unknown model arguments, strategy specs that do not parse or sweep, max_gen_toks beyond the model,
perplexity (loglikelihood_rolling) tasks."""

from __future__ import annotations

import re
import sys

import pytest
from lm_eval.api.instance import Instance
from lm_eval.tasks import TaskManager
from lm_eval_runs import MODEL_ARGS, TASK, run_cli

from hf_unmask.lm_eval import TASKS_DIR, HFUnmaskLM, ModelArgumentError, main, simple_evaluate

ROLLING_TASK = """
task: hf_unmask_program_trace_rolling
custom_dataset: !function hf_unmask.lm_eval.tasks.load_program_trace
test_split: test
output_type: loglikelihood_rolling
doc_to_text: ""
doc_to_target: "{{prompt}}"
metric_list:
  - metric: word_perplexity
"""


def test_the_command_line_refuses_an_unknown_model_argument_and_writes_nothing(tmp_path):
    done = run_cli(
        [sys.executable],
        ["--model", "hf_unmask", "--model_args", f"{MODEL_ARGS},max_new_token=16", "--tasks", TASK,
         "--include_path", str(TASKS_DIR), "--limit", "2", "--log_samples", "--output_path", str(tmp_path / "out")],
        tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr[-3000:]
    assert "hf_unmask.lm_eval: error: Unknown model argument(s) 'max_new_token'" in done.stderr
    assert "Valid ones: pretrained, tokenizer" in done.stderr and "max_new_tokens" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "model_args, message",
    [
        ("pretrained=tiny-dllm,strategy=top_k_confidence:steps=8,16", r"'16'.* cut at its comma: pass one value per"),
        ("pretrained=tiny-dllm,strategy=confidence_threshold:thresh=0.9", r"no knob 'thresh'.* one value per knob"),
        ("pretrained=tiny-dllm,strategy=no_such_strategy", r"Unknown strategy 'no_such_strategy'"),
        (
            "pretrained=tiny-dllm,max_new_tokens=16,strategy=top_k_confidence:steps=3",
            r"steps=3 does not fit block_length=8",
        ),
        ("pretrained=tiny-dllm,batch_size=auto", r"no automatic batch size. Pass an integer"),
        ("pretrained=tiny-dllm,mc_num=10,mc_batch_size=4", r"mc_batch_size=4 does not divide mc_num=10"),
        ("pretrained=tiny-dllm,block_length=8,max_new_tokens=12", r"block_length=8 does not divide max_new_tokens=12"),
        ("tokenizer=x", r"pretrained is required"),
        ("pretrained=tiny-dllm,use_cache=maybe", r"use_cache must be true or false"),
    ],
)
def test_bad_model_arguments_are_refused_when_the_model_is_built(model_args, message):
    with pytest.raises(ModelArgumentError, match=message):
        HFUnmaskLM.create_from_arg_string(model_args, {"batch_size": 1, "device": None})


def test_a_strategy_spec_with_several_values_is_refused_wherever_it_comes_from(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:  # unquoted, lm-eval's own parser stops at the comma
        main(["--model", "hf_unmask", "--model_args", "pretrained=tiny-dllm,strategy=top_k_confidence:steps=8,16",
              "--tasks", TASK, "--output_path", str(tmp_path / "out")])  # fmt: skip
    assert exit_info.value.code == 2 and "expected `key=value`, got '16'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    # quoted ('strategy="top_k_confidence:steps=8,16"'), the whole spec reaches the model
    with pytest.raises(ModelArgumentError, match=r"sweeps 2 settings.*strategy=top_k_confidence:steps=8 "):
        HFUnmaskLM.create_from_arg_obj({"pretrained": "tiny-dllm", "strategy": "top_k_confidence:steps=8,16"})


def test_model_arguments_win_over_lm_evals_own_settings():
    lm = HFUnmaskLM.create_from_arg_string("pretrained=tiny-dllm,batch_size=3", {"batch_size": "1", "device": "cpu"})
    assert lm.settings.batch_size == 3 and lm.device.type == "cpu"
    assert HFUnmaskLM.create_from_arg_string("pretrained=tiny-dllm", {"batch_size": "5"}).settings.batch_size == 5


def test_max_gen_toks_beyond_the_model_fails_before_any_generation_and_writes_nothing(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--model", "hf_unmask", "--model_args", MODEL_ARGS, "--tasks", TASK, "--include_path", str(TASKS_DIR),
              "--limit", "2", "--gen_kwargs", "max_gen_toks=200", "--log_samples", "--device", "cpu",
              "--output_path", str(tmp_path / "out")])  # fmt: skip
    err = capsys.readouterr().err
    assert exit_info.value.code == 2, err
    assert "max_gen_toks=200 means L = 200 generated positions after a prompt of" in err
    assert "handles 128 (config.max_position_embeddings)" in err and "--gen_kwargs max_gen_toks=N" in err
    assert not (tmp_path / "out").exists()
    lm = HFUnmaskLM(pretrained="tiny-dllm", block_length=8)
    lm.model.generate = lambda *a, **k: pytest.fail("generated although one request cannot run")
    ok = Instance("generate_until", {}, ("sort : 3 1 2", {"max_gen_toks": 16}), 0, ("t", 0, 1))
    too_long = Instance("generate_until", {}, ("sort : 3 1 2", {"max_gen_toks": 130}), 0, ("t", 1, 1))
    with pytest.raises(ModelArgumentError, match=r"L = 136 generated positions .* N <= 122"):
        lm.generate_until([ok, too_long])


def test_a_perplexity_task_names_what_to_evaluate_instead(tmp_path):
    (tmp_path / "rolling.yaml").write_text(ROLLING_TASK)
    with pytest.raises(ModelArgumentError) as err:
        simple_evaluate(
            model="hf_unmask", model_args=MODEL_ARGS, tasks=["hf_unmask_program_trace_rolling"], limit=2,
            task_manager=TaskManager(include_path=str(tmp_path), include_defaults=False),
        )  # fmt: skip
    message = str(err.value)
    assert "does not compute loglikelihood_rolling" in message
    assert re.search(r"generate_until tasks .* loglikelihood multiple-choice tasks", message)
