"""The demo: streams one generation, evaluates the heuristics (semi-AR and full diffusion), writes table and plot;
then the long-buffer panel (tiny-dllm-long, full diffusion at L = 64) in its own sub-folder."""

from __future__ import annotations

import io
import json
import re
import sys

import matplotlib

matplotlib.use("Agg")

import matplotlib.image  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from interrupting import interrupt_when, subprocess_env  # noqa: E402
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
    # a custom model: no long-buffer panel unless asked for
    assert "== 5." not in text and not (tmp_path / "demo" / demo.LONG_BUFFER_DIR).exists()


def _tiny_demo(tmp_path, out, **kwargs):
    """The demo on the tiny random model (stages 1-4 in a second) with the long-buffer panel asked for."""
    return demo.run_demo(
        n_examples=2,
        output_dir=tmp_path / "demo",
        model=make_model(),
        tokenizer=make_tokenizer(),
        task=ToyTask(),
        max_new_tokens=8,
        stream=False,
        progress=False,
        out=out,
        long_buffer=True,
        **kwargs,
    )


def _check_long_buffer_files(folder, n_examples, complete=True):
    data = json.loads((folder / "evaluation.json").read_text())
    meta = data["meta"]
    assert (meta["task"], meta["gen_length"], meta["n_examples"]) == ("trace_until", 64, n_examples)
    assert meta["complete"] is complete and meta["policies"] == [demo.LONG_BUFFER_POLICY]
    assert {(r["block_length"], r["mode"]) for r in data["rows"]} == {(64, "full_diffusion")}
    assert (folder / "pareto.png").read_bytes()[:8] == PNG_SIGNATURE and (folder / "evaluation.csv").is_file()
    return data


@pytest.mark.skipif(demo.long_buffer_missing() is not None, reason="tiny-dllm-long or its policy is not shipped")
def test_long_buffer_panel_runs_after_the_main_table_in_its_own_folder(tmp_path):
    out = io.StringIO()
    result = _tiny_demo(tmp_path, out, long_buffer_n_examples=4)
    text = out.getvalue()
    stage5 = text.split("== 5. Long buffers: full diffusion at L = 64")[1]
    assert "== 4. Results" in text.split("== 5.")[0] and stage5.rstrip().splitlines()[-1].startswith("Done in")
    data = _check_long_buffer_files(tmp_path / "demo" / demo.LONG_BUFFER_DIR, n_examples=4)
    rows = data["rows"]
    assert rows[0]["strategy"] == demo.LONG_BUFFER_POLICY
    assert [(r["strategy"], r["budget"]) for r in rows[1:]] == [
        ("confidence_threshold", "threshold=0.99"),
        ("confidence_threshold", "threshold=0.9"),
        ("eb_sampler", "gamma=0.01"),
        ("top_k_confidence", "steps=32"),
    ]
    for row in rows:  # the table shows every row of the panel, at BL 64
        assert any(row["strategy"] in line and "64 (full)" in line and (row["budget"] or "-") in line
                   for line in stage5.splitlines())  # fmt: skip
    assert demo.long_buffer_summary(rows) in stage5  # the verdict is computed from the rows written
    for kind in ("evaluation.csv", "evaluation.json", "pareto.png"):
        assert str(tmp_path / "demo" / demo.LONG_BUFFER_DIR / kind) in stage5
    # the main table is untouched: its own task, L and panels
    main = _check_files(tmp_path / "demo", rows_expected=len(result.rows))
    assert main["meta"]["gen_length"] == 8 and str(tmp_path / "demo" / "evaluation.json") in text


@pytest.mark.skipif(demo.long_buffer_missing() is not None, reason="tiny-dllm-long or its policy is not shipped")
def test_ctrl_c_in_the_long_buffer_panel_writes_its_partial_table(tmp_path, monkeypatch):
    """Ctrl-C (a KeyboardInterrupt from a step callback, as in evaluate_strategies' example) in the second setting of
    stage 5: the finished setting is written to long_buffer/ marked partial, the main table stays complete."""
    from hf_unmask.evaluation import EvaluationInterrupted

    real_evaluate = demo.evaluate_strategies
    first_steps = []

    def ctrl_c_in_the_second_setting(step):
        first_steps.append(step.step)
        if first_steps.count(0) == 2:
            raise KeyboardInterrupt

    def evaluate(*args, **kwargs):
        if kwargs["max_new_tokens"] == demo.LONG_BUFFER_GEN_LENGTH:  # only the long-buffer panel
            kwargs["generation_kwargs"] = {"callback_on_step_end": ctrl_c_in_the_second_setting}
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(demo, "evaluate_strategies", evaluate)
    out = io.StringIO()
    with pytest.raises(EvaluationInterrupted) as info:
        _tiny_demo(tmp_path, out, long_buffer_n_examples=3)
    folder = tmp_path / "demo" / demo.LONG_BUFFER_DIR
    data = _check_long_buffer_files(folder, n_examples=3, complete=False)
    assert data["meta"]["settings_done"] == 1 < data["meta"]["settings_planned"] == 5
    assert [r["strategy"] for r in data["rows"]] == [demo.LONG_BUFFER_POLICY]
    assert str(folder / "evaluation.json") in str(info.value)
    assert json.loads((tmp_path / "demo" / "evaluation.json").read_text())["meta"]["complete"] is True
    assert "Done in" not in out.getvalue()


