"""Diffusion generation for masked diffusion LMs (LLaDA, Dream, BERT-style masked LMs) via transformers'
`custom_generate` hook. The implementation lives in the `hf_unmask` library; this file only forwards to it.

    model.generate(input_ids, custom_generate="<this repo>", trust_remote_code=True,
                   strategy="top_k_confidence", max_new_tokens=64, block_length=16, mask_token_id=...)
"""

from typing import Any

from hf_unmask.custom_generate import custom_generate


def generate(*args: Any, **kwargs: Any) -> Any:
    """Called by transformers as `generate(model=model, inputs=..., generation_config=..., **kwargs)`.

    Returns the sequences `[batch, prompt + max_new_tokens]`, or an `hf_unmask.DiffusionGenerateOutput` with
    `return_dict_in_generate=True`.
    """
    return custom_generate(*args, **kwargs)
