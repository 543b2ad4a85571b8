"""Run model-written Python in a separate, resource-limited interpreter: the one code sandbox of hf_unmask.

Used by the code reward ([`hf_unmask.rewards.code`]) and, through `passes_tests`, by evaluation. Executing
model-written code needs an explicit opt-in ([`require_code_opt_in`]: `HF_ALLOW_CODE_EVAL=1` or
`allow_code_execution=True`); [`execute_python`] itself does not check it.
"""

from __future__ import annotations

import dataclasses
import math
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional

#: Environment variable that opts in to executing model-written code (the name `evaluate`'s `code_eval` uses).
CODE_EVAL_ENV_VAR = "HF_ALLOW_CODE_EVAL"

__all__ = ["CODE_EVAL_ENV_VAR", "ExecutionResult", "code_execution_allowed", "execute_python", "require_code_opt_in"]

# Runs inside the child interpreter (`python -I -B -c _RUNNER solution.py`). It reads a random token from stdin,
# applies the resource limits, executes the program in a fresh namespace and writes the token to a duplicate of the
# original stdout only if the program finished without an exception. A program that exits early (`sys.exit(0)`,
# `os._exit(0)`) therefore never counts as passed.
_RUNNER = r"""
import os, sys

def _limit(name, value):
    try:
        import resource
    except ImportError:
        return
    kind = getattr(resource, name, None)
    if kind is None:
        return
    try:
        soft, hard = resource.getrlimit(kind)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(kind, (value, value if hard == resource.RLIM_INFINITY else hard))
    except (ValueError, OSError):
        pass

def _main():
    token = sys.stdin.readline().strip()
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    result_fd = os.dup(1)
    memory, cpu, fsize = (int(v) for v in sys.argv[2:5])
    if memory > 0:
        _limit("RLIMIT_AS", memory)
        _limit("RLIMIT_DATA", memory)
    _limit("RLIMIT_CPU", cpu)
    _limit("RLIMIT_FSIZE", fsize)
    _limit("RLIMIT_CORE", 0)
    path = sys.argv[1]
    del sys.argv[1:]
    with open(path, encoding="utf-8") as f:
        source = f.read()
    namespace = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
    try:
        exec(compile(source, path, "exec"), namespace)
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        import traceback
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    os.write(result_fd, ("\n" + token + "\n").encode())
    os._exit(0)

_main()
"""

_FILE_SIZE_LIMIT = 16 * 1024 * 1024  # bytes a program may write to any one file, stdout and stderr included
_KEPT_OUTPUT = 4096  # characters of stdout / stderr kept in an ExecutionResult


@dataclasses.dataclass
class ExecutionResult:
    """What running one program in the sandbox gave.

    `status` is `"passed"` (finished without an exception), `"failed"` (exception, non-zero exit, early exit or
    killed by a resource limit) or `"timed out"` (killed after `timeout` seconds). `stdout` / `stderr` keep the
    last 4,096 characters.
    """

    status: str
    returncode: Optional[int]
    stdout: str
    stderr: str
    duration: float

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _sandbox_env(workdir: str) -> dict[str, str]:
    """A minimal environment: nothing is inherited from the trainer's (no tokens, no credentials)."""
    env = {
        "PATH": os.defpath,
        "HOME": workdir,
        "TMPDIR": workdir,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "OMP_NUM_THREADS": "1",
        "OPENBLAS_NUM_THREADS": "1",
        "MKL_NUM_THREADS": "1",
    }
    if os.name == "nt":  # the interpreter does not start on Windows without these
        for key in ("SYSTEMROOT", "SYSTEMDRIVE"):
            if key in os.environ:
                env[key] = os.environ[key]
    return env


def _kill_group(proc: subprocess.Popen) -> None:
    if os.name == "posix":
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the child leads its own session: this also ends what it spawned
        except (ProcessLookupError, PermissionError):
            pass
    if proc.poll() is None:
        proc.kill()


def _read_tail(f: Any) -> str:
    f.seek(0, os.SEEK_END)
    size = f.tell()
    f.seek(max(0, size - 4 * _KEPT_OUTPUT))
    return f.read().decode("utf-8", errors="replace")


