"""`UnmaskingGRPOTrainer`: GRPO for learned unmasking policies (arXiv 2512.09106) on top of TRL's `GRPOTrainer`.

The trained model is the *policy* (an `hf_unmask.strategies.UnmaskingPolicy`, ~331K parameters); the dLLM is a
frozen environment. One rollout = one `diffusion_generate` call in which the policy chooses, at every denoising
step, which masked positions of the current block to unmask; the per-step record (`DiffusionTrajectory`) is what the
policy is trained on.

What is kept from TRL / transformers, and what is replaced:

- Reused as they are (`GRPOTrainer`): `get_train_dataloader` / `_get_train_sampler` (RepeatSampler: every prompt
  `num_generations` times, the generation batch repeated `num_iterations * steps_per_generation` times),
  `_get_eval_sampler`, `get_eval_dataloader`, `_set_signature_columns_if_needed`, `training_step` (step counter and
  step time), `_prepare_inputs` (generate once per generation batch, shuffle, split into `steps_per_generation`
  slices, buffer and reuse them for `num_iterations` updates), `_calculate_rewards` (TRL's reward-function calling
  convention, `None` -> NaN, async reward functions, reward models, the per-call length check, gathering across
  processes), `_log_completion_extra`, `_log_metric`, `log` (metric averaging, completions table),
  `prediction_step`, `_save_checkpoint`, `_load_optimizer_and_scheduler`.
- Reused from `transformers.Trainer`: everything else (accelerate, optimizer + scheduler, callbacks, `report_to`
  logging, checkpoint rotation, `resume_from_checkpoint`, RNG state, evaluation loop, `hub_strategy`).
- Overridden: `__init__` (GRPOTrainer's loads an autoregressive LM, reference model, vLLM... it is replaced by
  setting up the attributes the reused methods read, then calling `transformers.Trainer.__init__`),
  `_generate_and_score_completions` (rollouts through the dLLM, efficiency-wrapped rewards, group advantages, expert
  steering), `compute_loss` (GRPO over per-step action log-probabilities), `_save` / `_load_from_checkpoint`
  (the policy's own safetensors format and config), `create_model_card`, `push_to_hub`, `_push_from_checkpoint`
  (the policy's model card; never a pickle in the model repo), `train` (Ctrl-C finishes the step, saves a checkpoint
  and raises `TrainingInterrupted`; see hf_unmask/trainer/interrupt.py).

Loss (as in the reference code): for rollout i with advantage A_i and live steps t in S_i (steps that cost a dLLM
forward pass), with `r_it = exp(log pi(u_it | s_it) - log pi_old(u_it | s_it))` the ratio of the *joint* probability
of the step's action over all eligible positions,

    loss = -(1 / N) * sum_i (1 / |S_i|) * sum_{t in S_i} min(r_it A_i, clip(r_it, 1 - eps, 1 + eps) A_i)
           [+ beta * the same average of the k3 KL estimate exp(q - p) - (q - p) - 1, q = log pi_ref]

over the N rollouts of a micro-batch (gradient accumulation divides by the number of micro-batches).
"""

from __future__ import annotations

import copy
import math
import os
import shutil
import warnings
from collections import defaultdict, deque
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Optional, Union

import torch
import transformers
from accelerate.utils import gather, gather_object
from datasets import Dataset, IterableDataset
from torch import nn
from transformers import PreTrainedTokenizerBase, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR
from transformers.training_args import HubStrategy
from transformers.utils.hub import PushInProgress, hf_api
from trl import GRPOTrainer
from trl.data_utils import is_conversational
from trl.trainer.utils import identity, is_async_callable, start_event_loop_in_daemon

from .. import hub
from ..generation import diffusion_generate
from ..models import get_adapter, unwrap_model
from ..rewards import check_reward_output, efficiency_reward, required_columns
from ..strategies import ConfidenceThreshold, LearnedUnmaskingPolicy, UnmaskingPolicy
from .config import UnmaskingGRPOConfig
from .interrupt import StopOnInterrupt, TrainingInterrupted

RewardFunc = Union[Callable[..., list], nn.Module]

__all__ = ["UnmaskingGRPOTrainer", "efficiency_reward", "load_dllm"]

# Trajectory fields kept per rollout (leading axis = rollout, then step): what the loss reads.
_STEP_FIELDS = ("confidence", "masked", "eligible", "action")


