"""ReMDM (re-masking diffusion models, arXiv 2503.00307) as strategies that set decided tokens back to [MASK].

* `ReMDM`: the paper's sampler for masked diffusion models: at every step each decided position of the block is
  re-masked with probability `sigma` and each masked one is unmasked with the probability the ReMDM posterior
  gives, on a linear schedule `alpha_t = 1 - t` over the block's steps, with the paper's four `sigma` schedules.
* `ReMDMLLaDA`: the recipe its authors run on LLaDA: per block, plain low-confidence steps, then a loop that
  re-masks the least confident decided tokens and commits as many of the most confident masked ones, then plain
  steps until the block is full.

Both keep, per generated position, the confidence (`state.confidence`) it had at the step it received its token:
a position decided at one step is recorded at its row's next step (from the confidences kept of the step before),
so a token placed by the loop's fallback or pace rule is recorded like one the strategy chose. The memory is reset
when a call starts (`state.step == 0`). Re-masks go through the loop's rules (see `hf_unmask.generation.remasking`):
they never touch the prompt or another block, and with `finish_blocks=True` (the default) they are capped so the
block still finishes within its step budget.
"""

from __future__ import annotations

import math
from typing import Optional, Union

import torch

from ..generation.schedule import num_transfer_tokens_at, steps_per_block
from ..generation.state import DenoisingState
from ..generation.strategy import StrategyOutput
from ._utils import check_number, check_steps, uniform_like
from .base import UnmaskingStrategy
from .fixed_count import select_top_k

#: End of the published time grid `linspace(1, EPS, T + 1)`.
EPS = 1e-5
SCHEDULES = ("cap", "rescale", "conf", "loop")
#: `eta` of the published scripts (the "conf" schedule has none).
DEFAULT_ETA = {"cap": 0.008, "rescale": 0.015, "loop": 0.02}
#: `t_on`, `t_off`, `alpha_on` of the published "loop" script.
LOOP_DEFAULTS = {"t_on": 0.55, "t_off": 0.05, "alpha_on": 0.9}


def block_time_steps(state: DenoisingState, steps: Optional[int]) -> int:
    """Steps of the current block's time grid: `steps` split evenly over the blocks (None: the block's whole step
    budget, BL or `max_steps` / blocks, which may exceed BL for a re-masking strategy, as the loop computes it), at
    most that budget."""
    budget = state.config.block_step_budget(remasks=True)
    if steps is None:
        return budget
    return max(1, min(budget, steps_per_block(steps, state.config.num_blocks)))


class _DecisionConfidence:
    """Per-call memory: `[B, L]` confidence of each generated position at the step it received its token."""

    def __init__(self) -> None:
        self._decided: Optional[torch.Tensor] = None
        self._masked: Optional[torch.Tensor] = None
        self._confidence: Optional[torch.Tensor] = None

    def read(self, state: DenoisingState) -> torch.Tensor:
        """`[b, L]` float32 decision confidence over the rows fed (stale values at masked positions)."""
        rows = state.rows
        shape = (state.batch_size if rows is None else state.full_batch_size, state.gen_length)
        device = state.confidence.device
        if state.step == 0 or self._decided is None or self._decided.shape != shape or self._decided.device != device:
            self._decided = torch.zeros(shape, dtype=torch.float32, device=device)
            self._masked = torch.ones(shape, dtype=torch.bool, device=device)
            self._confidence = torch.zeros(shape, dtype=torch.float32, device=device)
        pick = (lambda t: t) if rows is None else (lambda t: t.index_select(0, rows))
        newly = pick(self._masked) & ~state.masked
        decided = torch.where(newly, pick(self._confidence), pick(self._decided))
        confidence = state.confidence.float()
        if rows is None:
            self._decided, self._masked, self._confidence = decided, state.masked.clone(), confidence.clone()
        else:
            self._decided.index_copy_(0, rows, decided)
            self._masked.index_copy_(0, rows, state.masked)
            self._confidence.index_copy_(0, rows, confidence)
        return decided


def _revisable(state: DenoisingState) -> torch.Tensor:
    return state.revisable if state.revisable is not None else torch.zeros_like(state.eligible)


