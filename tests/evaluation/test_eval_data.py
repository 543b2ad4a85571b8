"""hf_unmask.evaluation.data: examples from local files, dataset objects and built-in tasks."""

from __future__ import annotations

import json

import pytest
from tiny_eval import ToyTask

from hf_unmask.evaluation import DATA_FILE_BUILDERS, EvaluationData, exact_match, load_data_file


def test_dataset_from_local_files(tmp_path):
    rows = [{"q": f"{i}+1=", "a": str(i + 1), "other": i} for i in range(5)]
    jsonl = tmp_path / "data.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = EvaluationData.from_dataset(
        str(jsonl),
        prompt_column="q",
        reference_column="a",
        correctness="exact_match",
        n_examples=3,
        prompt_template="Q: {prompt}",
    )
    assert data.prompts == ["Q: 0+1=", "Q: 1+1=", "Q: 2+1="] and data.references == ["1", "2", "3"]
    assert data.name == "data" and data.is_correct is exact_match
    csv_path = tmp_path / "data.csv"
    csv_path.write_text("q,a\n2+2=,4\n")
    assert EvaluationData.from_dataset(str(csv_path), "q", "a", "exact_match").references == ["4"]
    with pytest.raises(ValueError, match="no reference column 'answer'.*columns: q, a, other"):
        EvaluationData.from_dataset(str(jsonl), prompt_column="q", reference_column="answer")
    with pytest.raises(ValueError, match="unknown file type"):
        (tmp_path / "data.txt").write_text("q,a\n")
        EvaluationData.from_dataset(str(tmp_path / "data.txt"), "q", "a")


def test_dataset_object_and_split():
    from datasets import Dataset, DatasetDict

    ds = DatasetDict({"test": Dataset.from_dict({"question": ["1+1?"], "answer": ["... #### 2"]})})
    data = EvaluationData.from_dataset(ds, prompt_column="question", reference_column="answer")
    assert data.is_correct("so the answer is 2", data.references[0])
    with pytest.raises(ValueError, match="no split 'validation'"):
        EvaluationData.from_dataset(ds, "question", "answer", split="validation")


def test_builtin_task_data_is_a_stable_prefix():
    small = EvaluationData.from_task(ToyTask(), n_examples=3)
    large = EvaluationData.from_task(ToyTask(), n_examples=6)
    assert large.prompts[:3] == small.prompts and len(large) == 6


def test_local_data_files_by_extension(tmp_path):
    tsv = tmp_path / "data.tsv"
    tsv.write_text("question\tanswer\n1, 2 and 3\t6\n")  # a comma inside a field: only a tab separates columns
    assert load_data_file(tsv)[0] == {"question": "1, 2 and 3", "answer": 6}
    parquet = tmp_path / "data.parquet"
    load_data_file(tsv).to_parquet(str(parquet))
    assert load_data_file(str(parquet))[0] == {"question": "1, 2 and 3", "answer": 6}
    assert set(DATA_FILE_BUILDERS) == {".json", ".jsonl", ".csv", ".tsv", ".parquet"}
    with pytest.raises(ValueError, match=r"unknown file type '\.txt'. Use \.json, \.jsonl, \.csv, \.tsv or \.parquet"):
        load_data_file(tmp_path / "data.txt")
