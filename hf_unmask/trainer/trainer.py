"""`UnmaskingGRPOTrainer`: GRPO for learned unmasking policies (arXiv 2512.09106) on TRL's `GRPOTrainer`.

The trained model is the *policy* (an `hf_unmask.strategies.ConfidencePolicy`, ~331K parameters, or with
`policy_type="hidden_states"` the paper's ablation `HiddenStatePolicy`, one block as wide as the dLLM reading its last
hidden states, or with `policy_remasking=True` a `RemaskingPolicy` that also re-masks decided tokens); the dLLM is a
frozen environment. One rollout = one diffusion `generate` call in which the policy
chooses, at every denoising step, which masked positions of the current block to unmask; the per-step record (the
trajectory) is what the policy is trained on.

How it sits on TRL (1.16, see `hf_unmask.trainer._trl`):

- Built by `GRPOTrainer`'s public constructor, given a `PolicyModel` (the policy with the `config` /
  `generation_config` TRL reads), the dLLM's tokenizer, the reward functions and the config. TRL's constructor then
  sets up everything its own methods read: reward names and weights, EOS ids, the group size, clip range, metrics
  and completion logs, async reward functions, reward models, and `transformers.Trainer` (accelerate, optimiser and
  scheduler, callbacks, `report_to`, checkpoints, `resume_from_checkpoint`, `hub_strategy`). The one exception is the
  KL reference (TRL would load one from the checkpoint named in `model.config`): a frozen copy of the policy.
- Reused as they are: the repeat sampler and data loaders, `training_step`, `_prepare_inputs` (generate once per
  generation batch, shuffle, split into `steps_per_generation` slices, reuse them for `num_iterations` updates),
  `_calculate_rewards` (TRL's reward calling convention, `None` -> NaN, async functions, reward models, gathering),
  `log` (metric averaging, completions table; `monitoring.py` adds the collapse checks before it), `prediction_step`,
  `_save_checkpoint`, and the best-checkpoint bookkeeping (`_load_best_model` is `monitoring.py`'s).
- Overridden hooks: `_generate_and_score_completions` (rollouts through the dLLM, efficiency-wrapped rewards, group
  advantages, expert steering), `compute_loss` (GRPO over per-step action log-probabilities, `loss.py`), `train`
  (Ctrl-C saves a checkpoint), and the saving hooks of `saving.py`. TRL's `rollout_func` does not fit: it must return
  token ids and per-token log-probs of an autoregressive completion, while a rollout here is a sequence of unmasking
  decisions.
- TRL's private state written, as its own rollout does: the metric store `_metrics` (averaged by `log`) and the
  completions table `_logs`, flushing `_pending_extra_logs` / `_pending_metrics` (what reward functions logged).
"""

from __future__ import annotations

import copy
import os
from collections.abc import Callable
from typing import Any, Optional, Union

import torch
import transformers
from accelerate.utils import gather, gather_object
from datasets import Dataset, IterableDataset
from torch import nn
from transformers import PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from trl import GRPOTrainer

from ..generation import completion_eos_ids, completion_texts, completion_token_ids, encode_prompts
from ..rewards import efficiency_reward
from ..strategies import ConfidenceThreshold, UnmaskingPolicy
from . import _trl
from .config import UnmaskingGRPOConfig
from .interrupt import StopOnInterrupt, TrainingInterrupted
from .loss import clipped_surrogate, entropy_floor_penalty, expert_mixture_log_prob, k3_kl, mean_over_rollouts
from .metrics import loss_metrics, rollout_metrics
from .monitoring import TrainingMonitorMixin
from .policy_model import PolicyModel, policy_setting
from .rollouts import (
    PADDING_MASK,
    STEP_FIELDS,
    concat_rollouts,
    group_advantages,
    live_states,
    policy_eligible,
    policy_fields,
    rollout,
    step_log_probs,
)
from .saving import PolicySavingMixin
from .setup import (
    build_policy,
    check_dataset,
    check_reward_funcs,
    check_reward_signatures,
    prepare_dllm,
    warn_about_resume_points,
)
from .zero_advantage import ZeroAdvantageSkip, all_advantages_zero

