"""Saving, loading and the Hub for `UnmaskingGRPOTrainer`: the policy's own format (config.json + safetensors, no
pickle) and its model card, in place of transformers' model saving."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Optional

from huggingface_hub.constants import CONFIG_NAME, SAFETENSORS_SINGLE_FILE
from torch import nn
from transformers.trainer_utils import HubStrategy
from transformers.utils.hub import PushInProgress, hf_api

from .policy_model import inference_mode_of, policy_setting

__all__ = ["PolicySavingMixin"]


def portable_config(json_string: str) -> str:
    """The training config as JSON with every absolute path of this machine replaced by its portable name (relative
    to the working directory, or the folder / file name: `hf_unmask.strategies.trained_for.portable_name`)."""
    from ..strategies.trained_for import portable_name

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return portable_name(value)
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        return value

    return json.dumps(clean(json.loads(json_string)), indent=2, sort_keys=True) + "\n"


class PolicySavingMixin:
    """The saving hooks of `transformers.Trainer` (`_save`, `_load_from_checkpoint`, `_push_from_checkpoint`,
    `create_model_card`, `push_to_hub`) for a trainer whose model is an unmasking policy.

    The trainer provides `policy` (the unwrapped policy), `args` (an `UnmaskingGRPOConfig`), `dllm_name` (what
    `trained_for` records as the base model), `evaluation_results` and `evaluation_plot_path` (shown on the card).
    Whatever is saved or pushed is the *inference* policy: its mode and temperature are those of
    `args.eval_policy_temperature` while it is written, the training setting is restored afterwards.
    """

    def _inference_setting(self) -> Any:
        return policy_setting(self.policy, inference_mode_of(self.args.action_mode), self.args.eval_policy_temperature)

    def trained_for(self) -> dict[str, Any]:
        """What the policy was trained for (saved in its config and shown on its model card). Local paths (the dLLM,
        the data, a starting policy) are recorded as given when relative and never as absolute paths of this
        machine (`hf_unmask.strategies.trained_for.portable_name`)."""
        args = self.args
        from ..models.tiny import builtin_model_name, is_builtin_alias
        from ..strategies.trained_for import portable_name

        base_model = self.dllm_name
        if is_builtin_alias(base_model):
            base_model = f"builtin:{builtin_model_name(base_model)}"  # which built-in model, not just "builtin"
        else:
            base_model = portable_name(base_model)
        record: dict[str, Any] = {
            "base_model": base_model,
            "gen_length": args.gen_length,
            "block_length": args.block_length or args.gen_length,
            "alpha": args.alpha,
            "temperature": args.policy_temperature,
            "task": args.task_name,
            "dataset": portable_name(args.train_dataset_name),
            "training_steps": self.state.global_step or None,
            "reward_form": args.reward_form,
            "num_generations": args.num_generations,
        }
        if args.policy_name_or_path is not None:
            record["initialized_from"] = portable_name(str(args.policy_name_or_path))
        if args.expert_steering:
            record["expert_steering"] = {"threshold": args.expert_threshold, "block_length": args.expert_block_length}
            record["expert_steering"]["scoring"] = args.expert_scoring
            if args.expert_imitation_coef > 0:  # beyond the paper's steering
                record["expert_steering"].update(
                    imitation_coef=args.expert_imitation_coef, imitation_steps=args.expert_imitation_steps
                )
        if args.rollout_finish_blocks:  # beyond the paper's environment
            record["rollout_finish_blocks"] = True
        return {k: v for k, v in record.items() if v is not None}

    def _save(self, output_dir: Optional[str] = None, state_dict: Optional[dict] = None) -> None:
        """Save the policy with its own `save_pretrained` (config.json + model.safetensors, `trained_for` filled,
        inference mode and temperature), its model card, and the training config as JSON (no pickle)."""
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        os.makedirs(output_dir, exist_ok=True)
        policy = self.policy
        policy.trained_for = self.trained_for()
        with self._inference_setting():
            policy.save_pretrained(output_dir)
            self._write_card(output_dir)
        Path(output_dir, "training_config.json").write_text(portable_config(self.args.to_json_string()))

    def _write_card(self, folder: str) -> None:
        """The card of the policy saved in `folder`; its snippet loads the Hub repo when the run pushes, else the
        folder as it was named (relative to the working directory, never by its absolute path)."""
        from ..strategies.card import write_model_card

        if self.args.push_to_hub:
            repo_id = self.hub_model_id or self.args.hub_model_id or Path(self.args.output_dir).absolute().name
        else:
            repo_id = str(folder)
        write_model_card(
            self.policy,
            folder,
            repo_id=repo_id,
            evaluation_results=self.evaluation_results,
            plot_path=self.evaluation_plot_path,
        )

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Optional[nn.Module] = None) -> None:
        """Load the policy of a checkpoint written by `_save` into the trained policy (`model`, whatever wraps it, is
        that policy): safetensors only, every weight of the same shape."""
        if not Path(resume_from_checkpoint, SAFETENSORS_SINGLE_FILE).is_file():
            raise ValueError(
                f"No {SAFETENSORS_SINGLE_FILE} in {resume_from_checkpoint}: not a checkpoint of UnmaskingGRPOTrainer."
            )
        saved = type(self.policy).from_pretrained(str(resume_from_checkpoint))
        self.policy.load_state_dict(saved.state_dict(), strict=True)

    def create_model_card(self, model_name: Optional[str] = None, **kwargs: Any) -> None:
        """Write the policy's model card (`hf_unmask.strategies.card`) as `output_dir/README.md`."""
        if not self.is_world_process_zero():
            return
        policy = self.policy
        policy.trained_for = self.trained_for()
        with self._inference_setting():
            self._write_card(self.args.output_dir)

    def push_to_hub(
        self,
        commit_message: Optional[str] = "End of training",
        blocking: bool = True,
        token: Optional[str] = None,
        revision: Optional[str] = None,
        private: Optional[bool] = None,
        evaluation_results: Any = None,
        plot_path: Optional[str] = None,
        **kwargs: Any,
    ) -> Any:
        """Push the trained policy with the policy's `push_to_hub`: config, safetensors weights, model card (with
        `evaluation_results` and the Pareto plot when given) in one commit. `blocking` is ignored (always blocks)."""
        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        if evaluation_results is not None:
            self.evaluation_results = evaluation_results
        if plot_path is not None:
            self.evaluation_plot_path = str(plot_path)
        self.save_model(_internal_call=True)
        if not self.is_world_process_zero():
            return None
        self._finish_current_push()
        repo_id = self.hub_model_id or self.args.hub_model_id or Path(self.args.output_dir).absolute().name
        policy = self.policy
        policy.trained_for = self.trained_for()
        with self._inference_setting():
            return policy.push_to_hub(
                repo_id,
                commit_message=commit_message,
                token=token if token is not None else self.args.hub_token,
                revision=revision if revision is not None else self.args.hub_revision,
                private=private if private is not None else self.args.hub_private_repo,
                evaluation_results=self.evaluation_results,
                plot_path=self.evaluation_plot_path,
            )

    def _push_from_checkpoint(self, checkpoint_folder: str) -> None:
        """`hub_strategy` pushes during training: the policy files of the checkpoint go to the repo root (and the
        whole checkpoint to `last-checkpoint/` or `checkpoint-N/` for the checkpoint strategies)."""
        if not self.is_world_process_zero() or self.args.hub_strategy == HubStrategy.END:
            return
        if not self.args.hub_always_push and self.push_in_progress is not None and not self.push_in_progress.is_done():
            return
        self.callback_handler.on_push_begin(self.args, self.state, self.control)
        output_dir = self.args.output_dir
        files = [CONFIG_NAME, SAFETENSORS_SINGLE_FILE, "README.md", "training_config.json"]
        for name in files:
            if os.path.isfile(os.path.join(checkpoint_folder, name)):
                shutil.copy(os.path.join(checkpoint_folder, name), os.path.join(output_dir, name))
        commit_message = f"Training in progress, step {self.state.global_step}"
        jobs = [
            hf_api().upload_folder(
                repo_id=self.hub_model_id,
                folder_path=output_dir,
                allow_patterns=files,
                commit_message=commit_message,
                token=self.args.hub_token,
                run_as_future=True,
                revision=self.args.hub_revision,
            )
        ]
        if self.args.hub_strategy in (HubStrategy.CHECKPOINT, HubStrategy.ALL_CHECKPOINTS):
            path_in_repo = (
                "last-checkpoint" if self.args.hub_strategy == HubStrategy.CHECKPOINT else Path(checkpoint_folder).name
            )
            jobs.append(
                hf_api().upload_folder(
                    repo_id=self.hub_model_id,
                    folder_path=checkpoint_folder,
                    path_in_repo=path_in_repo,
                    commit_message=commit_message + ", checkpoint",
                    token=self.args.hub_token,
                    run_as_future=True,
                    revision=self.args.hub_revision,
                )
            )
        if self.push_in_progress is None or self.push_in_progress.is_done():
            self.push_in_progress = PushInProgress(jobs)
        else:
            self.push_in_progress.jobs.extend(jobs)
