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