def execute_python(program: str, timeout: float = 5.0, memory_limit_mb: Optional[int] = 1024) -> ExecutionResult:
    """Run a Python program in a separate, isolated interpreter and report whether it finished without error.

    This is the runner of `passes_tests` and `CodeReward`: it does **not** check the opt-in, so only call it on code you
    chose to execute. The child is `sys.executable -I -B` (isolated mode: no `PYTHON*` variables, no user site, the
    working directory is not importable), started in a new session with a fresh temporary directory as its working
    directory and `HOME`/`TMPDIR`, an environment built from scratch (no variable of the parent is inherited, so
    no tokens or credentials), stdin empty, stdout/stderr captured in unlinked temporary files. Where `resource`
    exists (Linux, macOS) it gets limits on address space (`memory_limit_mb`), CPU time, file size (16 MiB, stdout
    included) and core dumps. After `timeout` wall-clock seconds the whole process group is killed (`SIGKILL`) and
    the result is `"timed out"`; the call never waits longer than that plus the clean-up.

    Not a security boundary: the program can still read files the user can read, use the network, and a process
    that starts its own session escapes the group kill. Run untrusted code inside a container or VM.

    Example:
        ```python
        >>> execute_python("assert sum([1, 2]) == 3").status
        'passed'
        >>> execute_python("while True: pass", timeout=1).status
        'timed out'
        ```
    """
    token = secrets.token_hex(16)
    cpu_limit = int(math.ceil(timeout)) + 1
    memory = int(memory_limit_mb) * 1024 * 1024 if memory_limit_mb else 0
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hf_unmask_exec_", ignore_cleanup_errors=True) as workdir:
        path = os.path.join(workdir, "solution.py")
        with open(path, "w", encoding="utf-8") as f:
            f.write(program)
        with tempfile.TemporaryFile() as stdin, tempfile.TemporaryFile() as stdout, tempfile.TemporaryFile() as stderr:
            stdin.write((token + "\n").encode())
            stdin.flush()
            stdin.seek(0)
            cmd = [sys.executable, "-I", "-B", "-c", _RUNNER, path, str(memory), str(cpu_limit), str(_FILE_SIZE_LIMIT)]
            proc = subprocess.Popen(
                cmd,
                stdin=stdin,
                stdout=stdout,
                stderr=stderr,
                cwd=workdir,
                env=_sandbox_env(workdir),
                start_new_session=os.name == "posix",
                close_fds=True,
            )
            timed_out = False
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc)  # also reaps grandchildren left behind by a program that finished
                proc.wait()
            duration = time.monotonic() - start
            out, err = _read_tail(stdout), _read_tail(stderr)
    if timed_out:
        status = "timed out"
    elif proc.returncode == 0 and out.rstrip().endswith(token):
        status = "passed"
    else:
        status = "failed"
    out = out.replace(token, "").rstrip("\n")
    return ExecutionResult(status, proc.returncode, out[-_KEPT_OUTPUT:], err[-_KEPT_OUTPUT:], duration)


def code_execution_allowed(allow_code_execution: Optional[bool] = None) -> bool:
    """The opt-in: `allow_code_execution` when given, else whether `HF_ALLOW_CODE_EVAL=1` is set."""
    if allow_code_execution is not None:
        return bool(allow_code_execution)
    return os.environ.get(CODE_EVAL_ENV_VAR, "0") == "1"


def require_code_opt_in(allow_code_execution: Optional[bool] = None) -> None:
    """Raise `PermissionError` naming how to opt in, unless executing model-written code was opted in to."""
    if code_execution_allowed(allow_code_execution):
        return
    how = (
        "it was disabled with allow_code_execution=False"
        if allow_code_execution is False
        else f"set the environment variable {CODE_EVAL_ENV_VAR}=1 or pass allow_code_execution=True"
    )
    raise PermissionError(
        "The code reward executes model-generated code, which may be harmful even though it runs in a separate, "
        "resource-limited process (not a security sandbox: it can read your files and use the network). Run it "
        f"inside a container or VM, and opt in explicitly: {how}."
    )
