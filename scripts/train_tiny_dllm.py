"""Train the built-in tiny masked-diffusion LM on the built-in verifiable tasks.

Objective (LLaDA's SFT loss): for every sample draw a mask ratio t ~ U(eps, 1), mask each token of the answer
region (completion followed by EOS padding up to the answer length L) with probability t, never the prompt,
and minimise the cross-entropy on the masked tokens weighted by 1/t, averaged over the B x L answer positions.
The t of a batch are drawn stratified (one uniform offset, B evenly spaced points; each t is still U(eps, 1)),
which lowers the variance of the 1/t-weighted loss.

Example:
    ```bash
    python scripts/train_tiny_dllm.py --output_dir outputs/tiny-dllm --max_steps 3000 --seed 0
    # interrupted? continue from the last checkpoint:
    python scripts/train_tiny_dllm.py --output_dir outputs/tiny-dllm --max_steps 3000 --seed 0 \
        --resume outputs/tiny-dllm/checkpoints/checkpoint-1500
    ```

The output folder holds `model.safetensors` + `config.json`, the tokenizer, and a `generation_config.json`
(a `DiffusionGenerationConfig`: L, block length, mask / EOS ids) so that
`hf_unmask.load_builtin_model` / `AutoModelForMaskedLM.from_pretrained` give a ready-to-generate model.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any, Optional

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from hf_unmask.generation import DiffusionGenerationConfig
from hf_unmask.models.tiny import TinyDLLMConfig, TinyDLLMForMaskedDiffusion, build_tokenizer
from hf_unmask.strategies import TopKConfidence
from hf_unmask.tasks import get_task
from hf_unmask.tasks.evaluate import task_accuracy

DEFAULT_TASKS = ("program_trace", "shell_game", "sort_digits")
TRAINER_STATE = "trainer_state.pt"
TRAINING_ARGS = "training_args.json"


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    """Command-line options (all have defaults; `--output_dir` is required)."""
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    p.add_argument("--output_dir", required=True, help="where the final model, tokenizer and checkpoints go")
    p.add_argument("--tasks", nargs="+", default=list(DEFAULT_TASKS), help="built-in task names to train on")
    p.add_argument("--task_weights", type=float, nargs="+", default=None, help="sampling weight per task")
    p.add_argument("--gen_length", type=int, default=16, help="answer length L (completion + EOS padding)")
    p.add_argument(
        "--min_gen_length",
        type=int,
        default=None,
        help="train over a range of L: each batch draws L from min_gen_length, min_gen_length + gen_length_step, "
        "..., gen_length (default: gen_length only)",
    )
    p.add_argument("--gen_length_step", type=int, default=8, help="spacing of the L drawn with --min_gen_length")
    p.add_argument(
        "--max_gen_length",
        type=int,
        default=None,
        help="longest L the final check also runs at (e.g. 2x gen_length: RoPE and the local convolution are "
        "relative, so the model runs beyond its training L); recorded as config.max_gen_length, below which "
        "generate does not warn (default: gen_length)",
    )
    p.add_argument("--block_length", type=int, default=8, help="default block length of generation_config.json")
    p.add_argument("--hidden_size", type=int, default=128)
    p.add_argument("--num_layers", type=int, default=4)
    p.add_argument("--num_heads", type=int, default=4)
    p.add_argument("--intermediate_size", type=int, default=512)
    p.add_argument("--conv_kernel_size", type=int, default=9, help="local depthwise conv before attention (0 = off)")
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--max_steps", type=int, default=3000)
    p.add_argument("--learning_rate", type=float, default=1.5e-3)
    p.add_argument("--warmup_steps", type=int, default=100)
    p.add_argument("--weight_decay", type=float, default=0.01)
    p.add_argument("--max_grad_norm", type=float, default=1.0)
    p.add_argument("--eps", type=float, default=1e-3, help="smallest mask ratio t")
    p.add_argument("--n_train", type=int, default=30000, help="training examples per task")
    p.add_argument("--n_test", type=int, default=500, help="held-out examples per task (excluded from training)")
    p.add_argument("--data_seed", type=int, default=0, help="seed of the task generators (same for all models)")
    p.add_argument("--seed", type=int, default=0, help="seed of initialisation, batches and masks")
    p.add_argument("--save_steps", type=int, default=500, help="write a resumable checkpoint every N steps")
    p.add_argument("--save_total_limit", type=int, default=2, help="keep only the last N checkpoints")
    p.add_argument("--resume", default=None, help="checkpoint folder to resume from (or 'last' in output_dir)")
    p.add_argument("--eval_examples", type=int, default=128, help="test examples per task for the final check")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--no_progress", action="store_true", help="disable the tqdm progress bar")
    return p.parse_args(argv)


# ---------------------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------------------
def encode_split(
    rows: list[dict[str, str]], tokenizer: Any, gen_length: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Left-padded prompt ids and mask `[N, P]`, and answer ids `[N, L]` (completion then EOS padding)."""
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    prompts = [tokenizer(r["prompt"]).input_ids for r in rows]
    answers = [tokenizer(r["reference"], add_special_tokens=False).input_ids for r in rows]
    longest = max(len(a) for a in answers)
    if longest >= gen_length:
        raise ValueError(f"A reference has {longest} tokens; gen_length={gen_length} must leave room for an EOS.")
    unk = tokenizer.unk_token_id
    if any(unk in ids for ids in prompts + answers):
        raise ValueError("Some task text is not covered by the tokenizer vocabulary ([UNK] found).")
    P = max(len(p) for p in prompts)
    prompt_ids = torch.full((len(rows), P), pad, dtype=torch.long)
    prompt_mask = torch.zeros((len(rows), P), dtype=torch.long)
    answer_ids = torch.full((len(rows), gen_length), eos, dtype=torch.long)
    for i, (p, a) in enumerate(zip(prompts, answers)):
        prompt_ids[i, P - len(p) :] = torch.tensor(p)
        prompt_mask[i, P - len(p) :] = 1
        answer_ids[i, : len(a)] = torch.tensor(a)
    return prompt_ids, prompt_mask, answer_ids


