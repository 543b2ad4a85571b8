"""Hub I/O of strategies and policies: save/load round trips, the offline Hugging Face cache, push_to_hub up to the
network boundary, and clear errors (never code execution) for broken or hostile files."""

from __future__ import annotations

import hashlib
import json
import pickle
from pathlib import Path
from types import SimpleNamespace

import httpx2
import pytest
import torch
from huggingface_hub import CommitOperationAdd, HfApi, ModelCard, constants, hf_hub_download, scan_cache_dir
from huggingface_hub.utils import _http as hf_http
from safetensors.torch import load_file

from hf_unmask import hub
from hf_unmask.strategies import ConfidencePolicy, HiddenStatePolicy, TopKConfidence, UnmaskingStrategy

TRAINED_FOR = {"base_model": "tiny/base", "gen_length": 16, "block_length": 8, "alpha": 3.0, "task": "sum"}


def make_policy(seed: int = 0, **kwargs) -> ConfidencePolicy:
    policy = ConfidencePolicy(trained_for=TRAINED_FOR, **kwargs)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.2)
    return policy


def states(seed: int = 1) -> dict:
    gen = torch.Generator().manual_seed(seed)
    masked = torch.rand(4, 16, generator=gen) < 0.8
    return {
        "confidence": torch.rand(4, 16, generator=gen),
        "masked": masked,
        "eligible": masked,
        "time": torch.rand(4, generator=gen),
    }


def same_outputs(a, b) -> None:
    s = states()
    torch.testing.assert_close(
        a(s["confidence"], s["masked"], s["time"]), b(s["confidence"], s["masked"], s["time"]), rtol=0, atol=0
    )
    sa = a.sample(s, generator=torch.Generator().manual_seed(3))
    sb = b.sample(s, generator=torch.Generator().manual_seed(3))
    assert torch.equal(sa.action, sb.action) and torch.equal(sa.log_prob, sb.log_prob)


# ---------------------------------------------------------------------------------------------- round trips
def test_save_then_load_gives_identical_outputs(tmp_path):
    policy = make_policy(mode="dpls", temperature=0.5, unmask_beta=1.5)
    policy.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["_class_name"] == "ConfidencePolicy" and config["trained_for"] == TRAINED_FOR
    assert config["mode"] == "dpls" and config["hidden_size"] == 128
    for loader in (ConfidencePolicy, UnmaskingStrategy):
        loaded = loader.from_pretrained(tmp_path)
        assert type(loaded) is ConfidencePolicy and loaded.get_config() == policy.get_config()
        assert not loaded.training
        same_outputs(policy, loaded)
    faster = ConfidencePolicy.from_pretrained(tmp_path, temperature=1.0, mode="bernoulli-argmax")
    assert (faster.temperature, faster.mode) == (1.0, "bernoulli-argmax")
    weights = load_file(tmp_path / "model.safetensors")
    assert set(weights) == set(policy.state_dict())


def test_hidden_state_policy_round_trip(tmp_path):
    policy = HiddenStatePolicy(16, hidden_size=32, num_heads=2, ffn_size=64, trained_for=TRAINED_FOR)
    policy.save_pretrained(tmp_path)
    loaded = UnmaskingStrategy.from_pretrained(tmp_path)
    assert isinstance(loaded, HiddenStatePolicy) and loaded.get_config() == policy.get_config()
    for a, b in zip(policy.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)


def test_heuristics_round_trip_with_a_card(tmp_path):
    strategy = TopKConfidence(steps=8)
    strategy.save_pretrained(tmp_path)
    assert UnmaskingStrategy.from_pretrained(tmp_path) == strategy


# ---------------------------------------------------------------------------------------------- the Hub cache
REPO_ID = "hf-unmask-test/policy"
COMMIT = "a" * 40


