"""Model cards for strategies pushed to the Hub, rendered with `huggingface_hub.ModelCard.from_template`.

`build_model_card(strategy, ...)` fills the template of `hf_unmask/model_cards/` (a learned policy or a heuristic)
with YAML metadata (library name, tags, base model, datasets, metrics), a usage snippet that runs as written, the
training settings recorded in `policy.trained_for`, and, when evaluation rows are given, the accuracy-vs-NFE table
and the Pareto plot. `strategy.push_to_hub(...)` calls `write_model_card` so the card, the config, the weights and
the plot go up in one commit.

Example:
    ```python
    >>> from hf_unmask.strategies.card import build_model_card
    >>> from hf_unmask.strategies import ConfidencePolicy
    >>> policy = ConfidencePolicy(trained_for={"base_model": "GSAI-ML/LLaDA-8B-Instruct", "gen_length": 256,
    ...                                       "block_length": 32, "alpha": 3.0, "dataset": "openai/gsm8k"})
    >>> rows = [{"strategy": "ConfidencePolicy", "budget": "alpha=3", "accuracy": 0.755, "nfe_mean": 46.2},
    ...         {"strategy": "ConfidenceThreshold", "budget": "threshold=0.9", "accuracy": 0.742, "nfe_mean": 46.9}]
    >>> card = build_model_card(policy, repo_id="me/llada-policy", evaluation_results=rows)
    >>> card.data.base_model
    'GSAI-ML/LLaDA-8B-Instruct'
    ```
"""

from __future__ import annotations

import math
import os
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Optional, Union

from huggingface_hub import ModelCard, ModelCardData

from .._builtin import builtin_model_name, is_builtin_alias
from ..model_cards import POLICY_TEMPLATE, STRATEGY_TEMPLATE
from .trained_for import portable_name

LIBRARY_NAME = "hf-unmask"
BASE_TAGS = ("hf-unmask", "diffusion-language-model", "unmasking-strategy")
POLICY_TAGS = ("unmasking-policy", "reinforcement-learning", "grpo")
PLOT_FILENAME = "pareto.png"
CITATION = """@misc{jazbec2025learning,
  title         = {Learning Unmasking Policies for Diffusion Language Models},
  author        = {Jazbec, Metod and Olausson, Theo X. and B{\\'e}thune, Louis and Ablin, Pierre and
                   Kirchhof, Michael and Monteiro, Jo{\\~a}o and Turrisi, Victor and Ramapuram, Jason and
                   Cuturi, Marco},
  year          = {2025},
  eprint        = {2512.09106},
  archivePrefix = {arXiv},
  note          = {ICML 2026}
}"""
_TRAINING_LABELS = {
    "base_model": "base dLLM",
    "gen_length": "generation length L",
    "block_length": "block length BL",
    "alpha": "reward efficiency exponent alpha",
    "temperature": "policy temperature tau (training)",
    "task": "task",
    "dataset": "training prompts",
    "training_steps": "training steps",
    "initialized_from": "initialized from",
}
# The 7-8B families (LLaDA, Dream, loaded natively): the snippet loads them in bfloat16.
_LARGE_FAMILIES = ("llada", "dream")
# A Hub id (`owner/name`); anything else recorded as the base model or the dataset (a local file or folder, a built-in
# model or task) is named in the card's text only, never in its YAML `base_model:` / `datasets:`.
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")
_DATA_FILE_SUFFIXES = (".json", ".jsonl", ".csv", ".tsv", ".parquet", ".arrow", ".txt")


def _is_policy(strategy: Any) -> bool:
    return bool(getattr(strategy, "is_learned", False))


def _as_list(value: Any) -> Optional[list[str]]:
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def hub_dataset_ids(value: Any) -> Optional[list[str]]:
    """The Hub dataset ids among `value` (a name, a comma-separated list as the training script records a mixture,
    or a list); local paths and built-in tasks are dropped.

    Example:
        ```python
        >>> hub_dataset_ids("openai/gsm8k,data/train.jsonl,hf_unmask:program_trace")
        ['openai/gsm8k']
        ```
    """
    names = [n.strip() for item in _as_list(value) or [] for n in str(item).split(",")]
    ids = [n for n in names if _is_hub_id(n)]
    return ids or None