class ReMDM(UnmaskingStrategy):
    """ReMDM's sampler: each step, every decided position of the block is re-masked with probability `sigma` and
    every masked one is unmasked with probability `(alpha_s - (1 - sigma) alpha_t) / (1 - alpha_t)`.

    Each block runs the time grid `t_i = 1 - i (1 - 1e-5) / T` over its `T` steps (`steps` split over the blocks,
    by default the block's whole step budget: BL, or `max_steps` / blocks); step `i` goes from `t_i` to
    `s = t_i - (1 - 1e-5) / T` with `alpha_t = 1 - t`. The schedules of `sigma` (with
    `sigma_max = min(1, (1 - alpha_s) / alpha_t)`, 1 when `alpha_t = 0`):

    * `"cap"`: `min(eta, (1 - alpha_s) / alpha_t)`; `"rescale"`: `eta * sigma_max`;
    * `"conf"`: per position, `sigma_max` times the softmax over the row's decided block positions of minus their
      confidence when they were decided (the least confident are re-masked first); masked positions are unmasked
      with the plain MDLM probability `(alpha_s - alpha_t) / (1 - alpha_t)`;
    * `"loop"`: no re-masking while `t > t_on`, on `alpha(t) = alpha_on (1 - t) / (1 - t_on)` with `alpha_s` kept at
      most `alpha_on` (the published formula overshoots it at the step that crosses `t_on`: negligible on its 1024
      steps, enough to fill a block of 16 steps before the loop); then `alpha` held at `alpha_on` and
      `sigma = eta` while `t > t_off`; then no re-masking on `alpha(t) = 1 - (1 - alpha_on) t / t_off`.

    Random draws: one `[B, L]` float32 uniform per step from the generation's generator (drawn for the whole batch
    whichever rows are fed); a masked eligible position is unmasked when its draw is below its unmask probability,
    a decided one re-masked when its draw is below its `sigma`.

    Differences from the published sampler: its final noise-free argmax pass is folded into the block's last step,
    which goes to `s = 0` (`alpha_s = 1`, `sigma = 0`: every mask left is filled, nothing re-masked), so a block costs
    at most `T` forward passes instead of `T + 1`; time runs per block (the published one has a single canvas); a
    row is done with a block once the block has no mask (the published sampler runs all steps); a step that changes
    nothing still costs a forward pass; a block gets BL steps by default (the published runs use as many steps as
    tokens or more: pass `max_steps` above L, which a re-masking strategy may spend); the token at an unmasked position is the loop's choice (greedy by default; with
    `temperature` the loop's top-k/top-p, whose top-p keeps the token that crosses p where the published one drops
    it; the published runs sample at top-p 0.9); the confidences of
    `"conf"` are kept in float32 (the published code keeps bfloat16) and are those of the unrestricted
    distribution. Under the loop's default rules (`progress_fallback` and `finish_blocks`), a step that unmasks
    nothing unmasks the most confident position, and masks never exceed what the remaining steps fill at the
    block's pace: pass `progress_fallback=False, finish_blocks=False` for the sampler exactly (its last step still
    fills the block).

    Args:
        schedule: "cap", "rescale", "conf" or "loop".
        eta: re-masking strength (None: the published scripts' 0.008 for cap, 0.015 rescale, 0.02 loop; conf has
            none).
        t_on, t_off, alpha_on: the loop schedule's window and held `alpha` (None: 0.55, 0.05, 0.9; loop only).
        steps: total steps split evenly over the blocks (None: the block's step budget); at most that budget.

    Example:
        ```python
        >>> import hf_unmask
        >>> from hf_unmask.strategies import ReMDM
        >>> ReMDM(schedule="loop")
        ReMDM(schedule='loop', eta=0.02, t_on=0.55, t_off=0.05, alpha_on=0.9, steps=None)
        >>> model, tokenizer = hf_unmask.load_builtin_model("tiny-dllm")
        >>> ids = tokenizer(["cups : ab ac bc | ball a"], return_tensors="pt").input_ids
        >>> out = model.generate(ids, strategy=ReMDM(schedule="cap"), seed=0, return_dict_in_generate=True)
        >>> bool((out.sequences != tokenizer.mask_token_id).all()), bool(out.nfe <= 16)  # at most BL steps per block
        (True, True)
        ```
    """

    deterministic = False
    remasks_decided_tokens = True
    name = "remdm"

    def __init__(
        self,
        schedule: str = "cap",
        eta: Optional[float] = None,
        t_on: Optional[float] = None,
        t_off: Optional[float] = None,
        alpha_on: Optional[float] = None,
        steps: Optional[int] = None,
    ) -> None:
        owner = type(self).__name__
        if schedule not in SCHEDULES:
            raise ValueError(
                f"{owner}: schedule must be one of {', '.join(map(repr, SCHEDULES))}; got {schedule!r}. Pass e.g. "
                f"{owner}(schedule='cap')."
            )
        self.schedule = schedule
        loop = schedule == "loop"
        for key, value in (("t_on", t_on), ("t_off", t_off), ("alpha_on", alpha_on)):
            if value is not None and not loop:
                raise ValueError(
                    f"{owner}: {key} is a parameter of schedule='loop' only; leave it unset for "
                    f"schedule={schedule!r}, or pass schedule='loop'."
                )
        if loop:
            alpha_on = LOOP_DEFAULTS["alpha_on"] if alpha_on is None else alpha_on
            t_on = LOOP_DEFAULTS["t_on"] if t_on is None else t_on
            t_off = LOOP_DEFAULTS["t_off"] if t_off is None else t_off
            alpha_on = check_number(
                owner, "alpha_on", alpha_on, low=0.0, high=1.0, low_inclusive=False, high_inclusive=False,
                example="schedule='loop', alpha_on=0.9",
            )  # fmt: skip
            t_on = check_number(
                owner, "t_on", t_on, low=0.0, high=1.0, low_inclusive=False, example="schedule='loop', t_on=0.55"
            )
            t_off = check_number(
                owner, "t_off", t_off, low=0.0, high=t_on, high_inclusive=False,
                example=f"schedule='loop', t_on={t_on:g}, t_off={min(0.05, t_on / 2):g}",
            )  # fmt: skip
        self.t_on, self.t_off, self.alpha_on = t_on, t_off, alpha_on
        if schedule == "conf":
            if eta is not None:
                raise ValueError(
                    f"{owner}: schedule='conf' has no eta (its re-masking follows the confidences); leave eta unset, "
                    "or pass schedule='cap', 'rescale' or 'loop'."
                )
        else:
            eta = DEFAULT_ETA[schedule] if eta is None else eta
            high = 1.0 if not loop else (1.0 - alpha_on) / alpha_on
            hint = f"schedule={schedule!r}, eta={DEFAULT_ETA[schedule]}"
            if loop and high < 1.0:  # the held phase must leave some masks: unmask + re-mask stay probabilities
                hint += f" (at most (1 - alpha_on) / alpha_on = {high:.4g} with alpha_on={alpha_on:g})"
            eta = check_number(owner, "eta", eta, low=0.0, high=min(1.0, high), example=hint)
        self.eta = eta
        self.steps = check_steps(owner, steps)

    def rates(self, block_step: int, steps: int) -> tuple[float, float, float]:
        """`(alpha_t, alpha_s, sigma)` of step `block_step` of a block of `steps` steps (for "conf", `sigma` is
        `sigma_max`, which the confidences share out). The last step has `alpha_s = 1` and `sigma = 0`.

        Example:
            ```python
            >>> [round(v, 4) for v in ReMDM(schedule="rescale", eta=0.5).rates(2, 4)]
            [0.5, 0.75, 0.25]
            ```
        """
        dt = (1.0 - EPS) / steps
        t = 1.0 - min(block_step, steps - 1) * dt
        if block_step >= steps - 1:
            return self._alpha(t), 1.0, 0.0
        s = t - dt
        if self.schedule == "loop":
            if self.t_off < t <= self.t_on:
                return self.alpha_on, self.alpha_on, self.eta
            alpha_t, alpha_s = self._alpha(t), self._alpha(s, t)
            return alpha_t, min(alpha_s, self.alpha_on) if t > self.t_on else alpha_s, 0.0
        alpha_t, alpha_s = 1.0 - t, 1.0 - s
        if self.schedule == "cap":
            sigma = self.eta if alpha_t == 0.0 else min(self.eta, (1.0 - alpha_s) / alpha_t)
        else:
            sigma_max = 1.0 if alpha_t == 0.0 else min(1.0, (1.0 - alpha_s) / alpha_t)
            sigma = sigma_max if self.schedule == "conf" else self.eta * sigma_max
        return alpha_t, alpha_s, sigma

    def _alpha(self, time: float, phase_of: Optional[float] = None) -> float:
        """`alpha` at `time`, on the loop schedule's formula of the phase of `phase_of` (default: of `time`)."""
        if self.schedule != "loop":
            return 1.0 - time
        phase = time if phase_of is None else phase_of
        if phase > self.t_on:
            return self.alpha_on * (1.0 - time) / (1.0 - self.t_on)
        if phase > self.t_off:
            return self.alpha_on
        return 1.0 - (1.0 - self.alpha_on) * time / self.t_off

    def __call__(self, state: DenoisingState) -> StrategyOutput:
        steps = block_time_steps(state, self.steps)
        alpha_t, alpha_s, sigma = self.rates(state.block_step, steps)
        revisable = _revisable(state)
        if self.schedule == "conf":
            if not hasattr(self, "_memory"):
                self._memory = _DecisionConfidence()
            decided = self._memory.read(state).double()
            weights = torch.softmax((-decided).masked_fill(~revisable, float("-inf")), dim=-1).nan_to_num(0.0)
            remask_probability: Union[float, torch.Tensor] = sigma * weights
            unmask_probability = 1.0 if alpha_t >= 1.0 else (alpha_s - alpha_t) / (1.0 - alpha_t)
        else:
            remask_probability = sigma
            unmask_probability = 1.0 if alpha_t >= 1.0 else (alpha_s - (1.0 - sigma) * alpha_t) / (1.0 - alpha_t)
        draws = uniform_like(state).double()
        selection = state.eligible & (draws < min(1.0, max(0.0, unmask_probability)))
        remask = revisable & (draws < remask_probability)
        return StrategyOutput(selection=selection, remask=remask)


