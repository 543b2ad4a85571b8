"""`import hf_unmask` stays light: the training stack (TRL), plotting and datasets load only when used."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("trl", "matplotlib", "datasets", "pandas", "peft", "math_verify")


def test_import_hf_unmask_loads_no_training_plotting_or_data_stack():
    code = (
        "import sys, hf_unmask, hf_unmask.cli; "
        "m, t = hf_unmask.load_builtin_model('tiny-dllm'); "
        "hf_unmask.DiffusionTextGenerator(m, t)('sort : 3 1 2'); "
        f"print(','.join(name for name in {HEAVY!r} if name in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.strip() == "", f"imported by `import hf_unmask` and a generation: {out.stdout.strip()}"


def test_every_public_name_imports_from_the_top_level_and_heavy_ones_stay_lazy():
    code = (
        "import sys, hf_unmask\n"
        "heavy_before = [n for n in ('trl', 'matplotlib', 'datasets') if n in sys.modules]\n"
        "names = hf_unmask.__all__\n"
        "for name in names:\n"
        "    exec(f'from hf_unmask import {name}')\n"
        "    assert getattr(hf_unmask, name) is not None, name\n"
        "print(len(names), heavy_before)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    count, heavy = out.stdout.strip().split(" ", 1)
    assert heavy == "[]" and int(count) >= 45
    import hf_unmask

    for name in (
        "ConfidencePolicy",
        "TopKConfidence",
        "ConfidenceThreshold",
        "evaluate_strategies",
        "get_task",
        "UnmaskingGRPOTrainer",
    ):
        assert name in hf_unmask.__all__
