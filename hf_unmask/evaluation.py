"""Evaluate unmasking strategies: accuracy vs NFE over budgets, block lengths and seeds.

One call runs every (strategy, budget, block length, seed) combination on the same examples, and returns an
`EvaluationResult` whose rows are the accuracy / NFE table; `result.save(output_dir)` writes it as CSV and JSON
and draws the Pareto plot (accuracy vs mean NFE, one curve per strategy family, one panel per block length).

Example:
    ```python
    >>> from hf_unmask.evaluation import evaluate_strategies
    >>> result = evaluate_strategies(  # doctest: +SKIP
    ...     model, tokenizer, task="program_trace",
    ...     strategies=["top_k_confidence:steps=16,32,64", "confidence_threshold:threshold=0.9,0.7"],
    ...     block_lengths=[8, None], seeds=[0, 1], n_examples=100,
    ... )
    >>> print(result.format_table())  # doctest: +SKIP
    >>> result.save("eval_out")  # doctest: +SKIP
    {'csv': PosixPath('eval_out/evaluation.csv'), 'json': ..., 'png': PosixPath('eval_out/pareto.png')}
    ```
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import os
import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import torch

from .generation import check_block_length, cut_at_eos, eos_id_list
from .plotting import plot_pareto, short_value
from .strategies import UnmaskingStrategy, registered_strategy_names, resolve_strategy_name

__all__ = [
    "CORRECTNESS_FUNCTIONS",
    "EvaluationData",
    "EvaluationInterrupted",
    "EvaluationResult",
    "StrategySpec",
    "decode_completions",
    "default_budget_knob",
    "default_strategy_specs",
    "evaluate_strategies",
    "exact_match",
    "front_accuracy_at",
    "load_model_and_tokenizer",
    "math_verify_correct",
    "pareto_front",
    "plan_sweep",
    "plot_pareto",
    "resolve_correctness",
]

CorrectnessFn = Callable[[str, str], bool]

# --------------------------------------------------------------------------------------------- correctness


def _final_answer_text(text: str) -> str:
    """The part after the last GSM8K-style `####` marker, or the whole text."""
    return text.rsplit("####", 1)[-1].strip() if "####" in text else text


def math_verify_correct(completion: str, reference: str) -> bool:
    """GSM8K / MATH correctness with `math_verify`: parse the final answer of both and compare them symbolically.

    A GSM8K reference (`... #### 72`) is reduced to what follows `####`; so is the completion when it uses the
    marker. Otherwise `math_verify.parse` finds the answer (`\\boxed{}`, last number, LaTeX...).

    Example:
        ```python
        >>> math_verify_correct("48 / 2 = 24, 48 + 24 = 72. The answer is 72.", "48/2 = 24 ... #### 72")
        True
        ```
    """
    try:
        from math_verify import parse, verify
    except ImportError as err:  # pragma: no cover - math-verify is in the [train] extra
        raise ImportError(
            "The 'math_verify' correctness function needs the math-verify package: pip install 'hf_unmask[train]' "
            "(or pip install math-verify)."
        ) from err
    gold = parse(_final_answer_text(reference))
    pred = parse(_final_answer_text(completion))
    if not gold or not pred:
        return False
    return bool(verify(gold, pred))


def exact_match(completion: str, reference: str) -> bool:
    """True when the completion equals the reference after stripping whitespace at both ends.

    Example:
        ```python
        >>> exact_match(" 42\\n", "42")
        True
        ```
    """
    return completion.strip() == reference.strip()


#: Correctness functions selectable by name (`--correctness NAME`); any `module:function` works too.
CORRECTNESS_FUNCTIONS: dict[str, CorrectnessFn] = {
    "math_verify": math_verify_correct,
    "exact_match": exact_match,
}


def resolve_correctness(spec: Union[str, CorrectnessFn]) -> CorrectnessFn:
    """Turn a correctness spec into a function `(completion, reference) -> bool`.

    `spec` is a callable, a name in `CORRECTNESS_FUNCTIONS` (`math_verify`, `exact_match`) or `module:function`
    naming an importable Python function (e.g. `my_rewards:is_correct`; the current directory is importable).

    Example:
        ```python
        >>> resolve_correctness("exact_match")("a", " a")
        True
        ```
    """
    if callable(spec):
        return spec
    if not isinstance(spec, str) or not spec:
        raise ValueError(f"correctness must be a function or a name, got {spec!r}.")
    if spec in CORRECTNESS_FUNCTIONS:
        return CORRECTNESS_FUNCTIONS[spec]
    if ":" not in spec:
        raise ValueError(
            f"Unknown correctness function '{spec}'. Use one of {', '.join(sorted(CORRECTNESS_FUNCTIONS))}, or "
            "'module:function' naming your own function (completion: str, reference: str) -> bool."
        )
    from ._importing import import_object

    func = import_object(spec, "correctness function")
    if not callable(func):
        raise ValueError(f"Correctness function '{spec}' is a {type(func).__name__}, not a function.")
    return func


# ---------------------------------------------------------------------------------------------- examples


@dataclass
class EvaluationData:
    """The examples to evaluate on: prompts, references, and how a completion is judged.

    Build it from a built-in task (`from_task`) or from any `datasets` dataset (`from_dataset`).

    Example:
        ```python
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
        from .tasks import get_task

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


_FILE_BUILDERS = {".json": "json", ".jsonl": "json", ".csv": "csv", ".parquet": "parquet", ".tsv": "csv"}


def _load_dataset(source: str, config_name: Optional[str], split: str) -> Any:
    import datasets

    if os.path.isfile(source):
        suffix = Path(source).suffix.lower()
        builder = _FILE_BUILDERS.get(suffix)
        if builder is None:
            raise ValueError(
                f"Cannot read '{source}': unknown file type '{suffix}'. Use .json, .jsonl, .csv, .tsv or .parquet."
            )
        kwargs = {"delimiter": "\t"} if suffix == ".tsv" else {}
        return datasets.load_dataset(builder, data_files=source, split="train", **kwargs)
    if os.path.isdir(source) and not any(Path(source).iterdir()):
        raise ValueError(f"Dataset folder '{source}' is empty.")
    try:
        return datasets.load_dataset(source, config_name, split=split)
    except (FileNotFoundError, ConnectionError) as err:
        raise ValueError(
            f"Could not load dataset '{source}' ({type(err).__name__}: {err}). Pass a Hub dataset id (with network or "
            "a warm cache) or a local .json/.jsonl/.csv/.parquet file."
        ) from err


# ------------------------------------------------------------------------------------------ strategy specs

#: Budget knob of each built-in family when a spec gives bare values (`confidence_threshold:0.9,0.7`).
DEFAULT_BUDGET_KNOBS: dict[str, str] = {
    "confidence_threshold": "threshold",
    "confidence_factor": "factor",
    "eb_sampler": "gamma",
}
# Spellings accepted for a learned policy's knobs, mapped onto whatever its constructor calls them.
_KNOB_ALIASES: dict[str, tuple[str, ...]] = {
    "tau": ("temperature", "tau_pi", "policy_temperature"),
    "temperature": ("tau", "tau_pi", "policy_temperature"),
}

SPEC_SYNTAX = (
    "NAME[:KNOB=V1,V2,...][:KNOB2=...] where NAME is a strategy name (see `hf-unmask list`) or a saved strategy "
    "folder, KNOB a constructor argument (steps, threshold, factor, gamma, beta, temperature...) and V1,V2,... the "
    "budgets to sweep; e.g. top_k_confidence:steps=16,32,64 or confidence_threshold:threshold=0.9,0.7. Bare values "
    "(NAME:V1,V2) use the family's budget knob."
)


def _parse_value(text: str) -> Any:
    low = text.lower()
    if low in ("none", "null"):
        return None
    if low in ("true", "false"):
        return low == "true"
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    try:
        return float(text)
    except ValueError:
        return text


def default_budget_knob(cls: type[UnmaskingStrategy]) -> Optional[str]:
    """The knob a bare budget list sweeps for strategy class `cls` (None when it has no obvious one)."""
    declared = getattr(cls, "budget_knob", None)
    if isinstance(declared, str):
        return declared
    keys = cls._config_keys()
    if cls.name in DEFAULT_BUDGET_KNOBS and DEFAULT_BUDGET_KNOBS[cls.name] in keys:
        return DEFAULT_BUDGET_KNOBS[cls.name]
    for knob in ("steps", "threshold", "factor", "gamma", "beta"):
        if knob in keys:
            return knob
    return keys[0] if len(keys) == 1 else None


@dataclass
class StrategySpec:
    """A strategy family and the budgets to sweep: `NAME[:KNOB=V1,V2,...][:KNOB2=...]`.

    `NAME` is a registered short name (`top_k_confidence`, `confidence_threshold`, ...) or a folder / Hub repo
    written by `strategy.save_pretrained`. Each `KNOB=V1,V2` sweeps a constructor argument; several knobs are
    crossed. A learned policy with no knob is evaluated once, as saved.

    Example:
        ```python
        >>> spec = StrategySpec.parse("top_k_confidence:steps=16,32")
        >>> [budget for budget, _ in spec.instances()]
        [{'steps': 16}, {'steps': 32}]
        >>> spec.label
        'top_k_confidence'
        ```
    """

    strategy: str
    grid: dict[str, list[Any]] = field(default_factory=dict)
    label: Optional[str] = None

    def __post_init__(self) -> None:
        for knob, values in self.grid.items():
            if not isinstance(values, (list, tuple)):
                self.grid[knob] = values = [values]
            if len(values) == 0:
                raise ValueError(
                    f"Empty budget list for '{knob}' of strategy '{self.strategy}'. Give at least one value, e.g. "
                    f"{self.strategy}:{knob}=V1,V2."
                )
        if self.label is None:
            path = Path(self.strategy)
            self.label = path.name if os.path.isdir(self.strategy) and path.name else self.strategy
        self._cls = self._resolve_class()
        self._check_knobs()

    # ---- parsing --------------------------------------------------------------------------------------
    @classmethod
    def parse(cls, text: str) -> StrategySpec:
        """Parse `NAME[:KNOB=V1,V2,...][:KNOB2=...]` (see the class docstring)."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"Empty strategy spec. Expected {SPEC_SYNTAX}")
        name, *parts = text.strip().split(":")
        if not name:
            raise ValueError(f"Strategy spec '{text}' has no strategy name before ':'. Expected {SPEC_SYNTAX}")
        grid: dict[str, list[Any]] = {}
        for part in parts:
            knob, eq, values = part.partition("=")
            knob = knob.strip()
            if not eq:  # bare values: the family's budget knob
                values, knob = part, ""
            items = [v.strip() for v in values.split(",")]
            if values.strip() == "":
                raise ValueError(
                    f"Empty budget list in strategy spec '{text}'. Give values after '=', e.g. "
                    f"{name}:{knob or 'steps'}=16,32,64."
                )
            if any(item == "" for item in items):
                raise ValueError(f"Empty value in budget list '{values}' of strategy spec '{text}' (stray comma?).")
            if knob in grid:
                raise ValueError(f"Knob '{knob}' is given twice in strategy spec '{text}'; list all values once.")
            grid[knob] = [_parse_value(v) for v in items]
        if "" in grid:
            strategy_cls, _ = resolve_strategy_name(name)
            knob = default_budget_knob(strategy_cls)
            if knob is None:
                raise ValueError(
                    f"Strategy '{name}' has no default budget knob; name it: {name}:KNOB=V1,V2 with KNOB one of "
                    f"{', '.join(strategy_cls._config_keys()) or '(none: it takes no arguments)'}."
                )
            if knob in grid:
                raise ValueError(f"Strategy spec '{text}' gives '{knob}' both by name and as bare values.")
            grid = {(knob if k == "" else k): v for k, v in grid.items()}
        return cls(name, grid)

    def _resolve_class(self) -> type[UnmaskingStrategy]:
        self._cls, self._source = resolve_strategy_name(self.strategy)
        return self._cls

    def _check_knobs(self) -> None:
        keys = self._cls._config_keys()
        renamed = {}
        for knob in self.grid:
            target = knob
            if knob not in keys:
                target = next((alias for alias in _KNOB_ALIASES.get(knob, ()) if alias in keys), None)
                if target is None:
                    raise ValueError(
                        f"Strategy '{self.strategy}' ({self._cls.__name__}) has no knob '{knob}'. Its knobs: "
                        f"{', '.join(keys) or '(none)'}."
                    )
            renamed[knob] = target
        self.grid = {renamed[k]: v for k, v in self.grid.items()}

    # ---- expansion ------------------------------------------------------------------------------------
    def budgets(self) -> list[dict[str, Any]]:
        """Every combination of knob values, in the order given (`[{}]` when no knob is given)."""
        if not self.grid:
            return [{}]
        knobs = list(self.grid)
        return [dict(zip(knobs, combo)) for combo in itertools.product(*(self.grid[k] for k in knobs))]

    def build(self, budget: dict[str, Any]) -> UnmaskingStrategy:
        """The strategy object for one budget."""
        try:
            if self._source is not None:
                return UnmaskingStrategy.from_pretrained(self._source, **budget)
            return self._cls(**budget)
        except (TypeError, ValueError) as err:
            raise ValueError(f"Cannot build strategy '{self.strategy}' with {budget}: {err}") from err

    def instances(self) -> list[tuple[dict[str, Any], UnmaskingStrategy]]:
        """`(budget, strategy)` for every budget."""
        return [(budget, self.build(budget)) for budget in self.budgets()]

    def __str__(self) -> str:
        knobs = ":".join(f"{k}={','.join(str(v) for v in vals)}" for k, vals in self.grid.items())
        return f"{self.strategy}:{knobs}" if knobs else self.strategy


def _as_spec(spec: Union[str, StrategySpec, UnmaskingStrategy]) -> StrategySpec:
    if isinstance(spec, StrategySpec):
        return spec
    if isinstance(spec, str):
        return StrategySpec.parse(spec)
    if isinstance(spec, UnmaskingStrategy):
        return _FixedSpec(spec)
    raise TypeError(
        f"A strategy to evaluate must be a spec string, a StrategySpec or an UnmaskingStrategy, got "
        f"{type(spec).__name__}."
    )


class _FixedSpec(StrategySpec):
    """An already-built strategy object, evaluated as is (one point)."""

    def __init__(self, strategy: UnmaskingStrategy) -> None:
        self._obj = strategy
        self.strategy = getattr(type(strategy), "name", None) or type(strategy).__name__
        self.label = self.strategy
        self.grid = {}
        self._cls = type(strategy)
        self._source = None

    def budgets(self) -> list[dict[str, Any]]:
        return [{}]

    def build(self, budget: dict[str, Any]) -> UnmaskingStrategy:
        return self._obj

    def __str__(self) -> str:
        return repr(self._obj)


def default_strategy_specs(gen_length: int, block_lengths: Sequence[int]) -> list[StrategySpec]:
    """A standard sweep of every registered heuristic, with step budgets that fit all `block_lengths`.

    Fixed-count strategies get steps in {L/8, L/4, L/2, L} that are multiples of every block count; threshold
    rules get thresholds 0.9 / 0.7 / 0.5, factor rules 1 / 2 / 4, EB-Sampler gamma 0.01 / 0.1 / 1.

    Example:
        ```python
        >>> [str(s) for s in default_strategy_specs(64, [8, 64])][:1]
        ['top_k_confidence:steps=8,16,32,64']
        ```
    """
    blocks = [gen_length // bl for bl in block_lengths]
    lcm = 1
    for nb in blocks:
        lcm = lcm * nb // math.gcd(lcm, nb)
    steps = sorted(
        {s for s in (gen_length // 8, gen_length // 4, gen_length // 2, gen_length) if s > 0 and s % lcm == 0}
    )
    if not steps:
        steps = [gen_length]
    grids: dict[str, dict[str, list[Any]]] = {
        "top_k_confidence": {"steps": steps},
        "top_k_margin": {"steps": steps},
        "top_k_entropy": {"steps": steps},
        "random": {"steps": steps},
        "random_time_grid": {"steps": steps},
        "confidence_threshold": {"threshold": [0.9, 0.7, 0.5]},
        "confidence_factor": {"factor": [1.0, 2.0, 4.0]},
        "eb_sampler": {"gamma": [0.01, 0.1, 1.0]},
    }
    names = registered_strategy_names()
    specs = []
    for name, grid in grids.items():
        if name in names and all(k in names[name]._config_keys() for k in grid):
            specs.append(StrategySpec(name, {k: list(v) for k, v in grid.items()}))
    return specs


# ------------------------------------------------------------------------------------------------ models


def load_model_and_tokenizer(
    model_name_or_path: Optional[str] = None,
    tokenizer_name_or_path: Optional[str] = None,
    device: Optional[Union[str, torch.device]] = None,
    dtype: Optional[Union[str, torch.dtype]] = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """Load a dLLM and its tokenizer with `hf_unmask.models.load_dllm`: the built-in model (`None`, `"builtin"` or
    `"builtin:NAME"`) or any path / Hub id that `hf_unmask.AutoDiffusionLM` understands.

    Example:
        ```python
        >>> model, tokenizer = load_model_and_tokenizer("builtin")
        >>> type(model).__name__
        'TinyDLLMForMaskedDiffusion'
        ```
    """
    from .models import load_dllm

    return load_dllm(
        model_name_or_path,
        dtype=dtype,
        device=device,
        tokenizer=tokenizer_name_or_path,
        trust_remote_code=trust_remote_code,
    )


def _ensure_diffusion_generate(model: Any, tokenizer: Any) -> Any:
    """Give the model a diffusion `generate` if it has none (in place)."""
    from .generation import DiffusionGenerationMixin, enable_diffusion_generate
    from .models import unwrap_model

    if isinstance(unwrap_model(model), DiffusionGenerationMixin) or hasattr(model, "diffusion_adapter"):
        return model
    return enable_diffusion_generate(model, tokenizer=tokenizer)


def _model_device(model: Any) -> torch.device:
    device = getattr(model, "device", None)
    if isinstance(device, torch.device):
        return device
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")


def _eos_ids(model: Any, tokenizer: Any) -> set[int]:
    from .models import unwrap_model

    ids: set[int] = set()
    gen_config = getattr(unwrap_model(model), "generation_config", None)
    value = getattr(gen_config, "eos_token_id", None) if gen_config is not None else None
    ids.update(int(v) for v in eos_id_list(value))
    if getattr(tokenizer, "eos_token_id", None) is not None:
        ids.add(int(tokenizer.eos_token_id))
    return ids


def _default_gen_length(model: Any) -> int:
    from .generation.loop import resolve_generation_config

    return resolve_generation_config(model, None, {}).gen_length


def decode_completions(
    sequences: torch.Tensor, prompt_length: int, tokenizer: Any, eos_ids: Iterable[int]
) -> list[str]:
    """Decode the generated part of each row, cut at its first EOS (special tokens dropped).

    Example:
        ```python
        >>> decode_completions(out.sequences, input_ids.shape[1], tokenizer, {tokenizer.eos_token_id})  # doctest: +SKIP
        ['2 + 3 = 5 ...']
        ```
    """
    eos = set(eos_ids)
    rows = sequences[:, prompt_length:].tolist()
    return [tokenizer.decode(cut_at_eos(row, eos), skip_special_tokens=True).strip() for row in rows]


# ------------------------------------------------------------------------------------------------ result

TABLE_COLUMNS = [
    "strategy",
    "budget",
    "block_length",
    "mode",
    "gen_length",
    "accuracy_mean",
    "accuracy_std",
    "nfe_mean",
    "nfe_std",
    "nfe_example_std",
    "wall_time_s",
    "n_examples",
    "seeds",
    "accuracy_per_seed",
    "nfe_per_seed",
    "pareto",
    "params",
]


@dataclass
class EvaluationResult:
    """The accuracy/NFE table: one row per strategy x budget x block length, aggregated over seeds.

    Row fields: `strategy` (family label), `budget` (e.g. `"steps=16"`), `params` (the knob values),
    `block_length`, `mode` (`semi_ar` or `full_diffusion`), `gen_length` (L), `accuracy_mean` / `accuracy_std`
    (over seeds, population std: 0 with one seed), `nfe_mean` / `nfe_std` (mean NFE per example; std over seeds),
    `nfe_example_std` (spread of NFE over examples, pooled over seeds), `wall_time_s` (generation time summed
    over seeds), `n_examples`, `seeds`, `accuracy_per_seed`, `nfe_per_seed`, `pareto` (on the accuracy/NFE
    Pareto front of its block length). `meta` records the setting, which labels are learned `policies`, and
    `complete` (False, with `settings_done` of `settings_planned`, for an interrupted evaluation).

    Example:
        ```python
        >>> result.rows[0]["accuracy_mean"]  # doctest: +SKIP
        0.42
        >>> paths = result.save("eval_out")  # doctest: +SKIP
        ```
    """

    rows: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self, path: Union[str, os.PathLike]) -> Path:
        """Write `{"meta": ..., "rows": [...]}`."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"meta": self.meta, "rows": self.rows}, indent=2) + "\n")
        return path

    def to_csv(self, path: Union[str, os.PathLike]) -> Path:
        """Write one CSV line per row (lists space-separated, params as JSON)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=TABLE_COLUMNS)
            writer.writeheader()
            for row in self.rows:
                out = dict(row)
                for key in ("seeds", "accuracy_per_seed", "nfe_per_seed"):
                    out[key] = " ".join(str(v) for v in row[key])
                out["params"] = json.dumps(row["params"], sort_keys=True)
                writer.writerow({k: out.get(k) for k in TABLE_COLUMNS})
        return path

    def merged_with(self, *others: EvaluationResult) -> EvaluationResult:
        """One table from several evaluations of the same task, model and L, e.g. one per block length with the
        strategies that suit it (a policy trained for BL 8 in the semi-AR panel only). Pareto flags are recomputed
        per block length.

        Example:
            ```python
            >>> both = semi_ar_result.merged_with(full_diffusion_result)  # doctest: +SKIP
            ```
        """
        for other in others:
            for key in ("task", "model", "gen_length"):
                if other.meta.get(key) != self.meta.get(key):
                    raise ValueError(
                        f"Cannot merge evaluations with different {key}: {self.meta.get(key)!r} vs "
                        f"{other.meta.get(key)!r}. Merge only tables of the same task, model and generation length."
                    )
        results = (self, *others)
        rows = [dict(row) for result in results for row in result.rows]
        block_lengths = list(dict.fromkeys(row["block_length"] for row in rows))
        _flag_pareto_per_block_length(rows)
        meta = dict(self.meta)
        meta["block_lengths"] = block_lengths
        for key in ("strategies", "policies"):
            meta[key] = list(dict.fromkeys(s for result in results for s in result.meta.get(key, [])))
        meta["complete"] = all(result.meta.get("complete", True) for result in results)
        for key in ("settings_done", "settings_planned"):
            meta[key] = sum(result.meta.get(key, len(result.rows)) for result in results)
        return EvaluationResult(rows=rows, meta=meta, samples=[s for result in results for s in result.samples])

    @property
    def complete(self) -> bool:
        """False for the partial table of an interrupted evaluation (`EvaluationInterrupted`)."""
        return bool(self.meta.get("complete", True))

    def plot(self, path: Union[str, os.PathLike], title: Optional[str] = None) -> Path:
        """Draw the Pareto plot (accuracy vs mean NFE; one panel per block length, one curve per family; learned
        policies drawn on top)."""
        return plot_pareto(self.rows, path, title=title or self._title(), highlight=self.meta.get("policies", ()))

    def _title(self) -> str:
        meta = self.meta
        parts = [str(meta.get("task", "")), str(meta.get("model", ""))]
        parts.append(f"L={meta.get('gen_length')}, n={meta.get('n_examples')}, seeds={len(meta.get('seeds', []))}")
        if not self.complete:
            parts.append(f"PARTIAL: {meta.get('settings_done')} of {meta.get('settings_planned')} settings")
        return " | ".join(p for p in parts if p)

    def save(self, output_dir: Union[str, os.PathLike], prefix: str = "evaluation") -> dict[str, Path]:
        """Write `<prefix>.csv`, `<prefix>.json`, `pareto.png` (and `samples.jsonl` when samples were kept)."""
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
        paths = {
            "csv": self.to_csv(output_dir / f"{prefix}.csv"),
            "json": self.to_json(output_dir / f"{prefix}.json"),
            "png": self.plot(output_dir / "pareto.png"),
        }
        if self.samples:
            paths["samples"] = output_dir / "samples.jsonl"
            with paths["samples"].open("w") as f:
                for sample in self.samples:
                    f.write(json.dumps(sample) + "\n")
        return paths

    def format_table(self) -> str:
        """A fixed-width text table for the terminal."""
        header = ["strategy", "budget", "BL", "accuracy", "NFE", "time (s)", "pareto"]
        lines = []
        for row in self.rows:
            acc = f"{100 * row['accuracy_mean']:.1f}%"
            if len(row["seeds"]) > 1:
                acc += f" ±{100 * row['accuracy_std']:.1f}"
            nfe = f"{row['nfe_mean']:.1f}"
            if len(row["seeds"]) > 1:
                nfe += f" ±{row['nfe_std']:.1f}"
            bl = f"{row['block_length']}" + (" (full)" if row["mode"] == "full_diffusion" else "")
            lines.append(
                [
                    row["strategy"],
                    row["budget"] or "-",
                    bl,
                    acc,
                    nfe,
                    f"{row['wall_time_s']:.2f}" if row["wall_time_s"] < 10 else f"{row['wall_time_s']:.0f}",
                    "*" if row["pareto"] else "",
                ]
            )
        widths = [max(len(str(x)) for x in col) for col in zip(header, *lines)]
        fmt = "  ".join(f"{{:{'>' if i >= 2 else '<'}{w}}}" for i, w in enumerate(widths))
        out = [fmt.format(*header), fmt.format(*["-" * w for w in widths])]
        out += [fmt.format(*line) for line in lines]
        return "\n".join(out)

    def __len__(self) -> int:
        return len(self.rows)


class EvaluationInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped `evaluate_strategies`; `.result` holds the settings finished so far (`result.complete` is
    False). A `KeyboardInterrupt`, so code that handles Ctrl-C keeps working; `save(output_dir)` writes the partial
    table like `EvaluationResult.save` and `str(err)` then names the files.

    Example:
        ```python
        >>> try:  # doctest: +SKIP
        ...     result = evaluate_strategies(model, tokenizer, "program_trace", ["top_k_confidence:steps=8,16"])
        ... except EvaluationInterrupted as stop:
        ...     stop.save("eval_out")  # evaluation.json says "complete": false
        ```
    """

    def __init__(self, result: EvaluationResult) -> None:
        super().__init__()
        self.result = result
        self.paths: dict[str, Path] = {}

    def save(self, output_dir: Union[str, os.PathLike]) -> dict[str, Path]:
        """Write the partial table (CSV, JSON with `"complete": false`, plot, samples) to `output_dir`."""
        self.paths = self.result.save(output_dir)
        return self.paths

    def __str__(self) -> str:
        meta = self.result.meta
        done = f"{meta.get('settings_done', len(self.result.rows))} of {meta.get('settings_planned', '?')} settings"
        if not self.paths:
            return f"evaluation interrupted after {done}; nothing written yet"
        return (
            f"evaluation interrupted after {done}; the finished rows are in {self.paths['json']} (marked "
            f'"complete": false) and {self.paths["csv"]}'
        )


def pareto_front(points: Sequence[tuple[float, float]]) -> list[bool]:
    """For `(nfe, accuracy)` points, whether each one is Pareto-optimal (no other point has lower-or-equal NFE
    and higher-or-equal accuracy with one strictly better).

    Example:
        ```python
        >>> pareto_front([(10, 0.5), (20, 0.4), (30, 0.7)])
        [True, False, True]
        ```
    """
    flags = []
    for i, (n_i, a_i) in enumerate(points):
        dominated = any(
            (n_j <= n_i and a_j >= a_i and (n_j < n_i or a_j > a_i)) for j, (n_j, a_j) in enumerate(points) if j != i
        )
        flags.append(not dominated)
    return flags


def _flag_pareto_per_block_length(rows: Sequence[dict[str, Any]]) -> None:
    """Set each table row's `pareto` flag: on the accuracy/NFE front of the rows with its block length."""
    for bl in dict.fromkeys(row["block_length"] for row in rows):
        panel = [r for r in rows if r["block_length"] == bl]
        for row, flag in zip(panel, pareto_front([(r["nfe_mean"], r["accuracy_mean"]) for r in panel])):
            row["pareto"] = flag


def front_accuracy_at(points: Sequence[tuple[float, float]], nfe: float) -> float:
    """Accuracy of the Pareto front of `(nfe, accuracy)` points at a given NFE: linear between the two front points
    around it, the cheapest front point's accuracy below the front, the best accuracy above it. This is "the
    heuristics' accuracy at matched NFE" when a learned policy lands between two heuristic budgets.

    Example:
        ```python
        >>> front_accuracy_at([(2.0, 0.1), (4.0, 0.5), (5.0, 0.3), (8.0, 0.9)], 6.0)
        0.7
        ```
    """
    if not points:
        raise ValueError("front_accuracy_at needs at least one (nfe, accuracy) point.")
    front = sorted(p for p, on_front in zip(points, pareto_front(points)) if on_front)
    if nfe <= front[0][0]:
        return front[0][1]
    for (n0, a0), (n1, a1) in zip(front, front[1:]):
        if n0 <= nfe <= n1:
            return a0 if n1 == n0 else round(a0 + (a1 - a0) * (nfe - n0) / (n1 - n0), 12)
    return front[-1][1]


# ------------------------------------------------------------------------------------------------ running


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    mean = sum(values) / len(values)
    var = sum((v - mean) ** 2 for v in values) / len(values)
    return mean, math.sqrt(var)


def _budget_label(budget: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in budget.items())


def _check_block_lengths(block_lengths: Sequence[Optional[int]], gen_length: int) -> list[int]:
    if isinstance(block_lengths, (int, str)) or block_lengths is None:
        block_lengths = [block_lengths]  # type: ignore[list-item]
    if len(block_lengths) == 0:
        raise ValueError(
            "Empty list of block lengths. Give at least one, e.g. block_lengths=[32, None] (None = full)."
        )
    out = []
    for bl in block_lengths:
        if bl is None or (isinstance(bl, str) and bl.lower() in ("full", "none", "l")):
            bl = gen_length
        bl = check_block_length(bl, gen_length, length_name="the generation length L", full="'full'")
        if bl not in out:
            out.append(bl)
    return out


def _check_steps(label: str, budget: dict[str, Any], strategy: Any, gen_length: int, block_length: int) -> None:
    steps = getattr(strategy, "steps", None)
    if not isinstance(steps, int) or isinstance(steps, bool):
        return
    nb = gen_length // block_length
    if steps <= 0 or steps % nb != 0 or steps > gen_length:
        valid = [s for s in range(nb, gen_length + 1, nb)]
        shown = ", ".join(map(str, valid[:8])) + (", ..." if len(valid) > 8 else "")
        raise ValueError(
            f"Strategy '{label}' with steps={steps} does not fit block_length={block_length} (L={gen_length}, {nb} "
            f"blocks): steps must be a multiple of the number of blocks and at most L. Valid steps: {shown}."
        )


def _unique_family_labels(specs: Sequence[StrategySpec]) -> None:
    """Specs of one family that only sweep its budget knob share a label (one curve, e.g.
    `confidence_threshold:0.9` and `confidence_threshold:0.7`); specs that differ in another setting get their own
    label (the spec text), so each curve means one family at fixed settings."""

    def fixed_settings(spec: StrategySpec) -> str:
        knob = default_budget_knob(spec._cls)
        return json.dumps({k: v for k, v in sorted(spec.grid.items()) if k != knob}, default=str)

    groups: dict[str, set[str]] = {}
    for spec in specs:
        groups.setdefault(spec.label or spec.strategy, set()).add(fixed_settings(spec))
    for spec in specs:
        if len(groups[spec.label or spec.strategy]) > 1:
            knobs = ":".join(f"{k}={','.join(short_value(v) for v in vals)}" for k, vals in spec.grid.items())
            spec.label = f"{spec.label}:{knobs}" if knobs else f"{spec.label} (defaults)"
    seen: dict[tuple[str, str], str] = {}
    for spec in specs:
        for budget in spec.budgets():
            key = (spec.label or spec.strategy, json.dumps(budget, sort_keys=True, default=str))
            if key in seen:
                raise ValueError(f"Strategy '{key[0]}' with {budget or 'its defaults'} is listed twice; list it once.")
            seen[key] = str(spec)


def plan_sweep(
    strategies: Sequence[Union[str, StrategySpec, UnmaskingStrategy]],
    block_lengths: Sequence[Optional[int]],
    gen_length: int,
) -> list[tuple[StrategySpec, dict[str, Any], Any, int]]:
    """Build every `(spec, budget, strategy, block_length)` of a sweep and check that each fits L and its block
    length, raising `ValueError` before any compute is spent.

    Example:
        ```python
        >>> len(plan_sweep(["top_k_confidence:steps=8,16"], [8, None], 64))
        4
        ```
    """
    specs = [_as_spec(s) for s in strategies]
    bls = _check_block_lengths(block_lengths, gen_length)
    configs = []
    for bl in bls:
        for spec in specs:
            for budget, strategy in spec.instances():
                _check_steps(spec.label or spec.strategy, budget, strategy, gen_length, bl)
                configs.append((spec, budget, strategy, bl))
    return configs


def evaluate_strategies(
    model: Any,
    tokenizer: Any,
    task: Union[str, Any, EvaluationData],
    strategies: Optional[Sequence[Union[str, StrategySpec, UnmaskingStrategy]]] = None,
    block_lengths: Optional[Sequence[Optional[int]]] = None,
    seeds: Sequence[int] = (0,),
    n_examples: Optional[int] = 100,
    max_new_tokens: Optional[int] = None,
    batch_size: int = 32,
    temperature: float = 0.0,
    chat_template: bool = False,
    generation_kwargs: Optional[dict[str, Any]] = None,
    keep_samples: bool = False,
    progress: bool = True,
    model_name: Optional[str] = None,
) -> EvaluationResult:
    """Run every strategy x budget x block length x seed on the same examples and tabulate accuracy vs NFE.

    Args:
        model: a dLLM with a diffusion `generate` (one without gets it via `enable_diffusion_generate`).
        tokenizer: its tokenizer; prompts are left-padded, completions decoded and cut at EOS.
        task: a built-in task name, a `VerifiableTask`, or an `EvaluationData` (e.g. from `from_dataset`).
        strategies: spec strings (`"top_k_confidence:steps=16,32"`, `"path/to/policy:beta=0.5,1"`, see
            `StrategySpec`), `StrategySpec`s or strategy objects. Default: `default_strategy_specs`.
        block_lengths: block lengths to compare; `None` (or `"full"`) in the list means full diffusion (BL = L).
            Default: `[L]` plus the model's configured block length when it is smaller than L.
        seeds: generation seeds; accuracy and NFE are averaged over them (std is the population std over seeds).
            A deterministic strategy (`strategy.deterministic`, e.g. top-k or a threshold) with a greedy dLLM gives
            the same result for every seed, so it is run once and counted for each (its wall time covers one run).
        n_examples: examples taken from a built-in task (first n of its test split); ignored for `EvaluationData`.
        max_new_tokens: L (default: the model's generation config).
        batch_size: rows per `generate` call.
        temperature: dLLM token temperature (0 = greedy argmax, as in the paper).
        chat_template: wrap each prompt as a user message with the tokenizer's chat template.
        generation_kwargs: extra `generate` arguments (e.g. `stop_at_eos=True`).
        keep_samples: keep every completion in `result.samples` (written to `samples.jsonl` by `save`).
        progress: show a tqdm progress bar (one tick per `generate` call).
        model_name: label for the table metadata.

    Returns:
        An `EvaluationResult`; `.rows` is the table, `.save(dir)` writes CSV, JSON and the Pareto plot.

    Raises:
        EvaluationInterrupted: on Ctrl-C (a `KeyboardInterrupt`); its `.result` holds the settings finished so far.

    Example:
        ```python
        >>> result = evaluate_strategies(model, tok, "program_trace", ["top_k_confidence:steps=8,16"],  # doctest: +SKIP
        ...                              block_lengths=[8, None], n_examples=50)
        ```
    """
    from tqdm.auto import tqdm

    if isinstance(task, EvaluationData):
        data = task
    else:
        data = EvaluationData.from_task(task, n_examples=n_examples if n_examples is not None else 100)
    seeds = list(seeds)
    if not seeds:
        raise ValueError("Empty list of seeds. Give at least one, e.g. seeds=[0].")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"Duplicate seeds in {seeds}; each seed must appear once.")
    if not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    generation_kwargs = dict(generation_kwargs or {})
    for reserved in ("strategy", "block_length", "max_new_tokens", "seed", "generator", "return_dict_in_generate"):
        if reserved in generation_kwargs:
            raise ValueError(f"generation_kwargs may not set '{reserved}'; evaluate_strategies sets it.")

    model = _ensure_diffusion_generate(model, tokenizer)
    gen_length = int(max_new_tokens) if max_new_tokens is not None else _default_gen_length(model)
    if block_lengths is None:
        from .models import unwrap_model

        configured = getattr(getattr(unwrap_model(model), "generation_config", None), "block_length", None)
        block_lengths = [configured, None] if configured and configured < gen_length else [None]
    bls = _check_block_lengths(block_lengths, gen_length)
    specs = [_as_spec(s) for s in strategies] if strategies is not None else default_strategy_specs(gen_length, bls)
    if not specs:
        raise ValueError("No strategies to evaluate. Pass e.g. strategies=['top_k_confidence:steps=16,32'].")
    _unique_family_labels(specs)
    configs = plan_sweep(specs, bls, gen_length)

    batches = _tokenize_batches(tokenizer, data.prompts, batch_size, chat_template)
    eos_ids = _eos_ids(model, tokenizer)
    device = _model_device(model)
    total = len(configs) * len(seeds) * len(batches)
    rows: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    policies: list[str] = []
    interrupted = False
    bar = tqdm(total=total, desc="evaluate", unit="batch", disable=not progress, dynamic_ncols=True)
    try:
        for spec, budget, strategy, bl in configs:
            if isinstance(strategy, torch.nn.Module) and spec.label not in policies:
                policies.append(spec.label)
            if isinstance(strategy, torch.nn.Module):  # learned policies run next to the dLLM
                strategy.to(device).eval()
            acc_per_seed, nfe_per_seed, all_nfe = [], [], []
            elapsed = 0.0
            # Without any random draw (greedy dLLM, deterministic strategy) every seed gives the same result: run it
            # once and count it for each seed.
            run_once = temperature == 0 and bool(getattr(strategy, "deterministic", False))
            for seed_index, seed in enumerate(seeds):
                if run_once and seed_index > 0:
                    acc_per_seed.append(acc_per_seed[0])
                    nfe_per_seed.append(nfe_per_seed[0])
                    all_nfe.extend(all_nfe[: len(data)])
                    if keep_samples:
                        samples.extend(dict(s, seed=seed) for s in samples[-len(data) :])
                    bar.update(len(batches))
                    continue
                bar.set_postfix_str(f"{spec.label} {_budget_label(budget)} BL={bl} seed={seed}".strip(), refresh=False)
                correct, nfes = [], []
                for start, input_ids, attention_mask in batches:
                    t0 = time.perf_counter()
                    out = model.generate(
                        input_ids.to(device),
                        attention_mask=attention_mask.to(device),
                        strategy=strategy,
                        max_new_tokens=gen_length,
                        block_length=bl,
                        temperature=temperature,
                        seed=seed,
                        return_dict_in_generate=True,
                        **generation_kwargs,
                    )
                    elapsed += time.perf_counter() - t0
                    texts = decode_completions(out.sequences.cpu(), input_ids.shape[1], tokenizer, eos_ids)
                    batch_nfe = out.nfe.cpu().tolist()
                    for j, text in enumerate(texts):
                        ok = bool(data.is_correct(text, data.references[start + j]))
                        correct.append(ok)
                        nfes.append(int(batch_nfe[j]))
                        if keep_samples:
                            samples.append(
                                {
                                    "strategy": spec.label,
                                    "budget": _budget_label(budget),
                                    "block_length": bl,
                                    "seed": seed,
                                    "index": start + j,
                                    "prompt": data.prompts[start + j],
                                    "reference": data.references[start + j],
                                    "completion": text,
                                    "correct": ok,
                                    "nfe": int(batch_nfe[j]),
                                }
                            )
                    bar.update(1)
                acc_per_seed.append(sum(correct) / len(correct))
                nfe_per_seed.append(sum(nfes) / len(nfes))
                all_nfe.extend(nfes)
            acc_mean, acc_std = _mean_std(acc_per_seed)
            nfe_mean, nfe_std = _mean_std(nfe_per_seed)
            rows.append(
                {
                    "strategy": spec.label,
                    "budget": _budget_label(budget),
                    "block_length": bl,
                    "mode": "full_diffusion" if bl == gen_length else "semi_ar",
                    "gen_length": gen_length,
                    "accuracy_mean": acc_mean,
                    "accuracy_std": acc_std,
                    "nfe_mean": nfe_mean,
                    "nfe_std": nfe_std,
                    "nfe_example_std": _mean_std(all_nfe)[1],
                    "wall_time_s": elapsed,
                    "n_examples": len(data),
                    "seeds": list(seeds),
                    "accuracy_per_seed": acc_per_seed,
                    "nfe_per_seed": nfe_per_seed,
                    "pareto": False,
                    "params": dict(budget),
                }
            )
    except KeyboardInterrupt:  # Ctrl-C: keep the settings finished so far (EvaluationInterrupted below)
        interrupted = True
    finally:
        bar.close()
    _flag_pareto_per_block_length(rows)
    meta = {
        "task": data.name,
        "model": model_name or getattr(getattr(model, "config", None), "_name_or_path", None) or type(model).__name__,
        "gen_length": gen_length,
        "block_lengths": bls,
        "seeds": list(seeds),
        "n_examples": len(data),
        "temperature": temperature,
        "batch_size": batch_size,
        "strategies": [str(s) for s in specs],
        "generation_kwargs": {k: v for k, v in generation_kwargs.items() if _json_safe(v)},
        "device": str(device),
        "hf_unmask_version": _version(),
        "policies": policies,
        "complete": not interrupted,
        "settings_done": len(rows),
        "settings_planned": len(configs),
    }
    result = EvaluationResult(rows=rows, meta=meta, samples=samples)
    if interrupted:
        raise EvaluationInterrupted(result)
    return result


def _json_safe(value: Any) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _version() -> str:
    from . import __version__

    return __version__


def _tokenize_batches(
    tokenizer: Any, prompts: Sequence[str], batch_size: int, chat_template: bool
) -> list[tuple[int, torch.Tensor, torch.Tensor]]:
    """Left-padded `(start index, input_ids, attention_mask)` batches; the tokenizer is left as it was."""
    if chat_template:
        if getattr(tokenizer, "chat_template", None) is None:
            raise ValueError("chat_template=True but the tokenizer has no chat template. Drop --chat-template.")
        texts = [
            tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True, tokenize=False)
            for p in prompts
        ]
        add_special = False
    else:
        texts, add_special = list(prompts), True
    old_side, old_pad = tokenizer.padding_side, tokenizer.pad_token
    try:
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            if tokenizer.eos_token is None:
                raise ValueError("The tokenizer has neither a pad nor an EOS token; set tokenizer.pad_token first.")
            tokenizer.pad_token = tokenizer.eos_token
        batches = []
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(
                texts[start : start + batch_size],
                return_tensors="pt",
                padding=True,
                add_special_tokens=add_special,
            )
            batches.append((start, enc["input_ids"], enc["attention_mask"]))
    finally:
        tokenizer.padding_side = old_side
        if old_pad is None:
            tokenizer.pad_token = None
    return batches
