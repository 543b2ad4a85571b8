"""The command line of `hf-unmask train` and `scripts/train_unmasking_policy.py`: TRL's `TrlParser` (a YAML recipe
with `--config`, a flag for every field) with errors a user can act on and a help that fits on a screen."""

from __future__ import annotations

import argparse
import copy
import difflib
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any, Optional

from trl import TrlParser

from .._command import ShortErrorsMixin, check_config_keys, find_option_value, normalize_spelling, read_yaml_config

__all__ = ["SHORT_HELP_GROUPS", "TrainingArgumentParser"]

#: The options `--help` shows, by group (those missing from the parsed dataclasses are skipped); `--help-all` shows
#: every option, TRL's and transformers' `TrainingArguments` included.
SHORT_HELP_GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "prompts and reward (one source: --task, --dataset_name or `datasets:` in the recipe)",
        ("task", "dataset_name", "dataset_config", "prompt_column", "answer_column", "reward_funcs"),
    ),
    ("the frozen dLLM", ("dllm_name_or_path", "gen_length", "block_length", "stop_at_eos")),
    ("the policy and its reward", ("alpha", "reward_form", "policy_name_or_path", "policy_type")),
    (
        "GRPO and the run",
        ("num_generations", "per_device_train_batch_size", "max_steps", "learning_rate", "output_dir", "seed"),
    ),
    ("checkpoints and devices", ("save_strategy", "resume_from_checkpoint", "use_cpu", "report_to", "push_to_hub")),
    ("evaluation", ("validation_size", "eval_strategy", "eval_num_examples", "eval_strategies")),
)
_HELP_FLAGS = ("-h", "--help", "--help-all")


class _HelpAction(argparse.Action):
    """`-h/--help` (the most used options) or `--help-all` (every option), then exit."""

    def __init__(self, option_strings: Sequence[str], full: bool = False, help: Optional[str] = None, **_: Any):
        super().__init__(option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, nargs=0, help=help)
        self.full = full

    def __call__(self, parser: argparse.ArgumentParser, namespace: Any, values: Any, option_string: Any = None):
        if self.full:
            parser.print_help()
        else:
            parser.print_short_help()  # type: ignore[attr-defined]
        parser.exit()


def _one_spelling(action: argparse.Action) -> argparse.Action:
    """`action` shown with its first flag only (`--output_dir`, not also `--output-dir`)."""
    shown = copy.copy(action)
    shown.option_strings = action.option_strings[:1]
    return shown


