"""Evaluation and training decode the same token sequences into the same completions and judge them alike: both cut
at the dLLM's EOS set and decode through `hf_unmask.generation.text_io`."""

from __future__ import annotations

import torch
from grpo_toys import make_trainer, tiny_dllm, toy_dataset

from hf_unmask.evaluation import EvaluationData
from hf_unmask.evaluation.sweep import Sweep
from hf_unmask.rewards import TaskReward
from hf_unmask.tasks import get_task


def _sequences(tokenizer, rows):
    """Prompts (left-padded) followed by hand-made generations: a clean answer, an answer cut by EOS, a `[MASK]`
    left in it, an empty completion, a wrong answer and an answer without EOS."""
    answers = [r["reference"] for r in rows]
    eos, mask = tokenizer.eos_token_id, tokenizer.mask_token_id
    gen = []
    for k, answer in enumerate(answers):
        ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
        kind = k % 6
        if kind == 0:
            gen.append(ids + [eos])
        elif kind == 1:
            gen.append(ids + [eos] + ids)
        elif kind == 2:
            gen.append(ids[:1] + [mask] + ids[1:] + [eos])
        elif kind == 3:
            gen.append([eos] + ids)
        elif kind == 4:
            gen.append(ids[::-1] + [eos])
        else:
            gen.append(ids)
    width = max(map(len, gen))
    gen = [g + [eos] * (width - len(g)) for g in gen]
    prompts = tokenizer([r["prompt"] for r in rows], padding=True, padding_side="left", return_tensors="pt")
    return torch.cat([prompts["input_ids"], torch.tensor(gen)], dim=1), prompts["input_ids"].shape[1]


def test_evaluation_and_training_give_the_same_completions_and_verdicts(tmp_path):
    model, tokenizer = tiny_dllm()
    rows = [dict(r) for r in toy_dataset(12)]
    sequences, P = _sequences(tokenizer, rows)

    task = get_task("sort_digits")
    data = EvaluationData([r["prompt"] for r in rows], [r["reference"] for r in rows], task.is_correct)
    sweep = Sweep(model, tokenizer, data, [], 12, 0.0, {}, False, None)
    evaluated = sweep.completions(sequences, P)
    verdicts = [bool(data.is_correct(c, r)) for c, r in zip(evaluated, data.references)]

    trainer = make_trainer((model, tokenizer), tmp_path, reward=TaskReward("sort_digits"), dataset=toy_dataset(12))
    trained, completion_ids = trainer._completions(sequences, P)
    rewards = trainer._calculate_rewards(rows, [r["prompt"] for r in rows], trained, completion_ids)

    assert trained == evaluated
    assert rewards[:, 0].tolist() == [1.0 if ok else 0.0 for ok in verdicts]
    assert sorted(trainer.eos_token_ids) == sorted(sweep.eos_ids)
    # the hand-made kinds are really there: clean, cut, masked and no-EOS answers are right; empty and wrong are not
    assert verdicts[:6] == [True, True, True, False, verdicts[4], True] and evaluated[3] == ""
