"""Running a command-line action with the same clean endings everywhere (`hf-unmask ...`, `python -m hf_unmask.demo`):
a one-line error instead of a traceback for bad input, exit 130 on Ctrl-C."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

PROG = "hf-unmask"


class CLIError(Exception):
    """A usage problem reported as one line, without a traceback."""


def run_command(func: Callable[[argparse.Namespace], Any], args: argparse.Namespace, label: str) -> int:
    """`func(args)` as a command: its exit status (0 on success, 2 on a usage error, 1 otherwise, 130 on Ctrl-C)."""
    try:
        return int(func(args) or 0)
    except CLIError as err:
        print(f"{label}: error: {err}", file=sys.stderr)
        return 2
    except (ValueError, OSError, ImportError) as err:
        print(f"{label}: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, ValueError) else 1
    except KeyboardInterrupt as err:  # Ctrl-C; an interrupted evaluation has written its finished rows (str(err))
        detail = str(err)
        print(f"{label}: interrupted" + (f": {detail}" if detail else ""), file=sys.stderr)
        return 130