RewardFunc = Union[Callable[..., list], nn.Module]

__all__ = ["UnmaskingGRPOTrainer"]


class UnmaskingGRPOTrainer(TrainingMonitorMixin, PolicySavingMixin, GRPOTrainer):
    """Train an unmasking policy with GRPO, the dLLM being a frozen environment.

    Args:
        model: the policy: a `ConfidencePolicy` or `HiddenStatePolicy` (of `args.policy_type`), a
            `RemaskingPolicy` (with `args.policy_remasking`, which also warm-starts one from a given or saved
            `ConfidencePolicy`), a saved policy (folder / Hub id / built-in policy name), or `None` for a fresh policy
            of `args.policy_type`: a `ConfidencePolicy` (`RemaskingPolicy`) sized by `args.policy_*`, or a
            `HiddenStatePolicy` sized after the dLLM's config (or loaded from `args.policy_name_or_path`).
        dllm: the frozen dLLM (any model `hf_unmask` can generate with, a `PeftModel` included), a name for
            `load_dllm`, or `None` to load `args.dllm_name_or_path`. It is put in eval mode with
            `requires_grad_(False)` and never reaches the optimizer.
        reward_funcs: TRL-style reward functions `f(prompts, completions, **columns) -> list[float | None]`
            (completions are decoded texts cut at EOS; messages for conversational prompts), or reward models with
            `reward_processing_classes`. Their weighted sum (`args.reward_weights`) is the task reward `r`, which
            `args.reward_form` / `args.alpha` combine with the NFE. A function may declare the dataset columns it
            reads in a `required_columns` attribute; they are checked before training.
        args: an `UnmaskingGRPOConfig`.
        train_dataset / eval_dataset: datasets with a `prompt` column (text or chat messages) and the columns the
            rewards read.
        processing_class: the dLLM's tokenizer (loaded with the dLLM when `dllm` is a name).
        callbacks, optimizers: as in `transformers.Trainer`.

    Example (not run in tests: ten GRPO steps take about a minute on a CPU; tests/trainer/ trains for real):
        ```python
        >>> from datasets import Dataset
        >>> from hf_unmask.trainer import UnmaskingGRPOConfig, UnmaskingGRPOTrainer
        >>> def exact(prompts, completions, answer, **kwargs):
        ...     return [float(c.strip() == a) for c, a in zip(completions, answer)]
        >>> exact.required_columns = ("answer",)
        >>> data = Dataset.from_list([{"prompt": "sort : 3 1 2", "answer": "1 2 3"}] * 16)
        >>> args = UnmaskingGRPOConfig(output_dir="out", dllm_name_or_path="builtin", gen_length=16,
        ...                            block_length=8, max_steps=10, warmup_steps=1)
        >>> trainer = UnmaskingGRPOTrainer(reward_funcs=exact, args=args, train_dataset=data)  # doctest: +SKIP
        >>> trainer.train()  # doctest: +SKIP
        ```
    """

    _tag_names = ["trl", "grpo", "hf-unmask", "unmasking-policy"]
    _name = "UnmaskingGRPO"
    # `compute_loss` returns the micro-batch mean; transformers divides it by the number of accumulation steps.
    loss_is_scaled_for_ga = False

    def __init__(
        self,
        model: Optional[Union[UnmaskingPolicy, str]] = None,
        dllm: Optional[Union[nn.Module, str]] = None,
        reward_funcs: Optional[Union[RewardFunc, list[RewardFunc]]] = None,
        args: Optional[UnmaskingGRPOConfig] = None,
        train_dataset: Optional[Union[Dataset, IterableDataset]] = None,
        eval_dataset: Optional[Union[Dataset, IterableDataset, dict[str, Dataset]]] = None,
        processing_class: Optional[PreTrainedTokenizerBase] = None,
        reward_processing_classes: Optional[Union[PreTrainedTokenizerBase, list[PreTrainedTokenizerBase]]] = None,
        callbacks: Optional[list[TrainerCallback]] = None,
        optimizers: tuple[Optional[torch.optim.Optimizer], Optional[torch.optim.lr_scheduler.LambdaLR]] = (None, None),
    ) -> None:
        if args is None:
            args = UnmaskingGRPOConfig(output_dir="unmasking-policy-grpo")
        if not isinstance(args, UnmaskingGRPOConfig):
            raise TypeError(
                f"args must be an UnmaskingGRPOConfig (it adds gen_length, block_length, alpha...), got "
                f"{type(args).__name__}. Build one with UnmaskingGRPOConfig(output_dir=..., ...)."
            )
        args._check_unmasking_fields()  # the config may have been edited after construction
        _trl.warn_if_untested()
        transformers.set_seed(args.seed)  # the policy's initial weights

        # cheap checks first, before anything is loaded or rolled out
        reward_funcs, reward_processing_classes = check_reward_funcs(reward_funcs, reward_processing_classes)
        if train_dataset is None:
            raise ValueError(
                "Pass train_dataset=<a dataset with a 'prompt' column> (and the columns the rewards read)."
            )
        check_dataset(train_dataset, "train_dataset", reward_funcs, args.reward_columns)
        check_reward_signatures(train_dataset, reward_funcs)  # read, not called: no reward call before rollouts
        evals = eval_dataset.items() if isinstance(eval_dataset, dict) else [(None, eval_dataset)]
        for key, data in evals:
            label = "eval_dataset" if key is None else f"eval_dataset[{key!r}]"
            check_dataset(data, label, reward_funcs, args.reward_columns)
        dllm, processing_class, self.dllm_name = prepare_dllm(dllm, processing_class, args)
        self.dllm = dllm
        policy = build_policy(model, args, dllm)
        # the ids that end a completion, as generation and evaluation decide them; TRL reads them from the
        # PolicyModel's generation config into `self.eos_token_ids`, which rollouts and decoding use
        eos_ids = completion_eos_ids(dllm, processing_class)
        special_ids = {k: getattr(processing_class, k, None) for k in ("bos_token_id", "pad_token_id")}

        # TRL would load a reference model from the checkpoint `model.config` names (an autoregressive LM) when
        # beta > 0; the KL reference here is a frozen copy of the policy (below), so TRL's constructor sees beta = 0.
        beta, args.beta = args.beta, 0.0
        self._stop_on_interrupt = StopOnInterrupt()
        self._zero_advantage_skip = ZeroAdvantageSkip(lambda: self.model.parameters())
        try:
            super().__init__(
                model=PolicyModel(policy, eos_ids, **special_ids),
                reward_funcs=reward_funcs,
                args=args,
                train_dataset=train_dataset,
                eval_dataset=eval_dataset,
                processing_class=processing_class,
                reward_processing_classes=reward_processing_classes,
                callbacks=[*(callbacks or []), self._stop_on_interrupt, self._zero_advantage_skip],
                optimizers=optimizers,
            )
        finally:
            args.beta = beta
        self.beta = beta  # TRL's public attribute, set from the config TRL saw
        self.ref_policy: Optional[UnmaskingPolicy] = None
        if beta > 0:
            self.ref_policy = copy.deepcopy(policy).requires_grad_(False).eval().to(self.accelerator.device)
        if getattr(dllm, "hf_device_map", None) is None:
            self.dllm.to(self.accelerator.device)
        self._eval_calls = 0
        #: Evaluation rows / Pareto plot shown on the model card by `create_model_card` and `push_to_hub`.
        self.evaluation_results: Any = None
        self.evaluation_plot_path: Optional[str] = None
        warn_about_resume_points(args)

    @property
    def policy(self) -> UnmaskingPolicy:
        """The trained policy (unwrapped from DDP / accelerate and from its `PolicyModel`)."""
        return self.accelerator.unwrap_model(self.model).policy

    def _training_setting(self) -> Any:
        return policy_setting(self.policy, self.args.action_mode, self.args.policy_temperature)

    # ---------------------------------------------------------------------------------------------------- rollouts
    def _rollout_generator(self, device: torch.device, mode: str) -> torch.Generator:
        """A generator seeded from (seed, global step, process): rollouts do not depend on the global RNG, so a run
        resumed from a checkpoint draws the same rollouts as an uninterrupted one."""
        if mode == "eval":
            self._eval_calls += 1
        salt = 0 if mode == "train" else 7_919 * self._eval_calls + 1
        seed = (
            self.args.seed * 1_000_003 + self.state.global_step * 10_007 + self.accelerator.process_index * 101 + salt
        )
        return torch.Generator(device=device).manual_seed(seed % (2**62))

    def _rollout(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, strategy: Any, block_length: Any,
                 generator: torch.Generator, mode: str = "train") -> dict[str, torch.Tensor]:  # fmt: skip
        """Rollouts in the training environment (`rollout_finish_blocks`); evaluation rollouts always finish their
        blocks, as inference does."""
        args = self.args
        return rollout(
            self.dllm,
            input_ids,
            attention_mask,
            strategy,
            gen_length=args.gen_length,
            block_length=block_length,
            generator=generator,
            temperature=args.dllm_temperature,
            stop_at_eos=args.stop_at_eos,
            batch_size=args.rollout_batch_size,
            use_cache=args.rollout_use_cache,
            cache_implementation=args.rollout_cache_implementation,
            finish_blocks=args.rollout_finish_blocks or mode != "train",
            eos_token_id=self.eos_token_ids,
        )

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """Roll out the local generation batch (and the expert rollouts), score it and compute the advantages.

        Returns a dict of per-rollout tensors (leading axis = rollout, then denoising step) that `_prepare_inputs`
        shuffles, splits and buffers: the trajectory (`confidence`, `masked`, `eligible`, `action`, `time`,
        `live`, `hidden_states` `[N, T, L, H]` for a hidden-state policy, the re-masking fields and re-mask actions
        for a re-masking policy), `old_logps`, `ref_logps` (KL only),
        `advantages`, `is_expert`, and for inspection `rewards`, `task_rewards` and `nfe`.
        """
        args = self.args
        device = self.accelerator.device
        mode = "train" if self.model.training else "eval"
        G = self.num_generations if mode == "train" else self.num_generations_eval
        n = len(inputs)
        prompts = [x["prompt"] for x in inputs]
        encoded = encode_prompts(
            self.processing_class, prompts, chat_template_kwargs=self.chat_template_kwargs, device=device
        )
        texts, input_ids, attention_mask = encoded.texts, encoded.input_ids, encoded.attention_mask
        generator = self._rollout_generator(device, mode)

        # policy rollouts: the training distribution, or the inference setting for evaluation
        with self._training_setting() if mode == "train" else self._inference_setting() as policy:
            batch = self._rollout(input_ids, attention_mask, policy, args.block_length, generator, mode)
        is_expert = torch.zeros(n, dtype=torch.bool, device=device)
        n_expert = 0
        if args.expert_steering and mode == "train":
            batch, firsts = self._with_expert_rollouts(batch, input_ids, attention_mask, G, generator)
            n_expert = len(firsts)
            is_expert = torch.cat([is_expert, torch.ones(n_expert, dtype=torch.bool, device=device)])
            inputs = list(inputs) + [inputs[i] for i in firsts]
            prompts = prompts + [prompts[i] for i in firsts]
            texts = texts + [texts[i] for i in firsts]

        # decode and score with TRL's reward calling convention (rewards are gathered across processes)
        completions_text, completion_ids = self._completions(batch["sequences"], encoded.prompt_length)
        if encoded.templated:
            completions: list[Any] = [[{"role": "assistant", "content": c}] for c in completions_text]
        else:
            completions = completions_text
        rewards_per_func = self._calculate_rewards(inputs, prompts, completions, completion_ids)
        task_rewards = (rewards_per_func * self.reward_weights.to(device).unsqueeze(0)).nansum(dim=1)
        nfe_all = gather(batch["nfe"].to(device).float())
        rewards = efficiency_reward(task_rewards, nfe_all, args.gen_length, args.alpha, args.reward_form)
        advantages, stds, process_slice = self._advantages(rewards, n, n_expert, G)
        all_expert = gather(is_expert.long()).bool()

        scores = dict(names=self.reward_func_names, rewards=rewards, task_rewards=task_rewards, nfe=nfe_all,
                      per_func=rewards_per_func, stds=stds, advantages=advantages, is_expert=all_expert)  # fmt: skip
        self._log_rollouts(mode, batch, is_expert, scores, completion_ids, texts, completions_text)
        out = self._loss_inputs(batch, mode)
        out["advantages"] = advantages[process_slice]
        out["is_expert"] = is_expert
        out["rewards"] = rewards[process_slice]
        out["task_rewards"] = task_rewards[process_slice]
        out["nfe"] = batch["nfe"].to(device)
        return out

    def _completions(self, sequences: torch.Tensor, prompt_length: int) -> tuple[list[str], list[list[int]]]:
        """The completions of rollout `sequences` `[N, P + L]` as texts and token ids, cut before the first of the
        trainer's EOS ids (`eos_token_ids`: `hf_unmask.generation.completion_eos_ids` of the dLLM and tokenizer)
        and decoded by `hf_unmask.generation.completion_texts`, as evaluation decodes them."""
        eos = self.eos_token_ids
        return (
            completion_texts(self.processing_class, sequences, prompt_length, eos),
            completion_token_ids(sequences, prompt_length, eos),
        )

    def _with_expert_rollouts(
        self,
        batch: dict[str, torch.Tensor],
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        G: int,
        generator: torch.Generator,
    ) -> tuple[dict[str, torch.Tensor], list[int]]:
        """Expert steering: one Fast-dLLM rollout per group (the process holds whole groups, see the config check)
        appended to the policy's rollouts; `(batch, the first row of each group)`."""
        args = self.args
        n = input_ids.shape[0]
        if n % G:
            raise RuntimeError(f"expert steering needs whole prompt groups on each process, got {n} rows for G={G}.")
        firsts = list(range(0, n, G))
        expert = self._rollout(
            input_ids[firsts], attention_mask[firsts], ConfidenceThreshold(args.expert_threshold),
            args.expert_block_length, generator,
        )  # fmt: skip
        # pi_old of the expert's actions on the states the expert visited, over the sets the policy would choose
        # from there (expert_scoring="policy", the paper's: every masked position in full diffusion), or over the
        # expert's own eligible sets (blocks of expert_block_length); the mixture is applied in the loss.
        if args.expert_scoring == "policy":
            expert["eligible"] = policy_eligible(expert["masked"], args.block_length or args.gen_length)
        with self._training_setting() as policy:
            expert["log_prob"] = step_log_probs(policy, expert)
        return concat_rollouts([batch, expert]), firsts

    def _advantages(
        self, rewards: torch.Tensor, n: int, n_expert: int, G: int
    ) -> tuple[torch.Tensor, torch.Tensor, slice]:
        """Group advantages over the G policy rollouts (+ the expert rollout) of each prompt, across processes:
        `(advantages, per-group reward std, this process's slice of the gathered rows)`."""
        device = rewards.device
        start = self.accelerator.process_index * n
        group_ids = torch.cat(
            [(start + torch.arange(n, device=device)) // G, start // G + torch.arange(n_expert, device=device)]
        )
        advantages, stds = group_advantages(rewards, gather(group_ids), self.scale_rewards)
        index = self.accelerator.process_index
        return advantages, stds, slice(index * (n + n_expert), (index + 1) * (n + n_expert))

    def _loss_inputs(self, batch: dict[str, torch.Tensor], mode: str) -> dict[str, Any]:
        """What the loss reads of the rollouts: the trajectory, the policy's recorded fields, `old_logps` (training)
        and `ref_logps` (KL only)."""
        out: dict[str, Any] = {key: batch[key] for key in (*STEP_FIELDS, "time", "live")}
        if PADDING_MASK in batch:  # block-diffusion canvases that end before the batch's
            out[PADDING_MASK] = batch[PADDING_MASK]
        # what the policy reads: the confidences (above), the dLLM's hidden states for a HiddenStatePolicy, the
        # re-masking fields (token confidences, decided times, revisable positions, re-mask actions) for a
        # RemaskingPolicy
        out.update(policy_fields(self.policy, batch))
        if mode == "train":
            out["old_logps"] = batch["log_prob"]
        if self.ref_policy is not None:
            ref = self.ref_policy
            with policy_setting(ref, self.policy.mode, self.policy.temperature):
                out["ref_logps"] = step_log_probs(ref, batch)
        return out

    def _log_rollouts(
        self,
        mode: str,
        batch: dict[str, torch.Tensor],
        is_expert: torch.Tensor,
        scores: dict[str, Any],
        completion_ids: list[list[int]],
        texts: list[str],
        completions_text: list[str],
    ) -> None:
        """Record the rollout metrics in TRL's metric store (which `log` averages) and the completions table."""
        lengths = gather(torch.tensor([len(c) for c in completion_ids], device=self.accelerator.device))
        metrics = self._metrics[mode]
        for name, value in rollout_metrics(batch, is_expert, scores, lengths, self._reduce_sum).items():
            metrics[name].append(value)
        if "remask_action" in batch:  # a re-masking policy: its re-masks per revisable position, and per rollout
            own = ~is_expert
            stats = torch.stack([batch[k][own].sum().float() for k in ("remask_action", "revisable", "remasked")])
            stats = self._reduce_sum(torch.cat([stats, own.sum().float().view(1).to(stats.device)]))
            metrics["remask_fraction"].append((stats[0] / stats[1].clamp(min=1)).item())
            metrics["remasked_per_rollout"].append((stats[2] / stats[3].clamp(min=1)).item())
        self._record_collapse_signals(mode, batch, is_expert)  # masked_at_end (monitoring.py)
        if self.log_completions:
            self._logs["prompt"].extend(gather_object(texts))
            self._logs["completion"].extend(gather_object(completions_text))
            for i, name in enumerate(self.reward_func_names):
                self._logs["rewards"][name].extend(scores["per_func"][:, i].tolist())
            self._logs["advantages"].extend(scores["advantages"].tolist())
            for column, values in self._pending_extra_logs.items():
                self._logs["extra"][column].extend(gather_object(values))
        self._pending_extra_logs.clear()
        for name, values in self._pending_metrics.items():  # what reward functions logged with `log_metric`
            metrics[name].extend(values)
        self._pending_metrics.clear()

    def _reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        return self.accelerator.reduce(tensor, reduction="sum")

    # ---------------------------------------------------------------------------------------------------- the loss
    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Optional[Any] = None,
    ) -> torch.Tensor:
        """GRPO over per-step action log-probabilities (see `hf_unmask.trainer.loss` for the exact averaging)."""
        if return_outputs:
            raise ValueError("UnmaskingGRPOTrainer does not return outputs from compute_loss.")
        mode = "train" if self.model.training else "eval"
        policy = self.policy
        rows, steps = inputs["live"].nonzero(as_tuple=True)
        # The forward goes through `model` (the DDP wrapper in multi-process runs) so gradients are synchronised; the
        # policy reads the recorded fields it names (confidences, the dLLM's hidden states for a HiddenStatePolicy,
        # the re-masking fields for a RemaskingPolicy) and scores the recorded actions (unmask, and re-mask).
        states = live_states(policy, inputs, rows, steps)
        logits = model(*policy.network_inputs(states))
        policy_logps, entropy = policy.log_prob_from_states(logits.float(), states, with_entropy=True)
        eligible = states["eligible"]
        if policy.remasks_decided_tokens:  # the entropy (floor, metric) is per decision: eligible or revisable
            eligible = eligible | states["revisable"]
        old_logps = inputs["old_logps"][rows, steps] if "old_logps" in inputs else policy_logps.detach()
        expert = inputs["is_expert"][rows]
        new_logps = policy_logps
        if bool(expert.any()):
            new_logps = expert_mixture_log_prob(new_logps, expert, self.num_generations)
            old_logps = expert_mixture_log_prob(old_logps, expert, self.num_generations)
        advantages = inputs["advantages"][rows]
        ratio = torch.exp(new_logps - old_logps)
        per_step = clipped_surrogate(ratio, advantages, self.epsilon_low, self.epsilon_high)
        kl = None
        if self.beta > 0 and "ref_logps" in inputs:
            kl = k3_kl(inputs["ref_logps"][rows, steps], policy_logps)
            per_step = per_step + self.beta * kl
        imitation = self._expert_imitation_coef()
        if imitation > 0 and bool(expert.any()):  # imitation of the expert: its action's NLL per eligible position
            nll = -policy_logps / eligible.sum(-1).clamp(min=1)
            per_step = per_step + imitation * torch.where(expert, nll, torch.zeros_like(nll))
        if self.args.entropy_floor > 0 and entropy is not None:  # robustness: keep the policy stochastic
            below = entropy_floor_penalty(entropy, eligible, self.args.entropy_floor)
            per_step = per_step + self.args.entropy_coef * torch.where(expert, torch.zeros_like(below), below)
        loss = mean_over_rollouts(per_step, rows, inputs["live"].shape[0])
        if mode == "train" and self._skips_zero_advantage_steps():
            zero = all_advantages_zero(inputs["advantages"], gather)
            self._zero_advantage_skip.record(zero)
            self._metrics[mode]["skipped_zero_advantage"].append(float(zero))  # fraction of skipped updates

        metrics = loss_metrics(
            ratio, advantages, self.epsilon_low, self.epsilon_high, ~expert, eligible, entropy, kl, self._reduce_sum
        )
        for name, value in metrics.items():
            self._metrics[mode][name].append(value)
        return loss

    def _skips_zero_advantage_steps(self) -> bool:
        """`skip_zero_advantage_steps`, when the loss has no term besides GRPO's (which is 0 with 0 advantages)."""
        args = self.args
        return args.skip_zero_advantage_steps and not (
            self.beta > 0 or args.entropy_floor > 0 or self._expert_imitation_coef() > 0
        )

    def _expert_imitation_coef(self) -> float:
        """`expert_imitation_coef`, decayed linearly to 0 over `expert_imitation_steps` (when > 0)."""
        coef, steps = self.args.expert_imitation_coef, self.args.expert_imitation_steps
        if coef <= 0 or steps <= 0:
            return coef
        return coef * max(0.0, 1.0 - self.state.global_step / steps)

    def train(self, *args: Any, **kwargs: Any) -> Any:
        """`Trainer.train`, where Ctrl-C finishes the current optimiser step, logs it, saves `checkpoint-<step>/`
        (policy + optimiser state, for `resume_from_checkpoint`) and raises `TrainingInterrupted` (a
        `KeyboardInterrupt`) naming it. A second Ctrl-C stops at once, without saving."""
        with self._stop_on_interrupt.installed():
            output = super().train(*args, **kwargs)
        if not self._stop_on_interrupt.requested:
            return output
        step = self.state.global_step
        checkpoint = os.path.join(self.args.output_dir, f"{PREFIX_CHECKPOINT_DIR}-{step}")
        if self.args.should_save and os.path.isdir(checkpoint):
            message = (
                f"stopped at step {step}; checkpoint saved to {checkpoint} (resume with --resume_from_checkpoint "
                f"{checkpoint})"
            )
        else:
            checkpoint, message = None, f"stopped at step {step}; no checkpoint was written by this process"
        raise TrainingInterrupted(message, step=step, checkpoint=checkpoint)
