"""How many CPU threads PyTorch should use here and now, so that a command does not oversubscribe a shared machine.

PyTorch starts one intra-op thread per physical core. Its OpenMP threads spin and wait for each other at the end of
every operation, so when another process keeps a core busy, the whole team waits for the thread that shares that
core: on two cores beside one busy process the demo ran ~3x slower with 2 threads than with 1. `set_cpu_threads`
counts the cores that are idle right now (two readings of /proc/stat, 0.2 s apart, on the cores this process may run
on) and uses that many threads, shared among the processes a launcher started on this machine, unless the user chose:
an explicit number, `HF_UNMASK_NUM_THREADS`, `OMP_NUM_THREADS` / `MKL_NUM_THREADS`, or an earlier
`torch.set_num_threads` call. The commands (`hf-unmask evaluate`, the demo) call it and print `ThreadChoice.message`;
library functions never change the thread count.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

__all__ = [
    "NUM_THREADS_ENV",
    "ThreadChoice",
    "add_num_threads_argument",
    "choose_cpu_threads",
    "idle_cores",
    "set_cpu_threads",
]

#: Environment variable that fixes the thread count of hf_unmask's commands (a positive integer).
NUM_THREADS_ENV = "HF_UNMASK_NUM_THREADS"
_USER_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
_SAMPLE_SECONDS = 0.2


@dataclass(frozen=True)
class ThreadChoice:
    """The intra-op thread count chosen for this process, where it came from, and whether torch was changed.

    Example:
        ```python
        >>> choice = ThreadChoice(threads=1, source="idle cores", detail="1.0 of 2 cores idle", changed=True)
        >>> print(choice.message(flag="--num-threads"))
        hf_unmask: 1 CPU thread (1.0 of 2 cores idle); to change it: --num-threads N or HF_UNMASK_NUM_THREADS=N
        ```
    """

    threads: int
    source: str  # "argument", "HF_UNMASK_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "torch", "idle cores"
    detail: str
    changed: bool

    def message(self, flag: Optional[str] = None) -> str:
        """One line for the terminal: the count, why, and how to change it (`flag`: the command's option)."""
        how = f"{flag} N or {NUM_THREADS_ENV}=N" if flag else f"{NUM_THREADS_ENV}=N"
        plural = "" if self.threads == 1 else "s"
        return f"hf_unmask: {self.threads} CPU thread{plural} ({self.detail}); to change it: {how}"


def add_num_threads_argument(parser: argparse.ArgumentParser) -> None:
    """The commands' `--num-threads N` option (default None: `set_cpu_threads` measures)."""
    parser.add_argument(
        "--num-threads",
        type=int,
        metavar="N",
        help="CPU threads for PyTorch in each process (default: as many as there are idle cores right now, shared "
        f"among the processes of a launcher, unless {NUM_THREADS_ENV} or OMP_NUM_THREADS says otherwise).",
    )


def read_cpu_times(text: str) -> dict[int, tuple[int, int]]:
    """Per-core `(idle, total)` jiffies from the text of /proc/stat (idle counts iowait too)."""
    times: dict[int, tuple[int, int]] = {}
    for line in text.splitlines():
        name, *fields = line.split()
        if not name.startswith("cpu") or name == "cpu" or not name[3:].isdigit():
            continue
        values = [int(v) for v in fields[:8]]  # user nice system idle iowait irq softirq steal (guest is in user)
        times[int(name[3:])] = (values[3] + (values[4] if len(values) > 4 else 0), sum(values))
    return times


def idle_cores(before: str, after: str, cpus: Optional[set[int]] = None) -> Optional[float]:
    """How many of `cpus` (default: all) were idle between two readings of /proc/stat, e.g. 1.0 of 2 beside one busy
    process; None when the readings say nothing (no such core, or no time passed).

    Example:
        ```python
        >>> before = "cpu  0 0 0 0\\ncpu0 100 0 0 100\\ncpu1 100 0 0 100\\n"
        >>> after = "cpu  0 0 0 0\\ncpu0 120 0 0 100\\ncpu1 100 0 0 120\\n"  # cpu0 busy, cpu1 idle
        >>> idle_cores(before, after), idle_cores(before, after, cpus={0})
        (1.0, 0.0)
        ```
    """
    first, second = read_cpu_times(before), read_cpu_times(after)
    total, seen = 0.0, False
    for cpu in sorted(set(first) & set(second)):
        if cpus is not None and cpu not in cpus:
            continue
        elapsed = second[cpu][1] - first[cpu][1]
        if elapsed > 0:
            total += min(1.0, max(0.0, (second[cpu][0] - first[cpu][0]) / elapsed))
            seen = True
    return total if seen else None


def choose_cpu_threads(
    requested: Optional[int] = None,
    *,
    environ: Mapping[str, str],
    torch_threads: int,
    torch_default: int,
    cpus: int,
    idle: Optional[float],
    local_processes: int = 1,
) -> ThreadChoice:
    """The decision of `set_cpu_threads`, from what it measured (`changed` says whether torch must be set).

    In order: `requested`; `HF_UNMASK_NUM_THREADS`; `OMP_NUM_THREADS` / `MKL_NUM_THREADS` (torch already follows
    them); a thread count that differs from torch's default (`torch.set_num_threads` was called); else the idle cores
    (rounded down unless within 0.25 of the next core: a core that is partly busy makes OpenMP threads wait), shared
    among `local_processes`, at least 1 and at most torch's default.

    Example:
        ```python
        >>> facts = dict(environ={}, torch_threads=2, torch_default=2, cpus=2)
        >>> choose_cpu_threads(**facts, idle=1.02).threads, choose_cpu_threads(**facts, idle=1.98).threads
        (1, 2)
        >>> choose_cpu_threads(**facts, idle=2.0, local_processes=2).detail
        '2.0 of 2 cores idle, shared by 2 processes'
        ```
    """
    if requested is not None:
        return ThreadChoice(_positive(requested, "the thread count"), "argument", "as asked", True)
    if environ.get(NUM_THREADS_ENV, "").strip():
        threads = _positive(environ[NUM_THREADS_ENV], NUM_THREADS_ENV)
        return ThreadChoice(threads, NUM_THREADS_ENV, f"{NUM_THREADS_ENV}={threads}", True)
    for name in _USER_ENV:
        if environ.get(name, "").strip():
            return ThreadChoice(torch_threads, name, f"{name}={environ[name].strip()} in the environment", False)
    if torch_threads != torch_default:
        return ThreadChoice(torch_threads, "torch", "torch.set_num_threads was called before", False)
    local_processes = max(1, int(local_processes))
    if idle is None:  # no reading: assume the cores this process may use are free
        idle_count, detail = float(cpus), f"{cpus} cores, idle time unknown"
    else:
        idle_count, detail = idle, f"{idle:.1f} of {cpus} cores idle"
    if local_processes > 1:
        detail += f", shared by {local_processes} processes"
    usable = min(int(idle_count + 0.25), cpus)
    threads = max(1, min(usable // local_processes, torch_default))
    return ThreadChoice(threads, "idle cores", detail, True)


def set_cpu_threads(
    num_threads: Optional[int] = None,
    *,
    local_processes: Optional[int] = None,
    sample_seconds: float = _SAMPLE_SECONDS,
    read_stat: Optional[Callable[[], str]] = None,
) -> ThreadChoice:
    """Choose PyTorch's intra-op thread count for this process (`choose_cpu_threads`) and apply it with
    `torch.set_num_threads`; returns the choice (`.message()` is the line the commands print).

    Args:
        num_threads: a fixed count (the commands' `--num-threads`); None measures, unless the user chose already.
        local_processes: processes sharing this machine's cores (default: `LOCAL_WORLD_SIZE`, set by torchrun and
            `accelerate launch`, else 1).
        sample_seconds: time between the two /proc/stat readings (this process sleeps meanwhile).
        read_stat: returns the text of /proc/stat (tests pass readings).

    Example:
        ```python
        >>> import hf_unmask
        >>> import torch
        >>> before = torch.get_num_threads()
        >>> hf_unmask.set_cpu_threads(1).threads, torch.get_num_threads()
        (1, 1)
        >>> torch.set_num_threads(before)
        ```
    """
    import torch

    if local_processes is None:
        local_processes = _int_env("LOCAL_WORLD_SIZE", 1)
    cpus = _allowed_cpus()
    facts = dict(
        environ=os.environ,
        torch_threads=torch.get_num_threads(),
        torch_default=_torch_default_threads(),
        cpus=len(cpus),
        local_processes=local_processes,
    )
    choice = choose_cpu_threads(num_threads, idle=None, **facts)
    if choice.source == "idle cores":  # nobody chose: measure
        choice = choose_cpu_threads(num_threads, idle=_measure_idle(cpus, sample_seconds, read_stat), **facts)
    if choice.changed:
        torch.set_num_threads(choice.threads)
    return choice


def _positive(value: object, what: str) -> int:
    try:
        number = int(str(value).strip())
    except ValueError:
        number = 0
    if number <= 0:
        raise ValueError(f"{what} must be a positive integer, got {value!r}; e.g. 1, or leave it unset to measure.")
    return number


def _int_env(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def _allowed_cpus() -> set[int]:
    try:
        return set(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        return set(range(os.cpu_count() or 1))


def _measure_idle(cpus: set[int], seconds: float, read_stat: Optional[Callable[[], str]]) -> Optional[float]:
    read = read_stat or (lambda: Path("/proc/stat").read_text())
    try:
        before = read()
        time.sleep(seconds)
        return idle_cores(before, read(), cpus)
    except OSError:  # no /proc (macOS): the load average, which counts runnable processes, machine-wide
        try:
            return max(0.0, len(cpus) - os.getloadavg()[0])
        except OSError:
            return None


def _torch_default_threads() -> int:
    """The intra-op thread count torch starts with when no environment variable sets it: one per physical core
    (hyperthreads of a core count once), as torch's cpuinfo counts them."""
    cores = set()
    for topology in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/topology"):
        try:
            cores.add(((topology / "physical_package_id").read_text(), (topology / "core_id").read_text()))
        except OSError:
            continue
    return len(cores) or os.cpu_count() or 1
