"""Data-parallel evaluation: which process this is, which batches it runs, and how the results meet on rank 0.

Under `torchrun` or `accelerate launch` (their `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR` / `MASTER_PORT`
environment), `init_distributed` starts the process group from that environment (`gloo` on CPU, `nccl` with CUDA, one
device per process chosen by `LOCAL_RANK`) or uses the one the program started itself. Ranks coordinate through the
group's key-value store, never by waiting in a collective for a rank that may be gone: a rank that reaches the
gather counts itself there; the last to arrive marks the gather open, a rank that waited too long marks it abandoned
(whichever comes first, atomically), and every rank enters the collective only when it is open. Without a launcher everything here is a no-op for one process.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Optional, TypeVar

import torch

__all__ = [
    "COLLECTIVE_TIMEOUT",
    "FINISH_WAIT_SECONDS",
    "STOP_WAIT_SECONDS",
    "DistributedContext",
    "close_distributed",
    "init_distributed",
    "interrupt_once",
    "launched",
]

T = TypeVar("T")

#: After Ctrl-C, how long a rank waits for the others to reach the gather before it keeps its own work (torchrun and
#: accelerate forward Ctrl-C to every process and kill them 30 s later).
STOP_WAIT_SECONDS = 15.0
#: At the end of an evaluation, how long a rank that finished waits for the slowest one.
FINISH_WAIT_SECONDS = 3600.0
#: How long a collective may wait for the other ranks: generation on a large model can keep one rank busy long
#: after another reached a gather (lm-eval's evaluator gathers with plain collectives).
COLLECTIVE_TIMEOUT = timedelta(hours=12)


def launched() -> bool:
    """Whether a multi-process launcher started this process (`WORLD_SIZE` > 1 in the environment)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1
    except ValueError:
        return False


@dataclass
class DistributedContext:
    """This process's place in a data-parallel evaluation; the default is one process doing everything.

    Example:
        ```python
        >>> ctx = DistributedContext(rank=1, world_size=2)  # rank 1 of 2 runs batches 1, 3, 5, ...
        >>> ctx.shard(["b0", "b1", "b2", "b3", "b4"]), ctx.is_main
        (['b1', 'b3'], False)
        >>> init_distributed().world_size  # no launcher here: one process
        1
        ```
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    store: Any = None  # the process group's key-value store
    group: Any = None  # a gloo group for Python objects (works whatever the main backend)
    world: Any = None  # the default process group this context was made from
    owns_group: bool = False  # init_distributed started the process group (close() ends it)
    _runs: int = 0
    _gathers: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that writes files and shows progress."""
        return self.rank == 0

    def shard(self, items: Sequence[T]) -> list[T]:
        """This rank's items: item i goes to rank i % world_size."""
        return list(items[self.rank :: self.world_size])

    def barrier(self) -> None:
        """Wait until every rank is here (no-op for one process)."""
        if self.world_size > 1:
            torch.distributed.barrier(group=self.group)

    def start_run(self) -> None:
        """Begin a new evaluation: `request_stop` / `stop_requested` refer to it from now on."""
        self._runs += 1

    def request_stop(self) -> None:
        """Tell the other ranks that this one was interrupted (they stop at their next batch)."""
        if self.world_size > 1:
            self.store.set(f"hf_unmask/run{self._runs}/stop", "1")

    def stop_requested(self) -> bool:
        """Whether a rank of the current run was interrupted."""
        return self.world_size > 1 and bool(self.store.check([f"hf_unmask/run{self._runs}/stop"]))

    def gather_to_main(self, obj: Any, wait: float) -> Optional[list[Any]]:
        """Every rank's `obj`, in rank order, on rank 0 (other ranks get `[]`); `None` on every rank that saw some
        rank not arrive within `wait` seconds (the gather is then abandoned by all)."""
        if self.world_size == 1:
            return [obj]
        self._gathers += 1
        arrived, status = f"hf_unmask/gather{self._gathers}/arrived", f"hf_unmask/gather{self._gathers}/status"
        if self.store.add(arrived, 1) == self.world_size:  # the last to arrive opens the gather, unless abandoned
            self.store.compare_set(status, "", "go")
        deadline = time.monotonic() + wait
        while not self.store.check([status]):
            if time.monotonic() > deadline:  # give up, unless the gather opened meanwhile (atomic)
                self.store.compare_set(status, "", "abandoned")
                break
            try:
                time.sleep(0.05)
            except KeyboardInterrupt:  # Ctrl-C while waiting: stop the others, wait for them a short while only
                self.request_stop()
                deadline = min(deadline, time.monotonic() + STOP_WAIT_SECONDS)
        if self.store.get(status) != b"go":
            return None
        gathered: Optional[list[Any]] = [None] * self.world_size if self.is_main else None
        torch.distributed.gather_object(obj, gathered, dst=0, group=self.group)
        return gathered if self.is_main else []

    def gather_object(self, obj: Any, dst: int = 0) -> Optional[list[Any]]:
        """Every rank's `obj` in rank order on rank `dst` (None elsewhere): a plain collective, every rank must
        call it."""
        if self.world_size == 1:
            return [obj]
        out: Optional[list[Any]] = [None] * self.world_size if self.rank == dst else None
        torch.distributed.gather_object(obj, out, dst=dst, group=self.group)
        return out

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        """Every rank's `tensor` (on this rank's device for nccl), concatenated in rank order (0-d tensors stacked)."""
        if self.world_size == 1:
            return tensor
        parts = [torch.empty_like(tensor) for _ in range(self.world_size)]
        torch.distributed.all_gather(parts, tensor.contiguous())
        return torch.stack(parts) if tensor.dim() == 0 else torch.cat(parts)

    def broadcast_from_main(self, obj: Any) -> Any:
        """Rank 0's `obj` on every rank."""
        if self.world_size == 1:
            return obj
        box = [obj if self.is_main else None]
        torch.distributed.broadcast_object_list(box, src=0, group=self.group)
        return box[0]

    def close(self) -> None:
        """End the process group if `init_distributed` started it."""
        global _CONTEXT
        if self.owns_group and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
            self.owns_group = False
            _CONTEXT = None