def _serve(folder: Path):
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    requests = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        requests.append((request.method, request.url.path))
        prefix = f"/{REPO_ID}/resolve/"
        revision, _, filename = request.url.path[len(prefix) :].partition("/")
        if not request.url.path.startswith(prefix):
            return httpx2.Response(404, headers={"X-Error-Code": "RepoNotFound"})
        if revision not in ("main", COMMIT) or filename not in files:
            return httpx2.Response(404, headers={"X-Error-Code": "EntryNotFound", "X-Repo-Commit": COMMIT})
        data = files[filename]
        headers = {"X-Repo-Commit": COMMIT, "Content-Length": str(len(data))}
        if filename.endswith(".safetensors"):  # LFS file: etag is its sha256
            digest = hashlib.sha256(data).hexdigest()
            headers.update({"ETag": f'"{digest}"', "X-Linked-Etag": f'"{digest}"', "X-Linked-Size": str(len(data))})
        else:  # regular git file: etag is the git blob sha1
            headers["ETag"] = '"' + hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest() + '"'
        return httpx2.Response(200, headers=headers, content=b"" if request.method == "HEAD" else data)

    return handler, requests


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A private HF_HOME; huggingface_hub read its paths at import, so its constants are pointed there too."""
    home = tmp_path / "hf_home"
    monkeypatch.setenv("HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HOME", str(home))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "hub"))
    yield home / "hub"
    hf_http.set_client_factory(hf_http.default_client_factory)


def _use_transport(handler) -> None:
    hf_http.set_client_factory(
        lambda: httpx2.Client(
            transport=httpx2.MockTransport(handler),
            event_hooks={"request": [hf_http.hf_request_event_hook]},
            follow_redirects=True,
        )
    )


def test_load_by_repo_id_offline_from_a_cache_laid_out_by_huggingface_hub(tmp_path, hub_cache, monkeypatch):
    policy = make_policy(seed=5)
    policy.save_pretrained(tmp_path / "upload")
    handler, requests = _serve(tmp_path / "upload")
    _use_transport(handler)
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    for name in ("config.json", "model.safetensors", "README.md"):  # huggingface_hub's own download writes the cache
        hf_hub_download(REPO_ID, name)
    assert ("GET", f"/{REPO_ID}/resolve/main/model.safetensors") in requests
    info = scan_cache_dir(hub_cache)
    (repo,) = info.repos
    assert repo.repo_id == REPO_ID and repo.repo_type == "model"
    (revision,) = repo.revisions
    assert revision.commit_hash == COMMIT and revision.refs == frozenset({"main"})
    assert {f.file_name for f in revision.files} == {"config.json", "model.safetensors", "README.md"}

    # now offline: any HTTP request is an error
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    requests.clear()
    loaded = UnmaskingStrategy.from_pretrained(REPO_ID)
    same_outputs(policy, loaded)
    same_outputs(policy, ConfidencePolicy.from_pretrained(REPO_ID, revision=COMMIT))
    assert requests == []
    with pytest.raises(OSError, match="cannot be reached"):
        UnmaskingStrategy.from_pretrained("hf-unmask-test/not-cached")


# ---------------------------------------------------------------------------------------------- push_to_hub
@pytest.fixture
def fake_hub(monkeypatch):
    calls: dict = {"create_repo": [], "create_commit": []}

    def create_repo(self, repo_id, *, private=None, exist_ok=False, token=None, **kwargs):
        calls["create_repo"].append({"repo_id": repo_id, "private": private, "exist_ok": exist_ok})
        return SimpleNamespace(repo_id=repo_id)

    def create_commit(self, repo_id, operations, *, commit_message, revision=None, create_pr=False, token=None, **kw):
        files = {}
        for op in operations:
            assert isinstance(op, CommitOperationAdd)
            files[op.path_in_repo] = Path(op.path_or_fileobj).read_bytes()  # the temporary folder still exists here
        calls["create_commit"].append(
            {"repo_id": repo_id, "files": files, "message": commit_message, "revision": revision, "pr": create_pr}
        )
        return SimpleNamespace(oid="b" * 40, commit_url=f"https://huggingface.co/{repo_id}/commit/{'b' * 40}")

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    return calls


def test_push_to_hub_sends_card_config_weights_and_plot_in_one_commit(tmp_path, fake_hub):
    policy = make_policy(seed=7)
    plot = tmp_path / "my_plot.png"
    plot.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(64)))
    rows = [
        {"strategy": "ConfidencePolicy", "budget": "alpha=3", "accuracy": 0.61, "nfe_mean": 5.5},
        {"strategy": "ConfidenceThreshold", "budget": "threshold=0.9", "accuracy": 0.55, "nfe_mean": 6.0},
    ]
    result = policy.push_to_hub(
        "me/tiny-policy", private=True, commit_message="first policy", evaluation_results=rows, plot_path=plot
    )
    assert result.oid == "b" * 40
    assert fake_hub["create_repo"] == [{"repo_id": "me/tiny-policy", "private": True, "exist_ok": True}]
    (commit,) = fake_hub["create_commit"]
    assert commit["repo_id"] == "me/tiny-policy" and commit["message"] == "first policy"
    files = commit["files"]
    assert sorted(files) == ["README.md", "config.json", "model.safetensors", "pareto.png"]
    config = json.loads(files["config.json"])
    assert config == {
        **policy.get_config(),
        "_class_name": "ConfidencePolicy",
        "_format_version": hub.FORMAT_VERSION,
        "_hf_unmask_version": config["_hf_unmask_version"],
    }
    weights_path = tmp_path / "sent.safetensors"
    weights_path.write_bytes(files["model.safetensors"])
    sent = load_file(weights_path)
    assert sent.keys() == policy.state_dict().keys()
    assert all(torch.equal(sent[k], v) for k, v in policy.state_dict().items())
    assert files["pareto.png"] == plot.read_bytes()
    card = ModelCard(files["README.md"].decode())
    assert card.data.base_model == "tiny/base" and "hf-unmask" in card.data.tags
    assert 'from_pretrained("me/tiny-policy")' in card.text
    assert "![Accuracy vs NFE](pareto.png)" in card.text and "| ConfidencePolicy | alpha=3 | 61.0 | 5.5 |" in card.text


def test_pushing_an_untrained_policy_warns(fake_hub):
    with pytest.warns(UserWarning, match="empty `trained_for`"):
        ConfidencePolicy().push_to_hub("me/untrained")
    card = fake_hub["create_commit"][0]["files"]["README.md"].decode()
    assert "Untrained policy" in card


def test_every_strategy_pushes_with_a_card(fake_hub):
    TopKConfidence(steps=4).push_to_hub("me/topk")
    (commit,) = fake_hub["create_commit"]
    assert sorted(commit["files"]) == ["README.md", "config.json"]
    assert commit["message"] == "Upload TopKConfidence with hf_unmask"
    assert json.loads(commit["files"]["config.json"])["steps"] == 4
    TopKConfidence().push_to_hub("me/topk-bare", model_card=False)
    assert sorted(fake_hub["create_commit"][1]["files"]) == ["config.json"]


# ---------------------------------------------------------------------------------------------- hostile files
class _Payload:
    """Unpickling this runs code (writes a sentinel file): what a malicious .bin/.pt could do."""

    def __init__(self, sentinel: Path) -> None:
        self.sentinel = sentinel

    def __reduce__(self):
        return (exec, (f"open({str(self.sentinel)!r}, 'w').write('pwned')",))


@pytest.fixture
def no_unpickling(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("something tried to unpickle a file")

    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(torch, "load", refuse)


@pytest.fixture
def saved(tmp_path) -> Path:
    folder = tmp_path / "policy"
    make_policy().save_pretrained(folder)
    return folder


def _edit_config(folder: Path, **changes) -> None:
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def test_corrupted_safetensors_is_a_clear_error(saved, no_unpickling):
    (saved / "model.safetensors").write_bytes(b"this is not a safetensors file" * 10)
    with pytest.raises(ValueError, match="corrupted or truncated"):
        UnmaskingStrategy.from_pretrained(saved)


def test_truncated_safetensors_is_a_clear_error(saved, no_unpickling):
    data = (saved / "model.safetensors").read_bytes()
    (saved / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupted or truncated"):
        UnmaskingStrategy.from_pretrained(saved)


def test_unknown_class_is_a_clear_error(saved, no_unpickling):
    _edit_config(saved, _class_name="os.system")
    with pytest.raises(ValueError, match="not registered"):
        UnmaskingStrategy.from_pretrained(saved)


def test_newer_format_is_a_clear_error(saved):
    _edit_config(saved, _format_version=hub.FORMAT_VERSION + 1)
    with pytest.raises(ValueError, match="newer than this installation"):
        UnmaskingStrategy.from_pretrained(saved)
    _edit_config(saved, _format_version=hub.FORMAT_VERSION, new_knob=1)
    with pytest.raises(ValueError, match="newer hf_unmask"):
        UnmaskingStrategy.from_pretrained(saved)


def test_weights_that_do_not_fit_the_config_are_a_clear_error(saved):
    _edit_config(saved, hidden_size=64, ffn_size=256)
    with pytest.raises(ValueError, match="do not match the architecture"):
        UnmaskingStrategy.from_pretrained(saved)


def test_missing_weights_are_a_clear_error(saved):
    (saved / "model.safetensors").unlink()
    with pytest.raises(OSError, match="no model.safetensors"):
        UnmaskingStrategy.from_pretrained(saved)


def test_pickled_weights_are_refused_and_never_run(saved, tmp_path, no_unpickling):
    sentinel = tmp_path / "sentinel.txt"
    payload = pickle.dumps({"network.head.weight": _Payload(sentinel)})
    (saved / "model.safetensors").unlink()
    (saved / "pytorch_model.bin").write_bytes(payload)
    with pytest.raises(ValueError, match="pickled weights"):
        UnmaskingStrategy.from_pretrained(saved)
    # a pickle under the safetensors name is rejected by the safetensors reader
    (saved / "pytorch_model.bin").unlink()
    (saved / "model.safetensors").write_bytes(payload)
    with pytest.raises(ValueError, match="not a readable safetensors file"):
        UnmaskingStrategy.from_pretrained(saved)
    assert not sentinel.exists()
