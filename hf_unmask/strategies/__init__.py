from .base import STRATEGY_REGISTRY, StrategyOutput, UnmaskingStrategy, as_strategy
from .confidence import TopKConfidence
from .entropy import TopKEntropy
from .entropy_bounded import EBSampler
from .fast_dllm import ConfidenceFactor, ConfidenceThreshold
from .fixed_count import FixedCountStrategy, select_top_k
from .margin import TopKMargin
from .policy import (
    ActionEvaluation,
    HiddenStatePolicy,
    LearnedUnmaskingPolicy,
    PolicySample,
    UnmaskingPolicy,
)
from .random_order import RandomTimeGrid, RandomTopK


def get_strategy_by_name(name: str) -> UnmaskingStrategy:
    """Build a strategy from its short name (`TopKConfidence.name` etc.) or load it from a saved folder."""
    import os

    if os.path.isdir(name):
        return UnmaskingStrategy.from_pretrained(name)
    by_name = {cls.name: cls for cls in STRATEGY_REGISTRY.values() if cls.name}
    if name in by_name:
        return by_name[name]()
    raise ValueError(
        f"Unknown strategy '{name}'. Known names: {', '.join(sorted(by_name))}, or a saved strategy folder."
    )


__all__ = [
    "STRATEGY_REGISTRY",
    "ActionEvaluation",
    "ConfidenceFactor",
    "ConfidenceThreshold",
    "EBSampler",
    "FixedCountStrategy",
    "HiddenStatePolicy",
    "LearnedUnmaskingPolicy",
    "PolicySample",
    "RandomTimeGrid",
    "RandomTopK",
    "StrategyOutput",
    "TopKConfidence",
    "TopKEntropy",
    "TopKMargin",
    "UnmaskingPolicy",
    "UnmaskingStrategy",
    "as_strategy",
    "get_strategy_by_name",
    "select_top_k",
]