_CONTEXT: Optional[DistributedContext] = None


def init_distributed() -> DistributedContext:
    """This process's `DistributedContext`: from the process group the program started, else (under a launcher)
    from a process group started here with `env://` (`nccl` when CUDA is available, else `gloo`), else one process
    on CPU. A rank's device is `cuda:LOCAL_RANK` when CUDA is available. Later calls return the same context while
    the process group lives."""
    global _CONTEXT
    dist = torch.distributed
    started_here = False
    if not (dist.is_available() and dist.is_initialized()):
        if not launched():
            return DistributedContext()
        if not dist.is_available():
            raise RuntimeError("This PyTorch build has no torch.distributed; run one process (without a launcher).")
        if torch.cuda.is_available():
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend, init_method="env://", timeout=COLLECTIVE_TIMEOUT)
        started_here = True
    world = dist.distributed_c10d._get_default_group()
    if _CONTEXT is not None and _CONTEXT.world is world:
        return _CONTEXT
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    world_size = dist.get_world_size()
    _CONTEXT = DistributedContext(
        rank=dist.get_rank(),
        world_size=world_size,
        local_rank=local_rank,
        local_world_size=int(os.environ.get("LOCAL_WORLD_SIZE", str(world_size))),
        device=torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu"),
        store=dist.distributed_c10d._get_default_store() if world_size > 1 else None,
        # Python objects travel over gloo, on CPU, whatever the main backend (nccl would need them on the GPU).
        group=dist.new_group(backend="gloo", timeout=COLLECTIVE_TIMEOUT) if world_size > 1 else None,
        world=world,
        owns_group=started_here,
    )
    return _CONTEXT


def close_distributed() -> None:
    """End the process group if `init_distributed` started it (no-op otherwise)."""
    if _CONTEXT is not None:
        _CONTEXT.close()


@contextmanager
def interrupt_once() -> Iterator[None]:
    """While the block runs, the first SIGINT or SIGTERM raises `KeyboardInterrupt` and later ones are ignored, so
    that the finished work gets saved: a launcher forwards Ctrl-C to each process once more (and stops the others
    with SIGTERM when one exits), then kills them 30 s later. Outside the main thread it changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def first(signum: int, frame: Any) -> None:
        for sig in previous:
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt

    for sig in previous:
        signal.signal(sig, first)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
