"""Offline lm-eval tasks on the built-in `program_trace` task, for `--include_path hf_unmask/lm_eval/tasks`.

* `hf_unmask_program_trace` (generate_until): the prompt is the task's prompt; the completion's final answer (the
  token after its last `answer :`, what the task's own verifier compares) must equal the reference's (exact match).
* `hf_unmask_program_trace_mc` (multiple choice, loglikelihood): the same prompts with four candidate completions,
  the right trace and the traces of the same program run from three other start values.

The data (`program_trace_test.jsonl`, `program_trace_mc_test.jsonl`, 32 test examples each) is written by
`write_task_data` from `hf_unmask.tasks` and read by the `load_*` functions the YAML files name, which find it
next to this file: the tasks load offline from a repository checkout and from an installed package alike, whatever
the working directory. `TASKS_DIR` is the folder to pass to `--include_path` (or to `TaskManager(include_path=...)`).
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any, Union

__all__ = [
    "TASKS_DIR",
    "load_program_trace",
    "load_program_trace_mc",
    "program_trace_mc_rows",
    "program_trace_rows",
    "write_task_data",
]

#: The folder holding the task YAML files and their data.
TASKS_DIR = Path(__file__).resolve().parent

_GENERATE_FILE = "program_trace_test.jsonl"
_MC_FILE = "program_trace_mc_test.jsonl"
_NUM_CHOICES = 4


def program_trace_rows(n_examples: int = 32, seed: int = 0) -> list[dict[str, str]]:
    """`{"prompt", "reference", "answer"}` for the first `n_examples` test examples of `program_trace` (the ones
    `hf-unmask evaluate --task program_trace` uses)."""
    from ...evaluation import EvaluationData
    from ...tasks import get_task

    task = get_task("program_trace")
    data = EvaluationData.from_task(task, n_examples=n_examples, split="test", seed=seed)
    return [
        {"prompt": p, "reference": r, "answer": task.final_answer(r)} for p, r in zip(data.prompts, data.references)
    ]


def _trace(start: int, program: list[str], n: int) -> str:
    from ...tasks.program_trace import run_instruction

    values, value = [], start
    for instruction in program[:n]:
        value = run_instruction(value, instruction)
        values.append(str(value))
    return " ".join(values) + f" ; answer : {values[-1]}"


def program_trace_mc_rows(n_examples: int = 32, seed: int = 0) -> list[dict[str, Any]]:
    """`{"prompt", "choices", "label"}`: each test prompt with its reference and the traces of the same program from
    three other start values (every instruction is a bijection of the digits, so they differ at every step), in a
    seeded order."""
    rows = []
    for index, row in enumerate(program_trace_rows(n_examples, seed)):
        head, program_text, run = row["prompt"].split(" | ")
        start, program, n = int(head.split(":")[1]), program_text.split(), int(run.split()[1])
        assert _trace(start, program, n) == row["reference"], row  # the format this parser reads
        others = [_trace((start + shift) % 10, program, n) for shift in (1, 3, 6)]
        choices = [row["reference"], *others][:_NUM_CHOICES]
        random.Random(seed * 1_000_003 + index).shuffle(choices)
        rows.append({"prompt": row["prompt"], "choices": choices, "label": choices.index(row["reference"])})
    return rows


def write_task_data(folder: Union[str, os.PathLike] = TASKS_DIR, n_examples: int = 32, seed: int = 0) -> list[Path]:
    """Write the JSONL files of both tasks into `folder`; returns their paths."""
    folder = Path(folder)
    paths = []
    for name, rows in (
        (_GENERATE_FILE, program_trace_rows(n_examples, seed)),
        (_MC_FILE, program_trace_mc_rows(n_examples, seed)),
    ):
        path = folder / name
        path.write_text("".join(json.dumps(row) + "\n" for row in rows))
        paths.append(path)
    return paths


def _load(name: str) -> Any:
    import datasets

    rows = [json.loads(line) for line in (TASKS_DIR / name).read_text().splitlines() if line.strip()]
    return datasets.DatasetDict({"test": datasets.Dataset.from_list(rows)})


def load_program_trace(**_: Any) -> Any:
    """The `hf_unmask_program_trace` data as a `DatasetDict` with a `test` split (lm-eval's `custom_dataset` hook,
    which passes the run's metadata and model arguments: ignored)."""
    return _load(_GENERATE_FILE)


def load_program_trace_mc(**_: Any) -> Any:
    """The `hf_unmask_program_trace_mc` data as a `DatasetDict` with a `test` split (see `load_program_trace`)."""
    return _load(_MC_FILE)
