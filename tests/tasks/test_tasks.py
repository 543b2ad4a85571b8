"""The built-in verifiable tasks: seeded generators, verifiers, disjoint splits, tokenizer coverage."""

from __future__ import annotations

import random

import pytest

from hf_unmask.tasks import TASK_REGISTRY, ProgramTrace, ShellGame, SortDigits, TraceUntil, VerifiableTask, get_task
from hf_unmask.tasks.program_trace import INSTRUCTIONS, run_instruction
from hf_unmask.tasks.shell_game import SWAPS

BUILTIN = ["program_trace", "shell_game", "sort_digits", "trace_until", "trace_until_short"]
#: the shortest buffer L each task is trained with (its answers must leave room for one EOS)
SHORTEST_L = {"program_trace": 16, "shell_game": 16, "sort_digits": 16, "trace_until": 32, "trace_until_short": 32}


def test_builtin_tasks_are_registered() -> None:
    for name in BUILTIN:
        assert name in TASK_REGISTRY
        assert isinstance(get_task(name), VerifiableTask)
    assert get_task("shell_game").reasoning and get_task("program_trace").reasoning
    assert not get_task("sort_digits").reasoning
    with pytest.raises(ValueError, match="Built-in tasks"):
        get_task("no_such_task")


@pytest.mark.parametrize("name", BUILTIN)
def test_generator_is_deterministic_per_seed(name: str) -> None:
    task = get_task(name)
    assert task.examples(20, seed=3) == task.examples(20, seed=3)
    assert task.examples(20, seed=3) != task.examples(20, seed=4)
    first = task.make_example(random.Random(7))
    assert first == task.make_example(random.Random(7))
    assert set(first) == {"prompt", "reference"}


@pytest.mark.parametrize("name", BUILTIN)
def test_verifier_accepts_reference_and_rejects_corruptions(name: str) -> None:
    task = get_task(name)
    for ex in task.examples(50, seed=11):
        ref = ex["reference"]
        assert task.is_correct(ref, ref)
        assert task.is_correct("  " + ref.replace(" ", "  ") + " ", ref)  # whitespace-insensitive
        assert not task.is_correct("", ref)
        # truncated: the chain without its final answer
        assert not task.is_correct(" ".join(ref.split()[:-2]), ref)
        # wrong final answer
        tokens = ref.split()
        replacement = next(c for c in "0123456789abcde" if c != tokens[-1])
        assert not task.is_correct(" ".join(tokens[:-1] + [replacement]), ref)


@pytest.mark.parametrize("name", BUILTIN)
def test_dataset_splits_are_disjoint(name: str) -> None:
    splits = get_task(name).dataset(n_train=300, n_test=60, seed=0)
    train, test = splits["train"], splits["test"]
    assert len(train) == 300 and len(test) == 60
    assert set(train.column_names) == {"prompt", "reference"}
    assert not set(train["prompt"]) & set(test["prompt"])
    assert len(set(test["prompt"])) == len(test)
    # the test split depends only on (n_test, seed): a benchmark asking for fewer test examples gets a prefix
    assert get_task(name).dataset(n_train=0, n_test=20, seed=0)["test"]["prompt"] == test["prompt"][:20]


def _parse_machine_prompt(prompt: str) -> tuple[str, list[str], int]:
    """`'<name> : <start> | <slot> ... | run <n>'` -> (start, slots, n)."""
    head, slots, run = prompt.split(" | ")
    assert run.startswith("run ")
    return head.split(" : ")[1], slots.split(), int(run.split()[1])


def test_program_trace_reference_executes_the_program() -> None:
    task = ProgramTrace()
    runs = set()
    for ex in task.examples(200, seed=2):
        start, program, n = _parse_machine_prompt(ex["prompt"])
        assert len(program) == task.num_slots  # fixed slots: instruction i is at a fixed distance from output i
        value, expected = int(start), []
        for instruction in program[:n]:
            op, const = instruction[0], int(instruction[1:])
            value = {"+": value + const, "-": value - const, "*": value * const}[op] % 10
            expected.append(str(value))
        chain, answer = ex["reference"].split(" ; ")
        assert chain.split() == expected and answer == f"answer : {expected[-1]}"
        runs.add(n)
    assert runs == set(range(task.min_run, task.num_slots + 1))  # variable length
    assert run_instruction(7, "*3") == 1 and run_instruction(1, "-4") == 7 and run_instruction(9, "+2") == 1
    assert {i for ex in task.examples(50, seed=0) for i in _parse_machine_prompt(ex["prompt"])[1]} == set(INSTRUCTIONS)


