"""Every entry point that encodes prompts leaves the tokenizer as it was: `padding_side` and `pad_token` unchanged
(left padding goes through the tokenizer call's `padding_side` argument)."""

from __future__ import annotations

import io

import pytest
from grpo_toys import make_trainer, policy_inputs, tiny_dllm
from lm_eval.api.instance import Instance

import hf_unmask
from hf_unmask.demo import run_demo
from hf_unmask.evaluation import evaluate_strategies
from hf_unmask.lm_eval import HFUnmaskLM
from hf_unmask.tasks.evaluate import generate_completions, task_accuracy

PROMPTS = ["sort : 3 1 2", "sort : 5 2 7 1 9"]


def text_interface(model, tokenizer, tmp_path):
    out = hf_unmask.DiffusionTextGenerator(model, tokenizer, max_new_tokens=8)(PROMPTS)
    assert len(out.texts) == 2


def evaluation(model, tokenizer, tmp_path):
    evaluate_strategies(model, tokenizer, "sort_digits", ["top_k_confidence:steps=8"], block_lengths=[None],
                        n_examples=3, max_new_tokens=8, batch_size=2, progress=False)  # fmt: skip


def training_rollouts(model, tokenizer, tmp_path):
    model, tokenizer_of_trainer = tiny_dllm()
    tokenizer_of_trainer.padding_side = tokenizer.padding_side
    trainer = make_trainer((model, tokenizer_of_trainer), tmp_path)
    trainer._generate_and_score_completions(policy_inputs(trainer, [0, 1]))
    assert tokenizer_of_trainer.padding_side == "right"


def tasks(model, tokenizer, tmp_path):
    generate_completions(model, tokenizer, PROMPTS, max_new_tokens=8)
    task = hf_unmask.tasks.get_task("sort_digits")
    task_accuracy(model, tokenizer, task, task.examples(2, seed=0), max_new_tokens=8)


def demo(model, tokenizer, tmp_path):
    run_demo(n_examples=2, output_dir=tmp_path / "demo", model=model, tokenizer=tokenizer, task="sort_digits",
             strategies=["top_k_confidence:steps=8"], max_new_tokens=8, stream=True, progress=False,
             out=io.StringIO(), long_buffer=False)  # fmt: skip


def lm_eval_model(model, tokenizer, tmp_path):
    lm = HFUnmaskLM(pretrained=model, tokenizer=tokenizer, block_length=8, max_new_tokens=8, batch_size=2)
    requests = [
        Instance("generate_until", {}, (p, {"until": [";"], "max_gen_toks": 8}), i) for i, p in enumerate(PROMPTS)
    ]
    assert len(lm.generate_until(requests)) == 2


@pytest.mark.parametrize(
    "entry_point",
    [text_interface, evaluation, training_rollouts, tasks, demo, lm_eval_model],
    ids=lambda f: f.__name__,
)
def test_the_tokenizer_is_left_as_it_was(entry_point, tmp_path):
    model, tokenizer = hf_unmask.load_builtin_model("tiny-dllm")
    tokenizer.padding_side = "right"
    pad = tokenizer.pad_token
    entry_point(model, tokenizer, tmp_path)
    assert tokenizer.padding_side == "right" and tokenizer.pad_token == pad
