from .._warnings import warn_deprecated
from ..generation.strategy import StrategyOutput, as_strategy
from .base import STRATEGY_REGISTRY, UnmaskingStrategy
from .block_decoders import LLaDA2Decoder, LLaDA21Decoder, SDARDecoder
from .builtin import builtin_policy_path, list_builtin_policies, load_builtin_policy
from .confidence import TopKConfidence
from .confidence_policy import ConfidencePolicy
from .entropy import TopKEntropy
from .entropy_bounded import EBSampler
from .fast_dllm import ConfidenceFactor, ConfidenceThreshold
from .fixed_count import FixedCountStrategy, select_top_k
from .hidden_state_policy import HiddenStatePolicy
from .learned import ActionEvaluation, PolicySample, UnmaskingPolicy
from .lookup import get_strategy_by_name, registered_strategy_names, resolve_strategy_name
from .margin import TopKMargin
from .random_order import RandomTimeGrid, RandomTopK
from .remasking_policy import RemaskingPolicy
from .remdm import ReMDM, ReMDMLLaDA
from .wino import WINO

__all__ = [
    "STRATEGY_REGISTRY",
    "ActionEvaluation",
    "ConfidenceFactor",
    "ConfidencePolicy",
    "ConfidenceThreshold",
    "EBSampler",
    "FixedCountStrategy",
    "HiddenStatePolicy",
    "LLaDA21Decoder",
    "LLaDA2Decoder",
    "PolicySample",
    "RandomTimeGrid",
    "RandomTopK",
    "RemaskingPolicy",
    "ReMDM",
    "ReMDMLLaDA",
    "SDARDecoder",
    "StrategyOutput",
    "TopKConfidence",
    "TopKEntropy",
    "TopKMargin",
    "UnmaskingPolicy",
    "UnmaskingStrategy",
    "WINO",
    "as_strategy",
    "builtin_policy_path",
    "list_builtin_policies",
    "load_builtin_policy",
    "get_strategy_by_name",
    "registered_strategy_names",
    "resolve_strategy_name",
    "select_top_k",
]


def __getattr__(name: str) -> object:
    """Deprecated names, kept for one release with a `FutureWarning`."""
    if name == "LearnedUnmaskingPolicy":
        warn_deprecated(name, "UnmaskingPolicy (the base class of learned policies)")
        return UnmaskingPolicy
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
