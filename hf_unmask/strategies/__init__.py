from .base import STRATEGY_REGISTRY, StrategyOutput, UnmaskingStrategy, as_strategy
from .builtin import builtin_policy_path, list_builtin_policies, load_builtin_policy
from .confidence import TopKConfidence
from .entropy import TopKEntropy
from .entropy_bounded import EBSampler
from .fast_dllm import ConfidenceFactor, ConfidenceThreshold
from .fixed_count import FixedCountStrategy, select_top_k
from .lookup import get_strategy_by_name, registered_strategy_names, resolve_strategy_name
from .margin import TopKMargin
from .policy import (
    ActionEvaluation,
    HiddenStatePolicy,
    LearnedUnmaskingPolicy,
    PolicySample,
    UnmaskingPolicy,
)
from .random_order import RandomTimeGrid, RandomTopK

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
    "registered_strategy_names",
    "resolve_strategy_name",
    "select_top_k",
]
