"""The examples an evaluation runs on: `EvaluationData` from a built-in task or any `datasets` dataset, and local
data files (json / jsonl / csv / tsv / parquet) read as a `datasets.Dataset`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Union

from .correctness import CorrectnessFn, resolve_correctness

__all__ = ["DATA_FILE_BUILDERS", "EvaluationData", "check_local_source", "load_data_file"]

#: The `datasets` builder that reads a local data file, by file extension.
DATA_FILE_BUILDERS: dict[str, str] = {
    ".json": "json",
    ".jsonl": "json",
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
}


def check_local_source(source: Union[str, os.PathLike]) -> None:
    """`FileNotFoundError` ("file not found: <path>") when a dataset argument names a local path that does not exist.

    A path-like argument is an `os.PathLike`, a name with a data-file extension (`DATA_FILE_BUILDERS`) or one that
    starts with `./`, `../`, `~` or `/`; anything else may be a Hub dataset id (`owner/name`) and is not checked.

    Example:
        ```python
        >>> check_local_source("openai/gsm8k")  # a Hub id: not checked here
        >>> check_local_source("./nothere.jsonl")
        Traceback (most recent call last):
        ...
        FileNotFoundError: file not found: ./nothere.jsonl. Check the path, or name a Hub dataset by its id (owner/name).
        ```
    """
    text = os.fspath(source)
    path_like = (
        isinstance(source, os.PathLike)
        or text.startswith(("./", "../", ".\\", "..\\", "~"))
        or os.path.isabs(text)
        or Path(text).suffix.lower() in DATA_FILE_BUILDERS
    )
    if path_like and not os.path.exists(os.path.expanduser(text)):
        raise FileNotFoundError(
            f"file not found: {text}. Check the path, or name a Hub dataset by its id (owner/name)."
        )


def load_data_file(path: Union[str, os.PathLike]) -> Any:
    """A local json / jsonl / csv / tsv / parquet file as one `datasets.Dataset` (a single file is one split); `.tsv`
    is read with a tab delimiter. Training (`hf_unmask.trainer`) and evaluation both read local files with it.

    Example:
        ```python
        >>> import tempfile
        >>> from pathlib import Path
        >>> from hf_unmask.evaluation import load_data_file
        >>> path = Path(tempfile.mkdtemp()) / "data.tsv"
        >>> _ = path.write_text("question\\tanswer\\n1 + 1\\t2\\n")
        >>> load_data_file(path)[0]
        {'question': '1 + 1', 'answer': 2}
        ```
    """
    import datasets

    suffix = Path(path).suffix.lower()
    builder = DATA_FILE_BUILDERS.get(suffix)
    if builder is None:
        raise ValueError(
            f"Cannot read '{os.fspath(path)}': unknown file type '{suffix}'. Use .json, .jsonl, .csv, .tsv or .parquet."
        )
    if not os.path.isfile(path):
        check_local_source(path)
        raise FileNotFoundError(f"file not found: {os.fspath(path)} (not a file).")
    kwargs = {"delimiter": "\t"} if suffix == ".tsv" else {}
    return datasets.load_dataset(builder, data_files=os.fspath(path), split="train", **kwargs)


@dataclass
class EvaluationData:
    """The examples to evaluate on: prompts, references, and how a completion is judged.

    Build it from a built-in task (`from_task`) or from any `datasets` dataset (`from_dataset`).

    Example:
        ```python
        >>> from hf_unmask.evaluation import EvaluationData, exact_match
        >>> data = EvaluationData(["1+1="], ["2"], exact_match, name="toy")
        >>> len(data)
        1
        ```
    """

    prompts: list[str]
    references: list[str]
    is_correct: CorrectnessFn
    name: str = "data"

    def __post_init__(self) -> None:
        if len(self.prompts) != len(self.references):
            raise ValueError(f"{len(self.prompts)} prompts but {len(self.references)} references; they must pair up.")
        if not self.prompts:
            raise ValueError(f"No examples to evaluate in '{self.name}'. Check the split and n_examples.")

    def __len__(self) -> int:
        return len(self.prompts)

    @classmethod
    def from_task(cls, task: Any, n_examples: int = 100, split: str = "test", seed: int = 0) -> EvaluationData:
        """`n_examples` from a built-in `VerifiableTask` (an instance or its registered name).

        The test split is disjoint from the training prompts and its first examples do not depend on
        `n_examples`, so a smaller evaluation is a prefix of a larger one.
        """
        from ..tasks import get_task

        if isinstance(task, str):
            task = get_task(task)
        if not hasattr(task, "dataset") or not hasattr(task, "is_correct"):
            raise TypeError(f"task must be a VerifiableTask or its name, got {type(task).__name__}.")
        if not isinstance(n_examples, int) or n_examples <= 0:
            raise ValueError(f"n_examples must be a positive integer for a built-in task, got {n_examples!r}.")
        if split == "test":
            splits = task.dataset(n_train=0, n_test=n_examples, seed=seed)
        elif split == "train":
            splits = task.dataset(n_train=n_examples, seed=seed)
        else:
            raise ValueError(f"Built-in tasks have the splits 'train' and 'test', not '{split}'.")
        ds = splits[split]
        name = getattr(task, "name", "") or type(task).__name__
        return cls(list(ds["prompt"])[:n_examples], list(ds["reference"])[:n_examples], task.is_correct, name=name)

    @classmethod
    def from_dataset(
        cls,
        dataset: Any,
        prompt_column: str = "prompt",
        reference_column: str = "reference",
        correctness: Union[str, CorrectnessFn] = "math_verify",
        split: str = "test",
        n_examples: Optional[int] = None,
        config_name: Optional[str] = None,
        prompt_template: Optional[str] = None,
        name: Optional[str] = None,
    ) -> EvaluationData:
        """Examples from a `datasets.Dataset` / `DatasetDict`, a Hub dataset id, or a local json/jsonl/csv/parquet.

        Args:
            dataset: the dataset object, a Hub id (e.g. `"openai/gsm8k"` with `config_name="main"`) or a file.
            prompt_column, reference_column: column names (GSM8K: `question`, `answer`).
            correctness: see `resolve_correctness` (`math_verify` suits GSM8K / MATH).
            split: split of a Hub dataset or `DatasetDict` (a single local file is one split).
            n_examples: keep the first n rows (None = all).
            prompt_template: e.g. `"Question: {prompt}\\nAnswer:"`, applied to every prompt.

        Example:
            ```python
            >>> from datasets import Dataset
            >>> rows = Dataset.from_dict({"question": ["1 + 1 = ?", "2 * 3 = ?"], "answer": ["2", "6"]})
            >>> data = EvaluationData.from_dataset(
            ...     rows, prompt_column="question", reference_column="answer", correctness="exact_match",
            ...     prompt_template="Q: {prompt}\\nA:")
            >>> data.prompts[1], data.is_correct(" 6", data.references[1])
            ('Q: 2 * 3 = ?\\nA:', True)
            ```

            GSM8K from the Hub (not run in tests: it downloads the dataset):

            ```python
            >>> data = EvaluationData.from_dataset(  # doctest: +SKIP
            ...     "openai/gsm8k", config_name="main", split="test", prompt_column="question",
            ...     reference_column="answer", correctness="math_verify", n_examples=200)
            ```
        """
        import datasets

        is_correct = resolve_correctness(correctness)  # cheap: fail on a bad name before loading any data
        label = name
        if isinstance(dataset, (str, os.PathLike)):
            source = str(dataset)
            label = label or (Path(source).stem if os.path.isfile(source) else source)
            ds = _load_dataset(source, config_name, split)
        else:
            ds = dataset
            label = label or "dataset"
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise ValueError(f"The dataset has no split '{split}' (splits: {', '.join(ds)}). Pass --split NAME.")
            ds = ds[split]
        columns = list(ds.column_names)
        for role, column, flag in (
            ("prompt", prompt_column, "--prompt-column"),
            ("reference", reference_column, "--reference-column"),
        ):
            if column not in columns:
                raise ValueError(
                    f"The dataset has no {role} column '{column}' (columns: {', '.join(columns)}). Name the right one "
                    f"with {flag} (Python: {role}_column=...)."
                )
        if n_examples is not None:
            if n_examples <= 0:
                raise ValueError(f"n_examples must be positive or None (all rows), got {n_examples}.")
            ds = ds.select(range(min(n_examples, len(ds))))
        prompts = [str(p) for p in ds[prompt_column]]
        if prompt_template is not None:
            if "{prompt}" not in prompt_template:
                raise ValueError(f"prompt_template must contain '{{prompt}}', got {prompt_template!r}.")
            prompts = [prompt_template.replace("{prompt}", p) for p in prompts]
        references = [str(r) for r in ds[reference_column]]
        return cls(prompts, references, is_correct, name=label)


def _load_dataset(source: str, config_name: Optional[str], split: str) -> Any:
    import datasets

    if os.path.isfile(source):
        return load_data_file(source)
    check_local_source(source)
    if os.path.isdir(source) and not any(Path(source).iterdir()):
        raise ValueError(f"Dataset folder '{source}' is empty.")
    try:
        return datasets.load_dataset(source, config_name, split=split)
    except (FileNotFoundError, ConnectionError) as err:
        raise ValueError(
            f"Could not load dataset '{source}' ({type(err).__name__}: {err}). Pass a Hub dataset id (with network or "
            "a warm cache) or a local .json/.jsonl/.csv/.tsv/.parquet file."
        ) from err
