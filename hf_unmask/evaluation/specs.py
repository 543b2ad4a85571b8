"""The strategy spec mini-language: `NAME[:KNOB=V1,V2,...][:KNOB2=...]` names a strategy family and the budgets to
sweep (`StrategySpec`), with each family's default budget knob, the default sweep of the built-in heuristics, and the
settings a sweep expands to (`plan_sweep`), checked against L and the block lengths before anything runs."""

from __future__ import annotations

import itertools
import json
import math
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

from .._warnings import warn_at_caller
from ..generation import check_block_length
from ..strategies import UnmaskingStrategy, registered_strategy_names, resolve_strategy_name

__all__ = [
    "DEFAULT_BUDGET_KNOBS",
    "SPEC_SYNTAX",
    "StrategySpec",
    "as_spec",
    "budget_label",
    "check_block_lengths",
    "default_budget_knob",
    "default_strategy_specs",
    "plan_sweep",
    "short_value",
    "unique_family_labels",
]

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
    "beta": ("unmask_beta",),
}
# Knob names kept for one release: they work, with a FutureWarning naming the new one.
_DEPRECATED_KNOBS = {"beta": "unmask_beta"}

SPEC_SYNTAX = (
    "NAME[:KNOB=V1,V2,...][:KNOB2=...] where NAME is a strategy name (see `hf-unmask list`) or a saved strategy "
    "folder, KNOB a constructor argument (steps, threshold, factor, gamma, unmask_beta, temperature...) and V1,V2,... the "
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
    for knob in ("steps", "threshold", "factor", "gamma", "unmask_beta"):
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
            if knob in _DEPRECATED_KNOBS and target == _DEPRECATED_KNOBS[knob]:
                warn_at_caller(
                    f"The knob '{knob}' of strategy '{self.strategy}' is deprecated and will be removed in the next "
                    f"release; use '{target}' instead.",
                    FutureWarning,
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


def as_spec(spec: Union[str, StrategySpec, UnmaskingStrategy]) -> StrategySpec:
    """A spec string, `StrategySpec` or strategy object as a `StrategySpec` (an object is one fixed point)."""
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


def short_value(value: Any) -> str:
    """A knob value as a label: floats without trailing zeros (`0.5`, `1`), anything else as `str`.

    Example:
        ```python
        >>> short_value(1.0), short_value(0.50), short_value(16)
        ('1', '0.5', '16')
        ```
    """
    return f"{value:g}" if isinstance(value, float) else str(value)


def budget_label(budget: dict[str, Any]) -> str:
    """The budget column of the table: `{"steps": 16}` -> `"steps=16"` (empty for a strategy's defaults)."""
    return " ".join(f"{k}={v}" for k, v in budget.items())


def unique_family_labels(specs: Sequence[StrategySpec]) -> None:
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


def check_block_lengths(block_lengths: Union[Sequence[Optional[int]], int, str, None], gen_length: int) -> list[int]:
    """The distinct block lengths of a sweep as integers (`None` / `"full"` = L), each checked to divide L."""
    if isinstance(block_lengths, (int, str)) or block_lengths is None:
        block_lengths = [block_lengths]  # type: ignore[list-item]
    if len(block_lengths) == 0:
        raise ValueError(
            "Empty list of block lengths. Give at least one, e.g. block_lengths=[32, None] (None = full)."
        )
    out = []
    for bl in block_lengths:
        if isinstance(bl, str) and bl.lower() in ("full", "none", "l"):
            bl = None
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
    specs = [as_spec(s) for s in strategies]
    bls = check_block_lengths(block_lengths, gen_length)
    configs = []
    for bl in bls:
        for spec in specs:
            for budget, strategy in spec.instances():
                _check_steps(spec.label or spec.strategy, budget, strategy, gen_length, bl)
                configs.append((spec, budget, strategy, bl))
    return configs
