"""Data parallelism: `torchrun --nproc_per_node 2 -m hf_unmask.lm_eval` (gloo, CPU) splits the documents over two
processes and saves the same per-sample outputs, NFE and metrics as one process (greedy generation does not depend
on which prompts share a batch)."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from lm_eval_runs import LIMIT, cli_args, run_cli, saved_run

TORCHRUN = Path(sys.executable).parent / "torchrun"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_two_processes_give_the_same_samples_and_metrics_as_one(one_process_cli_run, tmp_path):
    launcher = [str(TORCHRUN), "--nproc_per_node", "2", "--master_port", str(free_port())]
    done = run_cli(launcher, cli_args(tmp_path / "out", batch_size=3), tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    two_results, two_samples = saved_run(tmp_path / "out")
    one_results, one_samples = one_process_cli_run
    assert [s["doc_id"] for s in two_samples] == list(range(LIMIT))  # every document once, from both ranks
    keys = ("doc_id", "resps", "filtered_resps", "exact_match", "nfe", "gen_tokens")
    assert [{k: s[k] for k in keys} for s in two_samples] == [{k: s[k] for k in keys} for s in one_samples]
    assert two_results["results"] == one_results["results"]
    assert {s["nfe"] for s in one_samples} != {16}  # an adaptive strategy: NFE varies from sample to sample
