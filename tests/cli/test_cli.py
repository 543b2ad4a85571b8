"""The `hf-unmask` command line: evaluate end to end (in-process and as a subprocess), list, and clean errors."""

from __future__ import annotations

import csv
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402
from tiny_eval import ToyTask, make_model, make_tokenizer  # noqa: E402

from hf_unmask.cli import main  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
TESTS = Path(__file__).resolve().parents[1]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A saved tiny dLLM folder (masked LM + char tokenizer) and a jsonl dataset with columns q / a."""
    root = tmp_path_factory.mktemp("cli_assets")
    model_dir = root / "tiny_dllm"
    make_model().save_pretrained(model_dir)
    make_tokenizer().save_pretrained(model_dir)
    data = root / "toy.jsonl"
    rows = ToyTask().examples(4, seed=0)
    data.write_text("".join(json.dumps({"q": r["prompt"], "a": r["reference"]}) + "\n" for r in rows))
    return {"model": str(model_dir), "data": str(data), "root": root}


def _dataset_args(assets, out_dir):
    return [
        "evaluate",
        "--model",
        assets["model"],
        "--dataset",
        assets["data"],
        "--prompt-column",
        "q",
        "--reference-column",
        "a",
        "--correctness",
        "tiny_eval:parity_correct",
        "--max-new-tokens",
        "8",
        "--output-dir",
        str(out_dir),
        "--no-progress",
    ]


def _check_outputs(out_dir: Path, n_rows: int) -> list[dict]:
    with (out_dir / "evaluation.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == n_rows
    assert len(json.loads((out_dir / "evaluation.json").read_text())["rows"]) == n_rows
    assert (out_dir / "pareto.png").read_bytes()[:8] == PNG_SIGNATURE
    return rows


def test_evaluate_in_process_on_a_dataset_file(assets, tmp_path, capsys):
    args = _dataset_args(assets, tmp_path / "out") + [
        "--strategy",
        "top_k_confidence:steps=4,8",
        "--strategy",
        "confidence_threshold:0.9",
        "--block-length",
        "4,full",
        "--seeds",
        "0",
        "1",
        "--save-completions",
    ]
    assert main(args) == 0
    stdout = capsys.readouterr().out
    assert "top_k_confidence" in stdout and "steps=8" in stdout and str(tmp_path / "out" / "pareto.png") in stdout
    rows = _check_outputs(tmp_path / "out", n_rows=(2 + 1) * 2)
    assert {r["block_length"] for r in rows} == {"4", "8"}
    assert {r["mode"] for r in rows} == {"semi_ar", "full_diffusion"}
    assert all(r["seeds"] == "0 1" and r["n_examples"] == "4" for r in rows)
    assert len((tmp_path / "out" / "samples.jsonl").read_text().splitlines()) == 6 * 2 * 4


def test_evaluate_in_process_on_a_builtin_task(assets, tmp_path, capsys):
    args = [
        "evaluate",
        "--model",
        assets["model"],
        "--task",
        "program_trace",
        "--n-examples",
        "3",
        "--max-new-tokens",
        "8",
        "--strategy",
        "top_k_confidence:8",
        "--output-dir",
        str(tmp_path),
        "--no-progress",
    ]
    assert main(args) == 0
    rows = _check_outputs(tmp_path, n_rows=1)
    assert rows[0]["n_examples"] == "3" and rows[0]["nfe_mean"] == "8.0"
    assert json.loads((tmp_path / "evaluation.json").read_text())["meta"]["task"] == "program_trace"


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--strategy", "no_such_strategy:steps=4"], "Unknown strategy 'no_such_strategy'"),
        (["--strategy", "top_k_confidence:steps="], "Empty budget list"),
        (["--strategy", "top_k_confidence:gamma=1"], "has no knob 'gamma'"),
        (["--block-length", "3"], "does not divide"),
        (["--block-length", "4,,8"], "Empty value in --block-length"),
        (["--strategy", "top_k_confidence:steps=1", "--block-length", "4"], "steps must be a multiple"),
        (["--correctness", "no_such_module_xyz:f"], "Cannot import module 'no_such_module_xyz'"),
        (["--prompt-column", "question"], "no prompt column 'question'"),
        (["--seeds", "x"], "--seeds takes integers"),
        (["--task", "program_trace"], "either --task"),
    ],
)
def test_evaluate_errors_exit_nonzero_without_traceback(assets, tmp_path, capsys, extra, message):
    assert main(_dataset_args(assets, tmp_path) + extra) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert err.strip().splitlines()[-1].split("\r")[-1].startswith("hf-unmask evaluate: error:")
    assert not (tmp_path / "evaluation.csv").exists()


def test_unknown_task_and_missing_data_source(tmp_path, capsys):
    assert main(["evaluate", "--task", "no_such_task", "--output-dir", str(tmp_path)]) == 2
    assert "Unknown task 'no_such_task'. Built-in tasks:" in capsys.readouterr().err
    assert main(["evaluate", "--output-dir", str(tmp_path)]) == 2
    assert "--task NAME" in capsys.readouterr().err
    assert main(["evaluate", "--task", "program_trace", "--model", "./no/such/model", "--no-progress"]) == 2
    assert "No model folder './no/such/model'" in capsys.readouterr().err


def test_help_documents_the_spec_syntax(capsys):
    with pytest.raises(SystemExit) as info:
        main(["evaluate", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for needle in ("NAME:KNOB=V1,V2", "top_k_confidence:steps=16,32,64", "threshold=", "--block-length", "full"):
        assert needle in text
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "evaluate" in capsys.readouterr().out and main([]) == 2


def test_list(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert "top_k_confidence" in out and "steps*" in out and "program_trace" in out and "math_verify" in out
    assert "tiny-dllm-program_trace-bl8-alpha1" in out  # the shipped policies, usable by name


def test_evaluate_as_a_subprocess(assets, tmp_path):
    env = dict(os.environ)
    env.update(
        HF_HUB_OFFLINE="1",
        OMP_NUM_THREADS="1",
        PYTHONPATH=os.pathsep.join([str(REPO), str(TESTS), env.get("PYTHONPATH", "")]),
    )
    args = _dataset_args(assets, tmp_path / "out") + ["--strategy", "top_k_margin:steps=4,8", "--block-length", "full"]
    proc = subprocess.run(
        [sys.executable, "-m", "hf_unmask.cli", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "top_k_margin" in proc.stdout
    _check_outputs(tmp_path / "out", n_rows=2)


def _help_examples() -> list[list[str]]:
    """The commands of `hf-unmask evaluate --help`'s examples, as argument lists (without `hf-unmask`)."""
    from hf_unmask.cli import EVALUATE_EPILOG

    text = EVALUATE_EPILOG.replace("\\\n", " ")
    return [shlex.split(line)[1:] for line in text.splitlines() if line.strip().startswith("hf-unmask ")]


