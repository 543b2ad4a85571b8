"""Hub I/O shared by every strategy: a JSON config naming the class, optional safetensors weights.

Nothing here unpickles or imports code from a downloaded folder: the config names a class that must already
be registered in hf_unmask (or by the user's own import), and weights are read with safetensors only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Optional, Union

from huggingface_hub import CommitOperationAdd, HfApi, hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
# Bumped when the saved format changes in a way older readers cannot understand.
FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")


def resolve_file(
    repo_id_or_path: Union[str, os.PathLike],
    filename: str,
    *,
    revision: Optional[str] = None,
    cache_dir: Optional[Union[str, os.PathLike]] = None,
    force_download: bool = False,
    local_files_only: bool = False,
    token: Optional[Union[str, bool]] = None,
    subfolder: Optional[str] = None,
) -> Optional[str]:
    """Local path of `filename` in a local folder or a Hub repo (downloaded/cached); None if it does not exist."""
    path = Path(repo_id_or_path)
    if path.is_dir():
        candidate = path / subfolder / filename if subfolder else path / filename
        return str(candidate) if candidate.is_file() else None
    try:
        return hf_hub_download(
            repo_id=str(repo_id_or_path),
            filename=filename,
            subfolder=subfolder,
            revision=revision,
            cache_dir=cache_dir,
            force_download=force_download,
            local_files_only=local_files_only,
            token=token,
        )
    except LocalEntryNotFoundError as err:  # a subclass of EntryNotFoundError: must be caught first
        raise OSError(
            f"Could not find '{filename}' for '{repo_id_or_path}' locally or in the Hugging Face cache, and the Hub "
            "cannot be reached (HF_HUB_OFFLINE=1 or no network). Pass a local folder, or download it first while "
            "online."
        ) from err
    except EntryNotFoundError:  # the repo exists but has no such file
        return None


def read_config(config_file: str) -> dict[str, Any]:
    """Read and check a saved config JSON (format version, class name present)."""
    try:
        with open(config_file, encoding="utf-8") as f:
            config = json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{config_file} is not valid JSON ({err}); the saved strategy is corrupted.") from err
    if not isinstance(config, dict) or "_class_name" not in config:
        raise ValueError(
            f"{config_file} has no '_class_name': it is not an hf_unmask strategy/policy config. Save one with "
            "`strategy.save_pretrained(folder)`."
        )
    version = config.get("_format_version", 1)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValueError(
            f"{config_file} was saved with hf_unmask format version {version!r}, newer than this installation "
            f"understands ({FORMAT_VERSION}). Upgrade hf_unmask (`pip install -U hf_unmask`)."
        )
    return config


def check_no_pickle(folder: Union[str, os.PathLike]) -> None:
    """Refuse folders that carry pickled weights instead of safetensors."""
    pickled = sorted(p.name for p in Path(folder).iterdir() if p.suffix in PICKLE_SUFFIXES)
    if pickled and not (Path(folder) / WEIGHTS_NAME).exists():
        raise ValueError(
            f"{folder} holds pickled weights ({', '.join(pickled)}) and no {WEIGHTS_NAME}. hf_unmask never unpickles "
            "files (they can run arbitrary code); convert the weights to safetensors."
        )


def save_weights(
    state_dict: Mapping[str, Any], path: Union[str, os.PathLike], metadata: Optional[dict[str, str]] = None
) -> None:
    """Write tensors to a safetensors file (detached, contiguous, on CPU); `metadata` goes into its header."""
    from safetensors.torch import save_file

    tensors = {name: tensor.detach().cpu().contiguous() for name, tensor in state_dict.items()}
    save_file(tensors, str(path), metadata={"format": "pt", **(metadata or {})})


def load_weights(path: Union[str, os.PathLike]) -> dict[str, Any]:
    """Read a safetensors file into CPU tensors. Never unpickles: a corrupted, truncated or non-safetensors file
    (e.g. a renamed `torch.save` pickle) is a `ValueError` that names the file and the fix."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as err:
        raise ValueError(
            f"{path} is not a readable safetensors file ({err}). The download may be corrupted or truncated, or the "
            "file is not safetensors (hf_unmask never unpickles weights). Delete it and download again "
            "(from_pretrained(..., force_download=True)), or re-save the strategy with save_pretrained."
        ) from err


def check_state_dict(expected: Mapping[str, Any], loaded: Mapping[str, Any], source: str) -> None:
    """Strict check that `loaded` has exactly the names and shapes of `expected` (both name -> tensor)."""
    missing = sorted(set(expected) - set(loaded))
    unexpected = sorted(set(loaded) - set(expected))
    mismatched = [
        f"{name}: {tuple(loaded[name].shape)} in the file, {tuple(expected[name].shape)} expected"
        for name in sorted(set(expected) & set(loaded))
        if tuple(loaded[name].shape) != tuple(expected[name].shape)
    ]
    not_float = [name for name in sorted(set(expected) & set(loaded)) if not loaded[name].dtype.is_floating_point]
    problems = []
    if missing:
        problems.append(f"missing tensors {missing}")
    if unexpected:
        problems.append(f"unexpected tensors {unexpected}")
    if mismatched:
        problems.append("shape mismatches: " + "; ".join(mismatched))
    if not_float:
        problems.append(f"non-floating-point tensors {not_float}")
    if problems:
        raise ValueError(
            f"The weights in {source} do not match the architecture in {CONFIG_NAME}: {', '.join(problems)}. The "
            "weights and the config were probably saved from different models; save both again with save_pretrained."
        )


def push_folder(
    folder: Union[str, os.PathLike],
    repo_id: str,
    *,
    commit_message: str,
    private: Optional[bool] = None,
    token: Optional[str] = None,
    revision: Optional[str] = None,
    create_pr: bool = False,
    api: Optional[HfApi] = None,
) -> Any:
    """Create the repo if needed and upload every file of `folder` in one commit."""
    api = api or HfApi(token=token)
    repo_id = api.create_repo(repo_id=repo_id, private=private, exist_ok=True, token=token).repo_id
    operations = [
        CommitOperationAdd(path_in_repo=p.relative_to(folder).as_posix(), path_or_fileobj=str(p))
        for p in sorted(Path(folder).rglob("*"))
        if p.is_file()
    ]
    return api.create_commit(
        repo_id=repo_id,
        operations=operations,
        commit_message=commit_message,
        revision=revision,
        create_pr=create_pr,
        token=token,
    )
