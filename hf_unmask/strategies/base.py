"""The strategy protocol: `selection = strategy(state)`, plus config (de)serialisation and Hub I/O."""

from __future__ import annotations

import inspect
import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Optional, Union

import torch
from huggingface_hub import ModelCard, ModelHubMixin
from huggingface_hub.errors import LocalEntryNotFoundError

from .. import hub
from .._paths import check_local_folder
from .._version import __version__
from ..generation.state import DenoisingState
from ..generation.strategy import StrategyOutput
from .card import PLOT_FILENAME, build_model_card

STRATEGY_REGISTRY: dict[str, type[UnmaskingStrategy]] = {}
#: Class names that configs saved by earlier releases hold -> the class that loads them now.
SAVED_CLASS_ALIASES: dict[str, str] = {"UnmaskingPolicy": "ConfidencePolicy"}
#: Loaders of checkpoints written by other code (the paper's released policies), registered by their module with
#: `register_checkpoint_loader`: `loader(source, *, config_file, expected_class, hub_kwargs, **overrides)` returns
#: the strategy, or None when the checkpoint is not theirs; `config_file` is None when `source` is a single file.
CHECKPOINT_LOADERS: list[Callable[..., Optional[UnmaskingStrategy]]] = []
# The key under which `from_pretrained` hands the caller's own keyword arguments to `_from_pretrained`, apart from
# the saved values huggingface_hub's mixin adds to them.
_CALLER_OVERRIDES = "_hf_unmask_overrides"


def register_checkpoint_loader(loader: Callable[..., Optional[UnmaskingStrategy]]) -> None:
    """Let `UnmaskingStrategy.from_pretrained` load another layout of checkpoint (see `CHECKPOINT_LOADERS`)."""
    if loader not in CHECKPOINT_LOADERS:
        CHECKPOINT_LOADERS.append(loader)