def load_dllm(
    name_or_path: str,
    dtype: Optional[str] = None,
    peft_adapter: Optional[str] = None,
    trust_remote_code: bool = False,
) -> tuple[Any, Any]:
    """Load a dLLM and its tokenizer: `"builtin"` / `"builtin:NAME"` (shipped tiny dLLM) or any Hub id / folder that
    `hf_unmask.AutoDiffusionLM` loads (LLaDA, Dream, masked LMs), optionally with a PEFT adapter on top.

    Example:
        ```python
        >>> model, tokenizer = load_dllm("builtin")  # doctest: +SKIP
        ```
    """
    torch_dtype = None
    if dtype not in (None, "auto"):
        torch_dtype = getattr(torch, str(dtype), None)
        if not isinstance(torch_dtype, torch.dtype):
            raise ValueError(f"Unknown dllm_dtype {dtype!r}. Use float32, bfloat16, float16 or auto.")
    kwargs = {"dtype": torch_dtype} if torch_dtype is not None else {}
    from hf_unmask.models.tiny import builtin_model_name, is_builtin_alias

    if is_builtin_alias(name_or_path):
        from hf_unmask.models.tiny import load_builtin_model

        model, tokenizer = load_builtin_model(builtin_model_name(name_or_path), **kwargs)
        if peft_adapter is not None:
            from peft import PeftModel

            model = PeftModel.from_pretrained(model, peft_adapter)
        return model.eval(), tokenizer
    from hf_unmask.models import AutoDiffusionLM, load_tokenizer

    tokenizer = load_tokenizer(name_or_path, trust_remote_code=trust_remote_code)
    model = AutoDiffusionLM.from_pretrained(
        name_or_path, trust_remote_code=trust_remote_code, peft_adapter=peft_adapter, tokenizer=tokenizer, **kwargs
    )
    return model.eval(), tokenizer


def _reward_name(func: Any) -> str:
    if isinstance(func, nn.Module):
        return type(func).__name__
    return getattr(func, "__name__", None) or type(func).__name__


def _inference_mode_of(action_mode: str) -> str:
    return "dpls" if action_mode == "dpls" else "bernoulli-argmax"


def _pad_steps(x: torch.Tensor, steps: int) -> torch.Tensor:
    """Pad the step axis (dim 1) of `[N, T, ...]` with zeros / False up to `steps`."""
    missing = steps - x.shape[1]
    if missing <= 0:
        return x
    pad = torch.zeros((x.shape[0], missing, *x.shape[2:]), dtype=x.dtype, device=x.device)
    return torch.cat([x, pad], dim=1)


