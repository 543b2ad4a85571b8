"""Shared text helpers of the built-in tasks: word-level tokens separated by single spaces."""

from __future__ import annotations

import re
import string

LETTERS = string.ascii_lowercase
DIGITS = "0123456789"

_ANSWER = re.compile(r"(?:^|\s)answer\s*:\s*(\S+)")


def answer_after_marker(text: str) -> str:
    """The token after the last `answer :` in `text`, or `""` when there is none.

    Example:
        ```python
        >>> answer_after_marker("a > b > c ; answer : c")
        'c'
        ```
    """
    found = _ANSWER.findall(text)
    return found[-1] if found else ""


def normalise(text: str) -> str:
    """Collapse whitespace (decoders may join tokens with single spaces)."""
    return " ".join(text.split())
