"""`sort_digits`: sort a list of digits (out of domain: no reasoning chain)."""

from __future__ import annotations

import random
from typing import ClassVar

from ._format import normalise
from .base import VerifiableTask


class SortDigits(VerifiableTask):
    """Sort 3 to 10 digits in ascending order. An out-of-domain task for transfer studies (`reasoning = False`):
    every output position can be computed at once from digit counts, so the unmasking order matters little.

    Example:
        ```python
        >>> import random
        >>> from hf_unmask.tasks import get_task
        >>> task = get_task("sort_digits")
        >>> task.is_correct("1 3 3 7 9", "1 3 3 7 9"), task.is_correct("1 3 7 9", "1 3 3 7 9")
        (True, False)
        ```
    """

    name = "sort_digits"
    reasoning = False
    min_length: ClassVar[int] = 3
    max_length: ClassVar[int] = 10

    def make_example(self, rng: random.Random) -> dict[str, str]:
        digits = [rng.randrange(10) for _ in range(rng.randint(self.min_length, self.max_length))]
        prompt = "sort : " + " ".join(map(str, digits))
        reference = " ".join(map(str, sorted(digits)))
        return {"prompt": prompt, "reference": reference}

    def final_answer(self, text: str) -> str:
        return normalise(text)

    def is_correct(self, completion: str, reference: str) -> bool:
        answer = self.final_answer(completion)
        return answer != "" and answer == self.final_answer(reference)
