"""`AutoDiffusionLM`: load an existing diffusion LM (LLaDA, Dream, any masked LM) with a diffusion `generate`."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from typing import Any, Optional, Union

from ..generation.adapter import ADAPTER_REGISTRY, DiffusionAdapter, MaskedLMAdapter

logger = logging.getLogger(__name__)

# Keyword arguments of `from_pretrained` that also matter for reading the config and the tokenizer.
_HUB_KWARGS = ("cache_dir", "force_download", "local_files_only", "token", "proxies", "subfolder")
# Order in which a remote-code `auto_map` is searched for the class to load.
_REMOTE_AUTO_CLASSES = ("AutoModelForMaskedLM", "AutoModel", "AutoModelForCausalLM")
_TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "vocab.json",
    "tokenizer.model",
    "spiece.model",
)


def _unsupported_model_type_error(model_type: Any, name: Union[str, os.PathLike]) -> ValueError:
    supported = ", ".join(sorted(ADAPTER_REGISTRY))
    return ValueError(
        f"'{name}' has model_type {model_type!r}, which hf_unmask does not know how to run as a diffusion LM. "
        f"Supported model types: {supported}, and any checkpoint loadable with AutoModelForMaskedLM. To add a "
        "family, subclass hf_unmask.models.DiffusionAdapter (mask id, logit shift, attention-mask format), decorate "
        f"it with @hf_unmask.register_adapter({model_type!r}) before loading, or pass adapter=YourAdapter."
    )


def _is_native_masked_lm(model_type: Any) -> bool:
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING_NAMES

    return model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def _registered_for_masked_lm(model_type: Any) -> bool:
    """True for model types registered with `AutoModelForMaskedLM` at run time (e.g. hf_unmask's tiny dLLM)."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_MASKED_LM_MAPPING

    return any(getattr(cfg, "model_type", None) == model_type for cfg in MODEL_FOR_MASKED_LM_MAPPING._extra_content)


def _choose_auto_class(
    config_dict: dict[str, Any], model_type: Any, trust_remote_code: bool, name: Any, explicit_adapter: bool = False
) -> Any:
    """The transformers Auto class that loads this checkpoint with its logits head."""
    import transformers

    auto_map = config_dict.get("auto_map") or {}
    if _is_native_masked_lm(model_type) or _registered_for_masked_lm(model_type):
        return transformers.AutoModelForMaskedLM
    remote = [cls for cls in _REMOTE_AUTO_CLASSES if cls in auto_map]
    if remote:
        if not trust_remote_code:
            raise ValueError(
                f"'{name}' (model_type {model_type!r}) ships its modeling code in the repository ({auto_map[remote[0]]}). "
                "Read it, then load with AutoDiffusionLM.from_pretrained(..., trust_remote_code=True)."
            )
        return getattr(transformers, remote[0])
    architectures = config_dict.get("architectures") or []
    if any(str(arch).endswith("ForMaskedLM") for arch in architectures):
        return transformers.AutoModelForMaskedLM
    if model_type in ADAPTER_REGISTRY or explicit_adapter:
        # A family hf_unmask knows (registered or given adapter=) that transformers implements natively: load the
        # head class the checkpoint declares, else the bare Auto class.
        declared = getattr(transformers, str(architectures[0]), None) if architectures else None
        return declared if declared is not None else transformers.AutoModel
    raise _unsupported_model_type_error(model_type, name)


def _local_folder_lacks(name: Union[str, os.PathLike], hub_kwargs: dict[str, Any], files: Iterable[str]) -> bool:
    """`name` is a local folder (in its `subfolder`, if given) holding none of `files`: nothing to try loading."""
    folder = os.path.join(str(name), hub_kwargs.get("subfolder") or "")
    return os.path.isdir(str(name)) and not any(os.path.isfile(os.path.join(folder, f)) for f in files)


def load_tokenizer(
    name: Union[str, os.PathLike],
    trust_remote_code: bool = False,
    revision: Optional[str] = None,
    **hub_kwargs: Any,
) -> Any:
    """Load the tokenizer of a checkpoint, without running code from it for the native families.

    Dream ships its tokenizer as remote code (`tokenization_dream.DreamTokenizer`, Qwen2's byte-level BPE):
    it is read with transformers' own `Qwen2Tokenizer` instead (see `hf_unmask.models.native`). Any other
    checkpoint goes through `AutoTokenizer.from_pretrained` with the `trust_remote_code` given.

    Example:
        ```python
        >>> from hf_unmask.models import load_tokenizer
        >>> from hf_unmask.models.tiny import builtin_model_path
        >>> load_tokenizer(builtin_model_path("tiny-dllm")).mask_token
        '[MASK]'
        ```

        Dream's (not run in tests: it downloads the tokenizer from the Hub):

        ```python
        >>> tokenizer = load_tokenizer("Dream-org/Dream-v0-Instruct-7B")  # doctest: +SKIP
        >>> type(tokenizer).__name__, tokenizer.mask_token_id  # doctest: +SKIP
        ('Qwen2Tokenizer', 151666)
        ```
    """
    import transformers
    from transformers.models.auto.tokenization_auto import get_tokenizer_config

    from .native import NATIVE_TOKENIZER_CLASSES

    lookup = {k: v for k, v in hub_kwargs.items() if k in _HUB_KWARGS}
    tokenizer_config = get_tokenizer_config(name, revision=revision, **lookup) or {}
    native = NATIVE_TOKENIZER_CLASSES.get(tokenizer_config.get("tokenizer_class"))
    if native is not None:
        return getattr(transformers, native).from_pretrained(name, revision=revision, **hub_kwargs)
    return transformers.AutoTokenizer.from_pretrained(
        name, trust_remote_code=trust_remote_code, revision=revision, **hub_kwargs
    )


def _load_tokenizer(
    name: Union[str, os.PathLike], trust_remote_code: bool, revision: Optional[str], hub_kwargs: dict[str, Any]
) -> Any:
    """The checkpoint's tokenizer when it has one, else None (never an error: it only supplies special ids)."""
    if _local_folder_lacks(name, hub_kwargs, _TOKENIZER_FILES):
        return None
    try:
        return load_tokenizer(name, trust_remote_code=trust_remote_code, revision=revision, **hub_kwargs)
    except (OSError, ValueError, KeyError, TypeError) as err:
        logger.info("No tokenizer loaded from %s (%s); special ids come from the configs only.", name, err)
        return None


def _load_generation_config(
    name: Union[str, os.PathLike], revision: Optional[str], hub_kwargs: dict[str, Any]
) -> Optional[Any]:
    """The checkpoint's generation_config.json as a plain `GenerationConfig`, or None when it has none."""
    from transformers import GenerationConfig

    if _local_folder_lacks(name, hub_kwargs, ("generation_config.json",)):
        return None
    try:
        return GenerationConfig.from_pretrained(name, revision=revision, **hub_kwargs)
    except (OSError, ValueError) as err:
        logger.info("No generation_config.json loaded from %s (%s).", name, err)
        return None


def _load_native(
    native_class: type,
    name: Union[str, os.PathLike],
    config_dict: dict[str, Any],
    trust_remote_code: bool,
    load_kwargs: dict[str, Any],
    hub_kwargs: dict[str, Any],
) -> Any:
    """Load a checkpoint of a natively implemented family with its native class. A checkpoint whose config uses
    settings the native class does not implement loads its own modeling code, only with `trust_remote_code=True`."""
    config = native_class.config_class.from_pretrained(name, revision=load_kwargs.get("revision"), **hub_kwargs)
    problems = config.unsupported_fields() if hasattr(config, "unsupported_fields") else []
    auto_map = config_dict.get("auto_map") or {}
    if not problems:
        if trust_remote_code and auto_map:
            logger.info(
                "'%s' (model_type %r) is loaded with hf_unmask's native %s; the modeling code it ships is not run.",
                name,
                config.model_type,
                native_class.__name__,
            )
        return native_class.from_pretrained(name, config=config, **load_kwargs)
    family = f"{native_class.__name__} (model_type {config.model_type!r})"
    remote = [cls for cls in _REMOTE_AUTO_CLASSES if cls in auto_map]
    if not (trust_remote_code and remote):
        raise ValueError(
            f"'{name}' uses settings that hf_unmask's native {family} does not implement: {'; '.join(problems)}. "
            "The published checkpoints of this family use none of them. To run this variant with the modeling code "
            "it ships, pass trust_remote_code=True (the checkpoint must then have an auto_map)."
        )
    import transformers
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    # Not through transformers' Auto classes: once hf_unmask is imported they prefer the native class even with
    # trust_remote_code=True.
    try:
        model_class = get_class_from_dynamic_module(auto_map[remote[0]], name, **hub_kwargs)
        return model_class.from_pretrained(name, trust_remote_code=True, **load_kwargs)
    except Exception as err:
        raise RuntimeError(
            f"Loading '{name}' with the modeling code it ships (trust_remote_code=True) failed under transformers "
            f"{transformers.__version__}: {type(err).__name__}: {err}. hf_unmask's native {family} loads the "
            "published checkpoints of this family without remote code, but not this one, because it uses: "
            f"{'; '.join(problems)}."
        ) from err


class AutoDiffusionLM:
    """Load a diffusion LM checkpoint and give it `model.generate(..., strategy=...)`.

    The family is read from `config.json` (`model_type`) before anything is loaded. LLaDA ("llada") and Dream
    ("Dream") load with hf_unmask's native classes (`LLaDAModelLM`, `DreamModel`): the published config.json and
    safetensors are read as they are, no file of the checkpoint is executed and `trust_remote_code` is not needed
    (a checkpoint of those types that uses settings the native classes do not implement loads its own code only
    with `trust_remote_code=True`). Any transformers masked LM (BERT, RoBERTa, ModernBERT, ...) loads with
    `AutoModelForMaskedLM`; other families that ship their code load it with `trust_remote_code=True`. An optional
    PEFT adapter is put on top, and the tokenizer (when the checkpoint has one) supplies the mask / EOS / pad ids
    that the configs do not name.

    An already-loaded model, a `peft.PeftModel` included, gets the same `generate` from
    `hf_unmask.enable_diffusion_generate(model, tokenizer=...)`.

    Example:
        ```python
        >>> from hf_unmask import AutoDiffusionLM
        >>> from hf_unmask.models.tiny import builtin_model_path
        >>> model = AutoDiffusionLM.from_pretrained(builtin_model_path("tiny-dllm"))  # a folder or a Hub id
        >>> type(model.diffusion_adapter).__name__, model.generation_config.mask_token_id
        ('TinyDLLMAdapter', 1)
        ```

        LLaDA-8B and a LoRA adapter (not run in tests: they need a GPU and the Hub):

        ```python
        >>> model = AutoDiffusionLM.from_pretrained(  # doctest: +SKIP
        ...     "GSAI-ML/LLaDA-8B-Instruct", dtype="bfloat16", device_map="cuda"
        ... )
        >>> out = model.generate(input_ids, max_new_tokens=128, block_length=32, strategy="top_k_confidence")  # doctest: +SKIP
        >>> lora = AutoDiffusionLM.from_pretrained("answerdotai/ModernBERT-base", peft_adapter="me/my-lora")  # doctest: +SKIP
        ```
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise OSError("AutoDiffusionLM is not instantiated: use AutoDiffusionLM.from_pretrained(...).")

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: Union[str, os.PathLike],
        *,
        trust_remote_code: bool = False,
        dtype: Any = None,
        device_map: Any = None,
        revision: Optional[str] = None,
        peft_adapter: Optional[Union[str, os.PathLike]] = None,
        tokenizer: Any = None,
        adapter: Optional[Union[type[DiffusionAdapter], DiffusionAdapter]] = None,
        mask_token_id: Optional[int] = None,
        **model_kwargs: Any,
    ) -> Any:
        """Load `pretrained_model_name_or_path` (Hub id or folder) and return the model with a diffusion `generate`.

        Args:
            pretrained_model_name_or_path: Hub repo id or local folder of the dLLM.
            trust_remote_code: run modeling code that a checkpoint ships, for families hf_unmask does not implement
                natively (never needed, and not used, for the published LLaDA and Dream checkpoints).
            dtype, device_map, revision: as in `transformers` `from_pretrained`.
            peft_adapter: Hub id or folder of a PEFT adapter (e.g. LoRA) put on top with `PeftModel.from_pretrained`.
            tokenizer: a tokenizer object or a repo/folder to load one from; by default the checkpoint's own
                tokenizer when it has one. Used only for special ids (mask, EOS, pad).
            adapter: a `DiffusionAdapter` class or instance, to override the family found from `model_type`.
            mask_token_id: override the mask id for this model.
            **model_kwargs: passed to the transformers `from_pretrained` (`cache_dir`, `token`, `attn_implementation`...).

        Returns:
            The loaded model (`peft.PeftModel` when `peft_adapter` is given) in eval mode, with
            `model.generate(input_ids, attention_mask=None, strategy=..., **generation_kwargs)` and
            `model.diffusion_adapter`.
        """
        from transformers import PretrainedConfig

        from .._paths import check_local_folder
        from ..generation.mixin import enable_diffusion_generate

        check_local_folder(pretrained_model_name_or_path)
        name = pretrained_model_name_or_path
        hub_kwargs = {k: model_kwargs[k] for k in _HUB_KWARGS if k in model_kwargs}
        # Read config.json as plain JSON first: no repository code runs before we know the family.
        config_dict, _ = PretrainedConfig.get_config_dict(name, revision=revision, **hub_kwargs)
        explicit_adapter = adapter is not None
        if adapter is None:
            adapter = _adapter_for_unregistered(config_dict, name)
        load_kwargs = dict(model_kwargs)
        for key, value in (("dtype", dtype), ("device_map", device_map), ("revision", revision)):
            if value is not None:
                load_kwargs[key] = value
        model = _load_model(
            name, config_dict, trust_remote_code=trust_remote_code, load_kwargs=load_kwargs, hub_kwargs=hub_kwargs,
            explicit_adapter=explicit_adapter, revision=revision,
        )  # fmt: skip
        if peft_adapter is not None:
            from peft import PeftModel

            peft_hub_kwargs = {k: v for k, v in hub_kwargs.items() if k in ("cache_dir", "token", "local_files_only")}
            model = PeftModel.from_pretrained(model, peft_adapter, **peft_hub_kwargs)
        model.eval()

        if tokenizer is None:
            tokenizer = _load_tokenizer(name, trust_remote_code, revision, hub_kwargs)
        elif isinstance(tokenizer, (str, os.PathLike)):
            tokenizer = load_tokenizer(tokenizer, trust_remote_code=trust_remote_code)

        model = enable_diffusion_generate(model, tokenizer=tokenizer, adapter=adapter, mask_token_id=mask_token_id)
        base_config = getattr(getattr(model, "get_base_model", lambda: model)(), "generation_config", None)
        if getattr(base_config, "mask_token_id", None) is None:
            logger.warning(
                "No mask token id is known for '%s' (none in its configs, no tokenizer with a mask token). Pass "
                "mask_token_id=... here or to generate().",
                name,
            )
        return model


def _adapter_for_unregistered(config_dict: dict[str, Any], name: Any) -> Optional[type[DiffusionAdapter]]:
    """`MaskedLMAdapter` for a masked LM of a family without its own adapter, None for a registered (or native
    masked-LM) family; an error naming the supported families for anything else."""
    model_type = config_dict.get("model_type")
    if model_type in ADAPTER_REGISTRY or _is_native_masked_lm(model_type):
        return None
    architectures = config_dict.get("architectures") or []
    auto_map = config_dict.get("auto_map") or {}
    if not (any(str(a).endswith("ForMaskedLM") for a in architectures) or "AutoModelForMaskedLM" in auto_map):
        raise _unsupported_model_type_error(model_type, name)
    return MaskedLMAdapter


def _load_model(
    name: Any,
    config_dict: dict[str, Any],
    *,
    trust_remote_code: bool,
    load_kwargs: dict[str, Any],
    hub_kwargs: dict[str, Any],
    explicit_adapter: bool,
    revision: Optional[str],
) -> Any:
    """The model, from hf_unmask's native class of its family when there is one, else through transformers' auto
    classes; with its generation config (read here for classes transformers does not read it for)."""
    from .native import native_model_class

    model_type = config_dict.get("model_type")
    native_class = native_model_class(model_type, config_dict)
    if native_class is not None:
        model = _load_native(native_class, name, config_dict, trust_remote_code, load_kwargs, hub_kwargs)
    else:
        auto_class = _choose_auto_class(config_dict, model_type, trust_remote_code, name, explicit_adapter)
        model = auto_class.from_pretrained(name, trust_remote_code=trust_remote_code, **load_kwargs)
    if getattr(model, "generation_config", None) is None:
        # transformers reads generation_config.json only for classes that can generate (not BERT, LLaDA, Dream)
        model.generation_config = _load_generation_config(name, revision, hub_kwargs)
    return model
