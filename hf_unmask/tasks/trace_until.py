"""`trace_until`: run an accumulator program until the value is 0; the answer is the number of steps."""

from __future__ import annotations

import random
from typing import ClassVar

from .base import VerifiableTask
from .program_trace import INSTRUCTIONS, run_instruction

#: values from which one instruction reaches 0 (`+c` with c = 10 - value); `*c` keeps a non-zero value non-zero
_ONE_STEP_FROM_ZERO = {10 - int(i[1:]): i for i in INSTRUCTIONS if i[0] == "+"}


class TraceUntil(VerifiableTask):
    """Run an accumulator program (`+c` / `*c` mod 10, as in `program_trace`) one instruction per step, writing the
    value after each step, *until* the value is 0; the answer is how many steps that took.

    Unlike `program_trace`, the prompt does not say how long the answer is: its length (3 to `num_slots` values,
    then `; answer : n`, then EOS padding) is only known once the chain has been computed, so a decoder that
    commits the answer's end (an EOS) before the chain exists cuts the answer short. This is the long-buffer
    regime of the paper, where full-diffusion heuristics fail. Each value needs the previous one (the k-th value
    all at once composes k mixed affine maps mod 10). The run lengths are uniform over 3..`num_slots`: each
    instruction before the stop is drawn among those that do not give 0, the stopping one among those that do,
    the rest of the program uniformly.

    Example:
        ```python
        >>> import random
        >>> from hf_unmask.tasks import get_task
        >>> task = get_task("trace_until")
        >>> ex = task.make_example(random.Random(0))
        >>> ex["prompt"]
        'until : 3 | *9 +1 *7 +3 *7 *7 *9 *7 +2 +3 +1 *9 +1 *9 +2 *7 +3 +4 *3 +1 +3 +4 +3 *3'
        >>> ex["reference"]
        '7 8 6 9 3 1 9 3 5 8 9 1 2 8 0 ; answer : 15'
        >>> task.is_correct("7 8 6 9 3 1 9 3 5 8 9 1 2 8 ; answer : 14", ex["reference"])
        False
        ```
    """

    name = "trace_until"
    reasoning = True
    num_slots: ClassVar[int] = 24
    min_run: ClassVar[int] = 3
    #: tokens of the longest reference (`num_slots` values + `; answer : n`): the buffer L must exceed it
    max_answer_tokens: ClassVar[int] = num_slots + 4

    def make_example(self, rng: random.Random) -> dict[str, str]:
        n = rng.randint(self.min_run, self.num_slots)
        while True:  # restart when the value before the last step cannot reach 0 in one instruction
            start = value = rng.randrange(1, 10)
            program, trace = [], []
            for _ in range(n - 1):
                instruction = rng.choice([i for i in INSTRUCTIONS if run_instruction(value, i) != 0])
                value = run_instruction(value, instruction)
                program.append(instruction)
                trace.append(value)
            if value in _ONE_STEP_FROM_ZERO:
                break
        program.append(_ONE_STEP_FROM_ZERO[value])
        trace.append(0)
        program += [rng.choice(INSTRUCTIONS) for _ in range(self.num_slots - n)]
        prompt = f"until : {start} | {' '.join(program)}"
        reference = " ".join(map(str, trace)) + f" ; answer : {n}"
        return {"prompt": prompt, "reference": reference}


class TraceUntilShort(TraceUntil):
    """`trace_until` with a length prior skewed short: a run of n steps is kept with probability
    `length_decay ** (n - min_run)` (0.85: half the runs take at most 7 steps, about one in thirteen more than 16), so
    long answers are rare. A dLLM trained on it and tested on the uniform lengths of `trace_until` has a length
    prior that is wrong for the test, as an SFT mix is for GSM8K: in full diffusion it commits EOS where the prior
    expects the answer to end, before the chain says so (docs/results/long_buffers.md).

    Example:
        ```python
        >>> import random
        >>> from hf_unmask.tasks import get_task
        >>> lengths = [len(ex["reference"].split()) - 4 for ex in get_task("trace_until_short").examples(400, seed=0)]
        >>> sorted(lengths)[200] <= 7 < 16 < max(lengths)
        True
        ```
    """

    name = "trace_until_short"
    length_decay: ClassVar[float] = 0.85

    def make_example(self, rng: random.Random) -> dict[str, str]:
        while True:
            example = super().make_example(rng)
            n = int(example["reference"].rsplit(" ", 1)[1])
            if rng.random() < self.length_decay ** (n - self.min_run):
                return example
