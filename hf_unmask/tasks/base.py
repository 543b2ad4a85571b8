"""Verifiable tasks: seeded generators of (prompt, reference) pairs with a verifier."""

from __future__ import annotations

import random
from typing import ClassVar

from datasets import Dataset, DatasetDict

from ._format import answer_after_marker

TASK_REGISTRY: dict[str, type[VerifiableTask]] = {}


class VerifiableTask:
    """A task whose answers can be checked by a program.

    Subclasses set `name` and implement `make_example(rng) -> {"prompt": str, "reference": str}` and
    `is_correct(completion, reference) -> bool`. The reference is the full expected completion (reasoning
    chain and final answer); `final_answer(text)` extracts what the verifier compares.

    Example:
        ```python
        >>> from hf_unmask.tasks import get_task
        >>> task = get_task("program_trace")
        >>> ds = task.dataset(n_train=100, n_test=20, seed=0)
        >>> ds["test"].num_rows, task.is_correct(ds["test"][0]["reference"], ds["test"][0]["reference"])
        (20, True)
        ```
    """

    name: ClassVar[str] = ""
    #: True for the tasks meant to show that unmasking order matters (GSM8K-like chains).
    reasoning: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        if cls.name:
            TASK_REGISTRY[cls.name] = cls

    def make_example(self, rng: random.Random) -> dict[str, str]:
        raise NotImplementedError

    def final_answer(self, text: str) -> str:
        """The token after the last `answer :` marker (the built-in format); override for other formats."""
        return answer_after_marker(text)

    def is_correct(self, completion: str, reference: str) -> bool:
        """A completion is right when it states the reference's final answer."""
        answer = self.final_answer(completion)
        return answer != "" and answer == self.final_answer(reference)

    def examples(self, n: int, seed: int) -> list[dict[str, str]]:
        rng = random.Random(seed)
        return [self.make_example(rng) for _ in range(n)]

    def dataset(self, n_train: int = 20000, n_test: int = 500, seed: int = 0) -> DatasetDict:
        """Train/test splits with disjoint prompts (test prompts never appear in train)."""
        test = _unique(self.examples(n_test * 2, seed + 1_000_003))[:n_test]
        test_prompts = {ex["prompt"] for ex in test}
        train = [ex for ex in self.examples(n_train * 2, seed) if ex["prompt"] not in test_prompts]
        train = _unique(train)[:n_train]
        return DatasetDict({"train": Dataset.from_list(train), "test": Dataset.from_list(test)})


def _unique(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    seen: set[str] = set()
    out = []
    for row in rows:
        if row["prompt"] not in seen:
            seen.add(row["prompt"])
            out.append(row)
    return out


def get_task(name: str) -> VerifiableTask:
    """Instantiate a built-in task by name."""
    if name not in TASK_REGISTRY:
        raise ValueError(f"Unknown task '{name}'. Built-in tasks: {', '.join(sorted(TASK_REGISTRY)) or '(none)'}.")
    return TASK_REGISTRY[name]()
