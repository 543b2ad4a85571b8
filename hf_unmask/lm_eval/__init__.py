"""lm-evaluation-harness for masked dLLMs: the `hf_unmask` model, NFE reporting, and local tasks.

Importing this package registers the model with lm-eval as `hf_unmask` (lm-eval has no plug-in entry point for
models). Then `lm_eval.simple_evaluate(model="hf_unmask", model_args=...)` and
`lm_eval.simple_evaluate(model=HFUnmaskLM(...))` work; `hf_unmask.lm_eval.simple_evaluate` (same arguments) also
reports NFE per sample and per task, and `python -m hf_unmask.lm_eval ...` is lm-eval's own command line doing so.
`import hf_unmask` does not import lm-eval: only this package does (the `[lm-eval]` extra).

One module per job: `model_args` (the `--model_args` keys and their checks), `model` (`HFUnmaskLM`: generation,
log-likelihood, chat templates, the multi-process calls), `likelihood` (the Monte-Carlo log-likelihood), `stats`
(NFE per request, merged into the results), `evaluate`
(`simple_evaluate`, the command line) and `tasks` (offline tasks on the built-in `program_trace`, for
`--include_path`).

Example:
    ```python
    >>> import lm_eval
    >>> import hf_unmask.lm_eval
    >>> lm_eval.api.registry.get_model("hf_unmask").__name__
    'HFUnmaskLM'
    ```
"""

from __future__ import annotations

try:
    import lm_eval  # noqa: F401
except ImportError as err:  # pragma: no cover - the message is the point
    raise ImportError(
        "hf_unmask.lm_eval needs lm-evaluation-harness: pip install 'hf_unmask[lm-eval]' "
        "(or pip install 'lm_eval>=0.4.13,<0.4.14' accelerate)."
    ) from err

from ._compat import LM_EVAL_REQUIREMENT, is_supported_lm_eval, warn_if_untested
from .evaluate import main, simple_evaluate
from .model import HFUnmaskLM
from .model_args import MODEL_ARGS, ModelArgumentError
from .stats import GenerationStats, attach_generation_stats
from .tasks import TASKS_DIR

warn_if_untested()

__all__ = [
    "LM_EVAL_REQUIREMENT",
    "MODEL_ARGS",
    "TASKS_DIR",
    "GenerationStats",
    "HFUnmaskLM",
    "ModelArgumentError",
    "attach_generation_stats",
    "is_supported_lm_eval",
    "main",
    "simple_evaluate",
]
