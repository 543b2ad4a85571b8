"""Run a training script as `__main__` (exactly as `accelerate launch script.py ...` would), then record what each
process ended with: `<output_dir>/rank<i>.json` with the distributed type, world size, how the policy was wrapped and
a checksum of its weights. Used by tests/trainer/test_train_script.py to check that the ranks trained one shared policy."""

from __future__ import annotations

import json
import runpy
import sys
from pathlib import Path

if __name__ == "__main__":
    script = sys.argv[1]
    sys.argv = [script, *sys.argv[2:]]
    trainer = runpy.run_path(script, run_name="__main__")["trainer"]
    state = trainer.accelerator.state
    record = {
        "distributed_type": getattr(state.distributed_type, "value", str(state.distributed_type)),
        "num_processes": state.num_processes,
        "backend": str(getattr(state, "backend", None)),
        "wrapped": type(trainer.model_wrapped).__name__,
        "checksum": sum(float(p.double().abs().sum()) for p in trainer.policy.parameters()),
        "global_step": trainer.state.global_step,
    }
    out = Path(trainer.args.output_dir) / f"rank{state.process_index}.json"
    out.write_text(json.dumps(record))