def test_shell_game_reference_follows_the_ball() -> None:
    task = ShellGame()
    runs = set()
    for ex in task.examples(200, seed=3):
        position, swaps, n = _parse_machine_prompt(ex["prompt"])
        assert len(swaps) == task.num_slots and all(s in SWAPS for s in swaps)
        cups = {c: c == position for c in "abcde"}  # simulate the cups themselves, not the ball
        expected = []
        for swap in swaps[:n]:
            cups[swap[0]], cups[swap[1]] = cups[swap[1]], cups[swap[0]]
            expected.append(next(c for c, has_ball in cups.items() if has_ball))
        chain, answer = ex["reference"].split(" ; ")
        assert chain.split() == expected and answer == f"answer : {expected[-1]}"
        runs.add(n)
    assert runs == set(range(task.min_run, task.num_slots + 1))


def test_sort_digits_reference_is_sorted() -> None:
    task = SortDigits()
    for ex in task.examples(50, seed=3):
        digits = ex["prompt"].removeprefix("sort : ").split()
        assert ex["reference"].split() == sorted(digits)
    assert not task.is_correct("1 2 3", "1 2 3 4")


@pytest.mark.parametrize("name", BUILTIN)
def test_tokenizer_covers_the_task_and_fits_the_answer_length(name: str) -> None:
    from hf_unmask.models.tiny import build_tokenizer

    tokenizer = build_tokenizer()
    for ex in get_task(name).examples(200, seed=5):
        prompt = tokenizer(ex["prompt"]).input_ids
        answer = tokenizer(ex["reference"], add_special_tokens=False).input_ids
        assert tokenizer.unk_token_id not in prompt + answer
        assert len(answer) < SHORTEST_L[name]  # the shortest L leaves room for at least one EOS
        assert tokenizer.decode(answer) == ex["reference"]


def test_trace_until_runs_the_program_until_the_value_is_zero() -> None:
    task = TraceUntil()
    lengths = set()
    for ex in task.examples(300, seed=4):
        head, slots = ex["prompt"].split(" | ")
        program = slots.split()
        assert len(program) == task.num_slots
        value, trace = int(head.split(" : ")[1]), []
        assert value != 0
        for instruction in program:  # run until the accumulator is 0
            value = run_instruction(value, instruction)
            trace.append(value)
            if value == 0:
                break
        assert trace[-1] == 0  # 0 is always reached within the listed program
        chain, answer = ex["reference"].split(" ; ")
        assert chain.split() == [str(v) for v in trace] and answer == f"answer : {len(trace)}"
        lengths.add(len(trace))
    # the answer's length varies over the whole range and is not written in the prompt
    assert lengths == set(range(task.min_run, task.num_slots + 1))
    assert len(ex["reference"].split()) <= task.max_answer_tokens


def test_trace_until_short_skews_the_same_examples_towards_short_runs() -> None:
    from hf_unmask.tasks import TraceUntilShort

    short = TraceUntilShort().examples(2000, seed=3)
    uniform = TraceUntil().examples(2000, seed=3)
    runs = [int(ex["reference"].rsplit(" ", 1)[1]) for ex in short]
    assert min(runs) == 3 and max(runs) > 16
    assert sum(runs) / len(runs) < 0.7 * sum(int(ex["reference"].rsplit(" ", 1)[1]) for ex in uniform) / len(uniform)
    counts = [runs.count(n) for n in (3, 8, 13)]
    assert counts[0] > counts[1] > counts[2]  # the keep probability decays with the run length
    task = TraceUntil()
    assert all(task.is_correct(ex["reference"], ex["reference"]) for ex in short[:50])
