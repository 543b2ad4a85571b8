"""Training-collapse detection from the metrics of the policy's own rollouts, one logged step at a time.

Three conditions, each reported as a `collapse/<name>` metric (1.0 on a logged step that meets it, else 0.0) and, after
`collapse_patience` logged steps in a row, by one warning per episode (and one line when it ends):

- `never_unmask`: the policy's own actions unmask almost nothing (`unmask_fraction` <= `collapse_unmask_fraction`),
  or almost every generated position is still `[MASK]` at the end of its rollouts (`masked_at_end` >=
  `collapse_masked_fraction`; the paper's environment leaves what the policy did not unmask masked);
- `everything_at_once`: mean NFE at most `collapse_steps_per_block` steps per block while the correctness fell
  `collapse_correctness_drop` (a fraction) below the best correctness logged so far in the run;
- `no_signal`: `frac_reward_zero_std` >= `collapse_zero_std_fraction`: most groups got identical rewards, so their
  GRPO advantage is 0 (not warned about while one of the other two is: it is then their symptom).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Optional

import torch

__all__ = ["CONDITIONS", "CollapseDetector", "masked_at_end"]

#: The conditions, in the order they are checked (metric `collapse/<name>`).
CONDITIONS = ("never_unmask", "everything_at_once", "no_signal")

Reduce = Callable[[torch.Tensor], torch.Tensor]


@torch.no_grad()
def masked_at_end(
    sequences: torch.Tensor, own: torch.Tensor, gen_length: int, mask_token_id: Optional[int], reduce: Reduce
) -> float:
    """Fraction of the generated positions (the last `gen_length` of `sequences`) still `mask_token_id` at the end
    of the rows `own` (the policy's rollouts), over all processes (`reduce` sums); 0.0 without a mask id.

    Example:
        ```python
        >>> seq = torch.tensor([[5, 9, 9, 1], [5, 9, 1, 1]])
        >>> masked_at_end(seq, torch.tensor([True, True]), 3, 9, lambda t: t)
        0.5
        ```
    """
    if mask_token_id is None:
        return 0.0
    generated = sequences[own][:, -gen_length:]
    total = torch.tensor(float(generated.numel()), device=sequences.device)
    counts = reduce(torch.stack([(generated == mask_token_id).sum().float(), total]))
    return (counts[0] / counts[1].clamp(min=1)).item()


def _value(logs: Mapping[str, Any], key: str) -> Optional[float]:
    value = logs.get(key)
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        return None
    return float(value)


@dataclass
class _Episode:
    streak: int = 0  # logged steps in a row that met the condition
    since: Optional[int] = None  # step of the first of them
    warned: bool = False  # the episode's warning was given (or folded into a collapse's, `silent`)
    silent: bool = False


@dataclass
class CollapseDetector:
    """Reads the averaged training metrics of each logged step (`update`) and says which conditions hold and what to
    report. `gen_length` / `block_length` are L and BL; the thresholds are the config's `collapse_*` fields.

    Example:
        ```python
        >>> detector = CollapseDetector(gen_length=16, block_length=8, patience=2)
        >>> detector.update(10, {"nfe/mean": 6.0, "correctness": 0.8, "unmask_fraction": 0.3})
        ({'collapse/never_unmask': 0.0, 'collapse/everything_at_once': 0.0, 'collapse/no_signal': 0.0}, [])
        >>> collapsed = {"nfe/mean": 2.0, "correctness": 0.2, "unmask_fraction": 1.0}
        >>> detector.update(20, collapsed)[0]["collapse/everything_at_once"], detector.update(30, collapsed)[1]
        (1.0, ['Training collapse at step 30: the policy unmasks (nearly) everything at once: mean NFE 2.00 (L = 16, 2
        blocks), 1.00 steps per block; correctness 20.0%, down from 80.0% at step 10 (for 2 logged steps in a row,
        since step 20). A checkpoint saved now holds this policy.'])
        ```
    """

    gen_length: int
    block_length: Optional[int] = None
    patience: int = 3
    unmask_fraction: float = 0.02
    masked_fraction: float = 0.9
    steps_per_block: float = 1.5
    correctness_drop: float = 0.3
    zero_std_fraction: float = 0.9
    hints: Mapping[str, str] = field(default_factory=dict)  # per condition: what to try, appended to its warning
    best_correctness: Optional[float] = None
    best_step: Optional[int] = None
    _episodes: dict[str, _Episode] = field(default_factory=lambda: {name: _Episode() for name in CONDITIONS})

    @property
    def num_blocks(self) -> int:
        """Blocks per rollout: the fewest forward passes a rollout can take (one per block)."""
        return self.gen_length // (self.block_length or self.gen_length)

    def conditions(self, logs: Mapping[str, Any]) -> dict[str, Optional[str]]:
        """For each condition, what the logged step shows when it holds (a phrase with the numbers), else None."""
        nfe, correct = _value(logs, "nfe/mean"), _value(logs, "correctness")
        unmask, masked = _value(logs, "unmask_fraction"), _value(logs, "masked_at_end")
        zero_std = _value(logs, "frac_reward_zero_std")
        L, blocks = self.gen_length, self.num_blocks
        nfe_text = f"mean NFE {nfe:.2f} (L = {L}, {blocks} block{'s' * (blocks > 1)})" if nfe is not None else ""
        out: dict[str, Optional[str]] = dict.fromkeys(CONDITIONS)
        if (unmask is not None and unmask <= self.unmask_fraction) or (
            masked is not None and masked >= self.masked_fraction
        ):
            parts = [f"its own actions unmask {unmask:.2%} of the eligible positions per step" if unmask is not None
                     else "", f"{masked:.0%} of the generated positions are still [MASK] at the end" if masked
                     is not None else "", nfe_text]  # fmt: skip
            out["never_unmask"] = "the policy almost never unmasks by itself: " + "; ".join(p for p in parts if p)
        best = self.best_correctness
        if (
            nfe is not None and correct is not None and best is not None and best > 0
            and nfe <= self.steps_per_block * blocks and correct <= (1 - self.correctness_drop) * best
        ):  # fmt: skip
            out["everything_at_once"] = (
                f"the policy unmasks (nearly) everything at once: {nfe_text}, {nfe / blocks:.2f} steps per block; "
                f"correctness {correct:.1%}, down from {best:.1%} at step {self.best_step}"
            )
        if zero_std is not None and zero_std >= self.zero_std_fraction:
            out["no_signal"] = (
                f"{zero_std:.0%} of the groups got identical rewards (frac_reward_zero_std), so their GRPO advantage "
                "is 0 and the policy no longer learns from them (it drifts)"
            )
        return out

    def update(self, step: int, logs: Mapping[str, Any]) -> tuple[dict[str, float], list[str]]:
        """`(metrics, messages)` for the logged step `step`: the `collapse/<name>` indicators and the warnings to
        give (an episode's start, after `patience` logged steps in a row, and its end)."""
        found = self.conditions(logs)
        metrics, messages = {}, []
        for name in CONDITIONS:
            episode, what = self._episodes[name], found[name]
            metrics[f"collapse/{name}"] = float(what is not None)
            if what is None:
                if episode.warned and not episode.silent:
                    messages.append(
                        f"Step {step}: the {name.replace('_', '-')} collapse reported at step {episode.since} is "
                        f"over ({self._summary(logs)})."
                    )
                self._episodes[name] = _Episode()
                continue
            episode.streak += 1
            episode.since = step if episode.since is None else episode.since
            if episode.streak >= self.patience and not episode.warned:
                episode.warned = True
                if name == "no_signal" and any(self._episodes[c].warned for c in CONDITIONS[:2]):
                    episode.silent = True  # a symptom of the collapse already reported
                    continue
                run = f"for {episode.streak} logged steps in a row, since step {episode.since}"
                hint = self.hints.get(name, "")
                messages.append(
                    f"Training collapse at step {step}: {what} ({run}). A checkpoint saved now holds this policy."
                    + (f" Try: {hint}" if hint else "")
                )
        correct = _value(logs, "correctness")
        if correct is not None and (self.best_correctness is None or correct > self.best_correctness):
            self.best_correctness, self.best_step = correct, step
        return metrics, messages

    def _summary(self, logs: Mapping[str, Any]) -> str:
        values = {"mean NFE": _value(logs, "nfe/mean"), "correctness": _value(logs, "correctness"),
                  "frac_reward_zero_std": _value(logs, "frac_reward_zero_std")}  # fmt: skip
        return ", ".join(f"{k} {v:.3g}" for k, v in values.items() if v is not None)
