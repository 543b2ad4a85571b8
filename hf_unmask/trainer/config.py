"""`UnmaskingGRPOConfig`: TRL's `GRPOConfig` plus what training an unmasking policy on a frozen dLLM needs.

Defaults follow the paper ("Learning Unmasking Policies for Diffusion Language Models", arXiv 2512.09106):
G = 8 rollouts per prompt, clip epsilon 0.5, 2 updates per rollout batch, no KL, no reward-std scaling,
AdamW lr 3e-5 with betas (0.9, 0.99) and weight decay 0.1, gradient clipping 0.2, cosine schedule with 100
warm-up steps, one epoch, L = 256 generated positions in blocks of BL = 32, 16 completions per device and step; and
those of its released code: blocks that end after BL steps with their masks left in place, the paper's policy
network, expert actions scored over every position the policy could unmask, no update from a step whose
advantages are all 0. The remaining differences are listed in docs/guides/training.md ("Faithful to the paper's code").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from trl import GRPOConfig

from .._warnings import warn_deprecated
from .config_checks import (  # noqa: F401 (the choices are part of this module's interface)
    ACTION_MODES,
    EXPERT_SCORINGS,
    POLICY_ARCHITECTURES,
    POLICY_TYPES,
    ROLLOUT_CACHE_MODES,
    SCALE_REWARDS,
    check_unmasking_fields,
)


@dataclass
class UnmaskingGRPOConfig(GRPOConfig):
    r"""Configuration of `UnmaskingGRPOTrainer`: GRPO on a learned unmasking policy, the dLLM being a frozen
    environment.

    Every field of TRL's `GRPOConfig` / `transformers.TrainingArguments` is available (output_dir, logging,
    checkpoints, `report_to`, `push_to_hub`, `hub_strategy`, `per_device_train_batch_size` (completions per device
    and step), `gradient_accumulation_steps`, `steps_per_generation`, ...). The fields below are added, or have the
    paper's defaults instead of TRL's. TRL's autoregressive generation fields (`max_completion_length`,
    `temperature`, `top_p`, tools, `loss_type`, ...) are not used; `max_completion_length` is set to `gen_length`.
    Those that would act on an autoregressive LM (`use_vllm`, `use_transformers_continuous_batching`,
    `cast_lm_head_to_fp32`, `use_liger_kernel`, `sync_ref_model`, `router_aux_loss_coef`) are refused.

    Reward: the task reward `r` (the weighted sum of the reward functions, e.g. correctness in {0, 1}) is combined
    with the number of dLLM forward passes NFE of the rollout:

    - `multiplicative` (paper): `R = r * ((L - NFE + 1) / L) ** alpha`;
    - `additive`: `R = r - alpha * NFE / L` (the paper reports that it reward-hacks early in training: while most
      rollouts are wrong, the fastest wrong one gets the highest reward).

    The training environment is the paper's: a block gets at most BL steps (`max_steps` / number of blocks) and
    whatever the policy has not unmasked by then stays `[MASK]` (an incomplete answer), unless
    `rollout_finish_blocks=True`.

    Example:
        ```python
        >>> from hf_unmask.trainer import UnmaskingGRPOConfig
        >>> config = UnmaskingGRPOConfig(output_dir="out", gen_length=64, block_length=16, alpha=1.0)
        >>> config.num_generations, config.epsilon, config.num_iterations, config.learning_rate
        (8, 0.5, 2, 3e-05)
        ```
    """

    # ---------------------------------------------------------------- reward
    alpha: float = field(
        default=1.0,
        metadata={
            "help": "Efficiency weight alpha of the reward (>= 0). 0 rewards correctness only; larger values favour "
            "fewer dLLM forward passes (the paper trains one policy per alpha in {0, 0.3, 1, 3, 10})."
        },
    )
    reward_form: str = field(
        default="multiplicative",
        metadata={
            "help": "How the task reward r and the NFE are combined: 'multiplicative' (paper): "
            "r * ((L - NFE + 1) / L) ** alpha, or 'additive': r - alpha * NFE / L."
        },
    )
    reward_columns: Optional[list[str]] = field(
        default=None,
        metadata={
            "help": "Dataset columns the reward functions read (e.g. ['answer']). Checked before training for reward "
            "functions that do not declare a `required_columns` attribute themselves."
        },
    )

    # ---------------------------------------------------------------- generation (the environment)
    gen_length: int = field(
        default=256,
        metadata={"help": "L: number of generated positions (all [MASK] at the start of a rollout)."},
    )
    block_length: Optional[int] = field(
        default=32,
        metadata={
            "help": "BL: semi-autoregressive block length; must divide gen_length. None or gen_length = full diffusion."
        },
    )
    dllm_temperature: float = field(
        default=0.0,
        metadata={
            "help": "Token temperature of the dLLM during rollouts: 0 = greedy argmax (paper), > 0 = Gumbel-max sampling."
        },
    )
    stop_at_eos: bool = field(
        default=False,
        metadata={
            "help": "Stop a rollout once its EOS is decided and everything before it is unmasked (fills the rest with "
            "EOS without forward passes). The paper keeps unmasking the EOS tail (False)."
        },
    )
    rollout_batch_size: Optional[int] = field(
        default=None,
        metadata={
            "help": "Rows per dLLM generate call during rollouts (None = the whole local generation batch at once). "
            "Lower it to bound memory with large dLLMs."
        },
    )
    rollout_finish_blocks: bool = field(
        default=False,
        metadata={
            "help": "Make every rollout finish its blocks: a row that falls behind one unmask per remaining step is "
            "topped up with the dLLM's most confident positions. Off (paper): a block ends after its BL steps and "
            "what the policy did not unmask stays [MASK], an incomplete answer that earns the reward of one. "
            "Evaluation rollouts always finish their blocks, as generate does."
        },
    )
    rollout_use_cache: bool = field(
        default=False,
        metadata={
            "help": "Run every rollout (the expert's too) and the final evaluation with generate's diffusion KV cache "
            "(Fast-dLLM's, use_cache=True): fewer positions per forward pass, the same number of passes. Needs a dLLM "
            "with a cache (LLaDA, LLaDA-MoE, LLaDA2.x, Dream, SDAR, the built-in tiny dLLM). The policy sees, and is trained on, the confidences "
            "of the cached forward passes."
        },
    )
    rollout_cache_implementation: str = field(
        default="prefix",
        metadata={
            "help": "With rollout_use_cache, generate's cache_implementation: 'prefix' (each step feeds the current "
            "block and everything after it) or 'dual' (the current block only; the positions after it are cached too)."
        },
    )
    rollout_cache_mode: Optional[str] = field(
        default=None,
        metadata={"help": "Deprecated: use --rollout_cache_implementation (the same values)."},
    )

    # ---------------------------------------------------------------- the policy
    policy_name_or_path: Optional[str] = field(
        default=None,
        metadata={
            "help": "Start from a saved policy (folder, Hub id or built-in policy name) instead of a fresh one: an "
            "ConfidencePolicy, a HiddenStatePolicy with --policy_type hidden_states, or a RemaskingPolicy with "
            "--policy_remasking true (which also warm-starts from a ConfidencePolicy)."
        },
    )
    action_mode: str = field(
        default="bernoulli",
        metadata={
            "help": "Action distribution sampled during training: 'bernoulli' (paper; an empty action is allowed and "
            "costs an NFE), 'bernoulli-argmax' or 'dpls'."
        },
    )
    policy_temperature: float = field(
        default=1.0,
        metadata={"help": "tau_pi used during training: the policy's logits are divided by it (paper: 1)."},
    )
    eval_policy_temperature: Optional[float] = field(
        default=None,
        metadata={
            "help": "tau_pi saved with the policy for inference (and used for evaluation rollouts). Default: 0.5 for "
            "semi-autoregressive training (BL < L) and 1.0 for full diffusion, the paper's best settings."
        },
    )
    policy_type: str = field(
        default="confidence",
        metadata={
            "help": "What a fresh policy reads per position: 'confidence' (ConfidencePolicy, the paper's policy: the "
            "dLLM's confidence, sized by policy_hidden_size / policy_num_heads / policy_ffn_size) or 'hidden_states' "
            "(HiddenStatePolicy, the paper's ablation: the dLLM's last hidden states through one block as wide as "
            "the dLLM, its width, heads and FFN read from the dLLM's config; the policy_* sizes do not apply). A "
            "saved policy (policy_name_or_path) must be of this type. 'hidden_states' rules out expert_steering and "
            "rollout_use_cache, and its rollouts keep the [steps, L, H] hidden states of every rollout in memory."
        },
    )
    policy_hidden_size: int = field(
        default=128,
        metadata={"help": "Width d of the policy's transformer block (policy_type 'confidence' only)."},
    )
    policy_num_heads: int = field(
        default=2, metadata={"help": "Attention heads of the policy's block (policy_type 'confidence' only)."}
    )
    policy_ffn_size: int = field(
        default=512, metadata={"help": "FFN width of the policy's block (policy_type 'confidence' only)."}
    )
    policy_confidence_feature: str = field(
        default="probability",
        metadata={
            "help": "How the policy reads the dLLM confidence c: 'probability' (paper) or 'log_odds' "
            "(log(c / (1 - c)), which separates the confidences near 1 that decide when an EOS may be committed). "
            "policy_type 'confidence' only."
        },
    )
    policy_init_bias: float = field(
        default=-2.0,
        metadata={
            "help": "Initial bias of the policy's output layer: every position starts with unmask probability "
            "about sigmoid(bias) (paper: -2, i.e. ~0.12, a slow and safe start)."
        },
    )
    policy_architecture: str = field(
        default="paper",
        metadata={
            "help": "Network of a fresh confidence policy: 'paper' (the paper's DiT block: adaLN linear on the "
            "conditioning, time features cos t and sin t, output weight at PyTorch's default init) or 'hf_unmask' "
            "(a SiLU before the adaLN linear, 64 frequencies of 1000 t, a zero output weight: the built-in policies). "
            "Recorded in the saved policy; a policy loaded with policy_name_or_path keeps its own."
        },
    )

    policy_remasking: bool = field(
        default=False,
        metadata={
            "help": "Train a RemaskingPolicy: the policy also re-masks decided tokens of the current block, reading "
            "the confidence of each decided token and its age (a re-mask costs steps like any other: the reward is "
            "unchanged). With --policy_name_or_path naming a commit-only ConfidencePolicy it is warm-started from it "
            "(the same decisions, re-masking rare at first); a saved RemaskingPolicy resumes as it is. Rules out "
            "expert_steering and policy_type 'hidden_states'."
        },
    )
    policy_remask_init_bias: float = field(
        default=-6.0,
        metadata={
            "help": "Initial bias of a RemaskingPolicy's re-mask output (fresh or warm-started): every decided "
            "position starts with re-mask probability about sigmoid(bias) (-6: ~0.0025, re-masking starts rare)."
        },
    )

    # ---------------------------------------------------------------- expert steering
    expert_steering: bool = field(
        default=False,
        metadata={
            "help": "Add one Fast-dLLM rollout per group (confidence threshold), scored under the mixture "
            "G/(G+1) pi + 1/(G+1) delta_expert; advantages use all G+1 samples (paper, full diffusion)."
        },
    )
    expert_threshold: float = field(
        default=0.9, metadata={"help": "Confidence threshold of the Fast-dLLM expert rollout."}
    )
    expert_block_length: Optional[int] = field(
        default=32,
        metadata={"help": "Block length of the expert rollout (paper: 32, semi-AR); must divide gen_length."},
    )
    expert_scoring: str = field(
        default="policy",
        metadata={
            "help": "Which positions the expert's actions are scored over: 'policy' (paper: the sets the trained "
            "policy chooses from at the same state, i.e. every masked position in full diffusion, where the paper "
            "uses expert steering, and the policy's block in semi-AR), so the policy also learns where the expert "
            "did NOT unmask (e.g. the EOS tail while the answer is still open); or 'expert' (the expert's own "
            "eligible sets, its blocks of expert_block_length)."
        },
    )
    expert_imitation_coef: float = field(
        default=0.0,
        metadata={
            "help": "Weight of an imitation term on the expert rollouts: the loss adds coef * the expert action's "
            "negative log-probability under pi per eligible position. The paper's mixture alone passes almost no "
            "gradient while pi gives the expert's action a tiny probability (the mixture's floor 1/(G+1) "
            "dominates), so a policy from scratch learns from the expert slowly. 0 = off (paper)."
        },
    )
    expert_imitation_steps: int = field(
        default=0,
        metadata={
            "help": "Decay expert_imitation_coef linearly to 0 over this many optimiser steps, after which GRPO "
            "alone trains (it can then improve on the expert). 0 = constant coefficient."
        },
    )

    # ---------------------------------------------------------------- the dLLM
    dllm_name_or_path: Optional[str] = field(
        default=None,
        metadata={
            "help": "The frozen dLLM: a Hub id or folder (LLaDA, Dream, any masked LM) or 'builtin' / "
            "'builtin:NAME' for a built-in tiny dLLM. Only read when the trainer is not given a dLLM object."
        },
    )
    dllm_dtype: Optional[str] = field(
        default=None,
        metadata={"help": "dtype the dLLM is loaded in: 'bfloat16', 'float16', 'float32' or 'auto'."},
    )
    dllm_peft_adapter: Optional[str] = field(
        default=None, metadata={"help": "A PEFT adapter (folder or Hub id) loaded on top of the dLLM, kept frozen."}
    )

    # ---------------------------------------------------------------- provenance (policy.trained_for)
    task_name: Optional[str] = field(
        default=None, metadata={"help": "Task name recorded in the policy's trained_for (e.g. 'gsm8k')."}
    )
    train_dataset_name: Optional[str] = field(
        default=None, metadata={"help": "Dataset id(s) recorded in the policy's trained_for."}
    )

    # ---------------------------------------------------------------- GRPO knobs with the paper's defaults
    num_generations: Optional[int] = field(
        default=8, metadata={"help": "G: policy rollouts per prompt (>= 2); the group the advantage is relative to."}
    )
    epsilon: float = field(
        default=0.5, metadata={"help": "Clip range of the per-step importance ratio: [1 - epsilon, 1 + epsilon]."}
    )
    num_iterations: int = field(default=2, metadata={"help": "Policy updates per rollout batch (mu in GRPO)."})
    beta: float = field(
        default=0.0,
        metadata={"help": "Weight of the KL term to a frozen copy of the initial policy (k3 estimator per step)."},
    )
    skip_zero_advantage_steps: bool = field(
        default=True,
        metadata={
            "help": "Skip the backward pass, and so the optimiser's update, of a step whose advantages are all 0 on "
            "every process (paper): AdamW's momentum and weight decay then leave the policy as it is. Only when the "
            "loss has no other term (beta, entropy_floor and the expert imitation coefficient are 0)."
        },
    )
    scale_rewards: str = field(
        default="none",
        metadata={
            "help": "Divide advantages by the reward std: 'none' (paper), 'group' (per prompt group) or 'batch'."
        },
    )

    # ---------------------------------------------------------------- robustness (off by default: the paper has none)
    entropy_floor: float = field(
        default=0.0,
        metadata={
            "help": "Entropy floor (nats per eligible position; a Bernoulli has at most ln 2 = 0.693): on every "
            "policy step whose mean entropy per eligible position is below it, the loss adds "
            "entropy_coef * (entropy_floor - entropy). It keeps the policy from turning deterministic, where most "
            "groups of rollouts get identical rewards (frac_reward_zero_std -> 1) and GRPO stops learning or drifts "
            "into never-unmask / everything-at-once. 0 = off (paper)."
        },
    )
    entropy_coef: float = field(
        default=1.0, metadata={"help": "Weight of the entropy-floor penalty (only used when entropy_floor > 0)."}
    )

    # ---------------------------------------------------------------- collapse warnings (policy's training rollouts)
    collapse_warnings: bool = field(
        default=True,
        metadata={
            "help": "Warn (logger.warning, once per episode, and once when it ends) when the policy's own training "
            "rollouts collapse: never-unmask, everything-at-once, or groups of identical rewards. The collapse/* "
            "metrics (1 on a logged step that meets a condition) are logged either way; false: no warnings."
        },
    )
    collapse_patience: int = field(
        default=3, metadata={"help": "Logged steps in a row a collapse condition must hold before the warning."}
    )
    collapse_unmask_fraction: float = field(
        default=0.02,
        metadata={
            "help": "never-unmask: the policy's own actions unmask at most this fraction of the eligible positions "
            "per step (unmask_fraction)."
        },
    )
    collapse_masked_fraction: float = field(
        default=0.9,
        metadata={
            "help": "never-unmask: at least this fraction of the generated positions is still [MASK] at the end of "
            "the policy's rollouts (masked_at_end)."
        },
    )
    collapse_steps_per_block: float = field(
        default=1.5,
        metadata={
            "help": "everything-at-once: mean NFE at most this many steps per block (1 = the minimum, one step per "
            "block) while the correctness fell (collapse_correctness_drop)."
        },
    )
    collapse_correctness_drop: float = field(
        default=0.3,
        metadata={
            "help": "everything-at-once: correctness at least this fraction below the best correctness logged so far "
            "in the run (0.3: at most 0.7 times the best)."
        },
    )
    collapse_zero_std_fraction: float = field(
        default=0.9,
        metadata={
            "help": "no-signal: at least this fraction of the groups got identical rewards (frac_reward_zero_std), "
            "so GRPO's advantage is 0 for them."
        },
    )

    # ---------------------------------------------------------------- optimiser defaults from the paper
    per_device_train_batch_size: int = field(
        default=16,
        metadata={"help": "Completions per device and optimiser step (paper: 16, i.e. 2 prompts x 8 rollouts)."},
    )
    learning_rate: float = field(default=3e-5, metadata={"help": "AdamW learning rate (paper: 3e-5)."})
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1."})
    adam_beta2: float = field(default=0.99, metadata={"help": "AdamW beta2 (paper: 0.99)."})
    weight_decay: float = field(default=0.1, metadata={"help": "AdamW weight decay (paper: 0.1)."})
    max_grad_norm: float = field(default=0.2, metadata={"help": "Gradient clipping norm (paper: 0.2)."})
    lr_scheduler_type: str = field(default="cosine", metadata={"help": "Learning-rate schedule (paper: cosine)."})
    warmup_steps: float = field(default=100, metadata={"help": "Linear warm-up steps (paper: 100)."})
    num_train_epochs: float = field(default=1.0, metadata={"help": "Epochs over the prompts (paper: 1)."})
    # The policy is a 331K-parameter module: train it in float32 (bf16 autocast would make the log-probs of the loss
    # differ from those of the rollouts) and without gradient checkpointing (it has none).
    bf16: Optional[bool] = field(
        default=False, metadata={"help": "bf16 autocast for the policy (off: the policy is tiny and trained in fp32)."}
    )
    gradient_checkpointing: Optional[bool] = field(
        default=None, metadata={"help": "Deprecated alias of activation_checkpointing (unused: the policy is tiny)."}
    )
    activation_checkpointing: Optional[bool] = field(
        default=False, metadata={"help": "Unused: the policy is a single small block."}
    )
    logging_steps: float = field(default=10, metadata={"help": "Log every X optimiser steps."})
    ddp_find_unused_parameters: Optional[bool] = field(
        default=False, metadata={"help": "DDP: every policy parameter is used in each step, so no search is needed."}
    )

    def __post_init__(self) -> None:
        if self.rollout_cache_mode is not None:
            warn_deprecated("rollout_cache_mode", "rollout_cache_implementation")
            self.rollout_cache_implementation, self.rollout_cache_mode = self.rollout_cache_mode, None
        self._check_unmasking_fields()
        if self.eval_policy_temperature is None:
            full_diffusion = self.block_length is None or self.block_length == self.gen_length
            self.eval_policy_temperature = 1.0 if full_diffusion else 0.5
        self.max_completion_length = self.gen_length
        super().__post_init__()
        if self.expert_steering and self.per_device_train_batch_size % self.num_generations != 0:
            raise ValueError(
                f"expert_steering adds one expert rollout per prompt group on the process that holds the group, so "
                f"each process must hold whole groups: per_device_train_batch_size ({self.per_device_train_batch_size})"
                f" must be a multiple of num_generations ({self.num_generations}). Set e.g. "
                f"--per_device_train_batch_size {self.num_generations}."
            )

    def _check_unmasking_fields(self) -> None:
        """Validate the fields this class adds; `ValueError` naming the problem and the fix (`config_checks.py`)."""
        check_unmasking_fields(self)

    def _check_collapse_and_best_fields(self) -> None:
        """The collapse_* thresholds; the best checkpoint's metric, direction and schedule (`monitoring.py`)."""
        from .monitoring import check_best_checkpoint_fields, check_collapse_fields

        check_collapse_fields(self)
        check_best_checkpoint_fields(self)
