"""What a new user of `hf-unmask` meets: a YAML config for `evaluate` as for `train` (flags override it), one-line
errors for a broken or misspelt recipe and for a bad flag value (no usage dump), a `train --help` that fits on a
screen with `--config` first, both spellings of multi-word flags, the KV-cache options of `evaluate`, the built-in
models in `list`, and a missing data file named in one line."""

from __future__ import annotations

import json
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import pytest  # noqa: E402

from hf_unmask.cli import build_parser, main  # noqa: E402

QUICK = ["--task", "program_trace", "--n-examples", "2", "--no-progress"]


def _usage_error(capsys, argv: list[str]) -> str:
    """The stderr of `hf-unmask ARGV`, which must end with exit code 2 in exactly one line, without a traceback."""
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err and "usage:" not in err, err
    return lines[0]


# ---------------------------------------------------------------------------------------------------- --config
def test_evaluate_reads_a_yaml_config_and_command_line_flags_override_it(tmp_path, capsys):
    config = tmp_path / "eval.yaml"
    config.write_text(
        "task: program_trace\nn-examples: 2\nstrategy:\n  - top_k_confidence:steps=4\n  - random:steps=4\n"
        f"block_length: [8, full]\nseeds: [0]\noutput_dir: {tmp_path / 'from_yaml'}\nno_progress: true\n"
    )
    out = tmp_path / "from_flag"
    argv = ["evaluate", "--config", str(config), "--strategy", "confidence_threshold:0.9", "--output_dir", str(out)]
    assert main(argv) == 0, capsys.readouterr().err
    rows = json.loads((out / "evaluation.json").read_text())["rows"]
    # the flag's --strategy replaces the file's list (it does not add to it); block lengths and n come from the file
    assert {r["strategy"] for r in rows} == {"confidence_threshold"} and {r["block_length"] for r in rows} == {8, 16}
    assert all(r["n_examples"] == 2 for r in rows) and not (tmp_path / "from_yaml").exists()


@pytest.mark.parametrize("command", ["evaluate", "train"])
def test_a_broken_yaml_file_is_one_line_with_its_line_and_column(tmp_path, capsys, command):
    bad = tmp_path / "recipe.yaml"
    bad.write_text("task: program_trace\nreward_funcs: [task:program_trace\nalpha: 3\n")
    line = _usage_error(capsys, [command, "--config", str(bad)])
    assert line.startswith(f"hf-unmask {command}: error: --config: {bad} is not valid YAML: line 3, column ")
    assert f"see hf-unmask {command} --help" in line


@pytest.mark.parametrize(
    "command, text, named",
    [
        ("train", "task: program_trace\nalpah: 3\n", "'alpah' (did you mean 'alpha'?)"),
        ("evaluate", "task: program_trace\nn_exmples: 3\ncolour: red\n", "'n_exmples' (did you mean 'n_examples'?)"),
    ],
)
def test_unknown_yaml_keys_are_named_with_close_matches_and_the_file(tmp_path, capsys, command, text, named):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(text)
    line = _usage_error(capsys, [command, "--config", str(recipe)])
    assert str(recipe) in line and named in line and "fail_with_unknown_args" not in line


def test_a_missing_or_non_mapping_config_file(tmp_path, capsys):
    line = _usage_error(capsys, ["evaluate", "--config", str(tmp_path / "nothere.yaml")])
    assert "no such file" in line and "nothere.yaml" in line
    listed = tmp_path / "list.yaml"
    listed.write_text("- a\n- b\n")
    assert "must hold a YAML mapping" in _usage_error(capsys, ["train", "--config", str(listed)])
    typed = tmp_path / "typed.yaml"
    typed.write_text("batch_size: many\n")
    line = _usage_error(capsys, ["evaluate", "--config", str(typed)])
    assert "'batch_size'" in line and "'many'" in line and "expected an integer" in line


# ------------------------------------------------------------------------------------------------- bad values
@pytest.mark.parametrize(
    "argv, expected",
    [
        (["train", "--task", "program_trace", "--alpha", "abc"], "--alpha got 'abc': expected a number"),
        (["train", "--task", "program_trace", "--save_strategy", "often"], "--save_strategy got 'often': expected one of"),
        (["train", "--task", "program_trace", "--alpah", "3"], "unknown option: --alpah (did you mean --alpha?)"),
        (["evaluate", "--batch-size", "x"], "--batch-size got 'x': expected an integer"),
        (["evaluate", "--cache-implementation", "full"], "--cache-implementation got 'full': expected one of"),
    ],
)  # fmt: skip
def test_a_bad_value_is_one_short_line_without_the_usage(capsys, argv, expected):
    line = _usage_error(capsys, argv)
    assert expected in line and line.endswith(f"(see hf-unmask {argv[0]} --help)"), line


