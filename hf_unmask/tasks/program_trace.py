"""`program_trace`: run the first n instructions of an accumulator program mod 10, one instruction per step."""

from __future__ import annotations

import random
from typing import ClassVar

from .base import VerifiableTask

#: Instructions: add a constant to the accumulator or multiply it by one coprime to 10 (mod 10, one token each).
#: Every instruction is a bijection of the digits, so no value is ever lost and the answer is uniformly spread.
INSTRUCTIONS = ["+1", "+2", "+3", "+4", "*3", "*7", "*9"]


def run_instruction(value: int, instruction: str) -> int:
    """Apply one instruction (`"+4"`, `"*3"`, or `"-2"`) to the accumulator, mod 10.

    Example:
        ```python
        >>> run_instruction(8, "*3"), run_instruction(9, "+4")
        (4, 3)
        ```
    """
    op, const = instruction[0], int(instruction[1:])
    if op == "+":
        return (value + const) % 10
    if op == "-":
        return (value - const) % 10
    if op == "*":
        return (value * const) % 10
    raise ValueError(f"Unknown instruction {instruction!r}.")


class ProgramTrace(VerifiableTask):
    """Trace an accumulator program: start from a digit, apply `+c` (c = 1..4) or `*c` (c = 3, 7, 9) mod 10, and
    write the accumulator after each of the first `n` instructions, then the answer (the last value).

    The prompt always lists `num_slots` instructions (so instruction i sits at a fixed distance from the i-th
    output) and says how many to run, so the reference has a variable length (`min_run` to `num_slots`
    values) followed by EOS padding. One instruction is a small table lookup given the previous value (easy one
    at a time); the k-th value all at once is a composition of k mixed affine maps mod 10 which, unlike a running
    sum, a shallow model cannot shortcut.

    Example:
        ```python
        >>> import random
        >>> from hf_unmask.tasks import get_task
        >>> task = get_task("program_trace")
        >>> ex = task.make_example(random.Random(0))
        >>> ex["prompt"]
        'trace : 6 | *9 +4 +1 +3 *3 +4 +4 *9 *9 +3 +4 | run 7'
        >>> ex["reference"]
        '4 8 9 2 6 0 4 ; answer : 4'
        >>> task.is_correct("4 8 9 2 ; answer : 2", ex["reference"])
        False
        ```
    """

    name = "program_trace"
    reasoning = True
    num_slots: ClassVar[int] = 11
    min_run: ClassVar[int] = 5

    def make_example(self, rng: random.Random) -> dict[str, str]:
        value = rng.randrange(10)
        program = [rng.choice(INSTRUCTIONS) for _ in range(self.num_slots)]
        n = rng.randint(self.min_run, self.num_slots)
        prompt = f"trace : {value} | {' '.join(program)} | run {n}"
        trace = []
        for instruction in program[:n]:
            value = run_instruction(value, instruction)
            trace.append(str(value))
        reference = " ".join(trace) + f" ; answer : {trace[-1]}"
        return {"prompt": prompt, "reference": reference}
