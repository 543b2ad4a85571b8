from .base import TASK_REGISTRY, VerifiableTask, get_task
from .program_trace import ProgramTrace
from .shell_game import ShellGame
from .sort_digits import SortDigits
from .trace_until import TraceUntil, TraceUntilShort

__all__ = [
    "TASK_REGISTRY",
    "ProgramTrace",
    "ShellGame",
    "SortDigits",
    "TraceUntil",
    "TraceUntilShort",
    "VerifiableTask",
    "get_task",
]