def _is_hub_id(name: str) -> bool:
    """`owner/name` and not a local path (Hub repos and datasets are namespaced)."""
    return bool(
        _HUB_ID.fullmatch(name) and not os.path.exists(name) and Path(name).suffix.lower() not in _DATA_FILE_SUFFIXES
    )


def _rows_of(evaluation_results: Any) -> list[dict[str, Any]]:
    if evaluation_results is None:
        return []
    rows = getattr(evaluation_results, "rows", evaluation_results)  # an EvaluationResult or a list of dicts
    if isinstance(rows, Mapping):
        rows = [rows]
    out = []
    for row in rows:
        if not isinstance(row, Mapping):
            raise TypeError(f"evaluation_results must be dicts (one per row), got {type(row).__name__}.")
        accuracy = row.get("accuracy", row.get("accuracy_mean"))
        if row.get("strategy") is None or accuracy is None or row.get("nfe_mean") is None:
            raise ValueError(
                "Each evaluation row needs 'strategy', 'accuracy' (or 'accuracy_mean') and 'nfe_mean'; got keys "
                f"{sorted(row)}."
            )
        out.append(dict(row, accuracy=float(accuracy)))
    return out


def _fmt_number(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _fmt_setting(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return "full diffusion" if value is None else str(value)


def evaluation_table(evaluation_results: Any) -> str:
    """Markdown accuracy-vs-NFE table from evaluation rows (dicts with `strategy`, `budget`, `accuracy` or
    `accuracy_mean`, `nfe_mean`, optionally `accuracy_std`, `nfe_std`, `block_length`, `n_examples`, `pareto`).
    Accuracies in [0, 1] are shown as percentages. Rows are sorted by block length, strategy and NFE."""
    rows = _rows_of(evaluation_results)
    if not rows:
        return ""
    as_percent = all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    scale = 100.0 if as_percent else 1.0
    has_bl = any("block_length" in r for r in rows)
    has_n = any(r.get("n_examples") is not None for r in rows)
    header = (
        ["strategy", "budget"]
        + (["BL"] if has_bl else [])
        + [
            "accuracy (%)" if as_percent else "accuracy",
            "NFE (mean)",
        ]
        + (["n"] if has_n else [])
    )
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def key(r: dict[str, Any]) -> tuple:
        bl = r.get("block_length")
        return (bl is None, bl if isinstance(bl, (int, float)) else 0, str(r["strategy"]), float(r["nfe_mean"]))

    for r in sorted(rows, key=key):
        acc = _fmt_number(r["accuracy"] * scale)
        if r.get("accuracy_std") is not None and float(r["accuracy_std"]) > 0:
            acc += f" ± {_fmt_number(float(r['accuracy_std']) * scale)}"
        nfe = _fmt_number(float(r["nfe_mean"]))
        if r.get("nfe_std") is not None and float(r["nfe_std"]) > 0:
            nfe += f" ± {_fmt_number(float(r['nfe_std']))}"
        name = str(r["strategy"]) + (" ★" if r.get("pareto") else "")
        budget = r.get("budget", "")
        if isinstance(budget, Mapping):
            budget = ", ".join(f"{k}={v}" for k, v in budget.items())
        cells = [name, str(budget if budget is not None else "")]
        if has_bl:
            bl = r.get("block_length")
            cells.append("full" if bl is None or r.get("mode") == "full_diffusion" else str(bl))
        cells += [acc, nfe]
        if has_n:
            cells.append(_fmt_number(r.get("n_examples")))
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def usage_code(
    strategy: Any,
    repo_id: str,
    base_model: Optional[str] = None,
    gen_length: Optional[int] = None,
    block_length: Optional[int] = None,
    prompt: str = "Question: what is 3 + 4? Answer:",
) -> str:
    """The Python snippet of the card: load the strategy and a dLLM, generate once, print the text."""
    class_name = type(strategy).__name__
    # the classes of hf_unmask.strategies' modules are all exported by the package; a user's own class is not
    own = type(strategy).__module__.startswith("hf_unmask.strategies.") and not class_name.startswith("_")
    loader = class_name if own else "UnmaskingStrategy"
    trained = getattr(strategy, "trained_for", {}) or {}
    base_model = base_model or trained.get("base_model")
    gen_length = gen_length or trained.get("gen_length") or 64
    block_length = block_length if block_length is not None else trained.get("block_length")
    model_id = base_model or "<base dLLM repo id>"
    if is_builtin_alias(model_id):
        return _builtin_usage_code(strategy, repo_id, model_id, trained.get("task"), block_length, gen_length)
    large = any(family in model_id.lower() for family in _LARGE_FAMILIES)
    load_args = f'"{model_id}"' + (', dtype="bfloat16"' if large else "")
    name = "policy" if _is_policy(strategy) else "strategy"
    gen_args = f"max_new_tokens={int(gen_length)}"
    if block_length and int(block_length) != int(gen_length):
        gen_args += f", block_length={int(block_length)}"
    return "\n".join(
        [
            "from hf_unmask import AutoDiffusionLM, load_tokenizer",
            f"from hf_unmask.strategies import {loader}",
            "",
            f'{name} = {loader}.from_pretrained("{repo_id}"){_where(repo_id)}',
            f'tokenizer = load_tokenizer("{model_id}")',
            f"model = AutoDiffusionLM.from_pretrained({load_args})",
            "",
            f'inputs = tokenizer([{prompt!r}], return_tensors="pt")',
            "output = model.generate(",
            '    inputs["input_ids"],',
            '    attention_mask=inputs["attention_mask"],',
            f"    strategy={name},",
            f"    {gen_args},",
            ")",
            'print(tokenizer.batch_decode(output[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True))',
        ]
    )


def _where(repo_id: str) -> str:
    """The comment after the snippet's loading line when it loads a local folder (named as it was saved)."""
    local = not (_is_hub_id(repo_id) or repo_id.startswith("<"))
    return "  # this card's folder, or its Hub id once pushed" if local else ""


def _builtin_usage_code(
    strategy: Any, repo_id: str, model_id: str, task: Optional[str], block_length: Any, gen_length: Any
) -> str:
    """Usage snippet for a strategy trained on a built-in dLLM of hf_unmask (no Hub download of the model)."""
    name = "policy" if _is_policy(strategy) else "strategy"
    if repo_id.startswith("builtin:"):  # a built-in policy, inside the package
        load = [f'{name} = load_builtin_policy("{repo_id.split(":", 1)[1]}")']
        imports = ["from hf_unmask.strategies import load_builtin_policy"]
    else:
        load = [f'{name} = UnmaskingStrategy.from_pretrained("{repo_id}"){_where(repo_id)}']
        imports = ["from hf_unmask.strategies import UnmaskingStrategy"]
    task = task or "program_trace"
    gen_args = f"max_new_tokens={int(gen_length)}"
    if block_length:  # always explicit: the built-in models' own default is semi-AR
        gen_args += f", block_length={int(block_length)}"
    return "\n".join(
        [
            "import hf_unmask",
            *imports,
            "from hf_unmask.tasks import get_task",
            "",
            *load,
            f'model, tokenizer = hf_unmask.load_builtin_model("{builtin_model_name(model_id)}")',
            f'example = get_task("{task}").dataset(n_train=1, n_test=1, seed=0)["test"][0]',
            'input_ids = tokenizer(example["prompt"], return_tensors="pt").input_ids',
            f"output = model.generate(input_ids, strategy={name}, {gen_args}, return_dict_in_generate=True)",
            'print(tokenizer.decode(output.sequences[0, input_ids.shape[1] :], skip_special_tokens=True), "| NFE:",',
            "      int(output.nfe[0]))",
        ]
    )


def _remasks(strategy: Any) -> bool:
    return bool(getattr(strategy, "remasks_decided_tokens", False))


def _architecture(policy: Any) -> str:
    log_odds = " (as log-odds)" if getattr(policy, "confidence_feature", "probability") == "log_odds" else ""
    if type(policy).__name__ == "HiddenStatePolicy":
        inputs = f"dLLM last hidden states ({policy.input_size}-d)"
    elif _remasks(policy):
        inputs = f"dLLM confidence, confidence of the decided token{log_odds}, its age"
    else:
        inputs = f"dLLM confidence{log_odds}"
    variant = " (the paper's network)" if getattr(policy, "architecture", "hf_unmask") == "paper" else ""
    outputs = "two logits per position (unmask, re-mask)" if _remasks(policy) else "one logit per position"
    return (
        f"{inputs}, mask bit and time -> 1 DiT block with adaLN and RoPE (d = {policy.hidden_size}, "
        f"{policy.num_heads} heads, FFN {policy.ffn_size}){variant} -> {outputs}"
    )


#: What the card of a re-masking policy adds to the summary.
REMASKING_SUMMARY = (
    " It also **re-masks**: at every step it may set decided tokens of the current block back to `[MASK]` (reading "
    "how confident the dLLM now is in each decided token and how long ago it was decided), so early mistakes can be "
    "decided again; a re-masked token costs the steps that decide it again. `unmask_beta` scales both decisions: "
    "above 1 the policy unmasks more and re-masks less (re-mask probability `min(1, p / unmask_beta)`)."
)


def build_model_card(
    strategy: Any,
    *,
    repo_id: Optional[str] = None,
    evaluation_results: Any = None,
    plot_path: Optional[Union[str, os.PathLike]] = None,
    plot_filename: str = PLOT_FILENAME,
    evaluation_setting: Optional[str] = None,
    base_model: Optional[str] = None,
    datasets: Optional[Union[str, Sequence[str]]] = None,
    license: Optional[str] = "apache-2.0",
    tags: Iterable[str] = (),
    template_path: Optional[Union[str, os.PathLike]] = None,
    **template_kwargs: Any,
) -> ModelCard:
    """Render the model card of `strategy` (a learned policy or a heuristic).

    Args:
        repo_id: the Hub repo (or local folder) the usage snippet loads from. Local paths, here and in
            `trained_for`, are shown by `portable_name`: relative to the working directory or by their folder or
            file name, never as an absolute path of this machine.
        evaluation_results: rows `{strategy, budget, accuracy | accuracy_mean, nfe_mean, ...}` (plain dicts or an
            `hf_unmask.evaluation.EvaluationResult`); without them the card says no evaluation was provided.
        plot_path: the Pareto plot (PNG); the card embeds it as `plot_filename` (`write_model_card` copies it).
        evaluation_setting: one line describing the evaluation (task, dLLM, L, BL...).
        base_model, datasets: override what `policy.trained_for` records (of which only Hub dataset ids reach the
            YAML `datasets:`).
        license, tags, template_path: YAML license, extra tags, another Jinja template.
        **template_kwargs: extra template variables (e.g. `title`, `summary`).
    """
    is_policy = _is_policy(strategy)
    trained = dict(getattr(strategy, "trained_for", {}) or {})
    for key in ("base_model", "dataset", "initialized_from"):
        if key in trained:
            trained[key] = portable_name(trained[key])
    repo_id = portable_name(repo_id) or f"<your-namespace>/{type(strategy).__name__.lower()}"
    base_model = portable_name(base_model or trained.get("base_model"))
    datasets = _as_list(datasets) if datasets is not None else hub_dataset_ids(trained.get("dataset"))
    rows = _rows_of(evaluation_results)
    own_tags = ("remasking",) if _remasks(strategy) else ()
    all_tags = list(dict.fromkeys([*BASE_TAGS, *(POLICY_TAGS if is_policy else ()), *own_tags, *tags]))
    if trained.get("task"):
        all_tags.append(str(trained["task"]))
    card_data = ModelCardData(
        library_name=LIBRARY_NAME,
        license=license,
        tags=all_tags,
        # the YAML `base_model` must be a Hub id; a built-in or local model is named in the text instead
        base_model=base_model if base_model and not is_builtin_alias(base_model) and _is_hub_id(base_model) else None,
        datasets=datasets,
        metrics=["accuracy"] if rows else None,
    )
    variables: dict[str, Any] = {
        "class_name": type(strategy).__name__,
        "usage_code": usage_code(strategy, repo_id, base_model=base_model),
        "evaluation_table": evaluation_table(rows),
        "evaluation_setting": evaluation_setting,
        "has_pareto": any(r.get("pareto") for r in rows),
        "plot_file": plot_filename if plot_path is not None else None,
        "citation": CITATION,
    }
    variables.update(_policy_variables(strategy, trained, base_model) if is_policy else _strategy_variables(strategy))
    variables.update(template_kwargs)
    template = template_path or (POLICY_TEMPLATE if is_policy else STRATEGY_TEMPLATE)
    return ModelCard.from_template(card_data, template_path=str(template), **variables)


#: The summary of a learned policy's card.
POLICY_SUMMARY = (
    "A learned unmasking policy for masked diffusion language models (Jazbec et al., *Learning Unmasking Policies "
    "for Diffusion Language Models*): a small transformer that decides, at every denoising step, which masked "
    "positions the dLLM should fill, trained with GRPO to be accurate in few forward passes."
)


def _policy_variables(policy: Any, trained: dict[str, Any], base_model: Optional[str]) -> dict[str, Any]:
    """The template variables of a learned policy's card: its settings, network and training record."""
    name = type(policy).__name__
    if name == "HiddenStatePolicy":
        inputs_text = "the dLLM's last hidden states"
    elif _remasks(policy):
        inputs_text = "the dLLM's per-position confidence, the confidence of each decided token and its age"
    else:
        inputs_text = "only the dLLM's per-position confidence"
    return {
        "title": f"{name} for {base_model}" if base_model else name,
        "summary": POLICY_SUMMARY + (REMASKING_SUMMARY if _remasks(policy) else ""),
        "trained": bool(trained),
        "training_rows": [(_TRAINING_LABELS.get(k, k), _fmt_setting(v)) for k, v in trained.items()],
        "mode": policy.mode,
        "temperature": policy.temperature,
        "unmask_beta": policy.unmask_beta,
        "beta": policy.unmask_beta,  # the variable's earlier name, for custom templates
        "architecture": _architecture(policy),
        "num_parameters": f"{policy.num_parameters():,}",
        "inputs_text": inputs_text,
    }


def _strategy_variables(strategy: Any) -> dict[str, Any]:
    """The template variables of a heuristic's card: a summary and its hyper-parameters."""
    name = type(strategy).__name__
    return {
        "title": f"{name} unmasking strategy",
        "summary": (
            f"A `{name}` unmasking strategy for masked diffusion language models, saved with its hyper-parameters by "
            "hf_unmask. Load it and pass it to `model.generate(..., strategy=...)`."
        ),
        "config_rows": [(k, _fmt_setting(v)) for k, v in strategy.get_config().items()],
    }


def write_model_card(
    strategy: Any,
    save_directory: Union[str, os.PathLike],
    *,
    plot_path: Optional[Union[str, os.PathLike]] = None,
    plot_filename: str = PLOT_FILENAME,
    **kwargs: Any,
) -> Path:
    """Render the card into `save_directory/README.md` and copy the plot next to it; returns the card path."""
    save_directory = Path(save_directory)
    save_directory.mkdir(parents=True, exist_ok=True)
    if plot_path is not None:
        plot_path = Path(plot_path)
        if not plot_path.is_file():
            raise FileNotFoundError(f"plot_path {plot_path} does not exist.")
        shutil.copyfile(plot_path, save_directory / plot_filename)
    card = build_model_card(strategy, plot_path=plot_path, plot_filename=plot_filename, **kwargs)
    path = save_directory / "README.md"
    card.save(str(path))
    return path
