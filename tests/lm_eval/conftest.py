"""Fixtures of the lm-eval tests (their shared helpers are in tests/lm_eval_runs.py)."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from lm_eval_runs import cli_args, run_cli, saved_run


@pytest.fixture(scope="session")
def one_process_cli_run(tmp_path_factory) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """`python -m hf_unmask.lm_eval` once, one process, batches of 4: its saved results and samples."""
    cwd = tmp_path_factory.mktemp("cli_one_process")
    done = run_cli([sys.executable], cli_args(cwd / "out", batch_size=4), cwd)
    assert done.returncode == 0, done.stderr[-4000:]
    return saved_run(cwd / "out")
