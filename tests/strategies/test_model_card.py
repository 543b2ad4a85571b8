"""Model cards: YAML metadata, the evaluation table and plot, the citation, and a usage snippet that runs."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from huggingface_hub import ModelCard

from hf_unmask.model_cards import POLICY_TEMPLATE, STRATEGY_TEMPLATE
from hf_unmask.strategies import ConfidencePolicy, ConfidenceThreshold, HiddenStatePolicy
from hf_unmask.strategies.card import build_model_card, evaluation_table, write_model_card

TRAINED_FOR = {
    "base_model": "GSAI-ML/LLaDA-8B-Instruct",
    "gen_length": 256,
    "block_length": 32,
    "alpha": 3.0,
    "temperature": 1.0,
    "task": "gsm8k",
    "dataset": ["openai/gsm8k", "EleutherAI/hendrycks_math"],
    "training_steps": 900,
}
ROWS = [
    {"strategy": "ConfidencePolicy", "budget": "alpha=3", "accuracy": 0.755, "nfe_mean": 46.2, "pareto": True},
    {"strategy": "ConfidenceThreshold", "budget": "threshold=0.9", "accuracy": 0.742, "nfe_mean": 46.9},
    {"strategy": "TopKConfidence", "budget": "steps=64", "accuracy": 0.70, "nfe_mean": 64.0, "accuracy_std": 0.01},
]


def _parse(card: ModelCard) -> ModelCard:
    return ModelCard(str(card))  # what the Hub will read back


def test_templates_ship_inside_the_package_and_the_root_folder_points_there():
    assert POLICY_TEMPLATE.is_file() and STRATEGY_TEMPLATE.is_file()
    assert (
        Path(POLICY_TEMPLATE).parent.name == "model_cards" and Path(POLICY_TEMPLATE).parent.parent.name == "hf_unmask"
    )
    pointer = Path(__file__).resolve().parents[2] / "model_cards" / "README.md"
    assert "hf_unmask/model_cards" in pointer.read_text()


def test_card_without_evaluation_results():
    policy = ConfidencePolicy(trained_for=TRAINED_FOR, temperature=0.5)
    card = _parse(build_model_card(policy, repo_id="me/llada-policy"))
    data = card.data
    assert data.library_name == "hf-unmask" and data.license == "apache-2.0"
    assert {"hf-unmask", "diffusion-language-model", "unmasking-policy", "gsm8k"} <= set(data.tags)
    assert data.base_model == "GSAI-ML/LLaDA-8B-Instruct"
    assert data.datasets == ["openai/gsm8k", "EleutherAI/hendrycks_math"]
    assert getattr(data, "metrics", None) is None
    text = card.text
    assert "No evaluation results were provided" in text and "![" not in text
    assert "| generation length L | 256 |" in text and "| block length BL | 32 |" in text
    assert "| reward efficiency exponent alpha | 3 |" in text and "| training steps | 900 |" in text
    assert "| temperature (tau) | 0.5 |" in text and "| parameters | 331,265 |" in text
    assert "Untrained" not in text
    assert (
        "eprint        = {2512.09106}" in text and "Learning Unmasking Policies for Diffusion Language Models" in text
    )
    snippet = re.search(r"```python\n(.*?)```", text, re.S).group(1)
    assert 'ConfidencePolicy.from_pretrained("me/llada-policy")' in snippet
    assert 'AutoDiffusionLM.from_pretrained("GSAI-ML/LLaDA-8B-Instruct", dtype="bfloat16")' in snippet
    assert 'load_tokenizer("GSAI-ML/LLaDA-8B-Instruct")' in snippet and "trust_remote_code" not in snippet
    assert "max_new_tokens=256, block_length=32" in snippet
    compile(snippet, "<card snippet>", "exec")


def test_card_with_evaluation_results_and_plot(tmp_path):
    policy = ConfidencePolicy(trained_for=TRAINED_FOR)
    plot = tmp_path / "plot.png"
    plot.write_bytes(b"\x89PNG\r\n\x1a\n")
    path = write_model_card(
        policy,
        tmp_path / "repo",
        repo_id="me/p",
        evaluation_results=ROWS,
        plot_path=plot,
        evaluation_setting="GSM8K, L = 256, BL = 32",
    )
    assert (tmp_path / "repo" / "pareto.png").read_bytes() == plot.read_bytes()
    card = ModelCard.load(path)
    assert card.data.metrics == ["accuracy"]
    text = card.text
    assert "No evaluation results" not in text
    assert "(GSM8K, L = 256, BL = 32)" in text and "★ marks points" in text
    assert "| strategy | budget | accuracy (%) | NFE (mean) |" in text
    assert "| ConfidencePolicy ★ | alpha=3 | 75.5 | 46.2 |" in text
    assert "| ConfidenceThreshold | threshold=0.9 | 74.2 | 46.9 |" in text
    assert "| TopKConfidence | steps=64 | 70.0 ± 1.0 | 64.0 |" in text
    assert "![Accuracy vs NFE](pareto.png)" in text


def test_evaluation_table_accepts_evaluation_module_rows():
    rows = [
        {
            "strategy": "policy",
            "budget": "",
            "accuracy_mean": 0.5,
            "accuracy_std": 0.0,
            "nfe_mean": 9.25,
            "nfe_std": 0.5,
            "block_length": 8,
            "mode": "semi_ar",
            "n_examples": 100,
        },
        {
            "strategy": "policy",
            "budget": "",
            "accuracy_mean": 0.25,
            "nfe_mean": 4.0,
            "block_length": None,
            "mode": "full_diffusion",
            "n_examples": 100,
        },
    ]
    table = evaluation_table(SimpleNamespace(rows=rows))  # an EvaluationResult-like object
    assert "| strategy | budget | BL | accuracy (%) | NFE (mean) | n |" in table
    assert "| policy |  | 8 | 50.0 | 9.2 ± 0.5 | 100 |" in table
    assert "| policy |  | full | 25.0 | 4.0 | 100 |" in table
    with pytest.raises(ValueError, match="nfe_mean"):
        evaluation_table([{"strategy": "x", "accuracy": 0.1}])


def test_untrained_policy_card_says_so():
    card = build_model_card(ConfidencePolicy())
    assert "Untrained policy" in card.text and "Not trained" in card.text
    assert card.data.base_model is None
    hidden = build_model_card(HiddenStatePolicy(32, num_heads=2, trained_for={"gen_length": 16}))
    assert "last hidden states (32-d)" in hidden.text


def test_heuristic_card():
    card = _parse(
        build_model_card(
            ConfidenceThreshold(threshold=0.7),
            repo_id="me/threshold",
            base_model="GSAI-ML/LLaDA-8B-Instruct",
            evaluation_results=ROWS[1:2],
        )
    )
    assert "unmasking-policy" not in card.data.tags and "hf-unmask" in card.data.tags
    assert "| threshold | 0.7 |" in card.text and "| ConfidenceThreshold | threshold=0.9 | 74.2 | 46.9 |" in card.text
    assert 'ConfidenceThreshold.from_pretrained("me/threshold")' in card.text


def _tiny_base_model(folder: Path) -> None:
    """A random 2-layer BERT masked LM and a word-level tokenizer, saved like any Hub checkpoint."""
    from tiny_bert import seeded_tiny_bert
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    words = ["[PAD]", "[UNK]", "[EOS]", "[MASK]"] + [f"w{i}" for i in range(60)]
    backend = Tokenizer(models.WordLevel(vocab={w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]", mask_token="[MASK]"
    )
    tokenizer.save_pretrained(folder)
    model = seeded_tiny_bert(0, max_position_embeddings=64, pad_token_id=0)
    model.save_pretrained(folder)


def test_usage_snippet_runs_as_written(tmp_path, monkeypatch):
    """Run where the folders were saved: the card names them relative to there, never by their absolute paths."""
    monkeypatch.chdir(tmp_path)
    base = tmp_path / "base-dllm"
    _tiny_base_model(base)
    policy = ConfidencePolicy(trained_for={"base_model": str(base), "gen_length": 16, "block_length": 8})
    policy.save_pretrained(tmp_path / "policy")
    card = build_model_card(policy, repo_id=str(tmp_path / "policy"))
    assert str(tmp_path) not in card.text and 'load_tokenizer("base-dllm")' in card.text
    snippet = re.search(r"```python\n(.*?)```", card.text, re.S).group(1)
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        exec(compile(snippet, "<model card usage>", "exec"), {"__name__": "__card__"})
    printed = stdout.getvalue().strip()
    assert printed.startswith("['") and printed.endswith("']")  # one decoded completion


def test_only_hub_dataset_ids_reach_the_yaml(tmp_path, monkeypatch):
    """A local data file or folder and a built-in task stay in the training table; the YAML lists Hub ids only."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "data").mkdir()  # a local folder the training script read (`--dataset_name data`)
    (tmp_path / "data" / "train").mkdir()
    for recorded, expected in [
        ("data", None),
        ("data/train", None),  # looks like owner/name, but it is a folder here
        ("prompts/train.jsonl", None),
        ("hf_unmask:program_trace", None),
        ("openai/gsm8k,DigitalLearningGmbH/MATH-lighteval", ["openai/gsm8k", "DigitalLearningGmbH/MATH-lighteval"]),
    ]:
        policy = ConfidencePolicy(trained_for=dict(TRAINED_FOR, dataset=recorded))
        card = _parse(build_model_card(policy, repo_id="me/p"))
        assert getattr(card.data, "datasets", None) == expected, recorded
        assert f"| training prompts | {recorded} |" in card.text  # still named where it was trained on


def test_a_saved_policy_card_names_its_folder_without_the_absolute_path(tmp_path, monkeypatch):
    """The card's snippet loads the folder as named from where it was saved, never by an absolute path of this
    machine (a card is made to be shared); an absolute path outside the working directory becomes its name."""
    monkeypatch.chdir(tmp_path)
    ConfidencePolicy(trained_for=TRAINED_FOR).save_pretrained("runs/mypolicy2")
    card = (tmp_path / "runs" / "mypolicy2" / "README.md").read_text()
    assert 'ConfidencePolicy.from_pretrained("runs/mypolicy2")  # this card\'s folder' in card
    assert str(tmp_path) not in card
    monkeypatch.chdir(tmp_path / "runs")
    trained_for = dict(TRAINED_FOR, base_model=str(tmp_path / "my-bert"), dataset=str(tmp_path / "data.jsonl"))
    card = build_model_card(ConfidencePolicy(trained_for=trained_for), repo_id=str(tmp_path / "elsewhere" / "p"))
    assert str(tmp_path) not in card.text
    assert 'from_pretrained("p")' in card.text and 'load_tokenizer("my-bert")' in card.text
    assert "| training prompts | data.jsonl |" in card.text and "| base dLLM | my-bert |" in card.text