class UnmaskingStrategy(ModelHubMixin, library_name="hf-unmask", tags=["hf-unmask", "unmasking-strategy"]):
    """Base class of unmasking strategies: the diffusion analogue of a `LogitsProcessor`.

    Subclasses implement `__call__(state) -> BoolTensor[B, L]` (or a `StrategyOutput`). The constructor
    arguments are the hyper-parameters: they are saved as JSON by `save_pretrained` (with the class name, as
    diffusers schedulers do), so `UnmaskingStrategy.from_pretrained(folder_or_repo)` rebuilds the right class. Hub
    I/O is huggingface_hub's `ModelHubMixin` (config as JSON, safetensors weights for learned strategies, a model
    card), restricted to safetensors: nothing is ever unpickled.

    Example:
        ```python
        >>> import tempfile
        >>> from hf_unmask.strategies import ConfidenceThreshold, UnmaskingStrategy
        >>> with tempfile.TemporaryDirectory() as d:
        ...     ConfidenceThreshold(threshold=0.8).save_pretrained(d)
        ...     UnmaskingStrategy.from_pretrained(d)
        ConfidenceThreshold(threshold=0.8)
        ```
    """

    #: The loop computes and passes last hidden states only when this is True.
    requires_hidden_states: ClassVar[bool] = False
    #: True when the selection depends only on the state (no random draw): with a greedy dLLM every seed then
    #: gives the same result, and `evaluate_strategies` runs it once for all seeds. False unless a class says so.
    deterministic: ClassVar[bool] = False
    #: True when the strategy reads `confidence` and `proposal` only at eligible positions (every heuristic here:
    #: they score eligible positions only; `logits`/`probs` stay complete). With greedy token choice and no
    #: trajectory recorded, the loop then runs the token choice (argmax and softmax over the vocabulary) at eligible
    #: positions only; elsewhere `confidence` is 0 and `proposal` holds the canvas token. False by default: a
    #: learned policy reads the confidence of all L positions.
    reads_only_eligible: ClassVar[bool] = False
    #: Token editing (opt-in): the strategy may also return `StrategyOutput(revision=...)`, decided positions of
    #: the current block whose token the loop replaces by `state.proposal` (never the prompt, never another block).
    #: A row whose block has no mask left keeps being fed for at most `max_revision_steps` steps, and only while its
    #: last step revised something; `max_steps` still bounds the forward passes.
    revises_decided_tokens: ClassVar[bool] = False
    #: With `revises_decided_tokens`: steps a row may spend revising after its block is full (an instance may set it).
    max_revision_steps: int = 0
    #: Re-masking (opt-in): the strategy may also return `StrategyOutput(remask=...)`, decided positions of the
    #: current block that the loop sets back to `[MASK]` (never the prompt, never another block); it then sees
    #: `state.token_confidence` and `state.decided_time`. The step budget still bounds the forward passes.
    remasks_decided_tokens: ClassVar[bool] = False
    #: Verification (opt-in): each step's forward also runs a shadow block (the current block's positions, all
    #: masked, each hiding its own decided token) and the strategy sees `state.verification_confidence` (WINO).
    requires_verification: ClassVar[bool] = False
    #: After each block, stop the rows whose generated tokens so far hold an EOS (their later blocks are filled with
    #: the pad id and never decoded), as LLaDA2's and SDAR's own decoders do.
    stops_after_block_with_eos: bool = False
    #: Short name used on the command line (`hf-unmask evaluate --strategy NAME`).
    name: ClassVar[Optional[str]] = None
    #: True for learned policies (trained weights): their model card shows the network and the training settings.
    is_learned: ClassVar[bool] = False
    #: Constructor arguments kept for one release under an old name: accepted, never saved.
    _deprecated_arguments: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        STRATEGY_REGISTRY[cls.__name__] = cls

    def __call__(self, state: DenoisingState) -> Union[torch.Tensor, StrategyOutput]:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__(state).")

    # ---- configuration -------------------------------------------------------------------------------
    @classmethod
    def _config_keys(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [
            n
            for n, p in sig.parameters.items()
            if n != "self"
            and n not in cls._deprecated_arguments
            and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        ]

    @classmethod
    def _upgrade_saved_config(cls, config: dict[str, Any]) -> dict[str, Any]:
        """Hook: rename the fields of a config saved by an earlier release to this release's names."""
        return config

    def get_config(self) -> dict[str, Any]:
        """The constructor arguments, read back from attributes of the same name."""
        return {k: getattr(self, k) for k in self._config_keys()}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return self.get_config() == other.get_config()  # type: ignore[union-attr]

    __hash__ = object.__hash__

    # ---- saving and loading (huggingface_hub's ModelHubMixin) ---------------------------------------------
    def saved_config(self) -> dict[str, Any]:
        """What `config.json` holds: the class name, the format version and the hyper-parameters."""
        return {
            "_class_name": type(self).__name__,
            "_format_version": hub.FORMAT_VERSION,
            "_hf_unmask_version": __version__,
            **self.get_config(),
        }

    def save_pretrained(
        self,
        save_directory: Union[str, os.PathLike],
        *,
        config: Optional[dict[str, Any]] = None,
        repo_id: Optional[str] = None,
        push_to_hub: bool = False,
        model_card_kwargs: Optional[dict[str, Any]] = None,
        **push_to_hub_kwargs: Any,
    ) -> Optional[Any]:
        """Write `config.json` (class name + hyper-parameters), the weights of learned strategies
        (`model.safetensors`) and a model card (`README.md`, kept if the folder already has one).

        `model_card_kwargs` go to `hf_unmask.strategies.card.build_model_card` (`evaluation_results`, `plot_path`
        (copied next to the card), `evaluation_setting`...); the card's snippet loads this folder, named relative to
        the working directory (or by its name; never by an absolute path), unless `repo_id` is given there.
        """
        save_directory = Path(save_directory)
        card_kwargs = {"repo_id": str(save_directory.resolve()), **(model_card_kwargs or {})}
        plot_path = card_kwargs.get("plot_path")
        if plot_path is not None:
            if not Path(plot_path).is_file():
                raise FileNotFoundError(f"plot_path {plot_path} does not exist.")
            save_directory.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(plot_path, save_directory / card_kwargs.get("plot_filename", PLOT_FILENAME))
        return super().save_pretrained(
            save_directory,
            config=config if config is not None else self.saved_config(),
            repo_id=repo_id,
            push_to_hub=push_to_hub,
            model_card_kwargs=card_kwargs,
            **push_to_hub_kwargs,
        )

    def _save_pretrained(self, save_directory: Path) -> None:
        """Hook for the files beyond the config (the weights of learned strategies)."""

    def generate_model_card(self, *args: Any, **kwargs: Any) -> ModelCard:
        """The model card (`hf_unmask.strategies.card.build_model_card`), used by `save_pretrained` / `push_to_hub`."""
        return build_model_card(self, **kwargs)

    @classmethod
    def from_pretrained(
        cls,
        pretrained_model_name_or_path: Union[str, os.PathLike],
        *,
        revision: Optional[str] = None,
        cache_dir: Optional[Union[str, os.PathLike]] = None,
        force_download: bool = False,
        local_files_only: bool = False,
        token: Optional[Union[str, bool]] = None,
        subfolder: Optional[str] = None,
        **overrides: Any,
    ) -> UnmaskingStrategy:
        """Load a strategy from a local folder or a Hub repo; keyword arguments override saved hyper-parameters.

        Called on the base class it returns an instance of whatever class the config names. Nothing is unpickled
        and no code is imported from the folder. A checkpoint saved by the paper's code (a folder or Hub repo, or its
        `model.safetensors` alone) loads as `ConfidencePolicy(architecture="paper")` (see `paper_checkpoint`). Called
        on `UnmaskingPolicy`, it loads any saved learned policy.
        """
        check_local_folder(pretrained_model_name_or_path, "policy")
        hub_kwargs = dict(
            revision=revision, cache_dir=cache_dir, force_download=force_download, local_files_only=local_files_only
        )
        path = os.path.expanduser(os.fspath(pretrained_model_name_or_path))
        if os.path.isfile(path):
            return _load_foreign(path, None, cls, dict(hub_kwargs, token=token), overrides)
        if os.path.isdir(path) and os.path.isfile(os.path.join(path, hub.CONFIG_NAME)):
            _check_json_object(os.path.join(path, hub.CONFIG_NAME))  # before huggingface_hub's mixin reads it
        caller_overrides = dict(overrides)
        if subfolder:  # huggingface_hub's mixin reads the root of a repo: the files are resolved here instead
            caller_overrides["subfolder"] = subfolder
        try:
            return super().from_pretrained(
                pretrained_model_name_or_path, token=token, **hub_kwargs, **{_CALLER_OVERRIDES: caller_overrides}
            )
        except LocalEntryNotFoundError as err:
            raise OSError(
                f"Could not find '{pretrained_model_name_or_path}' locally or in the Hugging Face cache, and the Hub "
                "cannot be reached (HF_HUB_OFFLINE=1 or no network). Pass a local folder, or download it first while "
                "online."
            ) from err
        except (json.JSONDecodeError, UnicodeDecodeError) as err:  # a Hub repo's config.json, read by the mixin
            config_file = hub.resolve_file(pretrained_model_name_or_path, hub.CONFIG_NAME, token=token, **hub_kwargs)
            raise _invalid_config_error(config_file or pretrained_model_name_or_path, err) from err

    @classmethod
    def _from_pretrained(
        cls,
        *,
        model_id: str,
        revision: Optional[str],
        cache_dir: Optional[Union[str, os.PathLike]],
        force_download: bool,
        local_files_only: bool,
        token: Optional[Union[str, bool]],
        **mixin_kwargs: Any,
    ) -> UnmaskingStrategy:
        # the mixin adds the saved values it recognises as constructor arguments; only the caller's own count here
        overrides = dict(mixin_kwargs.get(_CALLER_OVERRIDES, {}))
        hub_kwargs = dict(
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
            subfolder=overrides.pop("subfolder", None),
        )
        config_file = _saved_config_file(model_id, hub_kwargs)  # resolved once (a Hub request when online)
        foreign = _load_foreign(model_id, config_file, cls, hub_kwargs, overrides, required=False)
        if foreign is not None:
            return foreign
        target, config = read_saved_config(model_id, hub_kwargs, config_file)
        if not issubclass(target, cls):
            raise TypeError(f"'{model_id}' holds a {target.__name__}, which is not a {cls.__name__}.")
        config = target._upgrade_saved_config({k: v for k, v in config.items() if not k.startswith("_")})
        unknown = set(config) - set(target._config_keys())
        if unknown:
            raise ValueError(
                f"The config of {target.__name__} has fields {sorted(unknown)} that this version does not know; it "
                "was probably saved by a newer hf_unmask. Upgrade hf_unmask."
            )
        config.update(overrides)
        return target._from_config_and_files(config, model_id, hub_kwargs)

    @classmethod
    def _from_config_and_files(
        cls, config: dict[str, Any], pretrained_model_name_or_path: Union[str, os.PathLike], hub_kwargs: dict[str, Any]
    ) -> UnmaskingStrategy:
        """Hook for subclasses that also load weights."""
        return cls(**config)

    def push_to_hub(
        self,
        repo_id: str,
        *,
        private: Optional[bool] = None,
        commit_message: Optional[str] = None,
        token: Optional[str] = None,
        revision: Optional[str] = None,
        create_pr: bool = False,
        evaluation_results: Any = None,
        plot_path: Optional[Union[str, os.PathLike]] = None,
        model_card: bool = True,
        **card_kwargs: Any,
    ) -> Any:
        """Upload `config.json`, the weights of learned strategies (`model.safetensors`), the model card
        (`README.md`; `model_card=False` leaves it out) and, when given, the Pareto plot (`pareto.png`) in one commit
        (the repo is created if missing): the folder `save_pretrained` writes, sent with `HfApi.create_commit`.

        Args:
            repo_id: `namespace/name` of the Hub repo.
            private, token, revision, create_pr: as in `huggingface_hub` (`revision` is the branch).
            commit_message: defaults to "Upload <class> with hf_unmask".
            evaluation_results: accuracy-vs-NFE rows for the card (dicts with strategy, budget, accuracy, nfe_mean).
            plot_path: a Pareto plot PNG to upload with the card.
            **card_kwargs: passed to `hf_unmask.strategies.card.build_model_card` (e.g. `evaluation_setting`).
        """
        if plot_path is not None and not model_card:
            raise ValueError("plot_path is shown on the model card; it needs model_card=True.")
        card_kwargs = {"repo_id": repo_id, "evaluation_results": evaluation_results, **card_kwargs}
        if plot_path is not None:
            card_kwargs["plot_path"] = plot_path
        commit_message = commit_message or f"Upload {type(self).__name__} with hf_unmask"
        with tempfile.TemporaryDirectory() as tmp:
            self.save_pretrained(tmp, model_card_kwargs=card_kwargs)
            if not model_card:
                (Path(tmp) / "README.md").unlink()
            return hub.push_folder(
                tmp,
                repo_id,
                commit_message=commit_message,
                private=private,
                token=token,
                revision=revision,
                create_pr=create_pr,
            )


def _saved_config_file(pretrained_model_name_or_path: Union[str, os.PathLike], hub_kwargs: dict[str, Any]) -> str:
    """The local path of a saved strategy's `config.json` (downloaded from the Hub when needed); `OSError` without."""
    check_local_folder(pretrained_model_name_or_path, "policy")
    config_file = hub.resolve_file(pretrained_model_name_or_path, hub.CONFIG_NAME, **hub_kwargs)
    if config_file is None:
        raise OSError(
            f"No {hub.CONFIG_NAME} in '{pretrained_model_name_or_path}'. Point to a folder written by "
            "`strategy.save_pretrained(...)` or a Hub repo pushed with `push_to_hub`."
        )
    return config_file


def read_saved_config(
    pretrained_model_name_or_path: Union[str, os.PathLike],
    hub_kwargs: dict[str, Any],
    config_file: Optional[str] = None,
) -> tuple[type[UnmaskingStrategy], dict[str, Any]]:
    """`(class the saved config names, the config without its class name)`; clear errors when either is missing.
    `config_file`: the already resolved `config.json`, when the caller has it."""
    if config_file is None:
        config_file = _saved_config_file(pretrained_model_name_or_path, hub_kwargs)
    config = hub.read_config(config_file)
    class_name = config.pop("_class_name")
    target = STRATEGY_REGISTRY.get(SAVED_CLASS_ALIASES.get(class_name, class_name))
    if target is None:
        raise ValueError(
            f"The config names the strategy class '{class_name}', which is not registered. Known classes: "
            f"{', '.join(sorted(STRATEGY_REGISTRY))}. If it is your own subclass of UnmaskingStrategy, import "
            "its module before loading (no code is ever imported from a downloaded folder)."
        )
    return target, config


def _load_foreign(
    source: Union[str, os.PathLike],
    config_file: Optional[str],
    expected_class: type[UnmaskingStrategy],
    hub_kwargs: dict[str, Any],
    overrides: dict[str, Any],
    required: bool = True,
) -> Optional[UnmaskingStrategy]:
    """The strategy a registered checkpoint loader makes of `source` (a single file when `config_file` is None);
    None when none recognises it, or a `ValueError` with `required`."""
    for loader in CHECKPOINT_LOADERS:
        strategy = loader(
            source, config_file=config_file, expected_class=expected_class, hub_kwargs=hub_kwargs, **overrides
        )
        if strategy is not None:
            return strategy
    if required:
        raise ValueError(
            f"'{source}' is a file. Pass the folder written by save_pretrained (with its {hub.CONFIG_NAME}) or a Hub "
            "repo id."
        )
    return None


def _invalid_config_error(config_file: Union[str, os.PathLike], err: Exception) -> ValueError:
    return ValueError(
        f"{config_file} is not valid JSON ({err}): the saved strategy is corrupted. Save it again with "
        "save_pretrained, or download it again with from_pretrained(..., force_download=True)."
    )


def _check_json_object(config_file: str) -> None:
    """A `ValueError` naming `config_file` unless it holds a JSON object."""
    try:
        with open(config_file, encoding="utf-8") as f:
            config = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise _invalid_config_error(config_file, err) from err
    if not isinstance(config, dict):
        raise ValueError(
            f"{config_file} holds a JSON {type(config).__name__}, not an object: it is not the config of a saved "
            "strategy. Save one with `strategy.save_pretrained(folder)`."
        )