def training_gen_lengths(args: argparse.Namespace) -> list[int]:
    """The answer lengths L a batch can be drawn at: `gen_length` alone, or the range from `--min_gen_length`."""
    low = args.gen_length if args.min_gen_length is None else args.min_gen_length
    if not 0 < low <= args.gen_length:
        raise ValueError(f"--min_gen_length={low} must be between 1 and --gen_length={args.gen_length}.")
    if args.gen_length_step < 1:
        raise ValueError(f"--gen_length_step must be >= 1, got {args.gen_length_step}.")
    lengths = list(range(low, args.gen_length + 1, args.gen_length_step))
    return lengths if lengths[-1] == args.gen_length else [*lengths, args.gen_length]


def build_training_data(
    args: argparse.Namespace, tokenizer: Any
) -> tuple[list[dict[str, torch.Tensor]], dict[str, list[dict[str, str]]]]:
    """Encode the train split of every task into its own pool; return the pools and the test rows per task.

    Batches are drawn from one task at a time, so a batch's left padding is only as long as that task needs.
    Answers are padded with EOS to the longest L; a batch drawn at a shorter L keeps its first L columns, so every
    answer must fit the shortest L with room for one EOS.
    """
    pools, tests = [], {}
    shortest = min(training_gen_lengths(args))
    for name in args.tasks:
        splits = get_task(name).dataset(n_train=args.n_train, n_test=args.n_test, seed=args.data_seed)
        prompt_ids, prompt_mask, answer_ids = encode_split(list(splits["train"]), tokenizer, shortest)
        answer_ids = F.pad(answer_ids, (0, args.gen_length - shortest), value=tokenizer.eos_token_id)
        pools.append({"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "answer_ids": answer_ids})
        tests[name] = list(splits["test"])
    return pools, tests


# ---------------------------------------------------------------------------------------------------------
# loss
# ---------------------------------------------------------------------------------------------------------
def masked_diffusion_loss(
    model: TinyDLLMForMaskedDiffusion,
    prompt_ids: torch.Tensor,
    prompt_mask: torch.Tensor,
    answer_ids: torch.Tensor,
    mask_token_id: int,
    eps: float,
    generator: torch.Generator,
) -> torch.Tensor:
    """LLaDA SFT loss on one batch: mask the answer with ratio t ~ U(eps, 1), CE on masked tokens / t."""
    B, L = answer_ids.shape
    offset = torch.rand((), generator=generator)
    u = (offset + torch.arange(B) / B) % 1.0  # stratified: every u (hence t) is marginally U(0, 1)
    t = eps + (1 - eps) * u[torch.randperm(B, generator=generator)]
    masked = torch.rand((B, L), generator=generator) < t.unsqueeze(1)
    noisy = answer_ids.masked_fill(masked, mask_token_id)
    input_ids = torch.cat([prompt_ids, noisy], dim=1)
    attention_mask = torch.cat([prompt_mask, torch.ones_like(noisy)], dim=1)
    logits = model(input_ids=input_ids, attention_mask=attention_mask).logits[:, prompt_ids.shape[1] :]
    ce = F.cross_entropy(logits.float().transpose(1, 2), answer_ids, reduction="none")  # [B, L]
    return (ce * masked / t.unsqueeze(1)).sum() / (B * L)


def trim_left_padding(prompt_ids: torch.Tensor, prompt_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop the prompt columns that are padding in every row of the batch."""
    keep = int(prompt_mask.sum(1).max())
    return prompt_ids[:, -keep:], prompt_mask[:, -keep:]


def cosine_schedule(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up then cosine decay to 10% of the peak learning rate."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


# ---------------------------------------------------------------------------------------------------------
# checkpoints
# ---------------------------------------------------------------------------------------------------------
def save_checkpoint(
    folder: Path,
    model: TinyDLLMForMaskedDiffusion,
    optimizer: torch.optim.Optimizer,
    scheduler: Any,
    generator: torch.Generator,
    step: int,
    elapsed: float,
) -> None:
    """Weights (safetensors) + optimizer, scheduler, RNG state and step, enough to resume bit for bit."""
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    state = {
        "step": step,
        "elapsed_seconds": elapsed,
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "python_rng": random.getstate(),
    }
    torch.save(state, folder / TRAINER_STATE)


def latest_checkpoint(output_dir: Path) -> Optional[Path]:
    """The checkpoint folder with the highest step under `output_dir/checkpoints`, if any."""
    folders = [p for p in (output_dir / "checkpoints").glob("checkpoint-*") if (p / TRAINER_STATE).is_file()]
    return max(folders, key=lambda p: int(p.name.split("-")[-1])) if folders else None


def prune_checkpoints(output_dir: Path, keep: int) -> None:
    folders = sorted((output_dir / "checkpoints").glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]))
    for old in folders[: max(0, len(folders) - keep)]:
        shutil.rmtree(old)


def generation_config_for(args: argparse.Namespace, tokenizer: Any) -> DiffusionGenerationConfig:
    """Defaults the shipped model generates with: L, block length, mask / EOS ids. No EOS early stop: policies are
    trained and evaluated unmasking the EOS tail, as in the paper (`stop_at_eos=True` per call turns it on)."""
    return DiffusionGenerationConfig(
        max_new_tokens=args.gen_length,
        block_length=args.block_length,
        mask_token_id=tokenizer.mask_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )


# ---------------------------------------------------------------------------------------------------------
# main
# ---------------------------------------------------------------------------------------------------------
def train(args: argparse.Namespace) -> dict[str, Any]:
    """Train (or resume), write the final model folder, and return a summary (loss, time, accuracies)."""
    torch.set_num_threads(args.threads)
    output_dir = Path(args.output_dir)
    tokenizer = build_tokenizer()
    pools, tests = build_training_data(args, tokenizer)
    gen_lengths = training_gen_lengths(args)
    longest_prompt = max(int(pool["prompt_mask"].sum(1).max()) for pool in pools)
    config = TinyDLLMConfig(
        vocab_size=len(tokenizer),
        hidden_size=args.hidden_size,
        num_hidden_layers=args.num_layers,
        num_attention_heads=args.num_heads,
        intermediate_size=args.intermediate_size,
        conv_kernel_size=args.conv_kernel_size,
        max_position_embeddings=max(128, longest_prompt + max(args.gen_length, args.max_gen_length or 0)),
        trained_gen_length=args.gen_length,
        max_gen_length=args.max_gen_length if (args.max_gen_length or 0) > args.gen_length else None,
        mask_token_id=tokenizer.mask_token_id,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.bos_token_id,
    )
    weights = torch.tensor(args.task_weights if args.task_weights else [1.0] * len(pools), dtype=torch.float)
    if weights.numel() != len(pools):
        raise ValueError(f"--task_weights needs one weight per task ({len(pools)}), got {weights.numel()}.")

    torch.manual_seed(args.seed)
    random.seed(args.seed)
    model = TinyDLLMForMaskedDiffusion(config)
    model.generation_config = generation_config_for(args, tokenizer)
    decay = [p for name, p in model.named_parameters() if p.dim() >= 2 and "embed" not in name]
    no_decay = [p for name, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in name)]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": args.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=args.learning_rate,
        betas=(0.9, 0.98),
    )
    scheduler = cosine_schedule(optimizer, args.warmup_steps, args.max_steps)
    generator = torch.Generator().manual_seed(args.seed)
    step, elapsed_before = 0, 0.0

    resume = args.resume
    if resume == "last":
        resume = latest_checkpoint(output_dir)
        if resume is None:
            raise FileNotFoundError(f"--resume last: no checkpoint under {output_dir / 'checkpoints'}.")
    if resume is not None:
        resume = Path(resume)
        state = torch.load(resume / TRAINER_STATE, weights_only=True)
        loaded = TinyDLLMForMaskedDiffusion.from_pretrained(resume)
        model.load_state_dict(loaded.state_dict())
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        random.setstate(state["python_rng"])
        step, elapsed_before = int(state["step"]), float(state["elapsed_seconds"])
        print(f"Resumed from {resume} at step {step}.", file=sys.stderr)

    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / TRAINING_ARGS).write_text(json.dumps(vars(args), indent=2, sort_keys=True) + "\n")
    n_params = sum(p.numel() for p in model.parameters())
    model.train()
    start = time.perf_counter()
    bar = tqdm(total=args.max_steps, initial=step, desc="train", disable=args.no_progress, dynamic_ncols=True)
    smooth: Optional[float] = None
    # Ctrl-C finishes the current step, then saves a resumable checkpoint (a second Ctrl-C stops at once)
    interrupted: list[bool] = []
    previous_handler = signal.getsignal(signal.SIGINT)

    def request_stop(signum: int, frame: Any) -> None:
        if interrupted:
            raise KeyboardInterrupt
        interrupted.append(True)

    signal.signal(signal.SIGINT, request_stop)
    try:
        while step < args.max_steps and not interrupted:
            pool = pools[int(torch.multinomial(weights, 1, generator=generator))]
            index = torch.randint(0, pool["answer_ids"].shape[0], (args.batch_size,), generator=generator)
            prompt_ids, prompt_mask = trim_left_padding(pool["prompt_ids"][index], pool["prompt_mask"][index])
            # a single L draws nothing, so single-length runs keep the random stream of earlier releases
            L = (
                gen_lengths[int(torch.randint(0, len(gen_lengths), (), generator=generator))]
                if len(gen_lengths) > 1
                else gen_lengths[0]
            )
            loss = masked_diffusion_loss(
                model,
                prompt_ids,
                prompt_mask,
                pool["answer_ids"][index, :L],
                config.mask_token_id,
                args.eps,
                generator,
            )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
            optimizer.step()
            scheduler.step()
            step += 1
            smooth = loss.item() if smooth is None else 0.98 * smooth + 0.02 * loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{smooth:.4f}", lr=f"{scheduler.get_last_lr()[0]:.2e}")
            if args.save_steps > 0 and (step % args.save_steps == 0 or step == args.max_steps):
                elapsed = elapsed_before + time.perf_counter() - start
                save_checkpoint(
                    output_dir / "checkpoints" / f"checkpoint-{step}",
                    model,
                    optimizer,
                    scheduler,
                    generator,
                    step,
                    elapsed,
                )
                prune_checkpoints(output_dir, args.save_total_limit)

    finally:
        signal.signal(signal.SIGINT, previous_handler)
    if interrupted:
        bar.close()
        folder = output_dir / "checkpoints" / f"checkpoint-{step}"
        elapsed = elapsed_before + time.perf_counter() - start
        save_checkpoint(folder, model, optimizer, scheduler, generator, step, elapsed)
        print(
            f"train_tiny_dllm.py: interrupted at step {step}; checkpoint saved to {folder} (continue with the same "
            "command and --resume last)",
            file=sys.stderr,
        )
        raise SystemExit(130)
    bar.close()
    elapsed = elapsed_before + time.perf_counter() - start

    model.eval()
    model.save_pretrained(output_dir)
    tokenizer.save_pretrained(output_dir)
    summary: dict[str, Any] = {
        "steps": step,
        "train_seconds": round(elapsed, 1),
        "parameters": n_params,
        "final_loss_ema": smooth,
        "seed": args.seed,
    }
    if args.eval_examples > 0:

        def accuracy_at(gen_length: Optional[int]) -> dict[str, float]:
            """Top-k confidence accuracy per task; `None`: the generation config's L."""
            extra = {} if gen_length is None else {"max_new_tokens": gen_length}
            return {
                name: task_accuracy(
                    model, tokenizer, get_task(name), rows[: args.eval_examples], strategy=TopKConfidence(), seed=0,
                    **extra,
                )
                for name, rows in tests.items()
            }  # fmt: skip

        summary["top_k_confidence_accuracy"] = accuracy_at(None)
        if config.max_gen_length is not None:  # the same check at the longest L the config promises
            summary[f"top_k_confidence_accuracy_at_L{config.max_gen_length}"] = accuracy_at(config.max_gen_length)
    (output_dir / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return summary


def main(argv: Optional[list[str]] = None) -> None:
    try:
        train(parse_args(argv))
    except KeyboardInterrupt:  # before the first step (data generation): nothing to save
        print("train_tiny_dllm.py: interrupted before training started; nothing was saved", file=sys.stderr)
        raise SystemExit(130) from None


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