class UnmaskingGRPOTrainer(GRPOTrainer):
    """Train an unmasking policy with GRPO, the dLLM being a frozen environment.

    Args:
        model: the policy: an `UnmaskingPolicy`, a saved policy (folder / Hub id), or `None` for a fresh policy sized
            by `args.policy_*` (or loaded from `args.policy_name_or_path`).
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

    Example:
        ```python
        >>> from datasets import Dataset
        >>> from hf_unmask.trainer import UnmaskingGRPOConfig, UnmaskingGRPOTrainer
        >>> def exact(prompts, completions, answer, **kwargs):
        ...     return [float(c.strip() == a) for c, a in zip(completions, answer)]
        >>> exact.required_columns = ("answer",)
        >>> data = Dataset.from_list([{"prompt": "sort : 3 1 2", "answer": "1 2 3"}] * 16)
        >>> args = UnmaskingGRPOConfig(output_dir="out", dllm_name_or_path="builtin", gen_length=32,
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
        model: Optional[Union[LearnedUnmaskingPolicy, str]] = None,
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
        transformers.set_seed(args.seed)

        # ---- reward functions (checked first: cheap, and before anything is loaded) ------------------------------
        if reward_funcs is None:
            raise ValueError(
                "No reward function given. Pass reward_funcs=[f] with f(prompts, completions, **columns) -> list of "
                "floats, e.g. a correctness reward from hf_unmask.rewards."
            )
        if not isinstance(reward_funcs, (list, tuple)):
            reward_funcs = [reward_funcs]
        reward_funcs = list(reward_funcs)
        for i, func in enumerate(reward_funcs):
            if isinstance(func, str) or not (callable(func) or isinstance(func, nn.Module)):
                raise TypeError(
                    f"reward_funcs[{i}] is {func!r}; pass callables f(prompts, completions, **columns) -> list[float] "
                    "(hf_unmask.rewards.get_reward_function resolves reward names)."
                )
        self.reward_funcs = reward_funcs
        self.reward_func_names = [_reward_name(f) for f in reward_funcs]
        if args.reward_weights is not None:
            if len(args.reward_weights) != len(reward_funcs):
                raise ValueError(
                    f"{len(args.reward_weights)} reward_weights for {len(reward_funcs)} reward functions; give one "
                    "weight per function."
                )
            self.reward_weights = torch.tensor(args.reward_weights, dtype=torch.float32)
        else:
            self.reward_weights = torch.ones(len(reward_funcs), dtype=torch.float32)
        if reward_processing_classes is None:
            reward_processing_classes = [None] * len(reward_funcs)
        elif not isinstance(reward_processing_classes, list):
            reward_processing_classes = [reward_processing_classes]
        if len(reward_processing_classes) != len(reward_funcs):
            raise ValueError("Give one reward processing class per reward function (None for plain functions).")
        for func, proc in zip(reward_funcs, reward_processing_classes):
            if isinstance(func, nn.Module) and proc is None:
                raise ValueError(
                    f"The reward model {type(func).__name__} needs its tokenizer in reward_processing_classes."
                )
        self.reward_processing_classes = reward_processing_classes
        self.args = args  # read by the dataset checks below
        self._check_dataset(train_dataset, "train_dataset")
        if isinstance(eval_dataset, dict):
            for key, value in eval_dataset.items():
                self._check_dataset(value, f"eval_dataset[{key!r}]")
        else:
            self._check_dataset(eval_dataset, "eval_dataset")

        # ---- the dLLM: a frozen environment ----------------------------------------------------------------------
        if dllm is None or isinstance(dllm, (str, os.PathLike)):
            source = str(dllm) if dllm is not None else args.dllm_name_or_path
            if source is None:
                raise ValueError(
                    "No dLLM: pass dllm=<model> (with processing_class=<tokenizer>) or set dllm_name_or_path (a Hub id, "
                    "a folder, or 'builtin' for the shipped tiny dLLM)."
                )
            dllm, tokenizer = load_dllm(source, args.dllm_dtype, args.dllm_peft_adapter, args.trust_remote_code)
            processing_class = processing_class if processing_class is not None else tokenizer
            self._dllm_name: Optional[str] = source
        else:
            if args.dllm_peft_adapter is not None:
                raise ValueError(
                    "dllm_peft_adapter is only applied when the trainer loads the dLLM itself; pass a PeftModel as "
                    "dllm instead, or pass dllm=None with dllm_name_or_path."
                )
            config = getattr(unwrap_model(dllm), "config", None)
            self._dllm_name = args.dllm_name_or_path or getattr(config, "_name_or_path", None) or None
        if processing_class is None:
            raise ValueError(
                "Pass processing_class=<the dLLM's tokenizer>: prompts are tokenized and completions decoded with it."
            )
        get_adapter(dllm)  # unknown families fail here, with the list of supported ones
        dllm.requires_grad_(False)
        dllm.eval()
        self.dllm = dllm

        # ---- the policy: the trained model ------------------------------------------------------------------------
        policy = self._build_policy(model, args)

        # ---- attributes read by the reused GRPOTrainer methods -----------------------------------------------------
        self.num_generations = args.num_generations
        self.num_generations_eval = args.num_generations_eval or args.num_generations
        self.num_iterations = args.num_iterations
        self.epsilon_low = self.epsilon_high = float(args.epsilon)
        self.beta = float(args.beta)
        self.scale_rewards = args.scale_rewards
        self.shuffle_dataset = args.shuffle_dataset
        self.max_completion_length = args.gen_length
        self.temperature = args.dllm_temperature
        self.loss_type = "grpo"
        self.use_vllm = False
        self.rollout_func = None
        self.tools = []
        self.environments = None
        self.environment_factories = None
        self.chat_template_kwargs = args.chat_template_kwargs or {}
        self.use_adaptive_entropy = False
        self.aux_loss_enabled = False
        self._step = 0
        self._buffered_inputs = None
        self._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
        self._total_train_tokens = 0
        self._current_train_step_time = 0.0
        self.log_completions = args.log_completions
        self.log_multimodal = False
        self.log_unique_prompts = args.log_unique_prompts
        self.num_completions_to_print = args.num_completions_to_print
        self._logs = {
            "images": deque(maxlen=args.generation_batch_size),
            "prompt": deque(maxlen=args.generation_batch_size),
            "completion": deque(maxlen=args.generation_batch_size),
            "rewards": defaultdict(lambda: deque(maxlen=args.generation_batch_size)),
            "advantages": deque(maxlen=args.generation_batch_size),
            "extra": defaultdict(lambda: deque(maxlen=args.generation_batch_size)),
        }
        self._pending_extra_logs = defaultdict(list)
        self._pending_metrics = defaultdict(list)
        self._has_async_funcs = any(is_async_callable(f) for f in self.reward_funcs)
        if self._has_async_funcs:
            self.async_loop_thread, self.async_loop, ready = start_event_loop_in_daemon(name="UnmaskingGRPO-AsyncLoop")
            ready.wait()
        self._eval_calls = 0
        #: Evaluation rows / Pareto plot shown on the model card by `create_model_card` and `push_to_hub`.
        self.evaluation_results: Any = None
        self.evaluation_plot_path: Optional[str] = None

        # GRPOTrainer.__init__ is skipped on purpose (it loads an autoregressive LM, vLLM, a reference LM...).
        transformers.Trainer.__init__(
            self,
            model=policy,
            args=args,
            data_collator=identity,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=processing_class,
            callbacks=callbacks,
            optimizers=optimizers,
        )
        self._stop_on_interrupt = StopOnInterrupt()
        self.add_callback(self._stop_on_interrupt)
        if getattr(dllm, "hf_device_map", None) is None:
            self.dllm.to(self.accelerator.device)
        self.eos_token_ids = self._eos_token_ids()
        self.ref_policy = None
        if self.beta > 0:
            self.ref_policy = copy.deepcopy(policy).requires_grad_(False).eval().to(self.accelerator.device)
        for i, func in enumerate(self.reward_funcs):
            if isinstance(func, nn.Module):
                self.reward_funcs[i] = self.accelerator.prepare_model(
                    func, evaluation_mode=True, device_placement=True
                )
        if self.log_completions and self.accelerator.is_main_process:
            os.makedirs(os.path.join(args.output_dir, "completions"), exist_ok=True)
        generate_every = args.steps_per_generation * args.num_iterations
        if args.save_strategy == "steps" and args.save_steps and generate_every > args.gradient_accumulation_steps:
            steps_per_round = generate_every // args.gradient_accumulation_steps
            if steps_per_round and int(args.save_steps) % steps_per_round:
                warnings.warn(
                    f"save_steps={args.save_steps} is not a multiple of the {steps_per_round} optimiser steps that "
                    "share one rollout batch (num_iterations x steps_per_generation / gradient_accumulation_steps): "
                    "a run resumed from such a checkpoint draws new rollouts for the rest of that batch, so it will "
                    "not match an uninterrupted run exactly.",
                    UserWarning,
                    stacklevel=2,
                )
        self._probe_reward_functions(train_dataset)

    # ------------------------------------------------------------------------------------------------------------
    # set-up helpers
    # ------------------------------------------------------------------------------------------------------------
    @staticmethod
    def _build_policy(model: Any, args: UnmaskingGRPOConfig) -> LearnedUnmaskingPolicy:
        if model is None and args.policy_name_or_path is not None:
            model = args.policy_name_or_path
        if isinstance(model, (str, os.PathLike)):
            policy = LearnedUnmaskingPolicy.from_pretrained(str(model))
            if not isinstance(policy, LearnedUnmaskingPolicy):
                raise TypeError(f"'{model}' holds a {type(policy).__name__}, not a learned unmasking policy.")
        elif model is None:
            policy = UnmaskingPolicy(
                hidden_size=args.policy_hidden_size,
                num_heads=args.policy_num_heads,
                ffn_size=args.policy_ffn_size,
                init_bias=args.policy_init_bias,
            )
        elif isinstance(model, LearnedUnmaskingPolicy):
            policy = model
        else:
            raise TypeError(
                f"model must be an UnmaskingPolicy, a saved policy (folder or Hub id) or None, got "
                f"{type(model).__name__}. The dLLM goes in `dllm=`."
            )
        if policy.requires_hidden_states:
            raise NotImplementedError(
                f"{type(policy).__name__} reads dLLM hidden states; UnmaskingGRPOTrainer trains confidence policies "
                "(UnmaskingPolicy) only."
            )
        policy.mode = args.action_mode
        policy.temperature = float(args.policy_temperature)
        policy.beta = 1.0
        return policy.train()

    def _required_columns(self, func: Any) -> list[str]:
        """Columns `func` declares (`required_columns`, see hf_unmask.rewards), else `args.reward_columns`."""
        declared = list(required_columns(func))
        return declared if declared else list(self.args.reward_columns or [])

    def _check_dataset(self, dataset: Any, label: str) -> None:
        """A dataset must have a `prompt` column and every column a reward function reads (before any rollout)."""
        if dataset is None:
            return
        columns = getattr(dataset, "column_names", None)
        if columns is None:  # an IterableDataset without known features: checked on the first batch instead
            return
        if "prompt" not in columns:
            raise ValueError(
                f"{label} has no 'prompt' column (columns: {', '.join(columns)}). Rename the prompt column, e.g. "
                "dataset.rename_column('question', 'prompt'), or pass --prompt_column to the training script."
            )
        for func, name in zip(self.reward_funcs, self.reward_func_names):
            missing = [c for c in self._required_columns(func) if c not in columns]
            if missing:
                raise ValueError(
                    f"The reward function '{name}' needs the column(s) {missing}, which {label} lacks (columns: "
                    f"{', '.join(columns)}). Add the reference answers under that name, e.g. "
                    f"dataset.rename_column('<your answer column>', '{missing[0]}'), or pass --answer_column to the "
                    "training script."
                )

    def _probe_reward_functions(self, dataset: Any) -> None:
        """Call each plain reward function once on two dataset rows with empty completions: a function that returns
        the wrong number of rewards (or crashes) is reported before any rollout."""
        if dataset is None or isinstance(dataset, IterableDataset) or len(dataset) == 0:
            return
        rows = [dataset[i] for i in range(min(2, len(dataset)))]
        prompts = [row["prompt"] for row in rows]
        conversational = is_conversational({"prompt": prompts[0]})
        completions = [[{"role": "assistant", "content": ""}] for _ in rows] if conversational else ["" for _ in rows]
        kwargs = {k: [row[k] for row in rows] for k in rows[0] if k not in ("prompt", "completion", "completion_ids")}
        kwargs.update(trainer_state=self.state, log_extra=lambda *a, **k: None, log_metric=lambda *a, **k: None)
        for func, name in zip(self.reward_funcs, self.reward_func_names):
            if isinstance(func, nn.Module) or is_async_callable(func):
                continue
            try:
                out = func(prompts=prompts, completions=completions, completion_ids=[[] for _ in rows], **kwargs)
            except Exception as err:
                raise RuntimeError(
                    f"The reward function '{name}' failed when called (before training) on {len(rows)} dataset rows "
                    f"with empty completions: {type(err).__name__}: {err}. Reward functions are called as "
                    "f(prompts=..., completions=..., completion_ids=..., trainer_state=..., **dataset_columns) and "
                    "must accept **kwargs."
                ) from err
            check_reward_output(out, len(rows), name=name, allow_none=True)

    def _eos_token_ids(self) -> list[int]:
        ids = set(get_adapter(self.dllm).eos_token_ids())
        eos = getattr(self.processing_class, "eos_token_id", None)
        if eos is not None:
            ids.add(int(eos))
        return sorted(ids)

    @property
    def policy(self) -> LearnedUnmaskingPolicy:
        """The trained policy (unwrapped from DDP / accelerate)."""
        return self.accelerator.unwrap_model(self.model)

    @contextmanager
    def _policy_setting(self, mode: str, temperature: float):
        """Temporarily switch the policy's action mode and temperature (sampling vs inference settings)."""
        policy = self.policy
        saved = (policy.mode, policy.temperature)
        policy.mode, policy.temperature = mode, float(temperature)
        try:
            yield policy
        finally:
            policy.mode, policy.temperature = saved

    def _inference_setting(self):
        return self._policy_setting(_inference_mode_of(self.args.action_mode), self.args.eval_policy_temperature)

    def trained_for(self) -> dict[str, Any]:
        """What the policy was trained for (saved in its config and shown on its model card)."""
        args = self.args
        from ..models.tiny import builtin_model_name, is_builtin_alias

        base_model = self._dllm_name
        if is_builtin_alias(base_model):
            base_model = f"builtin:{builtin_model_name(base_model)}"  # which shipped model, not just "builtin"
        elif base_model is not None and os.path.isdir(base_model):
            base_model = str(Path(base_model).resolve())  # a local folder: the card's snippet works from anywhere
        record: dict[str, Any] = {
            "base_model": base_model,
            "gen_length": args.gen_length,
            "block_length": args.block_length or args.gen_length,
            "alpha": args.alpha,
            "temperature": args.policy_temperature,
            "task": args.task_name,
            "dataset": args.train_dataset_name,
            "training_steps": self.state.global_step or None,
            "reward_form": args.reward_form,
            "num_generations": args.num_generations,
        }
        if args.policy_name_or_path is not None:
            record["initialized_from"] = str(args.policy_name_or_path)
        if args.expert_steering:
            record["expert_steering"] = {"threshold": args.expert_threshold, "block_length": args.expert_block_length}
        return {k: v for k, v in record.items() if v is not None}

    # ------------------------------------------------------------------------------------------------------------
    # rollouts
    # ------------------------------------------------------------------------------------------------------------
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

    def _prompt_texts(self, prompts: list[Any]) -> tuple[list[str], bool]:
        if is_conversational({"prompt": prompts[0]}):
            texts = [
                self.processing_class.apply_chat_template(
                    p, tokenize=False, add_generation_prompt=True, **self.chat_template_kwargs
                )
                for p in prompts
            ]
            return texts, True
        return [str(p) for p in prompts], False

    def _tokenize(self, texts: list[str], templated: bool) -> tuple[torch.Tensor, torch.Tensor]:
        enc = self.processing_class(
            texts, return_tensors="pt", padding=True, padding_side="left", add_special_tokens=not templated
        )
        device = self.accelerator.device
        return enc["input_ids"].to(device), enc["attention_mask"].to(device)

    @torch.no_grad()
    def _rollout(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        strategy: Any,
        block_length: Optional[int],
        generator: torch.Generator,
    ) -> dict[str, torch.Tensor]:
        """Generate with `strategy` and return `sequences`, `nfe` and the trajectory as `[N, T, ...]` tensors."""
        args = self.args
        size = args.rollout_batch_size or input_ids.shape[0]
        parts = []
        for start in range(0, input_ids.shape[0], size):
            out = diffusion_generate(
                self.dllm,
                input_ids[start : start + size],
                attention_mask=attention_mask[start : start + size],
                strategy=strategy,
                generator=generator,
                max_new_tokens=args.gen_length,
                block_length=block_length,
                steps=None,
                max_steps=None,
                temperature=args.dllm_temperature if args.dllm_temperature > 0 else None,
                stop_at_eos=args.stop_at_eos,
                progress_fallback=False,
                output_trajectory=True,
                return_dict_in_generate=True,
            )
            traj = out.trajectory
            part = {"sequences": out.sequences, "nfe": out.nfe}
            for name in (*_STEP_FIELDS, "time", "live", "log_prob"):
                value = getattr(traj, name)
                if value is not None:
                    part[name] = value.transpose(0, 1).contiguous()  # [T, B, ...] -> [B, T, ...]
            parts.append(part)
        steps = max(p["live"].shape[1] for p in parts)
        merged = {}
        for key in parts[0]:
            values = [p[key] if key in ("sequences", "nfe") else _pad_steps(p[key], steps) for p in parts]
            merged[key] = torch.cat(values, dim=0)
        return merged

    @torch.no_grad()
    def _step_log_probs(self, policy: LearnedUnmaskingPolicy, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """`[N, T]` log-probabilities of the recorded actions under `policy` (0 on steps that are not live)."""
        live = batch["live"]
        out = torch.zeros(live.shape, dtype=torch.float32, device=live.device)
        rows, steps = live.nonzero(as_tuple=True)
        if rows.numel() == 0:
            return out
        logits = policy(batch["confidence"][rows, steps], batch["masked"][rows, steps], batch["time"][rows, steps])
        log_prob, _ = policy.log_prob_from_logits(
            logits.float(), batch["eligible"][rows, steps], batch["action"][rows, steps], with_entropy=False
        )
        out[rows, steps] = log_prob.float()
        return out

    def _decode(self, sequences: torch.Tensor, prompt_length: int) -> tuple[list[str], list[list[int]]]:
        eos = set(self.eos_token_ids)
        texts, ids = [], []
        for row in sequences[:, prompt_length:].tolist():
            cut = next((i for i, tok in enumerate(row) if tok in eos), len(row))
            ids.append(row[:cut])
            texts.append(self.processing_class.decode(row[:cut], skip_special_tokens=True).strip())
        return texts, ids

    def _generate_and_score_completions(self, inputs: list[dict[str, Any]]) -> dict[str, Any]:
        """Roll out the local generation batch (and the expert rollouts), score it and compute the advantages.

        Returns a dict of per-rollout tensors (leading axis = rollout, then denoising step) that `_prepare_inputs`
        shuffles, splits and buffers: the trajectory (`confidence`, `masked`, `eligible`, `action`, `time`,
        `live`), `old_logps`, `ref_logps` (KL only), `advantages`, `is_expert`, and for inspection `rewards`,
        `task_rewards` and `nfe`.
        """
        args = self.args
        device = self.accelerator.device
        mode = "train" if self.model.training else "eval"
        G = self.num_generations if mode == "train" else self.num_generations_eval
        n = len(inputs)
        prompts = [x["prompt"] for x in inputs]
        texts, templated = self._prompt_texts(prompts)
        input_ids, attention_mask = self._tokenize(texts, templated)
        generator = self._rollout_generator(device, mode)

        # policy rollouts: the training distribution, or the inference setting for evaluation
        setting = (
            self._policy_setting(args.action_mode, args.policy_temperature)
            if mode == "train"
            else self._inference_setting()
        )
        with setting as policy:
            batch = self._rollout(input_ids, attention_mask, policy, args.block_length, generator)
        is_expert = torch.zeros(n, dtype=torch.bool, device=device)

        # expert steering: one Fast-dLLM rollout per group (the process holds whole groups, see the config check)
        n_expert = 0
        if args.expert_steering and mode == "train":
            if n % G:
                raise RuntimeError(
                    f"expert steering needs whole prompt groups on each process, got {n} rows for G={G}."
                )
            firsts = list(range(0, n, G))
            expert = self._rollout(
                input_ids[firsts],
                attention_mask[firsts],
                ConfidenceThreshold(args.expert_threshold),
                args.expert_block_length,
                generator,
            )
            # pi_old of the expert's actions, on the states and eligible sets the expert visited (blocks of
            # expert_block_length), as the reference implementation scores them; the mixture is applied in the loss.
            with self._policy_setting(args.action_mode, args.policy_temperature) as policy:
                expert["log_prob"] = self._step_log_probs(policy, expert)
            steps = max(batch["live"].shape[1], expert["live"].shape[1])
            for key in batch:
                if key in ("sequences", "nfe"):
                    continue
                batch[key] = torch.cat([_pad_steps(batch[key], steps), _pad_steps(expert[key], steps)], dim=0)
            batch["sequences"] = torch.cat([batch["sequences"], expert["sequences"]], dim=0)
            batch["nfe"] = torch.cat([batch["nfe"], expert["nfe"]], dim=0)
            n_expert = len(firsts)
            is_expert = torch.cat([is_expert, torch.ones(n_expert, dtype=torch.bool, device=device)])
            inputs = list(inputs) + [inputs[i] for i in firsts]
            prompts = prompts + [prompts[i] for i in firsts]
            texts = texts + [texts[i] for i in firsts]

        # decode and score (TRL's reward calling convention; rewards are gathered across processes)
        completions_text, completion_ids = self._decode(batch["sequences"], input_ids.shape[1])
        if is_conversational({"prompt": prompts[0]}):
            completions: list[Any] = [[{"role": "assistant", "content": c}] for c in completions_text]
        else:
            completions = completions_text
        rewards_per_func = self._calculate_rewards(inputs, prompts, completions, completion_ids)
        task_rewards = (rewards_per_func * self.reward_weights.to(device).unsqueeze(0)).nansum(dim=1)
        nfe_all = gather(batch["nfe"].to(device).float())
        rewards = efficiency_reward(task_rewards, nfe_all, args.gen_length, args.alpha, args.reward_form)

        # group advantages over the G policy rollouts (+ the expert rollout) of each prompt
        local_total = n + n_expert
        start = self.accelerator.process_index * n
        group_ids = torch.cat(
            [
                (start + torch.arange(n, device=device)) // G,
                start // G + torch.arange(n_expert, device=device),
            ]
        )
        group_ids = gather(group_ids)
        num_groups = int(group_ids.max()) + 1
        counts = torch.zeros(num_groups, device=device).index_add_(0, group_ids, torch.ones_like(rewards))
        means = torch.zeros(num_groups, device=device).index_add_(0, group_ids, rewards) / counts
        sq = torch.zeros(num_groups, device=device).index_add_(0, group_ids, (rewards - means[group_ids]) ** 2)
        stds = (sq / (counts - 1).clamp(min=1)).sqrt()
        advantages = rewards - means[group_ids]
        if self.scale_rewards == "group":
            advantages = advantages / (stds[group_ids] + 1e-4)
        elif self.scale_rewards == "batch":
            advantages = advantages / (rewards.std() + 1e-4) if rewards.numel() > 1 else advantages
        all_expert = gather(is_expert.long()).bool()
        process_slice = slice(
            self.accelerator.process_index * local_total, (self.accelerator.process_index + 1) * local_total
        )

        # metrics (policy rollouts only, except the expert/* ones)
        policy_rows = ~all_expert
        metrics = self._metrics[mode]
        metrics["reward"].append(rewards[policy_rows].mean().item())
        metrics["reward_std"].append(rewards[policy_rows].std().item() if int(policy_rows.sum()) > 1 else 0.0)
        metrics["correctness"].append(task_rewards[policy_rows].nanmean().item())
        metrics["nfe/mean"].append(nfe_all[policy_rows].mean().item())
        metrics["nfe/min"].append(nfe_all[policy_rows].min().item())
        metrics["nfe/max"].append(nfe_all[policy_rows].max().item())
        for i, name in enumerate(self.reward_func_names):
            metrics[f"rewards/{name}/mean"].append(torch.nanmean(rewards_per_func[policy_rows, i]).item())
        metrics["frac_reward_zero_std"].append((stds < 1e-6).float().mean().item())
        lengths = gather(torch.tensor([len(c) for c in completion_ids], device=device, dtype=torch.float32))
        metrics["completions/mean_length"].append(lengths[policy_rows].mean().item())
        own = ~is_expert
        live, eligible, action = batch["live"][own], batch["eligible"][own], batch["action"][own]
        stats = torch.stack(
            [
                action.sum().float(),
                eligible.sum().float(),
                (live & ~action.any(-1)).sum().float(),
                live.sum().float(),
            ]
        ).to(device)
        stats = self.accelerator.reduce(stats, reduction="sum")
        metrics["unmask_fraction"].append((stats[0] / stats[1].clamp(min=1)).item())
        metrics["empty_action_fraction"].append((stats[2] / stats[3].clamp(min=1)).item())
        if n_expert or all_expert.any():
            metrics["expert/reward"].append(rewards[all_expert].mean().item())
            metrics["expert/correctness"].append(task_rewards[all_expert].nanmean().item())
            metrics["expert/nfe"].append(nfe_all[all_expert].mean().item())
            metrics["expert/advantage"].append(advantages[all_expert].mean().item())

        if self.log_completions:
            self._logs["prompt"].extend(gather_object(texts))
            self._logs["completion"].extend(gather_object(completions_text))
            for i, name in enumerate(self.reward_func_names):
                self._logs["rewards"][name].extend(rewards_per_func[:, i].tolist())
            self._logs["advantages"].extend(advantages.tolist())
            for column, values in self._pending_extra_logs.items():
                self._logs["extra"][column].extend(gather_object(values))
        self._pending_extra_logs.clear()
        for name, values in self._pending_metrics.items():
            metrics[name].extend(values)
        self._pending_metrics.clear()

        out: dict[str, Any] = {key: batch[key] for key in (*_STEP_FIELDS, "time", "live")}
        if mode == "train":
            out["old_logps"] = batch["log_prob"]
        if self.ref_policy is not None:
            ref = self.ref_policy
            saved = (ref.mode, ref.temperature)
            ref.mode, ref.temperature = self.policy.mode, self.policy.temperature
            try:
                out["ref_logps"] = self._step_log_probs(ref, batch)
            finally:
                ref.mode, ref.temperature = saved
        out["advantages"] = advantages[process_slice]
        out["is_expert"] = is_expert
        out["rewards"] = rewards[process_slice]
        out["task_rewards"] = task_rewards[process_slice]
        out["nfe"] = batch["nfe"].to(device)
        return out

    # ------------------------------------------------------------------------------------------------------------
    # the loss
    # ------------------------------------------------------------------------------------------------------------
    def compute_loss(
        self,
        model: nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Optional[Any] = None,
    ) -> torch.Tensor:
        """GRPO over per-step action log-probabilities (see the module docstring for the exact averaging)."""
        if return_outputs:
            raise ValueError("UnmaskingGRPOTrainer does not return outputs from compute_loss.")
        mode = "train" if self.model.training else "eval"
        policy = self.policy
        live = inputs["live"]
        rows, steps = live.nonzero(as_tuple=True)
        eligible, action = inputs["eligible"][rows, steps], inputs["action"][rows, steps]
        # The forward goes through `model` (the DDP wrapper in multi-process runs) so gradients are synchronised.
        logits = model(inputs["confidence"][rows, steps], inputs["masked"][rows, steps], inputs["time"][rows, steps])
        new = policy.log_prob_from_logits(logits.float(), eligible, action, with_entropy=True)
        new_logps, entropy = new[0], new[1]
        old_logps = inputs["old_logps"][rows, steps] if "old_logps" in inputs else new_logps.detach()
        expert = inputs["is_expert"][rows]
        if bool(expert.any()):
            # Expert rollouts come from the mixture (G/(G+E)) pi + (1/(G+E)) delta_expert; delta = 1 for the expert's
            # own action, so log q = logaddexp(log(G/(G+E)) + log pi, log(1/(G+E))), for new and old alike.
            G = self.num_generations
            log_w_pi, log_w_expert = math.log(G / (G + 1)), math.log(1 / (G + 1))
            new_logps = torch.where(
                expert, torch.logaddexp(new_logps + log_w_pi, torch.full_like(new_logps, log_w_expert)), new_logps
            )
            old_logps = torch.where(
                expert, torch.logaddexp(old_logps + log_w_pi, torch.full_like(old_logps, log_w_expert)), old_logps
            )
        advantages = inputs["advantages"][rows]
        ratio = torch.exp(new_logps - old_logps)
        clipped = torch.clamp(ratio, 1 - self.epsilon_low, 1 + self.epsilon_high)
        per_step = -torch.min(ratio * advantages, clipped * advantages)
        kl = None
        if self.beta > 0 and "ref_logps" in inputs:
            delta = inputs["ref_logps"][rows, steps] - new[0]
            kl = torch.exp(delta) - delta - 1
            per_step = per_step + self.beta * kl
        n_rollouts = live.shape[0]
        per_rollout = torch.zeros(n_rollouts, dtype=per_step.dtype, device=per_step.device).index_add(
            0, rows, per_step
        )
        loss = (per_rollout / live.sum(1).clamp(min=1)).mean()

        # metrics: means over the live steps of all processes
        with torch.no_grad():
            low = ((ratio < 1 - self.epsilon_low) & (advantages < 0)).float()
            high = ((ratio > 1 + self.epsilon_high) & (advantages > 0)).float()
            own = ~expert
            values = [low.sum(), high.sum(), torch.tensor(float(low.numel()), device=low.device)]
            if entropy is not None:
                values += [entropy[own].sum(), eligible[own].sum().float()]
            if kl is not None:
                values += [kl.sum()]
            totals = self.accelerator.reduce(torch.stack([v.float() for v in values]), reduction="sum")
            count = totals[2].clamp(min=1)
            metrics = self._metrics[mode]
            metrics["clip_fraction"].append(((totals[0] + totals[1]) / count).item())
            metrics["clip_fraction/low"].append((totals[0] / count).item())
            metrics["clip_fraction/high"].append((totals[1] / count).item())
            index = 3
            if entropy is not None:
                metrics["entropy"].append((totals[3] / totals[4].clamp(min=1)).item())
                index = 5
            if kl is not None:
                metrics["kl"].append((totals[index] / count).item())
        return loss

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

    # ------------------------------------------------------------------------------------------------------------
    # saving, loading and the Hub: the policy's own format and model card
    # ------------------------------------------------------------------------------------------------------------
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
        Path(output_dir, "training_config.json").write_text(self.args.to_json_string())

    def _write_card(self, folder: str) -> None:
        """The card of the policy saved in `folder`; its snippet loads the Hub repo when the run pushes, else the
        folder itself by its absolute path (a bare folder name would only resolve from one working directory)."""
        from ..model_card import write_model_card

        if self.args.push_to_hub:
            repo_id = self.hub_model_id or self.args.hub_model_id or Path(self.args.output_dir).absolute().name
        else:
            repo_id = str(Path(folder).resolve())
        write_model_card(
            self.policy,
            folder,
            repo_id=repo_id,
            evaluation_results=self.evaluation_results,
            plot_path=self.evaluation_plot_path,
        )

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model: Optional[nn.Module] = None) -> None:
        """Load the policy weights of a checkpoint written by `_save` (safetensors, strict)."""
        model = model if model is not None else self.policy
        weights = Path(resume_from_checkpoint) / hub.WEIGHTS_NAME
        if not weights.is_file():
            raise ValueError(
                f"No {hub.WEIGHTS_NAME} in {resume_from_checkpoint}: not a checkpoint of UnmaskingGRPOTrainer."
            )
        state_dict = hub.load_weights(weights)
        hub.check_state_dict(model.state_dict(), state_dict, source=str(weights))
        model.load_state_dict(state_dict, strict=True)

    def create_model_card(self, model_name: Optional[str] = None, **kwargs: Any) -> None:
        """Write the policy's model card (`hf_unmask.model_card`) as `output_dir/README.md`."""
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
        files = [hub.CONFIG_NAME, hub.WEIGHTS_NAME, "README.md", "training_config.json"]
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
