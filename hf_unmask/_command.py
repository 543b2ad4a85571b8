"""Running a command-line action with the same clean endings everywhere (`hf-unmask ...`, `python -m hf_unmask.demo`):
a one-line error instead of a traceback for bad input, exit 130 on Ctrl-C; an argument parser whose errors are one
line too, that takes `--output_dir` as well as `--output-dir`, and reads a YAML file of defaults (`--config`)."""

from __future__ import annotations

import argparse
import difflib
import os
import re
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NoReturn, Optional

PROG = "hf-unmask"


class CLIError(Exception):
    """A usage problem reported as one line, without a traceback."""


def run_command(func: Callable[[argparse.Namespace], Any], args: argparse.Namespace, label: str) -> int:
    """`func(args)` as a command: its exit status (0 on success, 2 on a usage error such as a bad value or a missing
    file, 1 otherwise, 130 on Ctrl-C)."""
    try:
        return int(func(args) or 0)
    except CLIError as err:
        print(f"{label}: error: {err}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader went away (`hf-unmask list | head`): stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes stdout
        return 0
    except (ValueError, OSError, ImportError) as err:
        print(f"{label}: error: {err}", file=sys.stderr)
        return 2 if isinstance(err, (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError)) else 1
    except KeyboardInterrupt as err:  # Ctrl-C; an interrupted evaluation has written its finished rows (str(err))
        detail = str(err)
        print(f"{label}: interrupted" + (f": {detail}" if detail else ""), file=sys.stderr)
        return 130


# ----------------------------------------------------------------------------------------------------------------
# argument parsing
# ----------------------------------------------------------------------------------------------------------------
_INVALID_VALUE = re.compile(r"argument (?P<flag>\S+): invalid (?P<type>\w+) value: (?P<value>.*)")
_INVALID_CHOICE = re.compile(r"argument (?P<flag>\S+): invalid choice: (?P<value>.*?) \(choose from (?P<choices>.*)\)")
_EXPECTED = {"int": "an integer", "float": "a number", "string_to_bool": "true or false", "str": "a string"}


def short_error(message: str) -> str:
    """argparse's error for a bad value, restated as the flag, the value given and what is expected.

    Example:
        ```python
        >>> short_error("argument --alpha: invalid float value: 'abc'")
        "--alpha got 'abc': expected a number"
        ```
    """
    if message.startswith("argument --"):  # `--output_dir/--output-dir`: the first spelling is enough
        flag, sep, rest = message[len("argument ") :].partition(": ")
        message = f"argument {flag.split('/')[0]}{sep}{rest}"
    found = _INVALID_VALUE.fullmatch(message)
    if found:
        expected = _EXPECTED.get(found["type"], f"a {found['type']} value")
        return f"{found['flag']} got {found['value']}: expected {expected}"
    found = _INVALID_CHOICE.fullmatch(message)
    if found:
        return f"{found['flag']} got {found['value']}: expected one of {found['choices']}"
    return message[len("argument ") :] if message.startswith("argument --") else message


class ShortErrorsMixin:
    """Makes an `argparse.ArgumentParser` (or a subclass such as TRL's `TrlParser`) end a usage error with one line,
    `PROG: error: PROBLEM (see PROG --help)`, and exit code 2, instead of printing its whole usage first."""

    prog: str

    def error(self, message: str) -> NoReturn:  # argparse's hook for every usage error
        self.exit(2, f"{self.prog}: error: {short_error(message)} (see {self.prog} --help)\n")  # type: ignore[attr-defined]


class ArgumentParser(ShortErrorsMixin, argparse.ArgumentParser):
    """The parser of the `hf-unmask` commands: one-line usage errors, both spellings of multi-word flags
    (`--output-dir` and `--output_dir`), and, after `add_config_argument`, a YAML file of defaults.

    Example:
        ```python
        >>> parser = ArgumentParser(prog="demo")
        >>> _ = parser.add_argument("--output-dir", default="out")
        >>> parser.parse_args(["--output_dir", "elsewhere"]).output_dir
        'elsewhere'
        ```
    """

    def parse_known_args(  # type: ignore[override]
        self, args: Optional[Sequence[str]] = None, namespace: Optional[argparse.Namespace] = None
    ) -> tuple[argparse.Namespace, list[str]]:
        args = list(sys.argv[1:] if args is None else args)
        args = normalize_spelling(args, self._option_string_actions)
        config_action = self._option_string_actions.get("--config")
        if not isinstance(config_action, _ConfigAction):
            return super().parse_known_args(args, namespace)
        path = find_option_value(args, "--config", self)
        appended = self._apply_config(read_yaml_config(path, self)) if path is not None else {}
        namespace, extras = super().parse_known_args(args, namespace)
        for dest, values in appended.items():  # repeatable flags: given on the command line, they replace the file's
            if getattr(namespace, dest, None) is None:
                setattr(namespace, dest, values)
        return namespace, extras

    def _apply_config(self, config: dict[str, Any]) -> dict[str, list[Any]]:
        """Make the file's values the defaults; returns those of repeatable flags, applied after parsing."""
        actions = {a.dest: a for a in self._actions if a.option_strings and a.dest not in _NOT_IN_CONFIG}
        config = {key.replace("-", "_"): value for key, value in config.items()}
        check_config_keys(config, actions, self._config_path, self)
        appended: dict[str, list[Any]] = {}
        for key, value in config.items():
            action = actions[key]
            if isinstance(action, argparse._AppendAction):
                appended[key] = [str(v) for v in (value if isinstance(value, list) else [value])]
                action.default = None
            else:
                action.default = _config_value(action, key, value, self._config_path, self)
        return appended

    @property
    def _config_path(self) -> str:
        return getattr(self, "_config_file", "the config file")


class _ConfigAction(argparse.Action):
    """`--config FILE`: the file is read before the other flags (see `ArgumentParser.parse_known_args`)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any, option=None):
        setattr(namespace, self.dest, values)


_NOT_IN_CONFIG = ("help", "config", "version")


def add_config_argument(parser: ArgumentParser, example: str) -> None:
    """`--config FILE.yaml`: a YAML mapping of option names to values (`n_examples: 200` for `--n-examples 200`);
    flags given on the command line override the file's values. `example` names one such key in the help."""
    parser.add_argument(
        "--config",
        action=_ConfigAction,
        metavar="FILE.yaml",
        help=f"YAML file of option values, one key per option (e.g. `{example}`); flags on the command line "
        "override its keys.",
    )


def normalize_spelling(args: Sequence[str], known: Iterable[str]) -> list[str]:
    """`args` with each `--multi_word` flag spelled as the parser knows it (`--multi-word`), and the other way round.

    Example:
        ```python
        >>> normalize_spelling(["--output_dir", "x", "--n-examples=4", "--", "--output_dir"], ["--output-dir", "--n-examples"])
        ['--output-dir', 'x', '--n-examples=4', '--', '--output_dir']
        ```
    """
    known = set(known)
    out = list(args)
    for i, arg in enumerate(out):
        if arg == "--":
            break
        if not arg.startswith("--"):
            continue
        flag, sep, value = arg.partition("=")
        if flag in known:
            continue
        for other in (flag[:2] + flag[2:].replace("_", "-"), flag[:2] + flag[2:].replace("-", "_")):
            if other in known:
                out[i] = other + sep + value
                break
    return out


def find_option_value(
    args: list[str], flag: str, parser: argparse.ArgumentParser, remove: bool = False
) -> Optional[str]:
    """The value of the last `flag VALUE` / `flag=VALUE` in `args` (removed from `args` with `remove`), or None."""
    found: Optional[str] = None
    i = 0
    while i < len(args) and args[i] != "--":
        arg = args[i]
        if arg == flag:
            if i + 1 >= len(args) or args[i + 1].startswith("--"):
                parser.error(f"argument {flag}: expected a file name after it")
            found, width = args[i + 1], 2
        elif arg.startswith(flag + "="):
            found, width = arg[len(flag) + 1 :], 1
        else:
            i += 1
            continue
        if remove:
            del args[i : i + width]
        else:
            i += width
    return found


def read_yaml_config(path: str, parser: argparse.ArgumentParser) -> dict[str, Any]:
    """The mapping in the YAML file `path`; any problem (no such file, a syntax error with its line and column,
    not a mapping) ends in `parser.error` with one line naming the file."""
    import yaml

    parser._config_file = path  # type: ignore[attr-defined]
    try:
        with open(path, encoding="utf-8") as f:
            config = yaml.safe_load(f)
    except FileNotFoundError:
        parser.error(f"--config: no such file: '{path}' (resolved to '{os.path.abspath(path)}')")
    except IsADirectoryError:
        parser.error(f"--config: '{path}' is a folder; give a YAML file")
    except yaml.YAMLError as err:
        parser.error(f"--config: {path} is not valid YAML: {_yaml_problem(err)}")
    if config is None:
        return {}
    if not isinstance(config, dict):
        parser.error(
            f"--config: {path} must hold a YAML mapping of option names to values (e.g. `seed: 0`), "
            f"not a {type(config).__name__}"
        )
    return config


def _yaml_problem(err: Exception) -> str:
    """'line L, column C: PROBLEM' of a PyYAML error (1-based, where the problem was found)."""
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    return where + (f"{problem} ({context})" if context else problem)


def check_config_keys(
    config: dict[str, Any], known: Iterable[str], path: str, parser: argparse.ArgumentParser
) -> None:
    """`parser.error` naming the keys of the config file `path` that are no option (with close matches)."""
    known = sorted(known)
    unknown = [key for key in config if key not in known]
    if not unknown:
        return
    described = []
    for key in unknown:
        close = difflib.get_close_matches(str(key), known, n=2)
        described.append(f"'{key}'" + (f" (did you mean {' or '.join(repr(c) for c in close)}?)" if close else ""))
    keys = "key" if len(unknown) == 1 else "keys"
    parser.error(
        f"--config: unknown {keys} in {path}: {', '.join(described)}. Each key is an option's name without the "
        "dashes; remove the others"
    )


def _config_value(action: argparse.Action, key: str, value: Any, path: str, parser: argparse.ArgumentParser) -> Any:
    """The config file's `value` for `action`, converted as the flag's value would be."""
    if action.nargs == 0:  # store_true / store_false
        if not isinstance(value, bool):
            parser.error(f"--config: '{key}' in {path} is an on/off option: give true or false, not {value!r}")
        return value if action.const is True else not value
    if value is None:
        return None
    many = action.nargs in ("+", "*") or isinstance(action.nargs, int)
    if isinstance(value, (list, dict)) and not (many and isinstance(value, list)):
        parser.error(f"--config: '{key}' in {path} takes a single value, not {value!r}")
    values = value if isinstance(value, list) else [value]
    try:
        converted = [action.type(str(v)) if action.type is not None else str(v) for v in values]
    except argparse.ArgumentTypeError as err:
        parser.error(f"--config: '{key}' in {path}: {err}")
    except (TypeError, ValueError):
        expected = _EXPECTED.get(getattr(action.type, "__name__", ""), f"a value {action.type} accepts")
        parser.error(f"--config: '{key}' in {path} got {value!r}: expected {expected}")
    if action.choices is not None:
        for v in converted:
            if v not in action.choices:
                parser.error(
                    f"--config: '{key}' in {path} got {v!r}: expected one of {', '.join(map(str, action.choices))}"
                )
    return converted if many else converted[0]
