"""Evaluate unmasking strategies: accuracy vs NFE over budgets, block lengths and seeds.

One call runs every (strategy, budget, block length, seed) combination on the same examples, and returns an
`EvaluationResult` whose rows are the accuracy / NFE table; `result.save(output_dir)` writes it as CSV and JSON
and draws the Pareto plot (accuracy vs mean NFE, one curve per strategy family, one panel per block length).

One module per job: `data` (the examples: built-in tasks, `datasets` datasets, local files), `correctness` (is a
completion right), `specs` (the strategy spec mini-language and the settings of a sweep), `model_io` (prompts to
batches, generated ids to completions), `runner` (`evaluate_strategies`, Ctrl-C), `sweep` (one setting on a
process's batches, and its table row), `distributed` (data-parallel ranks under torchrun / accelerate launch),
`results` (the table, CSV / JSON), `pareto` (the Pareto front) and `plot` (the Pareto plot).

Example:
    ```python
    >>> import tempfile
    >>> from hf_unmask.evaluation import evaluate_strategies
    >>> from hf_unmask.models import load_dllm
    >>> model, tokenizer = load_dllm("builtin")
    >>> result = evaluate_strategies(
    ...     model, tokenizer, task="program_trace",
    ...     strategies=["top_k_confidence:steps=4,16", "confidence_threshold:threshold=0.9"],
    ...     block_lengths=[8, None], seeds=[0], n_examples=16, progress=False,
    ... )
    >>> print(result.format_table())  # the time column varies from run to run
    strategy              budget                BL  accuracy   NFE  time (s)  pareto
    --------------------  -------------  ---------  --------  ----  --------  ------
    top_k_confidence      steps=4                8     18.8%   4.0  ...       *
    top_k_confidence      steps=16               8    100.0%  16.0  ...       *
    confidence_threshold  threshold=0.9          8     87.5%   6.9  ...       *
    top_k_confidence      steps=4        16 (full)     25.0%   4.0  ...       *
    top_k_confidence      steps=16       16 (full)    100.0%  16.0  ...       *
    confidence_threshold  threshold=0.9  16 (full)     93.8%   6.2  ...       *
    >>> paths = result.save(tempfile.mkdtemp())
    >>> sorted(paths)
    ['csv', 'json', 'png']
    ```
"""

from .correctness import (
    CORRECTNESS_FUNCTIONS,
    CorrectnessFn,
    code_passes_tests,
    exact_match,
    math_verify_correct,
    resolve_correctness,
)
from .data import DATA_FILE_BUILDERS, EvaluationData, load_data_file
from .model_io import decode_completions
from .pareto import front_accuracy_at, pareto_front
from .plot import plot_pareto
from .results import TABLE_COLUMNS, EvaluationResult
from .runner import EvaluationInterrupted, evaluate_strategies, load_model_and_tokenizer
from .specs import (
    DEFAULT_BUDGET_KNOBS,
    SPEC_SYNTAX,
    StrategySpec,
    default_budget_knob,
    default_strategy_specs,
    plan_sweep,
)

__all__ = [
    "CORRECTNESS_FUNCTIONS",
    "DATA_FILE_BUILDERS",
    "DEFAULT_BUDGET_KNOBS",
    "SPEC_SYNTAX",
    "TABLE_COLUMNS",
    "CorrectnessFn",
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
    "load_data_file",
    "load_model_and_tokenizer",
    "math_verify_correct",
    "code_passes_tests",
    "pareto_front",
    "plan_sweep",
    "plot_pareto",
    "resolve_correctness",
]