# ------------------------------------------------------------------------------------------------------- help
def test_train_help_is_short_and_starts_with_config_and_help_all_lists_everything(capsys):
    with pytest.raises(SystemExit) as info:
        main(["train", "--help"])
    assert info.value.code == 0
    short = capsys.readouterr().out
    assert short.splitlines()[0] == "usage: hf-unmask train --config RECIPE.yaml [--OPTION VALUE ...]"
    assert "--config RECIPE.yaml" in "\n".join(short.splitlines()[:12])
    assert len(short.splitlines()) < 250 and "--alpha" in short and "--help-all" in short
    assert "--policy_remask_init_bias" not in short  # a rarely used option: only in --help-all
    with pytest.raises(SystemExit):
        main(["train", "--help-all"])
    full = capsys.readouterr().out
    assert "--policy_remask_init_bias" in full and "--gradient_accumulation_steps" in full
    assert full.index("--config") < full.index("--task ")


# ------------------------------------------------------------------------------------------- both spellings
def test_multi_word_flags_take_dashes_or_underscores_everywhere():
    parser = build_parser()
    evaluate = parser.parse_args(["evaluate", "--output_dir", "a", "--n_examples", "3", "--max_new_tokens=8"])
    assert (evaluate.output_dir, evaluate.n_examples, evaluate.max_new_tokens) == ("a", 3, 8)
    assert (
        parser.parse_args(["evaluate", "--use_cache", "--cache_implementation", "dual"]).cache_implementation == "dual"
    )
    demo = parser.parse_args(["demo", "--output_dir", "b", "--batch_size", "4", "--no_stream"])
    assert (demo.output_dir, demo.batch_size, demo.no_stream) == ("b", 4, True)
    from hf_unmask.trainer.script import make_parser

    _, args = make_parser().parse_args_and_config(["--task", "program_trace", "--output-dir", "c", "--max-steps", "2"])
    assert (args.output_dir, args.max_steps) == ("c", 2)


# ------------------------------------------------------------------------------------------------ the KV cache
def test_evaluate_passes_the_cache_options_to_generation(tmp_path, capsys):
    assert main(["evaluate", *QUICK, "--strategy", "top_k_confidence:steps=16", "--block-length", "8",
                 "--use_cache", "--cache_implementation", "dual", "--output-dir", str(tmp_path)]) == 0  # fmt: skip
    meta = json.loads((tmp_path / "evaluation.json").read_text())["meta"]
    assert meta["generation_kwargs"] == {"use_cache": True, "cache_implementation": "dual"}
    capsys.readouterr()
    args = build_parser().parse_args(["evaluate", "--cache-implementation", "prefix"])
    from hf_unmask.cli import _generation_kwargs

    assert _generation_kwargs(args) == {"use_cache": True, "cache_implementation": "prefix"}  # implies the cache
    assert _generation_kwargs(build_parser().parse_args(["evaluate"])) == {}


# ------------------------------------------------------------------------------------------- list, data files
def test_list_shows_the_built_in_models_in_their_own_section(capsys):
    import hf_unmask

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    section = out.split("built-in models")[1].split("built-in tasks")[0]
    names = [line.strip() for line in section.splitlines()[1:] if line.strip()]
    assert names == hf_unmask.list_builtin_models() and "tiny-dllm-long" in names


def test_a_missing_local_data_file_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--dataset", "./nothere.jsonl", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert err.startswith("hf-unmask evaluate: error:") and "nothere.jsonl" in err


def test_a_reader_that_goes_away_ends_the_command_quietly():
    """`hf-unmask list | head`: a closed pipe is not an error (exit 0, nothing on stderr)."""
    code = (
        "import argparse, sys\n"
        "from hf_unmask._command import run_command\n"
        "def lists(_):\n"
        "    raise BrokenPipeError(32, 'Broken pipe')\n"
        "sys.exit(run_command(lists, argparse.Namespace(), 'hf-unmask list'))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stderr == "", done.stderr
