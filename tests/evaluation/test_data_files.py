"""One local data-file reader for evaluation and training (`load_data_file`): .jsonl, .json, .csv, .tsv (tab
delimited), and "file not found: <path>" for a local path that does not exist, from either side."""

from __future__ import annotations

import json

import pytest

from hf_unmask.evaluation import EvaluationData, load_data_file
from hf_unmask.evaluation.data import check_local_source
from hf_unmask.trainer.data import UnmaskingScriptArguments, _load, load_prompts

ROW = {"question": "1, 2 and 3", "answer": "6"}


def _write(folder, suffix):
    path = folder / f"data{suffix}"
    if suffix == ".jsonl":
        path.write_text(json.dumps(ROW) + "\n")
    elif suffix == ".json":
        path.write_text(json.dumps([ROW]))
    elif suffix == ".csv":
        path.write_text('question,answer\n"1, 2 and 3",6\n')
    else:  # .tsv: the comma inside the field must not split it
        path.write_text("question\tanswer\n1, 2 and 3\t6\n")
    return path


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".tsv"])
def test_evaluation_and_training_read_a_local_file_alike(tmp_path, suffix):
    path = _write(tmp_path, suffix)
    evaluated = load_data_file(path)
    trained = _load(str(path), None, "train")
    assert evaluated.column_names == trained.column_names == ["question", "answer"]
    assert [str(v) for v in evaluated[0].values()] == ["1, 2 and 3", "6"]
    assert evaluated[0] == trained[0]
    data = EvaluationData.from_dataset(str(path), "question", "answer", correctness="exact_match")
    assert data.prompts == ["1, 2 and 3"] and data.references == ["6"]


@pytest.mark.parametrize("missing", ["./nothere.jsonl", "nothere.csv", "../nothere", "/no/such/folder/data.tsv"])
def test_a_missing_local_file_is_named_not_blamed_on_the_hub(tmp_path, monkeypatch, missing):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=f"file not found: {missing}") as err:
        EvaluationData.from_dataset(missing, correctness="exact_match")
    assert "offline" not in str(err.value).lower() and "hub" in str(err.value).lower()
    with pytest.raises(FileNotFoundError, match=f"file not found: {missing}"):
        load_prompts(UnmaskingScriptArguments(dataset_name=missing), [])
    if missing.endswith((".jsonl", ".csv", ".tsv")):
        with pytest.raises(FileNotFoundError, match="file not found"):
            load_data_file(missing)


def test_hub_ids_are_not_taken_for_paths():
    check_local_source("openai/gsm8k")
    check_local_source("gsm8k")


def test_the_evaluate_command_says_which_file_is_missing(tmp_path, monkeypatch, capsys):
    from hf_unmask.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["evaluate", "--dataset", "./nothere.jsonl"]) != 0
    err = capsys.readouterr().err
    assert "file not found: ./nothere.jsonl" in err and "offline" not in err.lower()
