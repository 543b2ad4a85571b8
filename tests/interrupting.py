"""Run a command and press Ctrl-C once it has made progress (not a test module).

Used by the tests of what Ctrl-C keeps (evaluation rows, training checkpoints) and by tests/test_doc_code_blocks.py,
which stops long commands after their first progress line.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Union

REPO = Path(__file__).resolve().parent.parent


@dataclass
class Outcome:
    """How an interrupted (or not) command ended."""

    returncode: int
    stdout: str
    stderr: str
    interrupted: bool  # SIGINT was sent (the command was still running when it was ready)
    seconds: float

    def describe(self) -> str:
        return f"exit {self.returncode} after {self.seconds:.1f} s\n--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"


def progress_at_least(count: int, bar: str = "evaluate") -> Callable[[str, str], bool]:
    """Ready once the tqdm bar named `bar` shows `count` or more finished units on stderr (`bar: ... n/total [`)."""
    pattern = re.compile(re.escape(bar) + r":[^\r\n]*?(\d+)/\d+ \[")

    def ready(stdout: str, stderr: str) -> bool:
        return any(int(done) >= count for done in pattern.findall(stderr))

    return ready


def interrupt_when(
    command: Union[str, Sequence[str]],
    ready: Callable[[str, str], bool],
    *,
    cwd: Union[str, Path],
    env: Optional[dict[str, str]] = None,
    timeout: float = 240.0,
) -> Outcome:
    """Start `command` (a shell string or an argv) in its own process group and send SIGINT to the whole group, as a
    terminal's Ctrl-C does, once `ready(stdout, stderr)` holds; then wait for it to exit. A command that exits
    before it is ready is returned with `interrupted=False`. Raises `TimeoutError` (after killing the group) when
    the command neither exits nor becomes ready within `timeout` seconds."""
    started = time.monotonic()
    proc = subprocess.Popen(
        command,
        shell=isinstance(command, str),
        executable="/bin/bash" if isinstance(command, str) else None,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    chunks: dict[str, list[bytes]] = {"stdout": [], "stderr": []}

    def pump(name: str) -> None:
        stream = getattr(proc, name)
        while data := os.read(stream.fileno(), 65536):
            chunks[name].append(data)

    readers = [threading.Thread(target=pump, args=(name,), daemon=True) for name in chunks]
    for reader in readers:
        reader.start()

    def text(name: str) -> str:
        return b"".join(chunks[name]).decode(errors="replace")

    interrupted = False
    try:
        while proc.poll() is None:
            if ready(text("stdout"), text("stderr")):
                os.killpg(proc.pid, signal.SIGINT)
                interrupted = True
                break
            if time.monotonic() - started > timeout:
                raise TimeoutError(f"{command!r} was not ready after {timeout:.0f} s:\n{text('stderr')[-3000:]}")
            time.sleep(0.05)
        proc.wait(timeout=max(30.0, timeout - (time.monotonic() - started)))
    except BaseException:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        raise
    for reader in readers:
        reader.join(timeout=10)
    return Outcome(proc.returncode, text("stdout"), text("stderr"), interrupted, time.monotonic() - started)


def subprocess_env(**extra: str) -> dict[str, str]:
    """The environment for a command of the repository: offline, one thread, the repository importable."""
    env = dict(os.environ)
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env