class TrainingArgumentParser(ShortErrorsMixin, TrlParser):
    """`TrlParser` for training: `--config recipe.yaml` (flags override its keys), both spellings of every flag, a
    usage error in one line (the flag, the value, what is expected), a recipe that does not parse or holds unknown
    keys named with its file, line and column or the close matches, and `--help` with the most used options
    (`--help-all` for all of them).

    Example:
        ```python
        >>> from hf_unmask.trainer import UnmaskingGRPOConfig
        >>> from hf_unmask.trainer.data import UnmaskingScriptArguments
        >>> parser = TrainingArgumentParser((UnmaskingScriptArguments, UnmaskingGRPOConfig), prog="train")
        >>> script_args, args = parser.parse_args_and_config(["--task", "program_trace", "--alpha", "3"])
        >>> args.alpha
        3.0
        ```
    """

    def __init__(self, dataclass_types: Iterable[Any], prog: Optional[str] = None, description: Optional[str] = None):
        super().__init__(
            dataclass_types,
            prog=prog,
            description=description,
            usage="%(prog)s --config RECIPE.yaml [--OPTION VALUE ...]",
            add_help=False,
        )
        first = self.add_argument_group("recipe and help")
        first.add_argument(
            "--config",
            metavar="RECIPE.yaml",
            default=argparse.SUPPRESS,
            help="YAML recipe: one key per option below (`alpha: 3` for `--alpha 3`); flags override its keys. "
            "An `env:` mapping sets environment variables.",
        )
        first.add_argument("-h", "--help", action=_HelpAction, help="the most used options, then exit.")
        first.add_argument("--help-all", action=_HelpAction, full=True, help="every option, then exit.")
        self._action_groups.insert(0, self._action_groups.pop())  # shown first, before the hundreds of fields

    def format_short_help(self) -> str:
        """The help of `--help`: usage, description, `--config` and the options of `SHORT_HELP_GROUPS`."""
        formatter = self._get_formatter()
        formatter.add_usage(self.usage, [], [])
        formatter.add_text(self.description)
        known = self._option_string_actions
        groups = [(self._action_groups[0].title, self._action_groups[0]._group_actions)]
        for title, names in SHORT_HELP_GROUPS:
            groups.append((title, [_one_spelling(known[f"--{n}"]) for n in names if f"--{n}" in known]))
        for title, actions in groups:
            formatter.start_section(title)
            formatter.add_arguments(actions)
            formatter.end_section()
        count = len({a.dest for a in self._actions if a.option_strings and a.dest != argparse.SUPPRESS})
        formatter.add_text(
            f"These are the most used of {count} options; `{self.prog} --help-all` lists every one (TRL's GRPOConfig "
            "and transformers' TrainingArguments included). Multi-word flags take `-` or `_`."
        )
        return formatter.format_help()

    def print_short_help(self, file: Any = None) -> None:
        self._print_message(self.format_short_help(), file or sys.stdout)

    def parse_known_args(self, args: Optional[Sequence[str]] = None, namespace: Any = None) -> Any:
        args = normalize_spelling(list(sys.argv[1:] if args is None else args), self._option_string_actions)
        return super().parse_known_args(args, namespace)

    def parse_args_and_config(
        self,
        args: Optional[Iterable[str]] = None,
        return_remaining_strings: bool = False,
        fail_with_unknown_args: bool = True,
        separate_remaining_strings: bool = False,
    ) -> tuple[Any, ...]:
        """`TrlParser.parse_args_and_config`, with the recipe read and checked first (see the class)."""
        args = list(sys.argv[1:] if args is None else args)
        if any(arg in _HELP_FLAGS for arg in args[: args.index("--") if "--" in args else len(args)]):
            return self.parse_args_into_dataclasses(args=args)  # prints the help and exits: the recipe is not read
        path = find_option_value(args, "--config", self, remove=True)
        config_remaining: list[str] = []
        if path is not None:
            config = read_yaml_config(path, self)
            self._set_environment(config.pop("env", None), path)
            if fail_with_unknown_args and not return_remaining_strings:
                dests = {a.dest for a in self._actions if a.option_strings and a.dest != argparse.SUPPRESS}
                check_config_keys(config, dests, path, self)
            config_remaining = self.set_defaults_with_config(**config)
        output = self.parse_args_into_dataclasses(args=args, return_remaining_strings=True)
        if not return_remaining_strings:
            if output[-1]:
                self._unknown_arguments(output[-1])
            return output[:-1]
        if separate_remaining_strings:
            return output[:-1] + (config_remaining, output[-1])
        return output[:-1] + (config_remaining + output[-1],)

    def _set_environment(self, env: Any, path: str) -> None:
        """The recipe's `env:` mapping, as TRL applies it: environment variables set before parsing."""
        if env is None:
            return
        if not isinstance(env, dict):
            self.error(f"--config: `env` in {path} must be a mapping of variable names to values, not {env!r}")
        for key, value in env.items():
            os.environ[str(key)] = str(value)

    def _unknown_arguments(self, remaining: Sequence[str]) -> None:
        """`error` naming the command-line arguments no option takes, with the close matches of unknown flags."""
        flags = sorted(f for f in self._option_string_actions if f.startswith("--") and f not in _HELP_FLAGS)
        unknown = [arg for arg in remaining if arg.startswith("-")] or list(remaining)
        described = []
        for arg in unknown:
            close = difflib.get_close_matches(arg.partition("=")[0], flags, n=2) if arg.startswith("--") else []
            described.append(arg + (f" (did you mean {' or '.join(close)}?)" if close else ""))
        self.error(f"unknown option{'s' if len(unknown) > 1 else ''}: {', '.join(described)}")
