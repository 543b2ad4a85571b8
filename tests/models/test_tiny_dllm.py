"""The built-in tiny dLLM: architecture, Auto registration, shipped checkpoints, and the training script."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file
from script_loading import load_script
from transformers import AutoConfig, AutoModelForMaskedLM, AutoTokenizer

import hf_unmask
from hf_unmask.generation.loop import resolve_generation_config
from hf_unmask.models import ADAPTER_REGISTRY, get_adapter
from hf_unmask.models.tiny import (
    TinyDLLMAdapter,
    TinyDLLMConfig,
    TinyDLLMForMaskedDiffusion,
    build_tokenizer,
    builtin_model_path,
    list_builtin_models,
)
from hf_unmask.strategies import TopKConfidence
from hf_unmask.tasks import TASK_REGISTRY, get_task
from hf_unmask.tasks.evaluate import task_accuracy

SHIPPED = ["tiny-dllm", "tiny-dllm-small"]
#: the reasoning tasks of the L = 16 models (the trace_until tasks need longer buffers: tests/models/test_tiny_dllm_long.py)
REASONING = sorted(name for name, cls in TASK_REGISTRY.items() if cls.reasoning and not name.startswith("trace_until"))


def _small_model(seed: int = 0) -> TinyDLLMForMaskedDiffusion:
    torch.manual_seed(seed)
    config = TinyDLLMConfig(
        vocab_size=61,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_kernel_size=5,
    )
    return TinyDLLMForMaskedDiffusion(config).eval()


@pytest.fixture(scope="module")
def shipped() -> dict:
    """Both shipped models, loaded by name with the Hub switched off (they live inside the package)."""
    previous = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        return {name: hf_unmask.load_builtin_model(name) for name in SHIPPED}
    finally:
        if previous is None:
            del os.environ["HF_HUB_OFFLINE"]
        else:
            os.environ["HF_HUB_OFFLINE"] = previous


# ---- architecture -------------------------------------------------------------------------------------------
def test_forward_outputs_hidden_states_and_respects_padding() -> None:
    model = _small_model()
    ids = torch.randint(5, 61, (1, 12))
    out = model(ids, output_hidden_states=True)
    assert out.logits.shape == (1, 12, 61)
    assert len(out.hidden_states) == model.config.num_hidden_layers + 1
    # a left-padded row gives the same logits as the row alone (attention mask + positions from the first token)
    padded = torch.cat([torch.zeros(1, 3, dtype=torch.long), ids], dim=1)
    mask = torch.cat([torch.zeros(1, 3, dtype=torch.long), torch.ones(1, 12, dtype=torch.long)], dim=1)
    torch.testing.assert_close(model(padded, attention_mask=mask).logits[:, 3:], out.logits, atol=1e-5, rtol=1e-5)
    # explicit position ids are honoured: shifting all positions leaves RoPE attention unchanged
    shifted = model(ids, position_ids=torch.arange(12).unsqueeze(0) + 5).logits
    torch.testing.assert_close(shifted, out.logits, atol=1e-4, rtol=1e-4)


def test_runs_at_lengths_longer_than_training() -> None:
    model = _small_model()
    assert model(torch.randint(5, 61, (2, 300))).logits.shape == (2, 300, 61)


def test_registered_with_auto_classes_and_adapter(tmp_path) -> None:
    assert ADAPTER_REGISTRY["hf_unmask_tiny"] is TinyDLLMAdapter
    model = _small_model()
    assert isinstance(get_adapter(model), TinyDLLMAdapter)
    assert get_adapter(model).mask_token_id() == model.config.mask_token_id
    model.save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), TinyDLLMConfig)
    assert isinstance(AutoModelForMaskedLM.from_pretrained(tmp_path), TinyDLLMForMaskedDiffusion)


def test_save_pretrained_round_trip_gives_identical_logits(tmp_path) -> None:
    model = _small_model(seed=1)
    ids = torch.randint(5, 61, (2, 20))
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    reloaded = TinyDLLMForMaskedDiffusion.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reloaded(ids).logits)


def test_tokenizer_round_trip(tmp_path) -> None:
    tokenizer = build_tokenizer()
    assert (tokenizer.pad_token_id, tokenizer.mask_token_id, tokenizer.eos_token_id, tokenizer.bos_token_id) == (
        0,
        1,
        2,
        3,
    )
    tokenizer.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    text = "cups : a | ab de | run 2"
    assert again(text).input_ids == tokenizer(text).input_ids
    assert again.padding_side == "left" and again.mask_token == "[MASK]"


# ---- shipped checkpoints ------------------------------------------------------------------------------------
def test_shipped_models_load_offline_by_name(shipped: dict) -> None:
    assert set(SHIPPED) <= set(list_builtin_models())
    for name, (model, tokenizer) in shipped.items():
        assert isinstance(model, TinyDLLMForMaskedDiffusion) and not model.training
        assert model.config.model_type == "hf_unmask_tiny"
        assert tokenizer.mask_token_id == model.config.mask_token_id == model.generation_config.mask_token_id
        assert model.generation_config.eos_token_id == tokenizer.eos_token_id
        assert model.generation_config.max_new_tokens == 16 and model.generation_config.block_length == 8
        assert not model.generation_config.stop_at_eos  # policies are trained and evaluated on the EOS tail
        # transformers loads the file as a plain GenerationConfig; generate still takes its diffusion fields
        assert resolve_generation_config(model, None, {}).block_length == 8
        folder = builtin_model_path(name)
        assert {"model.safetensors", "config.json", "generation_config.json", "tokenizer.json", "README.md"} <= {
            p.name for p in folder.iterdir()
        }
        assert not any(p.suffix in (".bin", ".pt", ".pth") for p in folder.iterdir())
    with pytest.raises(ValueError, match="Built-in models"):
        hf_unmask.load_builtin_model("no-such-model")
    with pytest.raises(ValueError, match="Unknown built-in model '../pretrained/tiny-dllm'"):
        builtin_model_path("../pretrained/tiny-dllm")  # a name, never a path out of the package folder


def test_shipped_model_loads_with_auto_classes(shipped: dict) -> None:
    path = builtin_model_path("tiny-dllm-small")
    model = AutoModelForMaskedLM.from_pretrained(path).eval()
    reference, _ = shipped["tiny-dllm-small"]
    ids = torch.randint(5, 61, (1, 16))
    with torch.no_grad():
        assert torch.equal(model(ids).logits, reference(ids).logits)
    assert json.loads((path / "generation_config.json").read_text())["mask_token_id"] == 1


def test_shipped_models_are_distinct(shipped: dict) -> None:
    a = load_file(builtin_model_path("tiny-dllm") / "model.safetensors")
    b = load_file(builtin_model_path("tiny-dllm-small") / "model.safetensors")
    assert a.keys() != b.keys() or any(a[k].shape != b[k].shape or not torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_model_solves_reasoning_tasks_with_top_k_confidence(shipped: dict, name: str) -> None:
    model, tokenizer = shipped[name]
    for task_name in REASONING:
        task = get_task(task_name)
        rows = list(task.dataset(n_train=0, n_test=32, seed=0)["test"])
        for block_length in (8, 16):
            accuracy = task_accuracy(
                model, tokenizer, task, rows, strategy=TopKConfidence(), block_length=block_length, steps=16
            )
            assert accuracy >= 0.9, (name, task_name, block_length, accuracy)


def test_generate_batch_matches_single_rows(shipped: dict) -> None:
    model, tokenizer = shipped["tiny-dllm-small"]
    prompts = [row["prompt"] for row in get_task("program_trace").examples(2, seed=9)] + ["sort : 3 1 2"]
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    together = model.generate(**batch)
    P = batch["input_ids"].shape[1]
    for i, prompt in enumerate(prompts):
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        alone = model.generate(ids)
        assert torch.equal(alone[0, ids.shape[1] :], together[i, P:])


# ---- training script ----------------------------------------------------------------------------------------
def _train_args(output_dir, *extra: str) -> list[str]:
    return [
        "--output_dir", str(output_dir),
        "--hidden_size", "32", "--num_layers", "1", "--num_heads", "2", "--intermediate_size", "64",
        "--batch_size", "8", "--n_train", "40", "--n_test", "4", "--eval_examples", "0",
        "--warmup_steps", "2", "--threads", "1", "--no_progress", *extra,
    ]  # fmt: skip


def test_training_script_short_run_writes_a_loadable_model(tmp_path) -> None:
    main = load_script("train_tiny_dllm").main

    main(_train_args(tmp_path / "run", "--max_steps", "3", "--save_steps", "0"))
    out = tmp_path / "run"
    model = AutoModelForMaskedLM.from_pretrained(out)
    assert isinstance(model, TinyDLLMForMaskedDiffusion)
    assert model.generation_config.mask_token_id == 1 and model.generation_config.max_new_tokens == 16
    tokenizer = AutoTokenizer.from_pretrained(out)
    ids = tokenizer("sort : 3 1 2", return_tensors="pt").input_ids
    assert model.generate(ids, max_new_tokens=8, block_length=4).shape == (1, ids.shape[1] + 8)
    assert json.loads((out / "train_summary.json").read_text())["steps"] == 3


def test_training_resume_matches_uninterrupted_run(tmp_path) -> None:
    main = load_script("train_tiny_dllm").main

    main(_train_args(tmp_path / "full", "--max_steps", "4", "--save_steps", "2", "--save_total_limit", "3"))
    checkpoint = tmp_path / "full" / "checkpoints" / "checkpoint-2"
    assert (checkpoint / "trainer_state.pt").is_file()
    main(_train_args(tmp_path / "resumed", "--max_steps", "4", "--save_steps", "2", "--resume", str(checkpoint)))
    full = load_file(tmp_path / "full" / "model.safetensors")
    resumed = load_file(tmp_path / "resumed" / "model.safetensors")
    assert full.keys() == resumed.keys()
    for key in full:
        assert torch.equal(full[key], resumed[key]), key
    # and the resumed weights differ from the checkpoint it started from (it did train)
    start = load_file(checkpoint / "model.safetensors")
    assert any(not torch.equal(start[k], resumed[k]) for k in start)