@pytest.mark.skipif(demo.long_buffer_missing() is not None, reason="tiny-dllm-long or its policy is not shipped")
def test_ctrl_c_in_the_long_buffer_stage_of_the_command(tmp_path):
    """SIGINT, as a terminal's Ctrl-C, once stage 5 has finished its first setting: exit 130 and one line naming
    the partial long_buffer/evaluation.json; the main table written before is complete."""
    # stage 5 on 64 examples in batches of 2: 32 generate calls per setting, 5 settings (the main stages run on 2
    # examples, one call per setting, so only the long-buffer bar counts up to 160)
    out = tmp_path / "demo"
    command = [
        sys.executable, "-m", "hf_unmask.demo", "--n-examples", "2", "--long-buffer-n-examples", "64",
        "--batch-size", "2", "--no-stream", "--output-dir", str(out),
    ]  # fmt: skip
    long_bar = re.compile(r"evaluate:[^\r\n]*?(\d+)/160 \[")

    def first_long_setting_done(stdout, stderr):
        return any(int(done) >= 33 for done in long_bar.findall(stderr))

    done = interrupt_when(command, first_long_setting_done, cwd=tmp_path, env=subprocess_env(), timeout=120)
    assert done.interrupted and done.returncode == 130, done.describe()
    last = done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr and last.startswith("hf-unmask demo: interrupted"), done.describe()
    folder = out / demo.LONG_BUFFER_DIR
    assert str(folder / "evaluation.json") in last
    data = _check_long_buffer_files(folder, n_examples=64, complete=False)
    assert 1 <= data["meta"]["settings_done"] == len(data["rows"]) < data["meta"]["settings_planned"] == 5
    assert json.loads((out / "evaluation.json").read_text())["meta"]["complete"] is True


def test_asking_for_the_long_buffer_panel_without_its_model_fails_before_any_work(tmp_path, monkeypatch):
    from hf_unmask.models.tiny import builtin

    monkeypatch.setattr(builtin, "BUILTIN_MODEL_DIR", tmp_path / "nothing")
    out = io.StringIO()
    with pytest.raises(ValueError, match="tiny-dllm-long' is not installed"):
        _tiny_demo(tmp_path, out)
    assert out.getvalue() == "" and not (tmp_path / "demo").exists()


def _row(strategy, accuracy, nfe, budget=""):
    return {"strategy": strategy, "budget": budget, "accuracy_mean": accuracy, "nfe_mean": nfe}


POLICY = demo.LONG_BUFFER_POLICY
THRESHOLD = _row("confidence_threshold", 0.88, 7.3, "threshold=0.99")
EB = _row("eb_sampler", 0.87, 9.2, "gamma=0.01")
TOP_K = _row("top_k_confidence", 0.914, 32.0, "steps=32")


def test_long_buffer_summary_when_the_policy_wins():
    text = demo.long_buffer_summary([_row(POLICY, 0.998, 10.1), THRESHOLD, EB, TOP_K])
    assert text == (
        f"The learned policy wins this panel: {POLICY} gets 99.8% at 10.1 NFE, 11.8 points above the best heuristic "
        "at no more NFE (confidence_threshold threshold=0.99: 88.0% at 7.3 NFE) and 8.4 points above the best "
        "heuristic overall (top_k_confidence steps=32: 91.4% at 32.0 NFE, 3.2x the policy's NFE)."
    )


@pytest.mark.parametrize(
    "policy, verdict, versus",
    [
        (_row(POLICY, 0.85, 10.1), "does not win this panel", ["3.0 points below", "6.4 points below"]),
        (_row(POLICY, 0.88, 10.1), "does not win this panel", ["level with", "3.4 points below"]),
        (_row(POLICY, 0.90, 10.1), "beats the heuristics at no more NFE but not the best one overall",
         ["2.0 points above", "1.4 points below"]),
    ],
)  # fmt: skip
def test_long_buffer_summary_never_claims_a_win_it_does_not_have(policy, verdict, versus):
    text = demo.long_buffer_summary([policy, THRESHOLD, EB, TOP_K])
    assert text.startswith(f"The learned policy {verdict}: ") and "wins" not in text
    assert [text.index(v) for v in versus] == sorted(text.index(v) for v in versus)


