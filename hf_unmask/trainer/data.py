"""Where the training script's prompts come from: `UnmaskingScriptArguments` (a built-in task, a dataset or a YAML
mixture, prompt formatting, the reward specs, the final evaluation) and `load_prompts`."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

logger = logging.getLogger(__name__)


@dataclass
class DatasetSource:
    """One source of prompts in a `datasets:` or `eval_datasets:` list: a YAML entry, or a bare path on the command
    line (`--eval_datasets test.jsonl`). Unset, `split` is `train` for training and `test` for evaluation (a single
    local file is one split either way), and the columns are the top-level `--prompt_column` / `--answer_column`."""

    path: str
    name: Optional[str] = None
    split: Optional[str] = None
    data_files: Optional[Any] = None
    prompt_column: Optional[str] = None
    answer_column: Optional[str] = None
    max_samples: Optional[int] = None


def _source(entry: Any) -> DatasetSource:
    """A `DatasetSource` from a YAML mapping, a bare path (command line or YAML) or a `DatasetSource`."""
    if isinstance(entry, dict):
        return DatasetSource(**entry)
    if isinstance(entry, (str, os.PathLike)):
        return DatasetSource(path=str(entry))
    return entry


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
        metadata={
            "help": "Test prompts of the final evaluation, in place of rows held out of a single training file: "
            "files, folders or Hub ids on the command line (`--eval_datasets test.jsonl`; a Hub dataset's 'test' "
            "split), or YAML entries like `datasets:` (e.g. GSM8K test for a GSM8K + MATH training mixture)."
        },
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
            "'module:function', TRL's f(prompts, completions, **columns) -> list[float] or the f(completion, "
            "reference) -> bool of `hf-unmask evaluate --correctness` (reference: the 'reference' column). Default: "
            "the task's verifier for a built-in task, 'math' otherwise."
        },
    )
    eval_num_examples: int = field(
        default=200,
        metadata={
            "help": "Test prompts of the final evaluation (0: no final evaluation). A single local data file (one "
            "split) holds out this many of its rows for it, unless --eval_datasets names the test prompts."
        },
    )
    eval_strategies: list[str] = field(
        default_factory=lambda: ["confidence_threshold:threshold=0.9,0.7,0.5"],
        metadata={"help": "Heuristics compared with the policy in the final evaluation (hf_unmask.evaluation specs)."},
    )
    eval_seeds: list[int] = field(default_factory=lambda: [0], metadata={"help": "Seeds of the final evaluation."})
    eval_batch_size: int = field(default=32, metadata={"help": "Rows per generate call in the final evaluation."})
    validation_size: int = field(
        default=200,
        metadata={
            "help": "Training prompts held out for the evaluation during training (--eval_strategy steps, which "
            "--load_best_model_at_end uses to pick the best checkpoint): the last rows of a built-in task's train "
            "split, a seeded choice of a dataset's; they are not trained on. The final evaluation keeps the test "
            "prompts. 0: evaluate during training on the test prompts instead (which flatters the checkpoint it picks)."
        },
    )

    def __post_init__(self) -> None:
        self.datasets = [_source(d) for d in self.datasets]
        self.eval_datasets = [_source(d) for d in self.eval_datasets]
        sources = sum(bool(x) for x in (self.task, self.dataset_name, self.datasets))
        if sources != 1:
            raise ValueError(
                "Give exactly one source of prompts: --task NAME (built-in), --dataset_name ID_OR_FILE, or a "
                "`datasets:` list in the recipe."
            )
        if not isinstance(self.validation_size, int) or self.validation_size < 0:
            raise ValueError(
                f"validation_size must be a number of rows >= 0, got {self.validation_size!r}. Pass e.g. "
                "--validation_size 200, or 0 to evaluate during training on the test prompts."
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
    """A folder written by `save_to_disk`, a local data file (read as evaluation reads it: `load_data_file`, a
    single file being one split), or a Hub dataset / `datasets` builder; "file not found: <path>" for a local path
    that does not exist."""
    import datasets

    from ..evaluation.data import DATA_FILE_BUILDERS, check_local_source, load_data_file

    saved = os.path.isdir(path) and any((Path(path) / f).is_file() for f in ("dataset_dict.json", "dataset_info.json"))
    if saved:
        loaded = datasets.load_from_disk(path)
        return loaded[split] if isinstance(loaded, datasets.DatasetDict) and split is not None else loaded
    if os.path.isfile(path) and Path(path).suffix.lower() in DATA_FILE_BUILDERS:
        return load_data_file(path)
    check_local_source(path)
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


def _mixture(
    sources: list[DatasetSource], script_args: Any, needed: list[str], target: Optional[str], split: str = "train"
) -> Any:
    import datasets

    parts = []
    for src in sources:
        part = _load(src.path, src.name, src.split or split, src.data_files)
        prompt_column = src.prompt_column or script_args.prompt_column
        part = _standardise(part, prompt_column, src.answer_column or script_args.answer_column, target)
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
            "final evaluation leaves none for training. Pass a smaller --eval_num_examples, 0 for no final "
            "evaluation, or the test prompts in a file of their own with --eval_datasets test.jsonl."
        )
    split = dataset.train_test_split(test_size=n, shuffle=True, seed=0)
    logger.warning(
        "%s is a single file: %d of its %d rows (--eval_num_examples) are held out of training for the final "
        "evaluation, which trains on the other %d. To train on every row, pass --eval_num_examples 0 (no final "
        "evaluation) or give the test prompts in a file of their own with --eval_datasets test.jsonl.",
        source,
        n,
        len(dataset),
        len(dataset) - n,
    )
    return split["train"], split["test"]


def describe_test_prompts(script_args: UnmaskingScriptArguments) -> str:
    """Where the final evaluation's test prompts come from, in words (paths as `portable_name` shows them)."""
    from ..strategies.trained_for import portable_name

    if script_args.eval_datasets:
        return f"--eval_datasets {portable_name(','.join(d.path for d in script_args.eval_datasets))}"
    if script_args.task:
        return f"the test split of the built-in task {script_args.task}"
    if script_args.dataset_name and os.path.isfile(script_args.dataset_name):
        return f"held out of {portable_name(script_args.dataset_name)}; --eval_datasets names a separate file"
    return f"split {script_args.dataset_test_split!r} of {portable_name(script_args.source_names())}"


