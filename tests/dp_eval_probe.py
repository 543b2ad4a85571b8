"""Run `evaluate_strategies` on every rank of a launcher (`torchrun --nproc_per_node 2 tests/dp_eval_probe.py OUT`)
with a step callback that raises the `KeyboardInterrupt` Ctrl-C would on rank 1 only, at its 9th `generate` call, and
slows rank 0 down from its 7th call on; record what each rank ended with in `OUT/rank<r>.json`. Used by
tests/evaluation/test_eval_distributed.py (not a test module)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from hf_unmask.evaluation import EvaluationInterrupted, evaluate_strategies
from hf_unmask.evaluation.distributed import init_distributed
from hf_unmask.models import load_dllm

#: What the probe evaluates; the test evaluates the same in one process.
SWEEP = dict(
    task="program_trace",
    strategies=["top_k_confidence:steps=4,16", "random:steps=8"],
    block_lengths=[8],
    seeds=[0, 1],
    n_examples=12,
    batch_size=2,
    keep_samples=True,
    progress=False,
)
INTERRUPTED_CALL = 9  # rank 1: 3 calls per top-k setting (run once), then 6 for random (two seeds): in the third
SLOW_FROM_CALL = 7  # rank 0: sleep 0.3 s per call from the third setting on, so that it is still running then

if __name__ == "__main__":
    out = Path(sys.argv[1])
    torch.set_num_threads(1)
    ctx = init_distributed()
    model, tokenizer = load_dllm("builtin")
    calls = []

    def on_step(step):
        if step.step != 0:
            return
        calls.append(1)
        if ctx.rank == 1 and len(calls) == INTERRUPTED_CALL:
            raise KeyboardInterrupt
        if ctx.rank == 0 and len(calls) >= SLOW_FROM_CALL:
            time.sleep(0.3)

    ctx.barrier()  # both ranks start together
    record = {"rank": ctx.rank, "world_size": ctx.world_size}
    try:
        result = evaluate_strategies(model, tokenizer, generation_kwargs={"callback_on_step_end": on_step}, **SWEEP)
        record["ended"] = "complete"
    except EvaluationInterrupted as stop:
        result = stop.result
        record["ended"] = "interrupted" if stop.rank is None else f"own work of rank {stop.rank}"
    record.update(calls=len(calls), rows=result.rows, meta=result.meta, samples=result.samples)
    (out / f"rank{ctx.rank}.json").write_text(json.dumps(record))
    ctx.close()
