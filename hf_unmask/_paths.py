"""Telling a local folder from a Hub repo id, so a mistyped path gets "no such folder" instead of a Hub error."""

from __future__ import annotations

import os
import re
from typing import Union

# A Hub repo id: `name` or `namespace/name`, letters, digits, '-', '_', '.' (huggingface_hub's own rule, simplified).
_REPO_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")


class LocalFolderNotFoundError(FileNotFoundError, ValueError):
    """A path that can only be a local folder does not exist. Both a `FileNotFoundError` (the `OSError` that
    transformers' loaders raise) and a `ValueError` (hf_unmask's bad-input error), so either `except` catches it."""


def looks_like_local_path(name: Union[str, os.PathLike]) -> bool:
    """True when `name` cannot be a Hub repo id: a `PathLike`, or a string starting with `.`, `/` or `~`, holding
    a backslash (Windows separators), or with more than one `/`.

    Example:
        ```python
        >>> from hf_unmask._paths import looks_like_local_path
        >>> [looks_like_local_path(n) for n in ("org/model", "bert-base-uncased", "./model", "/tmp/x", "a/b/c")]
        [False, False, True, True, True]
        ```
    """
    if not isinstance(name, str):
        return isinstance(name, os.PathLike)
    if name.startswith((".", "/", "~")) or "\\" in name or (os.altsep is not None and os.altsep in name):
        return True
    return _REPO_ID.fullmatch(name) is None and os.sep in name


def check_local_folder(name: Union[str, os.PathLike], what: str = "model") -> None:
    """Raise `LocalFolderNotFoundError` when `name` looks like a local path (see `looks_like_local_path`) and is not
    an existing folder (or file). Hub repo ids pass through untouched.

    Example:
        ```python
        >>> from hf_unmask._paths import check_local_folder
        >>> check_local_folder("org/model")  # a Hub id: left to the Hub
        >>> check_local_folder("./no/such/folder")
        Traceback (most recent call last):
        ...
        hf_unmask._paths.LocalFolderNotFoundError: No such folder: './no/such/folder' (resolved to ...
        ```
    """
    if not looks_like_local_path(name):
        return
    path = os.path.expanduser(os.fspath(name))
    if os.path.exists(path):
        return
    raise LocalFolderNotFoundError(
        f"No such folder: '{os.fspath(name)}' (resolved to '{os.path.abspath(path)}'). It looks like a local path, "
        f"so it was not looked up on the Hugging Face Hub. Check the path (the current directory is "
        f"'{os.getcwd()}'), or pass a Hub repo id such as 'org/{what}-name'."
    )
