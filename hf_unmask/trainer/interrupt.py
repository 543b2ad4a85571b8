"""Ctrl-C during training: finish the current optimiser step, log it, save a checkpoint, stop.

`UnmaskingGRPOTrainer.train` installs `StopOnInterrupt` for the duration of the call: the first SIGINT only sets a
flag (training state is never left half-updated), the trainer's own checkpointing then writes `checkpoint-<step>/`
(the policy's config.json + model.safetensors, loadable with `ConfidencePolicy.from_pretrained`, plus the optimiser,
scheduler, RNG and `trainer_state.json` that `resume_from_checkpoint` reads) and `train` raises
`TrainingInterrupted`. A second Ctrl-C stops at once, without saving.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

import torch
from transformers import TrainerCallback

__all__ = ["StopOnInterrupt", "TrainingInterrupted"]

_FIRST_CTRL_C = (
    "\nCtrl-C: finishing the current step, then saving a checkpoint (press Ctrl-C again to stop at once, without "
    "saving).\n"
)


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped training; `str(err)` says what was saved, `checkpoint` is the checkpoint folder (or None).

    Example (not run in tests: it needs a training run stopped by Ctrl-C; tests/trainer/ sends the SIGINT for real):
        ```python
        >>> try:  # doctest: +SKIP
        ...     trainer.train()
        ... except TrainingInterrupted as stop:
        ...     trainer.train(resume_from_checkpoint=stop.checkpoint)
        ```
    """

    def __init__(self, message: str, step: int = 0, checkpoint: Optional[str] = None) -> None:
        super().__init__(message)
        self.step = step
        self.checkpoint = checkpoint

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "training interrupted"


class StopOnInterrupt(TrainerCallback):
    """A `TrainerCallback` that turns the first SIGINT into "log, save a checkpoint and stop after this step".

    Under several processes (`accelerate launch`) the request is shared at every step end, so all ranks stop at the
    same step even when the signal reached only some of them.
    """

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    @contextmanager
    def installed(self) -> Iterator[StopOnInterrupt]:
        """Handle SIGINT while the block runs (main thread only: signal handlers cannot be set elsewhere)."""
        self.requested = False
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = signal.signal(signal.SIGINT, self._on_sigint)
        self._previous = previous if previous is not None else signal.default_int_handler  # None: set outside Python
        try:
            yield self
        finally:
            if signal.getsignal(signal.SIGINT) == self._on_sigint:
                signal.signal(signal.SIGINT, self._previous)

    def _on_sigint(self, signum: int, frame: Any) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)  # the next Ctrl-C interrupts at once
        # os.write, not print: the handler may run while the progress bar is writing to the same stream
        os.write(2, _FIRST_CTRL_C.encode())

    def _requested_anywhere(self, args: Any) -> bool:
        dist = torch.distributed
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            flag = torch.tensor([float(self.requested)], device=args.device)
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            return bool(flag.item())
        return self.requested

    def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.is_world_process_zero and threading.current_thread() is threading.main_thread():
            print(
                f"Training the policy for {state.max_steps} steps, checkpoints in {args.output_dir} (Ctrl-C saves one "
                "and stops).",
                flush=True,
            )
        return control

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if self._requested_anywhere(args):
            self.requested = True
            control.should_log = True  # the metrics of the steps since the last log reach trainer_state.json
            control.should_save = True
            control.should_training_stop = True
        return control
