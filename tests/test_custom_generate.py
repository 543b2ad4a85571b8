"""transformers' `custom_generate` hook: `model.generate(..., custom_generate=DIR, trust_remote_code=True)`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from standins import copy_custom_generate_repo, load_remote, one_torch_thread, prompts, standin, tiny_bert_config

import hf_unmask
from hf_unmask import diffusion_generate

GEN = dict(strategy="top_k_confidence", max_new_tokens=8, block_length=4)


@pytest.fixture(autouse=True, scope="module")
def _single_thread():
    yield from one_torch_thread()


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> str:
    return str(copy_custom_generate_repo(tmp_path_factory.mktemp("cg") / "diffusion-generate"))


@pytest.fixture(scope="module")
def dream(tmp_path_factory):
    """The Dream stand-in loaded with its own code: its class inherits transformers' `GenerationMixin`."""
    return load_remote(standin(tmp_path_factory, "dream"))


def test_template_folder_is_a_hub_repo():
    root = Path(hf_unmask.CUSTOM_GENERATE_DIR)
    assert (root / "custom_generate" / "generate.py").is_file()
    assert "hf_unmask" in (root / "custom_generate" / "requirements.txt").read_text().split()
    card = (root / "README.md").read_text()
    assert card.startswith("---\n") and "custom_generate" in card.split("---")[1]
    source = (root / "custom_generate" / "generate.py").read_text()
    assert "def generate(" in source and "hf_unmask" in source


def test_dream_standin_generate_matches_diffusion_generate(dream, repo):
    ids, keep = prompts()
    out = dream.generate(ids, attention_mask=keep, custom_generate=repo, trust_remote_code=True, **GEN)
    assert torch.equal(out, diffusion_generate(dream, ids, attention_mask=keep, **GEN))


def test_bert_lm_head_generate_matches_diffusion_generate(repo):
    from transformers import BertLMHeadModel

    torch.manual_seed(0)
    model = BertLMHeadModel(tiny_bert_config()).eval()
    ids, keep = prompts()
    settings = dict(GEN, mask_token_id=4, temperature=1.0, seed=3)
    out = model.generate(input_ids=ids, attention_mask=keep, custom_generate=repo, trust_remote_code=True, **settings)
    assert torch.equal(out, diffusion_generate(model, ids, attention_mask=keep, **settings))
    # dict outputs pass through as well
    out = model.generate(ids, custom_generate=repo, trust_remote_code=True, return_dict_in_generate=True, **settings)
    assert isinstance(out, hf_unmask.DiffusionGenerateOutput) and out.nfe.shape == (2,)


def test_tokenizer_argument_supplies_the_mask_id(tmp_path_factory, repo):
    from transformers import AutoTokenizer, BertLMHeadModel

    tokenizer = AutoTokenizer.from_pretrained(standin(tmp_path_factory, "bert"))
    torch.manual_seed(0)
    model = BertLMHeadModel(tiny_bert_config()).eval()
    ids, _ = prompts()
    out = model.generate(ids, custom_generate=repo, trust_remote_code=True, tokenizer=tokenizer, **GEN)
    assert torch.equal(out, diffusion_generate(model, ids, mask_token_id=tokenizer.mask_token_id, **GEN))


def test_custom_generate_inside_a_model_repo_replaces_generate(tmp_path, tmp_path_factory, dream, repo):
    """A model repo that carries `custom_generate/` gets it as its `generate` at load time (trust_remote_code)."""
    folder = tmp_path / "dream_with_generate"
    shutil.copytree(standin(tmp_path_factory, "dream"), folder)
    shutil.copytree(Path(repo) / "custom_generate", folder / "custom_generate")
    model = load_remote(folder)
    ids, keep = prompts()
    out = model.generate(ids, attention_mask=keep, **GEN)  # positional prompt, model bound by transformers
    assert torch.equal(out, diffusion_generate(dream, ids, attention_mask=keep, **GEN))


def test_autoregressive_only_arguments_are_rejected(dream, repo):
    ids, _ = prompts()
    with pytest.raises(ValueError, match="assistant_model"):
        dream.generate(ids, custom_generate=repo, trust_remote_code=True, assistant_model=dream, **GEN)
    with pytest.raises(ValueError, match="num_beams"):
        dream.generate(ids, custom_generate=repo, trust_remote_code=True, num_beams=2, **GEN)


def test_custom_generate_needs_trust_remote_code(dream, repo):
    ids, _ = prompts()
    with pytest.raises(ValueError, match="trust_remote_code"):
        dream.generate(ids, custom_generate=repo, **GEN)


def test_push_custom_generate_uploads_the_folder(monkeypatch):
    calls = {}

    class FakeApi:
        def __init__(self, token=None):
            calls["token"] = token

        def create_repo(self, repo_id, private=None, exist_ok=False):
            calls["create"] = (repo_id, exist_ok)

        def upload_folder(self, **kwargs):
            calls["upload"] = kwargs
            return "commit"

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    assert hf_unmask.push_custom_generate("me/diffusion-generate", token="t") == "commit"
    assert calls["create"] == ("me/diffusion-generate", True)
    assert calls["upload"]["folder_path"] == hf_unmask.CUSTOM_GENERATE_DIR
    assert calls["upload"]["repo_id"] == "me/diffusion-generate"


def test_masked_lm_classes_get_the_same_generation_from_enable_diffusion_generate(repo):
    """The documented rule: a `*ForMaskedLM` class has no `generate`, so `custom_generate=` cannot reach it;
    `enable_diffusion_generate` gives it the same generation that `custom_generate` gives BERT's LM-head class with
    the same weights."""
    from transformers import BertForMaskedLM, BertLMHeadModel

    torch.manual_seed(0)
    masked = BertForMaskedLM(tiny_bert_config()).eval()
    with pytest.raises(AttributeError, match="generate"):
        masked.generate  # noqa: B018 - the attribute lookup itself is what fails
    lm_head = BertLMHeadModel(tiny_bert_config()).eval()
    lm_head.load_state_dict(masked.state_dict())
    ids, keep = prompts()
    settings = dict(GEN, strategy="confidence_threshold", mask_token_id=4)
    through_custom_generate = lm_head.generate(
        ids, attention_mask=keep, custom_generate=repo, trust_remote_code=True, **settings
    )
    direct = hf_unmask.enable_diffusion_generate(masked).generate(ids, attention_mask=keep, **settings)
    assert torch.equal(through_custom_generate, direct)


def test_the_rule_is_on_the_repo_card_and_in_the_readme():
    for text in (
        (Path(hf_unmask.CUSTOM_GENERATE_DIR) / "README.md").read_text(),
        (Path(__file__).resolve().parents[1] / "README.md").read_text(),
    ):
        rule = " ".join(text.split())
        assert "*ForMaskedLM" in rule and "AttributeError" in rule and "enable_diffusion_generate(model" in rule