def test_help_examples_run_as_written(tmp_path, monkeypatch, capsys):
    """The built-in example and the own-data example run offline as printed (fewer examples, to be quick); the
    GSM8K one needs the Hub."""
    builtin, gsm8k, own = _help_examples()
    assert "GSAI-ML/LLaDA-8B-Instruct" in gsm8k
    monkeypatch.chdir(tmp_path)
    monkeypatch.delitem(sys.modules, "my_checks", raising=False)  # a module of that name from another test
    (tmp_path / "data.jsonl").write_text(
        "".join(json.dumps({"q": f"sort : {i} 3 1", "a": "1 3"}) + "\n" for i in range(4))
    )
    (tmp_path / "my_checks.py").write_text(
        "def is_correct(completion, reference):\n    return reference in completion\n"
    )
    quick = ["--n-examples", "2", "--no-progress"]
    assert main([*builtin, *quick, "--output-dir", "builtin"]) == 0, capsys.readouterr().err
    rows = json.loads((tmp_path / "builtin" / "evaluation.json").read_text())["rows"]
    assert len(rows) == 18 and {r["block_length"] for r in rows} == {8, 16}  # 9 settings x 2 panels
    assert main([*own, *quick, "--output-dir", "own"]) == 0, capsys.readouterr().err
    assert len(json.loads((tmp_path / "own" / "evaluation.json").read_text())["rows"]) == 4