class ReMDMLLaDA(UnmaskingStrategy):
    """ReMDM's recipe for LLaDA: plain low-confidence steps, a loop that swaps the least confident decided tokens
    of the block for the most confident masked ones, then plain steps until the block is full.

    A block of `T` steps (`steps` split over the blocks, by default the block's step budget) spends
    `n_loop = floor(loop_fraction * T)` steps in the loop and `plain = T - n_loop` plain steps, which split the
    block's masks evenly (LLaDA's schedule, remainder first) and commit the most confident masked positions. The
    first `floor(alpha_on * plain)` plain steps come before the loop, the others after it. Each loop step
    re-masks the `remask_number` decided tokens of the block with the lowest confidence at decision time (fewer
    when fewer are decided), then commits as many most confident masked positions, so the mask count holds.
    Only tokens decided in the current block can be re-masked.

    Published defaults: `alpha_on = 7/8`, and a loop as long as the plain steps (`loop_fraction = 0.5`: the
    published loop runs `S` extra steps after `S` plain ones); `remask_number` is 1 in the Countdown script and 4 in
    the TruthfulQA one (the published constructor's 0 turns the loop off); after a block holding an EOS the row stops
    (`eos_early_stop`).

    Differences from the published code: the window before the loop is `alpha_on` of the plain steps (the published
    code counts `7 * block_length / 8` steps, which is only right with one token per step) and the re-mask count
    is capped by the decided tokens. The published loop re-masks before its forward pass; here a step returns its
    commits and the re-masks of the next loop step from one forward pass: it commits the most confident masked
    positions, ranks the block's decided tokens with the just-committed ones (at their confidence of this step),
    re-masks the lowest and leaves a just-committed one among them masked. The canvas every forward pass sees is
    thus the published one. The step budget is BL per block by default, so a plain step commits about two
    tokens; the published runs use `2 * BL` (one token per plain step): pass `max_steps=2 * L`. Under the loop's default
    rules a step that commits nothing (a loop step whose commit would be re-masked at once, which the published code
    repeats with a new draw) commits the most confident position instead, and with `finish_blocks=True` masks never
    exceed what the remaining steps fill at the block's pace, which caps the re-masks of the last loop steps: pass
    `progress_fallback=False, finish_blocks=False` for the published counts (the block still fills). Tokens are
    the loop's choice: greedy by default, `temperature=1` draws them as the published code does (its confidence is
    then the drawn token's probability, as there). After a block holding an EOS the later blocks are filled (EOS,
    or the pad id under `stop_at_eos`) instead of being left masked.

    Args:
        remask_number: tokens re-masked and recommitted per loop step (the published `remdm_number`).
        alpha_on: fraction of the plain steps before the loop, in [0, 1].
        loop_fraction: fraction of the block's steps spent in the loop, in [0, 1).
        eos_early_stop: stop a row after a block that holds an EOS (its later blocks are not decoded).
        steps: total forward passes split evenly over the blocks (None: the block's step budget); at most that.

    Example:
        ```python
        >>> import hf_unmask
        >>> from hf_unmask.strategies import ReMDMLLaDA
        >>> strategy = ReMDMLLaDA(remask_number=1)
        >>> strategy.phases(8)  # steps before the loop, in the loop, after it
        (3, 4, 1)
        >>> model, tokenizer = hf_unmask.load_builtin_model("tiny-dllm")
        >>> ids = tokenizer(["cups : ab ac bc | ball a"], return_tensors="pt").input_ids
        >>> out = model.generate(ids, strategy=strategy, return_dict_in_generate=True)
        >>> bool((out.sequences != tokenizer.mask_token_id).all())
        True
        ```
    """

    deterministic = True
    remasks_decided_tokens = True
    name = "remdm_llada"

    def __init__(
        self,
        remask_number: int = 1,
        alpha_on: float = 0.875,
        loop_fraction: float = 0.5,
        eos_early_stop: bool = True,
        steps: Optional[int] = None,
    ) -> None:
        owner = type(self).__name__
        if isinstance(remask_number, bool) or not isinstance(remask_number, int) or remask_number < 0:
            raise ValueError(
                f"{owner}: remask_number must be an integer >= 0 (tokens re-masked per loop step; 0 turns the loop "
                f"off), got {remask_number!r}. Pass e.g. {owner}(remask_number=1)."
            )
        self.remask_number = remask_number
        self.alpha_on = check_number(owner, "alpha_on", alpha_on, low=0.0, high=1.0, example="alpha_on=0.875")
        self.loop_fraction = check_number(
            owner, "loop_fraction", loop_fraction, low=0.0, high=1.0, high_inclusive=False, example="loop_fraction=0.5"
        )
        if not isinstance(eos_early_stop, bool):
            raise ValueError(f"{owner}: eos_early_stop must be True or False, got {eos_early_stop!r}.")
        self.eos_early_stop = eos_early_stop
        self.stops_after_block_with_eos = eos_early_stop
        self.steps = check_steps(owner, steps)

    def phases(self, steps: int) -> tuple[int, int, int]:
        """`(plain steps before the loop, loop steps, plain steps after it)` of a block of `steps` steps (no loop
        when `remask_number` is 0: every step is plain)."""
        loop = math.floor(self.loop_fraction * steps) if self.remask_number > 0 else 0
        plain = steps - loop
        before = math.floor(self.alpha_on * plain)
        return before, loop, plain - before

    def __call__(self, state: DenoisingState) -> StrategyOutput:
        before, loop, after = self.phases(block_time_steps(state, self.steps))
        i, eligible, plain = state.block_step, state.eligible, before + after
        in_loop = lambda step: before <= step < before + loop  # noqa: E731
        decided = None
        if loop > 0:
            if not hasattr(self, "_memory"):
                self._memory = _DecisionConfidence()
            decided = self._memory.read(state)
        left = eligible.sum(-1)
        plain_step = i if i < before else i - loop
        if in_loop(i):
            count = left.clamp_max(self.remask_number)
        elif plain_step < plain:
            count = num_transfer_tokens_at(state.block_mask_count, plain, plain_step)
        else:  # past the schedule (the loop's rules kept masks): commit what is left
            count = left
        confidence = state.confidence.float()
        commit = select_top_k(confidence, eligible, count)
        if not in_loop(i + 1):
            return StrategyOutput(selection=commit)
        # the re-masks of the next (loop) step, ranked with this step's commits at their confidence now
        candidates = _revisable(state) | commit
        score = torch.where(commit, confidence, decided)
        lowest = select_top_k(-score, candidates, candidates.sum(-1).clamp_max(self.remask_number))
        return StrategyOutput(selection=commit & ~lowest, remask=lowest & ~commit)
