"""Issue 12, item 10: every bad input to `generate` and the loaders gets a clear error (or a warning where legal but
suspicious) raised by hf_unmask, naming the problem and the fix, before any forward pass unless stated."""

from __future__ import annotations

import pytest

import hf_unmask
from hf_unmask.strategies import UnmaskingPolicy


# ---------------------------------------------------------------------------------------------- loaders
@pytest.mark.parametrize("path", ["./no/such/policy", "/no/such/policy", "no/such/policy"])
def test_missing_local_folder_for_a_policy(path):
    with pytest.raises(hf_unmask.LocalFolderNotFoundError, match=r"No such folder: '.*no/such/policy'") as info:
        UnmaskingPolicy.from_pretrained(path)
    assert isinstance(info.value, ValueError) and isinstance(info.value, FileNotFoundError)


@pytest.mark.parametrize("path", ["./no/such/model", "/no/such/model"])
def test_missing_local_folder_for_a_model(path):
    with pytest.raises(hf_unmask.LocalFolderNotFoundError, match=r"No such folder: '.*no/such/model'.*Hub"):
        hf_unmask.AutoDiffusionLM.from_pretrained(path)


def test_hub_ids_are_not_taken_for_folders():
    from hf_unmask._paths import check_local_folder, looks_like_local_path

    for name in ("GSAI-ML/LLaDA-8B-Instruct", "bert-base-uncased", "org/model.v2"):
        assert not looks_like_local_path(name)
        check_local_folder(name)
