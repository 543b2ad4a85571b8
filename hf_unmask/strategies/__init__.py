from .base import STRATEGY_REGISTRY, StrategyOutput, UnmaskingStrategy, as_strategy
from .builtin import builtin_policy_path, list_builtin_policies, load_builtin_policy
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
    """Build a strategy from its short name (`TopKConfidence.name` etc.), or load a shipped policy by name
    (`list_builtin_policies()`) or a saved strategy folder."""
    import os

    if os.path.isdir(name):
        return UnmaskingStrategy.from_pretrained(name)
    if name in list_builtin_policies():
        return load_builtin_policy(name)
    by_name = {cls.name: cls for cls in STRATEGY_REGISTRY.values() if cls.name}
    if name in by_name:
        return by_name[name]()
    raise ValueError(
        f"Unknown strategy '{name}'. Known names: {', '.join(sorted(by_name))}; shipped policies: "
        f"{', '.join(list_builtin_policies()) or '(none)'}; or a saved strategy folder."
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
    "builtin_policy_path",
    "list_builtin_policies",
    "load_builtin_policy",
    "get_strategy_by_name",
    "select_top_k",
]
