"""What the lm-eval tests share: the run they compare (the built-in dLLM on the shipped `program_trace` task,
L = 16, block length 8) and how to launch `python -m hf_unmask.lm_eval` in a subprocess. (A module of its own:
`from conftest import ...` would find whichever conftest.py was imported first.)"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from hf_unmask.lm_eval import TASKS_DIR

TASK = "hf_unmask_program_trace"
MC_TASK = "hf_unmask_program_trace_mc"
#: The model of every comparison; the task's YAML asks for max_gen_toks 16, so L = 16.
MODEL_ARGS = "pretrained=tiny-dllm,block_length=8,strategy=confidence_threshold:threshold=0.9"
LIMIT = 12


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env.pop("PYTEST_XDIST_WORKER", None)
    return env


def run_cli(launcher: list[str], args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """`<launcher> -m hf_unmask.lm_eval <args>` in `cwd` (not the repository: the task data must load from anywhere)."""
    return subprocess.run(
        [*launcher, "-m", "hf_unmask.lm_eval", *args],
        cwd=cwd,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def saved_run(output_path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`(results JSON, logged samples of TASK sorted by doc_id)` that lm-eval saved under `output_path`."""
    [results_file] = list(output_path.rglob("results_*.json"))
    [samples_file] = list(output_path.rglob(f"samples_{TASK}_*.jsonl"))
    samples = [json.loads(line) for line in samples_file.read_text().splitlines() if line.strip()]
    return json.loads(results_file.read_text()), sorted(samples, key=lambda s: s["doc_id"])


def cli_args(output_path: Path, batch_size: int) -> list[str]:
    return [
        "--model", "hf_unmask",
        "--model_args", MODEL_ARGS,
        "--tasks", TASK,
        "--include_path", str(TASKS_DIR),
        "--limit", str(LIMIT),
        "--batch_size", str(batch_size),
        "--log_samples",
        "--output_path", str(output_path),
    ]  # fmt: skip
