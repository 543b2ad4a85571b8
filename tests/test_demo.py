"""The demo: streams one generation, evaluates the heuristics (semi-AR and full diffusion), writes table and plot."""

from __future__ import annotations

import io
import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.image  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from tiny_eval import ToyTask, make_model, make_tokenizer  # noqa: E402

import hf_unmask  # noqa: E402
from hf_unmask import demo  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _check_files(out_dir, rows_expected=None):
    data = json.loads((out_dir / "evaluation.json").read_text())
    assert {r["mode"] for r in data["rows"]} == {"semi_ar", "full_diffusion"}
    if rows_expected is not None:
        assert len(data["rows"]) == rows_expected
    png = out_dir / "pareto.png"
    assert png.read_bytes()[:8] == PNG_SIGNATURE and matplotlib.image.imread(png).ndim == 3
    assert (out_dir / "evaluation.csv").is_file()
    return data


def test_demo_end_to_end_on_a_tiny_model(tmp_path):
    out = io.StringIO()
    result = demo.run_demo(
        n_examples=3,
        output_dir=tmp_path / "demo",
        model=make_model(),
        tokenizer=make_tokenizer(),
        task=ToyTask(),
        max_new_tokens=8,
        progress=False,
        out=out,
    )
    text = out.getvalue()
    assert "[step   1]" in text and "_" in text.split("[step   1]")[1].splitlines()[0]  # masks still showing
    assert "forward passes for 8 tokens" in text
    assert "semi-AR" in text and "full diffusion" in text
    assert str(tmp_path / "demo" / "pareto.png") in text and str(tmp_path / "demo" / "evaluation.csv") in text
    data = _check_files(tmp_path / "demo", rows_expected=len(result.rows))
    families = {r["strategy"] for r in data["rows"]}
    assert {"top_k_confidence", "confidence_threshold"} <= families
    assert {r["block_length"] for r in data["rows"]} == {4, 8}


def test_demo_strategies_fit_the_block_lengths():
    specs = demo.demo_strategies(32, 8)
    assert {s.strategy for s in specs} >= {"top_k_confidence", "random", "confidence_threshold", "eb_sampler"}
    for spec in specs:
        for budget in spec.budgets():
            assert budget.get("steps", 4) % 4 == 0  # 32 / 8 = 4 blocks


def test_demo_help(capsys):
    with pytest.raises(SystemExit) as info:
        demo.main(["--help"])
    assert info.value.code == 0
    help_text = capsys.readouterr().out
    assert "--n-examples" in help_text and "--output-dir" in help_text


def test_demo_command_through_load_builtin_model(tmp_path, monkeypatch, capsys):
    """`hf-unmask demo` end to end on the real architecture, tokenizer and tasks: an untrained stand-in (d = 32,
    L = 16) is put where the shipped checkpoint lives, so the wiring is tested whatever the weights."""
    from hf_unmask.cli import main
    from hf_unmask.generation import DiffusionGenerationConfig
    from hf_unmask.models.tiny import TinyDLLMConfig, TinyDLLMForMaskedDiffusion, build_tokenizer, builtin
    from hf_unmask.strategies import UnmaskingPolicy

    tokenizer = build_tokenizer()
    config = TinyDLLMConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        mask_token_id=tokenizer.mask_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = TinyDLLMForMaskedDiffusion(config)
    model.generation_config = DiffusionGenerationConfig(
        max_new_tokens=16,
        block_length=8,
        mask_token_id=tokenizer.mask_token_id,
        eos_token_id=tokenizer.eos_token_id,
        stop_at_eos=True,
    )
    model.save_pretrained(tmp_path / "pretrained" / "tiny-dllm")
    tokenizer.save_pretrained(tmp_path / "pretrained" / "tiny-dllm")
    monkeypatch.setattr(builtin, "PRETRAINED_DIR", tmp_path / "pretrained")

    policy = tmp_path / "policy"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        UnmaskingPolicy().save_pretrained(policy)
    args = ["demo", "--n-examples", "2", "--output-dir", str(tmp_path / "out"), "--no-progress"]
    assert main([*args, "--strategy", f"{policy}:beta=1,4"]) == 0
    text = capsys.readouterr().out
    assert "Loading the built-in dLLM" in text and "Task: program_trace" in text and "[step   1]" in text
    assert "block length 8 (semi-AR) and 16 (full diffusion)" in text and "Pareto plot:" in text
    data = _check_files(tmp_path / "out")
    assert data["meta"]["gen_length"] == 16 and data["meta"]["n_examples"] == 2
    assert {r["budget"] for r in data["rows"] if r["strategy"] == "policy"} == {"beta=1", "beta=4"}


@pytest.mark.slow  # the real weights at n = 4; test_demo_command_through_load_builtin_model covers the same path
@pytest.mark.skipif(not hf_unmask.list_builtin_models(), reason="the built-in dLLM is not shipped yet")
def test_demo_with_the_builtin_model(tmp_path, capsys):
    assert demo.main(["--n-examples", "4", "--output-dir", str(tmp_path), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "[step" in text and "Pareto plot:" in text
    _check_files(tmp_path)
