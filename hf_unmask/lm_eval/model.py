"""`HFUnmaskLM`: a masked dLLM as an lm-evaluation-harness model, registered as `hf_unmask`."""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Optional

import torch
from lm_eval.api.instance import Instance
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from .._warnings import warn_at_caller
from ..evaluation.distributed import init_distributed
from ..evaluation.model_io import ensure_diffusion_generate, tokenize_batches
from ..evaluation.specs import plan_sweep
from ..generation import completion_eos_ids, completion_texts, cut_at_eos, get_adapter
from ..generation.validation import position_table_size
from .likelihood import encode_pair, greedy_continuation, mc_loglikelihood, request_seed
from .model_args import ModelArgumentError, parse_model_args, parse_strategy, resolve_device, resolve_pretrained
from .stats import GenerationStats, register_stats

__all__ = ["HFUnmaskLM"]

logger = logging.getLogger(__name__)

# Request generation settings read here; any other is ignored with a warning.
_HANDLED_GEN_KWARGS = {"until", "max_gen_toks", "do_sample", "temperature", "top_k", "top_p"}


@register_model("hf_unmask")
class HFUnmaskLM(LM):
    """A masked dLLM (LLaDA, Dream, the built-in tiny dLLM, any `AutoDiffusionLM`) for lm-evaluation-harness: the
    completions of `generate_until` tasks come from `model.generate(..., strategy=...)`, the scores of multiple-choice
    tasks from the Monte-Carlo log-likelihood masked dLLMs are evaluated with.

    Keyword arguments are the `--model_args` (`hf_unmask.lm_eval.model_args.MODEL_ARGS`); `pretrained` may also be a
    loaded model (give `tokenizer` then) and `strategy` a strategy object.

    Generation length: L is `max_new_tokens` when given, else each request's `max_gen_toks` rounded up to a multiple
    of the block length; a completion never holds more than `max_gen_toks` tokens (the rest of L is dropped). A
    request whose prompt plus L does not fit the model's positions is refused before anything is generated.

    Example:
        ```python
        >>> from lm_eval.api.instance import Instance
        >>> lm = HFUnmaskLM(pretrained="tiny-dllm", strategy="confidence_threshold:threshold=0.9", block_length=8)
        >>> request = Instance("generate_until", {}, ("sort : 3 1 2", {"until": [";"], "max_gen_toks": 16}), 0)
        >>> lm.generate_until([request])
        ['1 2 3']
        ```
    """

    def __init__(self, **model_args: Any) -> None:
        super().__init__()
        self.settings = parse_model_args(model_args)
        self.strategy, self.strategy_spec = parse_strategy(self.settings.strategy)
        # under torchrun / accelerate launch: the process group, and this rank's device (cuda:LOCAL_RANK or CPU)
        self._distributed = init_distributed()
        device = resolve_device(self.settings.device, self._distributed)
        self.model, self.tokenizer = self._load(device)
        self._device = device
        self._rank, self._world_size = self._distributed.rank, self._distributed.world_size
        # the ids that end a completion: they stop generation (stop_at_eos) and cut the decoded text
        self.eos_ids = completion_eos_ids(self.model, self.tokenizer)
        adapter = get_adapter(self.model, getattr(self.model, "diffusion_adapter", None))
        self.adapter = adapter
        mask_id = adapter.mask_token_id()
        self.mask_id = int(mask_id if mask_id is not None else self.tokenizer.mask_token_id)
        self.block_length = self._default_block_length()
        if self.settings.max_new_tokens is not None:
            self._check_length_settings(self.settings.max_new_tokens)
        self.generation_stats = GenerationStats()
        register_stats(self.generation_stats)
        self._templated: set[str] = set()  # prompts rendered by apply_chat_template (their special tokens included)
        self._warned_gen_kwargs: set[str] = set()

    @classmethod
    def create_from_arg_string(cls, arg_string: str, additional_config: Optional[dict] = None) -> HFUnmaskLM:
        """From `--model_args`-style `key=value,key=value` text; see `create_from_arg_obj`."""
        from lm_eval.utils import simple_parse_args_string

        return cls.create_from_arg_obj(simple_parse_args_string(arg_string), additional_config)

    @classmethod
    def create_from_arg_obj(cls, arg_dict: dict[str, Any], additional_config: Optional[dict] = None) -> HFUnmaskLM:
        """From model arguments plus lm-eval's own settings (`--batch_size`, `--device`, ...); a key given in both
        takes the model argument's value (lm-eval always passes a batch size, 1 by default)."""
        extra = {k: v for k, v in (additional_config or {}).items() if v is not None and k not in arg_dict}
        return cls(**arg_dict, **extra)

    # ---- set-up ------------------------------------------------------------------------------------------------
    def _load(self, device: torch.device) -> tuple[Any, Any]:
        from ..models import load_dllm
        from ..models.loading import resolve_dtype

        settings = self.settings
        pretrained = settings.pretrained
        if not isinstance(pretrained, (str, os.PathLike)):
            if settings.tokenizer is None or isinstance(settings.tokenizer, (str, os.PathLike)):
                raise ModelArgumentError("pretrained is a model object: pass its tokenizer object as tokenizer=...")
            model = pretrained.to(device) if isinstance(pretrained, torch.nn.Module) else pretrained
            if settings.dtype is not None and resolve_dtype(settings.dtype) is not None:
                model = model.to(resolve_dtype(settings.dtype))
            return ensure_diffusion_generate(model, settings.tokenizer), settings.tokenizer
        model, tokenizer = load_dllm(
            resolve_pretrained(pretrained),
            dtype=settings.dtype,
            device=device,
            peft_adapter=settings.peft_adapter,
            tokenizer=settings.tokenizer,
            trust_remote_code=settings.trust_remote_code,
        )
        return ensure_diffusion_generate(model, tokenizer), tokenizer

    def _default_block_length(self) -> Optional[int]:
        if self.settings.block_length is not None:
            return self.settings.block_length
        from ..generation.config import resolve_generation_config

        config = resolve_generation_config(self.model, None, {})
        return int(config.block_length) if config.block_length is not None else None

    def _gen_length(self, max_gen_toks: int) -> int:
        """L for a request asking for `max_gen_toks` tokens (see the class docstring)."""
        if self.settings.max_new_tokens is not None:
            return self.settings.max_new_tokens
        bl = self.block_length
        return max_gen_toks if bl is None else -(-max_gen_toks // bl) * bl

    def _check_length_settings(self, gen_length: int) -> None:
        """The block length, steps and the strategy's steps fit L (the errors `generate` would raise, earlier)."""
        from ..generation.config import resolve_generation_config

        try:
            resolve_generation_config(
                self.model,
                None,
                {"max_new_tokens": gen_length, "block_length": self.block_length, **self.settings.generate_options()},
            )
            if self.strategy is not None:
                plan_sweep([self.strategy], [self.block_length], gen_length)
        except (ValueError, TypeError) as err:
            raise ModelArgumentError(f"L = {gen_length} generated positions: {err}") from err

    def _position_limit(self) -> tuple[Optional[int], str]:
        """The most positions (prompt + L) the model handles, and where that number comes from."""
        table = position_table_size(self.model)
        if table is not None:
            return table, "its learned position table"
        trained = self.adapter.trained_sequence_length()
        return (trained.positions, trained.source) if trained is not None else (None, "")

    def _check_fits(self, prompt_length: int, gen_length: int, max_gen_toks: int) -> None:
        config = getattr(self.model, "config", None)
        name = getattr(config, "name_or_path", "") or type(self.model).__name__
        checked = self.adapter.max_generation_length()
        limit, source = self._position_limit()
        fix = (
            "Ask for fewer tokens (--gen_kwargs max_gen_toks=N, or the task's generation_kwargs) or fix L with "
            "--model_args max_new_tokens=N"
        )
        if checked is not None and gen_length > checked.positions:
            raise ModelArgumentError(
                f"max_gen_toks={max_gen_toks} means L = {gen_length} generated positions, but {name} was checked to "
                f"generate at most {checked.positions} ({checked.source}). {fix} with N <= {checked.positions}."
            )
        if limit is not None and prompt_length + gen_length > limit:
            room = limit - prompt_length
            raise ModelArgumentError(
                f"max_gen_toks={max_gen_toks} means L = {gen_length} generated positions after a prompt of "
                f"{prompt_length} tokens: {prompt_length + gen_length} positions, but {name} handles {limit} "
                f"({source}). {fix}"
                + (f" with N <= {room}." if room > 0 else ", or shorten the prompt (fewer few-shot examples).")
            )

    # ---- lm-eval's multi-process interface -------------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        return self._device

    def all_gather(self, tensor: torch.Tensor) -> torch.Tensor:
        return self._distributed.all_gather(tensor)

    def gather_object(self, obj: Any, dst: int = 0) -> Optional[list[Any]]:
        return self._distributed.gather_object(obj, dst=dst)

    def barrier(self) -> None:
        self._distributed.barrier()

    # ---- chat templates ----------------------------------------------------------------------------------------
    @property
    def tokenizer_name(self) -> str:
        return str(getattr(self.tokenizer, "name_or_path", "") or type(self.tokenizer).__name__).replace("/", "__")

    def _require_chat_template(self) -> Any:
        template = getattr(self.tokenizer, "chat_template", None)
        if template is None:
            raise ModelArgumentError(
                f"--apply_chat_template: the tokenizer of {self.settings.pretrained!r} has no chat template. Drop "
                "--apply_chat_template, or pass tokenizer=FOLDER in --model_args with a tokenizer that has one."
            )
        return template

    def chat_template(self, chat_template: bool | str = False) -> Optional[str]:
        """The tokenizer's chat template (a named one when the tokenizer holds several)."""
        if chat_template is False or chat_template is None:
            return None
        template = self._require_chat_template()
        if isinstance(template, dict):
            name = chat_template if isinstance(chat_template, str) else "default"
            if name not in template:
                raise ModelArgumentError(
                    f"The tokenizer has no chat template named {name!r}; its templates: {', '.join(sorted(template))}."
                )
            return template[name]
        return template

    def apply_chat_template(self, chat_history: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The conversation rendered by the tokenizer's own chat template (prompts rendered here are encoded without
        adding special tokens again)."""
        self._require_chat_template()
        text = self.tokenizer.apply_chat_template(
            chat_history,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=not add_generation_prompt,
        )
        self._templated.add(text)
        return text

    def get_model_info(self) -> dict[str, Any]:
        """What lm-eval records in `results["config"]`."""
        return {
            "hf_unmask_strategy": self.strategy_spec or "(model default)",
            "hf_unmask_max_new_tokens": self.settings.max_new_tokens,
            "hf_unmask_block_length": self.block_length,
            "model_dtype": str(getattr(self.model, "dtype", "")),
        }

    # ---- requests ----------------------------------------------------------------------------------------------
    def _add_special(self, text: str) -> bool:
        return text not in self._templated

    def _sampling(self, gen_kwargs: dict[str, Any]) -> dict[str, Any]:
        """Token choice of a request: the `temperature` model argument when given, else the request's (greedy when
        it says do_sample=False or gives no positive temperature)."""
        for key in sorted(set(gen_kwargs) - _HANDLED_GEN_KWARGS - self._warned_gen_kwargs):
            self._warned_gen_kwargs.add(key)
            warn_at_caller(f"hf_unmask ignores the generation setting {key}={gen_kwargs[key]!r}.")
        options: dict[str, Any] = {}
        if self.settings.temperature is not None:
            options["temperature"] = self.settings.temperature
        elif gen_kwargs.get("do_sample") is False:
            options["temperature"] = 0.0
        else:
            temperature = float(gen_kwargs.get("temperature") or 0.0)
            options["temperature"] = temperature if temperature > 0 else 0.0
        for key in ("top_k", "top_p"):
            if gen_kwargs.get(key) is not None and getattr(self.settings, key) is None:
                options[key] = gen_kwargs[key]
        return options

    def generate_until(self, requests: list[Instance], disable_tqdm: bool = False) -> list[str]:
        """Completions, batched by generation settings and prompt length (longest first), returned in request order.

        Each is the decoded generation up to its first EOS and at most `max_gen_toks` tokens, cut before the first
        occurrence of any `until` string. Every request's length is checked before the first batch runs.
        """
        from tqdm import tqdm

        groups: dict[tuple[str, bool], list[int]] = {}
        plans = []
        for i, request in enumerate(requests):
            context, gen_kwargs = request.args
            gen_kwargs = dict(gen_kwargs or {})
            until = gen_kwargs.get("until") or []
            if isinstance(until, str):
                until = [until]
            if not isinstance(until, (list, tuple)) or not all(isinstance(u, str) for u in until):
                raise ModelArgumentError(f"until must be a string or a list of strings, got {until!r}.")
            max_gen_toks = int(gen_kwargs.get("max_gen_toks") or gen_kwargs.get("max_new_tokens") or 256)
            gen_length = self._gen_length(max_gen_toks)
            special = self._add_special(context)
            prompt_length = len(self.tokenizer(context, add_special_tokens=special)["input_ids"])
            self._check_fits(prompt_length, gen_length, max_gen_toks)
            plans.append((list(until), max_gen_toks, gen_length, prompt_length))
            settings = {k: v for k, v in gen_kwargs.items() if k != "until"}
            key = (json.dumps({**settings, "L": gen_length}, sort_keys=True, default=str), special)
            groups.setdefault(key, []).append(i)
        for gen_length in sorted({plan[2] for plan in plans}):
            self._check_length_settings(gen_length)

        results: list[Optional[str]] = [None] * len(requests)
        bar = tqdm(total=len(requests), disable=disable_tqdm or self.rank != 0, desc="hf_unmask generate_until")
        for (_, special), indices in groups.items():
            indices.sort(key=lambda i: (-plans[i][3], requests[i].args[0]))
            first = requests[indices[0]]
            gen_length = plans[indices[0]][2]
            options = self._sampling(dict(first.args[1] or {}))
            texts = [requests[i].args[0] for i in indices]
            for start, input_ids, attention_mask in tokenize_batches(
                self.tokenizer, texts, self.settings.batch_size, add_special_tokens=special
            ):
                batch = indices[start : start + input_ids.shape[0]]
                out = self.model.generate(
                    input_ids.to(self.device),
                    attention_mask=attention_mask.to(self.device),
                    strategy=self.strategy,
                    max_new_tokens=gen_length,
                    block_length=self.block_length,
                    seed=self.settings.seed,
                    return_dict_in_generate=True,
                    eos_token_id=self.eos_ids,
                    **options,
                    **self.settings.generate_options(),
                )
                P = input_ids.shape[1]
                sequences, nfes = out.sequences.cpu(), out.nfe.cpu().tolist()
                for row, i in enumerate(batch):
                    until, max_gen_toks = plans[i][0], plans[i][1]
                    kept = sequences[row : row + 1, : P + min(gen_length, max_gen_toks)]
                    [text] = completion_texts(self.tokenizer, kept, P, self.eos_ids)
                    results[i] = _cut_at_first(text, until)
                    gen_tokens = len(cut_at_eos(kept[0, P:].tolist(), self.eos_ids, keep_eos=True))
                    self.generation_stats.record(requests[i], int(nfes[row]), gen_tokens)
                    self.cache_hook.add_partial("generate_until", requests[i].args, results[i])
                bar.update(len(batch))
        bar.close()
        return [text if text is not None else "" for text in results]

    def loglikelihood(self, requests: list[Instance], disable_tqdm: bool = False) -> list[tuple[float, bool]]:
        """`(log-likelihood estimate, is_greedy)` per `(context, continuation)` request: the Monte-Carlo estimate of
        `hf_unmask.lm_eval.likelihood` with `mc_num` samples, seeded per request. `is_greedy` is False unless
        `check_greedy=true`."""
        from tqdm import tqdm

        encoded = []
        for request in requests:
            context, continuation = request.args
            special = self._add_special(context)
            context_ids, continuation_ids = encode_pair(self.tokenizer, context, continuation, special)
            length = len(context_ids) + len(continuation_ids)
            limit, source = self._position_limit()
            if limit is not None and length > limit:
                raise ModelArgumentError(
                    f"A loglikelihood request needs {length} positions (context and continuation), but the model "
                    f"handles {limit} ({source}). Shorten the context (fewer few-shot examples)."
                )
            encoded.append((context, continuation, context_ids, continuation_ids))
        out = []
        for context, continuation, context_ids, continuation_ids in tqdm(
            encoded, disable=disable_tqdm or self.rank != 0, desc="hf_unmask loglikelihood"
        ):
            generator = torch.Generator().manual_seed(request_seed(self.settings.seed, context, continuation))
            ll = mc_loglikelihood(
                self.adapter,
                context_ids,
                continuation_ids,
                self.mask_id,
                self.settings.mc_num,
                int(self.settings.mc_batch_size or self.settings.mc_num),
                generator,
                self.device,
            )
            greedy = False
            if self.settings.check_greedy and continuation_ids:
                greedy = greedy_continuation(self.model, context_ids, len(continuation_ids), self.device) == (
                    continuation_ids
                )
            out.append((ll, greedy))
            self.cache_hook.add_partial("loglikelihood", (context, continuation), (ll, greedy))
        return out

    def loglikelihood_rolling(self, requests: list[Instance], disable_tqdm: bool = False) -> list[float]:
        raise ModelArgumentError(
            "The hf_unmask model does not compute loglikelihood_rolling (perplexity tasks such as wikitext): a masked "
            "dLLM has no left-to-right factorisation of a whole text to score. Evaluate generate_until tasks (gsm8k, "
            "...) or loglikelihood multiple-choice tasks (arc_easy, hellaswag, ...) instead."
        )


def _cut_at_first(text: str, until: list[str]) -> str:
    """`text` up to the earliest occurrence of any non-empty string of `until`."""
    cuts = [text.find(stop) for stop in until if stop]
    cuts = [cut for cut in cuts if cut >= 0]
    return text[: min(cuts)] if cuts else text