def split_validation(train: Any, script_args: UnmaskingScriptArguments) -> tuple[Any, Optional[Any]]:
    """`(train, validation)`: `--validation_size` of the training prompts held out for the evaluation during training
    (the script calls it when `eval_strategy` is not "no"); `(train, None)` with `validation_size` 0.

    For a built-in task they are the last rows of its train split (generated in order: the rows before them are those
    of a run with `task_train_size` that much smaller); for a dataset, file or mixture, a seeded choice (seed 0, the
    same for every training seed), the other rows keeping their order. Either way they are disjoint from the training
    rows, and the test prompts of the final evaluation are untouched."""
    n = script_args.validation_size
    if n <= 0:
        return train, None
    if script_args.task:
        where, how = f"the built-in task {script_args.task}", "its last rows"
        more = " or more training prompts (--task_train_size)"
    elif script_args.dataset_name and not os.path.isfile(script_args.dataset_name):
        where, how = f"split {script_args.dataset_train_split!r} of {script_args.dataset_name}", "a seeded choice"
        more = ""
    else:
        where, how = script_args.source_names(), "a seeded choice"
        more = ""
    total = len(train)
    if script_args.max_train_samples is not None and total >= script_args.max_train_samples:
        more = " or a larger --max_train_samples"
    if n >= total:
        smaller = f" (e.g. {total // 10})" if total >= 10 else ""
        raise ValueError(
            f"--validation_size {n} would hold out all {total} training prompts of {where} for the evaluation during "
            f"training, leaving none to train on. Pass a smaller --validation_size{smaller}{more}, 0 to evaluate on "
            "the test prompts, or --eval_strategy no (no evaluation during training)."
        )
    if script_args.task:
        keep, held = list(range(total - n)), list(range(total - n, total))
    else:
        import random

        held = sorted(random.Random(0).sample(range(total), n))
        chosen = set(held)
        keep = [i for i in range(total) if i not in chosen]
    logger.warning(
        "Validation: %d of the %d training prompts of %s (%s) are held out of training for the evaluation during "
        "training, which trains on the other %d; the final evaluation keeps the test prompts. Change the number with "
        "--validation_size N (0: evaluate during training on the test prompts).",
        n,
        total,
        where,
        how,
        total - n,
    )
    return train.select(keep), train.select(held)


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
        test = _mixture(script_args.eval_datasets, script_args, needed, target, split="test")
        logger.info(
            "Final evaluation on %s (%d rows, up to --eval_num_examples=%d of them).",
            ",".join(d.path for d in script_args.eval_datasets),
            len(test),
            script_args.eval_num_examples,
        )
    if script_args.max_train_samples is not None:
        train = train.select(range(min(script_args.max_train_samples, len(train))))
    train = _format_prompts(train, script_args)
    test = None if test is None else _format_prompts(test, script_args)
    return train, test
