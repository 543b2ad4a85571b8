"""Loading a published checkpoint into a native class: every weight must be found, none left over."""

from __future__ import annotations

from typing import Any


class StrictCheckpointMixin:
    """`from_pretrained` that refuses a checkpoint whose weights do not match the model's, naming them.

    transformers only warns about missing weights (and initialises them at random) or unexpected ones (and drops
    them); for a published dLLM either means the checkpoint is not the architecture the config says, so the
    generated text would be garbage without a word. A weight of the wrong shape is named too (transformers' own
    error only points to its log). `ignore_mismatched_sizes=True` and `output_loading_info=True` work as usual.
    """

    @classmethod
    def from_pretrained(cls, *args: Any, **kwargs: Any) -> Any:
        want_info = kwargs.pop("output_loading_info", False)
        allow_mismatch = kwargs.pop("ignore_mismatched_sizes", False)
        model, info = super().from_pretrained(  # type: ignore[misc]
            *args, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs
        )
        problems = []
        mismatched = [] if allow_mismatch else sorted(info.get("mismatched_keys") or [])
        if mismatched:
            shown = ", ".join(f"{key} (checkpoint {tuple(a)}, model {tuple(b)})" for key, a, b in mismatched[:8])
            problems.append(f"weights of the wrong shape: {shown}")
        for kind, hint in (
            ("missing_keys", "the checkpoint lacks these weights"),
            ("unexpected_keys", "the checkpoint has weights this architecture does not use"),
        ):
            names = sorted(info.get(kind) or [])
            if names:
                shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
                problems.append(f"{hint}: {shown}")
        if problems:
            raise ValueError(
                f"The checkpoint does not match {cls.__name__} ({model.config.model_type}, "
                f"{model.config.num_hidden_layers} layers): " + "; ".join(problems) + ". Check that config.json "
                "describes these weights (layer count, weight_tying / tie_word_embeddings, biases) and that every "
                "shard listed in model.safetensors.index.json is present."
            )
        return (model, info) if want_info else model
