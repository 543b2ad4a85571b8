"""Data-parallel evaluation (hf_unmask.evaluation.distributed): `torchrun` with 2 CPU processes (gloo) gives the rows
and samples of one process; Ctrl-C, to the whole process group or on one rank only, keeps the settings every rank
finished; a rank that never reaches the gather is given up on, not waited for."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from datetime import timedelta

import pytest
import torch
from interrupting import REPO, interrupt_when, progress_at_least, subprocess_env

from hf_unmask.cli import main
from hf_unmask.evaluation import EvaluationInterrupted, EvaluationResult, evaluate_strategies
from hf_unmask.evaluation.distributed import DistributedContext, init_distributed
from hf_unmask.models import load_dllm

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
# 10 examples in batches of 3: 4 batches, two per rank, the last one short; a deterministic and a sampled family
SWEEP = [
    "evaluate", "--task", "program_trace", "--n-examples", "10", "--batch-size", "3", "--seeds", "0", "1",
    "--strategy", "top_k_confidence:steps=4,16", "--strategy", "random:steps=8", "--block-length", "8,full",
    "--save-completions", "--no-progress",
]  # fmt: skip
TIMING = {"wall_time_s"}


def _table(folder):
    table = json.loads((folder / "evaluation.json").read_text())
    rows = [{k: v for k, v in row.items() if k not in TIMING} for row in table["rows"]]
    return table["meta"], rows


def test_two_processes_give_the_rows_and_samples_of_one(tmp_path, capsys):
    assert main([*SWEEP, "--output-dir", str(tmp_path / "one")]) == 0
    assert "hf_unmask: " in capsys.readouterr().err  # the thread line
    done = subprocess.run(
        [*TORCHRUN, "-m", "hf_unmask", *SWEEP, "--output-dir", str(tmp_path / "two")],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.count("json: ") == 1 and done.stderr.count("hf_unmask: 1 CPU thread") == 1  # rank 0 only
    one_meta, one_rows = _table(tmp_path / "one")
    two_meta, two_rows = _table(tmp_path / "two")
    assert two_rows == one_rows and len(one_rows) == 6
    assert any(0 < row["accuracy_std"] for row in one_rows)  # the sampled family: seeds differ
    assert (one_meta["world_size"], two_meta["world_size"], two_meta["complete"]) == (1, 2, True)
    assert (tmp_path / "two" / "samples.jsonl").read_bytes() == (tmp_path / "one" / "samples.jsonl").read_bytes()
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == [
        "evaluation.csv", "evaluation.json", "pareto.png", "samples.jsonl"
    ]  # fmt: skip


def test_ctrl_c_to_the_process_group_keeps_what_every_rank_finished(tmp_path):
    out = tmp_path / "eval"
    command = [
        *TORCHRUN, "-m", "hf_unmask.cli", "evaluate", "--task", "program_trace", "--n-examples", "64",
        "--batch-size", "2", "--seeds", "0", "--strategy", "top_k_confidence:steps=2,4,8,16",
        "--strategy", "random:steps=2,4,8,16", "--block-length", "8", "--output-dir", str(out),
    ]  # fmt: skip
    # rank 0's bar counts its own batches: 16 per setting, 128 in all; at 64 both ranks are a few settings in
    done = interrupt_when(command, progress_at_least(64), cwd=tmp_path, env=subprocess_env(), timeout=150)
    assert done.interrupted, "the evaluation finished before it could be interrupted:\n" + done.describe()
    assert done.returncode != 0, done.describe()  # torchrun reports the signal
    assert "rank 1's finished work went to rank 0" in done.stderr, done.describe()
    said = [
        line for line in done.stderr.splitlines() if line.startswith("hf-unmask evaluate: interrupted: evaluation")
    ]
    assert len(said) == 1 and str(out / "evaluation.json") in said[0], done.describe()
    meta, rows = _table(out)
    assert meta["complete"] is False and meta["world_size"] == 2 and meta["settings_planned"] == 8
    assert 1 <= meta["settings_done"] == len(rows) < 8, done.describe()
    assert all(row["n_examples"] == 64 for row in rows)  # both ranks' examples, not one rank's half
    assert not any(out.glob("rank*"))


def test_ctrl_c_on_one_rank_stops_the_others_and_keeps_the_common_settings(tmp_path):
    """Rank 1 alone is interrupted (its step callback raises) in the third setting; rank 0, slowed down there, stops at
    its next batch instead of running to the end, and both return the settings both finished, as one process
    computes them."""
    from dp_eval_probe import SWEEP as PROBE_SWEEP  # tests/ is on sys.path: conftest.py is there

    done = subprocess.run(
        [*TORCHRUN, str(REPO / "tests" / "dp_eval_probe.py"), str(tmp_path)],
        cwd=tmp_path,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["ended"] for r in ranks] == ["interrupted", "interrupted"]
    assert ranks[0]["calls"] < 12  # rank 0 alone would make 3 + 3 + 6 generate calls
    done_settings = ranks[0]["meta"]["settings_done"]
    assert done_settings in (1, 2) and ranks[1]["rows"] == ranks[0]["rows"] and ranks[1]["samples"] == []
    model, tokenizer = load_dllm("builtin")
    reference = evaluate_strategies(model, tokenizer, distributed=False, **PROBE_SWEEP)
    strip = lambda rows: [{k: v for k, v in row.items() if k not in TIMING | {"pareto"}} for row in rows]  # noqa: E731
    assert strip(ranks[0]["rows"]) == strip(reference.rows[:done_settings])
    n_samples = sum(len(row["seeds"]) * row["n_examples"] for row in reference.rows[:done_settings])
    assert ranks[0]["samples"] == reference.samples[:n_samples]


def _two_ranks_on_one_store():
    store = torch.distributed.TCPStore("127.0.0.1", 0, 1, True, timeout=timedelta(seconds=10))
    return [DistributedContext(rank=r, world_size=2, store=store) for r in (0, 1)]


def test_a_rank_that_never_arrives_is_given_up_on():
    first, second = _two_ranks_on_one_store()
    for ctx in (first, second):
        ctx.start_run()
    started = time.monotonic()
    assert first.gather_to_main({"rows": []}, wait=0.5) is None  # rank 1 never came
    assert 0.5 <= time.monotonic() - started < 5
    assert second.gather_to_main({"rows": []}, wait=60) is None  # arriving late: abandoned, no wait, no collective
    assert time.monotonic() - started < 5


def test_stop_requests_reach_the_other_ranks_of_the_same_run_only():
    first, second = _two_ranks_on_one_store()
    for ctx in (first, second):
        ctx.start_run()
    assert not second.stop_requested()
    first.request_stop()
    assert second.stop_requested() and first.stop_requested()
    for ctx in (first, second):
        ctx.start_run()  # the next evaluation starts afresh
    assert not second.stop_requested()


def test_ctrl_c_while_waiting_for_a_slow_rank_waits_only_a_short_while(monkeypatch):
    from hf_unmask.evaluation import distributed

    monkeypatch.setattr(distributed, "STOP_WAIT_SECONDS", 0.3)
    first, second = _two_ranks_on_one_store()
    first.start_run()
    second.start_run()
    timer = threading.Timer(0.3, lambda: __import__("_thread").interrupt_main())
    timer.start()
    started = time.monotonic()
    assert first.gather_to_main({}, wait=3600) is None  # Ctrl-C at 0.3 s, then 0.3 s more for rank 1
    assert time.monotonic() - started < 5 and second.stop_requested()  # and rank 1 is told to stop
    timer.join()


def test_one_process_without_a_launcher(tmp_path):
    ctx = init_distributed()
    assert (ctx.rank, ctx.world_size, ctx.is_main) == (0, 1, True)
    assert ctx.gather_to_main("x", wait=0) == ["x"] and ctx.broadcast_from_main("y") == "y"
    assert ctx.shard([1, 2, 3]) == [1, 2, 3] and not ctx.stop_requested()


def test_one_ranks_own_work_goes_to_its_folder(tmp_path):
    meta = {"task": "t", "model": "m", "gen_length": 16, "complete": False, "settings_done": 0, "settings_planned": 2}
    stop = EvaluationInterrupted(EvaluationResult(rows=[], meta=meta), rank=1)
    paths = stop.save(tmp_path)
    assert paths["json"] == tmp_path / "rank1" / "evaluation.json" and paths["json"].is_file()
    assert "on rank 1's own batches" in str(stop) and str(paths["json"]) in str(stop)


@pytest.mark.parametrize("bad", ["0", "-2", "two"])
def test_bad_num_threads(bad, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("HF_UNMASK_NUM_THREADS", bad)
    assert main(["evaluate", "--task", "program_trace", "--output-dir", str(tmp_path), "--no-progress"]) == 2
    assert "HF_UNMASK_NUM_THREADS must be a positive integer" in capsys.readouterr().err
