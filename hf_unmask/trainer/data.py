"""Where the training script's prompts come from: `UnmaskingScriptArguments` (a built-in task, a dataset or a YAML
mixture, prompt formatting, the reward specs, the final evaluation) and `load_prompts`."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

logger = logging.getLogger(__name__)

_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".tsv": "csv", ".parquet": "parquet"}


@dataclass
class DatasetSource:
    """One source of prompts in a `datasets:` mixture (YAML)."""

    path: str
    name: Optional[str] = None
    split: str = "train"
    data_files: Optional[Any] = None
    prompt_column: str = "prompt"
    answer_column: Optional[str] = None
    max_samples: Optional[int] = None


@dataclass
class UnmaskingScriptArguments:
    """Where the prompts come from, how they are formatted, which rewards score them, and the final evaluation.

    Example:
        ```python
        >>> from hf_unmask.trainer import UnmaskingScriptArguments
        >>> UnmaskingScriptArguments(task="program_trace").reward_specs()
        ['task:program_trace']
        ```
    """

    task: Optional[str] = field(
        default=None, metadata={"help": "A built-in verifiable task (hf_unmask.tasks), e.g. 'program_trace'."}
    )
    task_train_size: int = field(default=20000, metadata={"help": "Training prompts generated for a built-in task."})
    task_test_size: int = field(default=500, metadata={"help": "Held-out prompts generated for a built-in task."})
    task_seed: int = field(default=0, metadata={"help": "Seed of the built-in task's generator."})
    dataset_name: Optional[str] = field(
        default=None,
        metadata={"help": "Hub dataset id, a local json/jsonl/csv/parquet file, or a folder written by save_to_disk."},
    )
    dataset_config: Optional[str] = field(default=None, metadata={"help": "Dataset configuration (e.g. 'main')."})
    dataset_train_split: str = field(default="train", metadata={"help": "Split used for training."})
    dataset_test_split: Optional[str] = field(
        default="test", metadata={"help": "Split used for evaluation (None: no evaluation split)."}
    )
    datasets: list[DatasetSource] = field(
        default_factory=list,
        metadata={"help": "A mixture of training sources (YAML only): path, name, split, prompt/answer columns."},
    )
    eval_datasets: list[DatasetSource] = field(
        default_factory=list,
        metadata={"help": "Evaluation sources (YAML only), e.g. GSM8K test for a GSM8K + MATH training mixture."},
    )
    prompt_column: str = field(default="prompt", metadata={"help": "Column holding the prompt."})
    answer_column: Optional[str] = field(
        default=None, metadata={"help": "Column holding the reference answer (renamed to what the reward reads)."}
    )
    prompt_template: Optional[str] = field(
        default=None, metadata={"help": "Format of every prompt, with a '{prompt}' placeholder."}
    )
    chat_template: bool = field(
        default=False, metadata={"help": "Send each prompt as a user message through the tokenizer's chat template."}
    )
    max_train_samples: Optional[int] = field(
        default=None, metadata={"help": "Keep at most this many training prompts."}
    )
    reward_funcs: Optional[list[str]] = field(
        default=None,
        metadata={
            "help": "Reward specs (hf_unmask.rewards.get_reward_function): 'task:<name>', 'math', 'code' or "
            "'module:function'. Default: the task's verifier for a built-in task, 'math' otherwise."
        },
    )
    eval_num_examples: int = field(
        default=200,
        metadata={
            "help": "Test prompts of the final evaluation (0: no final evaluation). A single local data file (one "
            "split) holds out this many of its rows for it."
        },
    )
    eval_strategies: list[str] = field(
        default_factory=lambda: ["confidence_threshold:threshold=0.9,0.7,0.5"],
        metadata={"help": "Heuristics compared with the policy in the final evaluation (hf_unmask.evaluation specs)."},
    )
    eval_seeds: list[int] = field(default_factory=lambda: [0], metadata={"help": "Seeds of the final evaluation."})
    eval_batch_size: int = field(default=32, metadata={"help": "Rows per generate call in the final evaluation."})

    def __post_init__(self) -> None:
        self.datasets = [DatasetSource(**d) if isinstance(d, dict) else d for d in self.datasets]
        self.eval_datasets = [DatasetSource(**d) if isinstance(d, dict) else d for d in self.eval_datasets]
        sources = sum(bool(x) for x in (self.task, self.dataset_name, self.datasets))
        if sources != 1:
            raise ValueError(
                "Give exactly one source of prompts: --task NAME (built-in), --dataset_name ID_OR_FILE, or a "
                "`datasets:` list in the recipe."
            )
        if self.prompt_template is not None and "{prompt}" not in self.prompt_template:
            raise ValueError(f"prompt_template must contain '{{prompt}}', got {self.prompt_template!r}.")

    def reward_specs(self) -> list[str]:
        if self.reward_funcs:
            return list(self.reward_funcs)
        return [f"task:{self.task}"] if self.task else ["math"]

    def source_names(self) -> str:
        if self.task:
            return f"hf_unmask:{self.task}"
        if self.dataset_name:
            return self.dataset_name
        return ",".join(d.path for d in self.datasets)


# ----------------------------------------------------------------------------------------------------------------
# data
# ----------------------------------------------------------------------------------------------------------------
def _load(path: str, name: Optional[str], split: Optional[str], data_files: Any = None) -> Any:
    import datasets

    saved = os.path.isdir(path) and any((Path(path) / f).is_file() for f in ("dataset_dict.json", "dataset_info.json"))
    if saved:
        loaded = datasets.load_from_disk(path)
        return loaded[split] if isinstance(loaded, datasets.DatasetDict) and split is not None else loaded
    suffix = Path(path).suffix.lower()
    if os.path.isfile(path) and suffix in _FILE_BUILDERS:
        loaded = datasets.load_dataset(_FILE_BUILDERS[suffix], data_files=path, split="train")
        return loaded  # a single file is one split
    return datasets.load_dataset(path, name=name, split=split, data_files=data_files)


def _standardise(dataset: Any, prompt_column: str, answer_column: Optional[str], answer_target: Optional[str]) -> Any:
    if prompt_column not in dataset.column_names:
        raise ValueError(
            f"The dataset has no prompt column '{prompt_column}' (columns: {', '.join(dataset.column_names)}). "
            "Name it with --prompt_column."
        )
    if prompt_column != "prompt":
        if "prompt" in dataset.column_names:
            dataset = dataset.remove_columns("prompt")
        dataset = dataset.rename_column(prompt_column, "prompt")
    if answer_column is not None and answer_target is not None and answer_column != answer_target:
        if answer_column not in dataset.column_names:
            raise ValueError(
                f"The dataset has no answer column '{answer_column}' (columns: {', '.join(dataset.column_names)}). "
                "Name it with --answer_column."
            )
        if answer_target in dataset.column_names:
            dataset = dataset.remove_columns(answer_target)
        dataset = dataset.rename_column(answer_column, answer_target)
    return dataset


def _format_prompts(dataset: Any, script_args: UnmaskingScriptArguments) -> Any:
    template, chat = script_args.prompt_template, script_args.chat_template
    if template is None and not chat:
        return dataset

    def fmt(row: dict[str, Any]) -> dict[str, Any]:
        text = row["prompt"] if template is None else template.replace("{prompt}", str(row["prompt"]))
        return {"prompt": [{"role": "user", "content": text}] if chat else text}

    return dataset.map(fmt)


def _mixture(sources: list[DatasetSource], script_args: Any, needed: list[str], target: Optional[str]) -> Any:
    import datasets

    parts = []
    for src in sources:
        part = _load(src.path, src.name, src.split, src.data_files)
        part = _standardise(part, src.prompt_column, src.answer_column or script_args.answer_column, target)
        part = part.select_columns(["prompt", *[c for c in needed if c in part.column_names]])
        if src.max_samples is not None:
            part = part.select(range(min(src.max_samples, len(part))))
        parts.append(part)
    return datasets.concatenate_datasets(parts)


def _hold_out(dataset: Any, source: str, n: int) -> tuple[Any, Optional[Any]]:
    """`(train, test)` from one file: `n` rows (a seeded shuffle) for the final evaluation, the rest for training."""
    if n <= 0:
        return dataset, None
    if len(dataset) <= n:
        raise ValueError(
            f"{source} is a single file with {len(dataset)} rows: holding out --eval_num_examples={n} of them for the "
            "final evaluation leaves none for training. Pass a smaller --eval_num_examples, or 0 for no final "
            "evaluation."
        )
    split = dataset.train_test_split(test_size=n, shuffle=True, seed=0)
    logger.warning(
        "%s is a single file: %d of its %d rows are held out for the final evaluation and training uses the other "
        "%d (--eval_num_examples 0 trains on every row).",
        source,
        n,
        len(dataset),
        len(dataset) - n,
    )
    return split["train"], split["test"]


def load_prompts(script_args: UnmaskingScriptArguments, reward_funcs: list) -> tuple[Any, Optional[Any]]:
    """`(train, test)` datasets with a `prompt` column and the columns the rewards read."""
    from ..rewards import required_columns

    needed = sorted({c for f in reward_funcs for c in required_columns(f)})
    target = needed[0] if len(needed) == 1 else None
    if script_args.task:
        from ..tasks import get_task

        splits = get_task(script_args.task).dataset(
            n_train=script_args.task_train_size, n_test=script_args.task_test_size, seed=script_args.task_seed
        )
        train, test = splits["train"], splits["test"]
        answer = script_args.answer_column or "reference"
        train, test = (_standardise(d, "prompt", answer, target) for d in (train, test))
    elif script_args.dataset_name:
        source = script_args.dataset_name
        train = _load(source, script_args.dataset_config, script_args.dataset_train_split)
        test = None
        if os.path.isfile(source):  # a single local file is one split: hold out the final evaluation's rows
            if not script_args.eval_datasets:
                train, test = _hold_out(train, source, script_args.eval_num_examples)
        elif script_args.dataset_test_split:
            try:
                test = _load(source, script_args.dataset_config, script_args.dataset_test_split)
            except (ValueError, KeyError):
                logger.warning("No '%s' split in %s: no final evaluation.", script_args.dataset_test_split, source)
        train, test = (
            None if d is None else _standardise(d, script_args.prompt_column, script_args.answer_column, target)
            for d in (train, test)
        )
    else:
        train, test = _mixture(script_args.datasets, script_args, needed, target), None
    if script_args.eval_datasets:
        test = _mixture(script_args.eval_datasets, script_args, needed, target)
    if script_args.max_train_samples is not None:
        train = train.select(range(min(script_args.max_train_samples, len(train))))
    train = _format_prompts(train, script_args)
    test = None if test is None else _format_prompts(test, script_args)
    return train, test
