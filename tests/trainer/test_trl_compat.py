"""The TRL range hf_unmask.trainer is tested with: the installed TRL is in it, pyproject pins it, and what the trainer
takes from TRL is there with the signatures it expects (so that a new TRL release fails here, saying what changed,
instead of training silently differently)."""

from __future__ import annotations

import inspect
from importlib.metadata import requires

import pytest
import trl
from grpo_toys import make_trainer
from packaging.requirements import Requirement
from transformers import Trainer
from trl import GRPOTrainer

from hf_unmask.trainer._trl import TRL_REQUIREMENT, is_supported_trl

FIX = f"hf_unmask.trainer is written for trl{TRL_REQUIREMENT}; install it with pip install 'trl{TRL_REQUIREMENT}'"

# The hooks UnmaskingGRPOTrainer overrides or calls, with the parameters it relies on (self excluded).
HOOKS = {
    GRPOTrainer: {
        "__init__": ["model", "reward_funcs", "args", "train_dataset", "eval_dataset", "processing_class",
                     "reward_processing_classes", "callbacks", "optimizers"],
        "_generate_and_score_completions": ["inputs"],
        "compute_loss": ["model", "inputs", "return_outputs", "num_items_in_batch"],
        "_calculate_rewards": ["inputs", "prompts", "completions", "completion_ids_list"],
        "_prepare_inputs": ["generation_batch"],
        "create_model_card": ["model_name"],  # GRPOTrainer._save_checkpoint calls it with model_name=...
    },
    Trainer: {
        "_save": ["output_dir", "state_dict"],
        "_load_from_checkpoint": ["resume_from_checkpoint", "model"],
        "_push_from_checkpoint": ["checkpoint_folder"],
        "push_to_hub": ["commit_message", "blocking", "token", "revision"],
    },
}  # fmt: skip

# What TRL's constructor sets up and the trainer's own methods read or fill.
CONSTRUCTOR_ATTRIBUTES = [
    "num_generations", "num_generations_eval", "num_iterations", "epsilon_low", "epsilon_high", "scale_rewards",
    "reward_funcs", "reward_func_names", "reward_weights", "reward_processing_classes", "eos_token_ids",
    "chat_template_kwargs", "log_completions", "_metrics", "_logs", "_pending_extra_logs", "_pending_metrics",
]  # fmt: skip


def test_the_installed_trl_is_in_the_tested_range():
    assert is_supported_trl(), f"trl {trl.__version__} is installed. {FIX}."
    assert not is_supported_trl("1.17.0") and not is_supported_trl("1.15.2") and is_supported_trl("1.16.3")


def test_pyproject_pins_the_tested_range():
    pins = [Requirement(r) for r in requires("hf_unmask") or [] if Requirement(r).name == "trl"]
    assert pins, "pyproject.toml's [train] extra lists no trl"
    assert all(p.specifier == Requirement(f"trl{TRL_REQUIREMENT}").specifier for p in pins), (
        f"pyproject.toml pins {[str(p.specifier) for p in pins]}, hf_unmask/trainer/_trl.py says {TRL_REQUIREMENT}"
    )


@pytest.mark.parametrize(
    "owner, name",
    [(owner, name) for owner, hooks in HOOKS.items() for name in hooks],
    ids=lambda x: getattr(x, "__name__", x),
)
def test_the_hooks_the_trainer_builds_on_have_the_expected_signature(owner, name):
    method = getattr(owner, name, None)
    assert method is not None, f"{owner.__name__}.{name} is gone in trl {trl.__version__}. {FIX}."
    params = [p for p in inspect.signature(method).parameters if p != "self"]
    expected = HOOKS[owner][name]
    assert params[: len(expected)] == expected, (
        f"{owner.__name__}.{name}{inspect.signature(method)} no longer takes {expected} in trl {trl.__version__}. "
        f"{FIX}."
    )


def test_trls_constructor_sets_up_what_the_trainer_reads(dllm, tmp_path):
    trainer = make_trainer(dllm, tmp_path)
    missing = [name for name in CONSTRUCTOR_ATTRIBUTES if not hasattr(trainer, name)]
    assert not missing, f"GRPOTrainer.__init__ of trl {trl.__version__} no longer sets {missing}. {FIX}."
    assert isinstance(trainer, GRPOTrainer) and trainer.eos_token_ids == [dllm[1].eos_token_id]
    assert trainer.reward_func_names == ["constant_reward"] and trainer.num_generations == 4


def test_an_untested_trl_warns_once(monkeypatch):
    from hf_unmask.trainer import _trl

    monkeypatch.setattr(_trl, "_warned", False)
    monkeypatch.setattr(trl, "__version__", "9.0.0")
    with pytest.warns(UserWarning, match=r"tested with trl>=1.16,<1.17, but trl 9.0.0 is installed"):
        _trl.warn_if_untested()
    _trl.warn_if_untested()  # only once


def test_the_trainer_and_rewards_packages_load_trl_and_math_verify_only_when_used():
    import subprocess
    import sys

    code = (
        "import sys, hf_unmask.rewards, hf_unmask.trainer, hf_unmask.cli; "
        "print(','.join(m for m in ('trl', 'math_verify') if m in sys.modules)); "
        "hf_unmask.rewards.answers_match('1', '1'); hf_unmask.trainer.UnmaskingGRPOConfig; "
        "print(','.join(m for m in ('trl', 'math_verify') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.splitlines() == ["", "trl,math_verify"], out.stdout  # nothing at import, both once used
