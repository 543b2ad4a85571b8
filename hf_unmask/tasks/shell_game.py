"""`shell_game`: follow a ball under five cups through a sequence of swaps, one swap per step."""

from __future__ import annotations

import itertools
import random
from typing import ClassVar

from .base import VerifiableTask

CUPS = "abcde"
#: A swap of two cups is one token, e.g. `"bd"` swaps cups b and d.
SWAPS = ["".join(pair) for pair in itertools.combinations(CUPS, 2)]


def apply_swap(position: str, swap: str) -> str:
    """Where the ball is after `swap` when it was under cup `position`.

    Example:
        ```python
        >>> apply_swap("b", "bd"), apply_swap("d", "bd"), apply_swap("a", "bd")
        ('d', 'b', 'a')
        ```
    """
    if position == swap[0]:
        return swap[1]
    if position == swap[1]:
        return swap[0]
    return position


class ShellGame(VerifiableTask):
    """The shell game: a ball starts under one of five cups (a-e); write where it is after each of the first
    `n` swaps, then the answer (the final cup).

    The prompt always lists `num_slots` swaps and says how many to run, so the reference has a variable length
    followed by EOS padding. One swap is trivial given the previous position; the position after k swaps all at
    once composes k permutations of five cups (the word problem of S5, which a constant-depth model cannot
    compute in one pass for long sequences).

    Example:
        ```python
        >>> import random
        >>> from hf_unmask.tasks import get_task
        >>> task = get_task("shell_game")
        >>> ex = task.make_example(random.Random(0))
        >>> ex["prompt"]
        'cups : d | be ab bc ce cd be bc cd bd de ae | run 9'
        >>> ex["reference"]
        'd d d d c c b b d ; answer : d'
        >>> task.is_correct("d d d d c c b b c ; answer : c", ex["reference"])
        False
        ```
    """

    name = "shell_game"
    reasoning = True
    num_slots: ClassVar[int] = 11
    min_run: ClassVar[int] = 5

    def make_example(self, rng: random.Random) -> dict[str, str]:
        position = rng.choice(CUPS)
        swaps = [rng.choice(SWAPS) for _ in range(self.num_slots)]
        n = rng.randint(self.min_run, self.num_slots)
        prompt = f"cups : {position} | {' '.join(swaps)} | run {n}"
        trace = []
        for swap in swaps[:n]:
            position = apply_swap(position, swap)
            trace.append(position)
        reference = " ".join(trace) + f" ; answer : {trace[-1]}"
        return {"prompt": prompt, "reference": reference}