def test_long_buffer_summary_edge_cases():
    # the best heuristic at no more NFE is also the most accurate one
    text = demo.long_buffer_summary([_row(POLICY, 0.95, 40.0), THRESHOLD, TOP_K])
    assert "wins" in text and "(top_k_confidence steps=32: 91.4% at 32.0 NFE), which is also the best" in text
    # every heuristic needs more NFE than the policy: compared with the best overall only
    text = demo.long_buffer_summary([_row(POLICY, 0.80, 5.0), EB, TOP_K])
    assert (
        text.startswith("The learned policy does not win")
        and "(no heuristic runs on as few NFE), 11.4 points below the best heuristic overall" in text
    )
    # rows with no policy (an interrupted panel) or no heuristic
    assert "no result" in demo.long_buffer_summary([THRESHOLD])
    assert "No heuristic" in demo.long_buffer_summary([_row(POLICY, 1.0, 10.0)])


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
    assert "--no-long-buffer" in help_text and "--long-buffer-n-examples" in help_text


def test_demo_rejects_a_non_positive_long_buffer_n_examples(capsys):
    assert demo.main(["--long-buffer-n-examples", "0"]) == 2
    assert "--long-buffer-n-examples must be positive" in capsys.readouterr().err


def _stand_in_builtin_model(tmp_path, monkeypatch, with_long_model=False):
    """An untrained stand-in (d = 32, L = 16) put where the shipped checkpoint lives, alone or next to the real
    tiny-dllm-long."""
    from hf_unmask.generation import DiffusionGenerationConfig
    from hf_unmask.models.tiny import TinyDLLMConfig, TinyDLLMForMaskedDiffusion, build_tokenizer, builtin

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
    if with_long_model:
        (tmp_path / "pretrained" / demo.LONG_BUFFER_MODEL).symlink_to(
            builtin.builtin_model_path(demo.LONG_BUFFER_MODEL)
        )
    monkeypatch.setattr(builtin, "BUILTIN_MODEL_DIR", tmp_path / "pretrained")


def test_demo_command_through_load_builtin_model(tmp_path, monkeypatch, capsys):
    """`hf-unmask demo` end to end on the real architecture, tokenizer and tasks: an untrained stand-in is put where
    the shipped checkpoint lives, so the wiring is tested whatever the weights. Without tiny-dllm-long next to it,
    stage 5 is skipped with the reason."""
    from hf_unmask.cli import main
    from hf_unmask.strategies import ConfidencePolicy

    _stand_in_builtin_model(tmp_path, monkeypatch)
    policy = tmp_path / "policy"
    with torch.random.fork_rng():
        torch.manual_seed(0)
        ConfidencePolicy().save_pretrained(policy)
    args = ["demo", "--n-examples", "2", "--output-dir", str(tmp_path / "out"), "--no-progress"]
    assert main([*args, "--strategy", f"{policy}:unmask_beta=1,4"]) == 0
    text = capsys.readouterr().out
    assert "Loading the built-in dLLM" in text and "Task: program_trace" in text and "[step   1]" in text
    assert "block length 8 (semi-AR) and 16 (full diffusion)" in text and "Pareto plot:" in text
    data = _check_files(tmp_path / "out")
    assert data["meta"]["gen_length"] == 16 and data["meta"]["n_examples"] == 2
    assert {r["budget"] for r in data["rows"] if r["strategy"] == "policy"} == {"unmask_beta=1", "unmask_beta=4"}
    assert "== 5. Long buffers: skipped, the built-in dLLM 'tiny-dllm-long' is not installed" in text
    assert not (tmp_path / "out" / demo.LONG_BUFFER_DIR).exists()


@pytest.mark.skipif(demo.long_buffer_missing() is not None, reason="tiny-dllm-long or its policy is not shipped")
def test_demo_command_runs_or_skips_the_long_buffer_panel(tmp_path, monkeypatch, capsys):
    from hf_unmask.cli import main

    _stand_in_builtin_model(tmp_path, monkeypatch, with_long_model=True)
    args = ["demo", "--n-examples", "2", "--no-progress", "--no-stream"]
    assert main([*args, "--output-dir", str(tmp_path / "skip"), "--no-long-buffer"]) == 0
    text = capsys.readouterr().out
    assert "Pareto plot:" in text and "== 5." not in text and not (tmp_path / "skip" / demo.LONG_BUFFER_DIR).exists()
    assert main([*args, "--output-dir", str(tmp_path / "out")]) == 0  # stage 5 on --n-examples (2 < 64) examples
    text = capsys.readouterr().out
    assert "== 5. Long buffers" in text and "The learned policy" in text
    _check_files(tmp_path / "out")
    _check_long_buffer_files(tmp_path / "out" / demo.LONG_BUFFER_DIR, n_examples=2)


@pytest.mark.slow  # the real weights at n = 4; test_demo_command_through_load_builtin_model covers the same path
@pytest.mark.skipif(not hf_unmask.list_builtin_models(), reason="the built-in dLLM is not shipped yet")
def test_demo_with_the_builtin_model(tmp_path, capsys):
    assert demo.main(["--n-examples", "4", "--output-dir", str(tmp_path), "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "[step" in text and "Pareto plot:" in text and "== 5. Long buffers" in text
    _check_files(tmp_path)
    _check_long_buffer_files(tmp_path / demo.LONG_BUFFER_DIR, n_examples=4)  # --n-examples when under 64
