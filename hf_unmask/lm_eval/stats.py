"""NFE reporting: per-request generation statistics kept by the model, merged into lm-eval's results.

lm-eval builds each logged sample itself, from the task's document and the model's response strings, so a model
cannot add fields to it. The `hf_unmask` model therefore records, for every generation, the forward passes it took
(NFE) and the positions it generated up to the completion's end (the tokens before the first EOS, plus that EOS when
there is one), keyed by the request's task, document and index. `attach_generation_stats` gathers the records of
every process on rank 0 and merges them into the results before they are saved:

* each logged sample gets `nfe` and `gen_tokens` (summed over its generations: one per sample unless the task
  repeats requests);
* each task of `results["results"]` gets `nfe,none` and `gen_tokens,none` (means per generation) and
  `tokens_per_forward,none` (all generated positions / all forward passes), printed in lm-eval's table.

`python -m hf_unmask.lm_eval` and `hf_unmask.lm_eval.simple_evaluate` do this for you. A Python caller of
`lm_eval.simple_evaluate(model=lm, ...)` calls `attach_generation_stats(results, lm)` on every process after it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

__all__ = ["GenerationStats", "attach_generation_stats", "capture_generation_stats"]

Key = tuple[str, int, int]  # (task name, document id, request index within the document)


class GenerationStats:
    """The NFE and generated positions of each generation, keyed by request.

    Example:
        ```python
        >>> from lm_eval.api.instance import Instance
        >>> stats = GenerationStats()
        >>> request = Instance("generate_until", {}, ("prompt", {}), 0, ("task", 3, 1))
        >>> stats.record(request, nfe=6, gen_tokens=9)
        >>> stats.records
        {('task', 3, 0): [(6, 9)]}
        ```
    """

    def __init__(self) -> None:
        self.records: dict[Key, list[tuple[int, int]]] = {}

    def record(self, request: Any, nfe: int, gen_tokens: int) -> None:
        """Add one generation of `request` (an lm-eval `Instance`). lm-eval runs a request once per repeat and,
        with several processes, pads the shorter ranks with copies of their last request: only the first `repeats`
        generations of a request count."""
        doc_id = -1 if request.doc_id is None else int(request.doc_id)  # requests built by hand carry no metadata
        key = (str(request.task_name), doc_id, int(request.idx))
        entries = self.records.setdefault(key, [])
        if len(entries) < max(int(request.repeats or 1), 1):
            entries.append((int(nfe), int(gen_tokens)))

    def clear(self) -> None:
        self.records.clear()


_capturing: list[list[GenerationStats]] = []


@contextmanager
def capture_generation_stats() -> Iterator[list[GenerationStats]]:
    """Collect the `GenerationStats` of every `hf_unmask` model created inside the block (lm-eval creates the
    model itself when given its name)."""
    created: list[GenerationStats] = []
    _capturing.append(created)
    try:
        yield created
    finally:
        _capturing.remove(created)


def register_stats(stats: GenerationStats) -> None:
    """Called by each new model: hand its statistics to the active captures."""
    for created in _capturing:
        created.append(stats)


def _gather(records: dict[Key, list[tuple[int, int]]]) -> Optional[list[dict[Key, list[tuple[int, int]]]]]:
    """Every process's records on rank 0 (None elsewhere); a collective when a process group is running."""
    from ..evaluation.distributed import init_distributed

    return init_distributed().gather_object(records, dst=0)


def attach_generation_stats(
    results: Optional[dict[str, Any]], stats: Any, samples: Optional[dict[str, list[int]]] = None
) -> Optional[dict[str, Any]]:
    """Merge the NFE of `stats` (a `GenerationStats`, an `HFUnmaskLM`, or a list of either) into lm-eval's
    `results` (see the module docstring) and return them; the records are consumed.

    Call it on every process (it gathers the records on rank 0, where `results` is not None). `samples` is the
    `samples=` argument given to `simple_evaluate`, if any (it renumbers the logged documents).
    """
    parts = stats if isinstance(stats, (list, tuple)) else [stats]
    local: dict[Key, list[tuple[int, int]]] = {}
    for part in parts:
        part = getattr(part, "generation_stats", part)
        for key, entries in part.records.items():
            local.setdefault(key, []).extend(entries)
        part.clear()
    gathered = _gather(local)
    if results is None or gathered is None:
        return results
    merged: dict[Key, list[tuple[int, int]]] = {}
    for records in gathered:
        for key, entries in records.items():
            merged.setdefault(key, []).extend(entries)
    by_doc: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    for (task, doc_id, _idx), entries in sorted(merged.items()):
        ids = (samples or {}).get(task)
        logged_id = ids[doc_id] if ids else doc_id  # lm-eval logs the position in `samples` as that entry
        by_doc[(task, logged_id)].extend(entries)
    for task, task_samples in (results.get("samples") or {}).items():
        for sample in task_samples:
            entries = by_doc.get((task, sample.get("doc_id")))
            if entries:
                sample["nfe"] = sum(nfe for nfe, _ in entries)
                sample["gen_tokens"] = sum(tokens for _, tokens in entries)
    per_task: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for (task, _doc_id), entries in by_doc.items():
        per_task[task].extend(entries)
    for task, entries in per_task.items():
        if task not in results.get("results", {}):
            continue
        total_nfe = sum(nfe for nfe, _ in entries)
        total_tokens = sum(tokens for _, tokens in entries)
        row = results["results"][task]
        row["nfe,none"] = total_nfe / len(entries)
        row["gen_tokens,none"] = total_tokens / len(entries)
        row["tokens_per_forward,none"] = total_tokens / total_nfe if total_nfe else 0.0
        better = results.setdefault("higher_is_better", {}).setdefault(task, {})
        better.setdefault("nfe", False)
        better.setdefault("tokens_per_forward", True)
    return results
