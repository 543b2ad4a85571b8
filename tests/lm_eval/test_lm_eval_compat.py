"""The lm-eval range hf_unmask.lm_eval is tested with: the installed lm-eval is in it and pyproject pins it; the
model registers on import of `hf_unmask.lm_eval` (and `import hf_unmask` imports no lm-eval); the shipped tasks'
data is what `hf_unmask.tasks` generates."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import lm_eval
import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from hf_unmask.lm_eval import TASKS_DIR, _compat
from hf_unmask.lm_eval._compat import LM_EVAL_REQUIREMENT, is_supported_lm_eval
from hf_unmask.lm_eval.tasks import program_trace_mc_rows, program_trace_rows, write_task_data

REPO = Path(__file__).resolve().parents[2]
FIX = f"hf_unmask.lm_eval is written for lm_eval{LM_EVAL_REQUIREMENT}; pip install 'hf_unmask[lm-eval]'"


def test_the_installed_lm_eval_is_in_the_tested_range():
    assert is_supported_lm_eval(), f"lm_eval {lm_eval.__version__} is installed. {FIX}."
    assert not is_supported_lm_eval("0.4.14") and not is_supported_lm_eval("0.4.12") and is_supported_lm_eval("0.4.13")


def test_pyproject_pins_the_tested_range():
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    pins = [Requirement(r) for r in extras.get("lm-eval", []) if canonicalize_name(Requirement(r).name) == "lm-eval"]
    assert pins, "pyproject.toml's [lm-eval] extra lists no lm_eval"
    assert all(p.specifier == Requirement(f"lm_eval{LM_EVAL_REQUIREMENT}").specifier for p in pins), (
        f"pyproject.toml pins {[str(p.specifier) for p in pins]}, hf_unmask/lm_eval/_compat.py says {LM_EVAL_REQUIREMENT}"
    )
    installed = (REPO / "Makefile").read_text().split(".[", 1)[1].split("]")[0].split(",")
    assert "lm-eval" in installed  # make test installs it
    # pip before 23.3 matches an extra's name as written against the normalized name setuptools records (lm_eval
    # != lm-eval: "does not provide the extra", nothing installed): extras are named in normalized form
    for extra in [*extras, *installed]:
        assert extra == canonicalize_name(extra) and extra in extras, (
            f"extra {extra!r}: use {canonicalize_name(extra)!r}"
        )


def test_an_untested_lm_eval_warns_once(monkeypatch):
    monkeypatch.setattr(_compat, "_warned", False)
    monkeypatch.setattr(lm_eval, "__version__", "9.0.0")
    with pytest.warns(UserWarning, match=r"tested with lm_eval>=0.4.13,<0.4.14, but lm_eval 9.0.0 is installed"):
        _compat.warn_if_untested()
    _compat.warn_if_untested()  # only once


def test_lm_eval_loads_only_with_hf_unmask_lm_eval_which_registers_the_model():
    code = (
        "import sys, hf_unmask, hf_unmask.cli; print('lm_eval' in sys.modules); "
        "import hf_unmask.lm_eval, lm_eval.api.registry as r; print(r.get_model('hf_unmask').__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.splitlines() == ["False", "HFUnmaskLM"], out.stdout


def test_the_shipped_task_data_is_what_the_task_generator_writes(tmp_path):
    write_task_data(tmp_path)
    for name in ("program_trace_test.jsonl", "program_trace_mc_test.jsonl"):
        assert (TASKS_DIR / name).read_text() == (tmp_path / name).read_text(), f"regenerate {name}: write_task_data()"
    rows, mc_rows = program_trace_rows(), program_trace_mc_rows()
    assert len(rows) == len(mc_rows) == 32
    for row, mc in zip(rows, mc_rows):
        assert mc["choices"][mc["label"]] == row["reference"] and len(set(mc["choices"])) == 4
        assert json.loads(json.dumps(row))["answer"] == row["reference"].split()[-1]
