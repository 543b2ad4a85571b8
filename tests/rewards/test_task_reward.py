"""hf_unmask.rewards.task: the built-in task verifiers as rewards."""

from __future__ import annotations

import pytest

from hf_unmask.rewards import TaskReward, get_reward_function, task_reward


def _task_names() -> list[str]:
    from hf_unmask.tasks import TASK_REGISTRY

    return sorted(TASK_REGISTRY)


@pytest.mark.parametrize("name", _task_names())
def test_task_reward_accepts_references_and_rejects_empty(name):
    from hf_unmask.tasks import get_task

    examples = get_task(name).examples(6, seed=0)
    reward = task_reward(name)
    prompts = [ex["prompt"] for ex in examples]
    refs = [ex["reference"] for ex in examples]
    assert reward(prompts, refs, reference=refs) == [1.0] * len(refs)
    assert reward(prompts, [""] * len(refs), reference=refs) == [0.0] * len(refs)
    assert reward.required_columns == ("reference",)
    assert reward.__name__ == f"{name}_reward"


def test_task_reward_program_trace_wrong_answer():
    from hf_unmask.tasks import get_task

    ex = get_task("program_trace").examples(1, seed=3)[0]
    ref = ex["reference"]
    answer = ref.rsplit("answer : ", 1)[1]
    wrong = ref.rsplit("answer : ", 1)[0] + f"answer : {(int(answer) + 1) % 10}"
    reward = get_reward_function("task:program_trace")
    assert isinstance(reward, TaskReward)
    # TRL passes extra keyword arguments besides the columns; they are ignored.
    out = reward([ex["prompt"]] * 2, [ref, wrong], reference=[ref, ref], completion_ids=[[1], [2]], trainer_state=None)
    assert out == [1.0, 0.0]
    # conversational completions (TRL's chat format) are read from the last message
    chat = [[{"role": "assistant", "content": ref}], [{"role": "assistant", "content": wrong}]]
    assert reward([ex["prompt"]] * 2, chat, reference=[ref, ref]) == [1.0, 0.0]


def test_task_reward_missing_column_is_clear():
    reward = task_reward("program_trace")
    with pytest.raises(KeyError, match="needs the dataset column 'reference'"):
        reward(["p"], ["answer : 1"], answer=["1"])
