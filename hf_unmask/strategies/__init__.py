from .base import STRATEGY_REGISTRY, StrategyOutput, UnmaskingStrategy, as_strategy
from .confidence import TopKConfidence
from .fixed_count import FixedCountStrategy, select_top_k


def get_strategy_by_name(name: str) -> UnmaskingStrategy:
    """Build a strategy from its short name (`TopKConfidence.name` etc.) or load it from a saved folder."""
    import os

    if os.path.isdir(name):
        return UnmaskingStrategy.from_pretrained(name)
    by_name = {cls.name: cls for cls in STRATEGY_REGISTRY.values() if cls.name}
    if name in by_name:
        return by_name[name]()
    raise ValueError(f"Unknown strategy '{name}'. Known names: {', '.join(sorted(by_name))}, or a saved strategy folder.")


__all__ = [
    "STRATEGY_REGISTRY",
    "FixedCountStrategy",
    "StrategyOutput",
    "TopKConfidence",
    "UnmaskingStrategy",
    "as_strategy",
    "get_strategy_by_name",
    "select_top_k",
]
