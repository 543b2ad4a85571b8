"""Diffusion generation through transformers' own `custom_generate` hook.

transformers (>= 4.56) lets `model.generate(..., custom_generate="user/repo", trust_remote_code=True)` run the
`generate` function of `custom_generate/generate.py` in a Hub repo (or a local folder) instead of its own
decoding. hf_unmask ships such a folder, `CUSTOM_GENERATE_DIR`; its `generate.py` is a thin shim that calls
`custom_generate` below, so the logic stays versioned with the installed library.

Push it once, then any supported dLLM loaded with plain transformers whose class has transformers' `generate`
(`GenerationMixin`: e.g. BERT's LM-head class, `AutoModelForCausalLM.from_pretrained(..., is_decoder=False)`) can
use it. `*ForMaskedLM` classes have no `generate` for `custom_generate=` to go through (`AttributeError` before
transformers runs): give them the same generation with `hf_unmask.enable_diffusion_generate(model)`.

Not run in tests (they write to and read from the Hub):

```python
>>> import hf_unmask
>>> hf_unmask.push_custom_generate("me/diffusion-generate")  # doctest: +SKIP
>>> model.generate(input_ids, custom_generate="me/diffusion-generate", trust_remote_code=True,  # doctest: +SKIP
...                strategy="top_k_confidence", max_new_tokens=64, block_length=16)
```
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

#: Folder to push as a Hub repo: `README.md` (the repo card) and `custom_generate/{generate.py,requirements.txt}`.
CUSTOM_GENERATE_DIR: str = str(Path(__file__).parent / "hub_templates" / "custom_generate_repo")


def custom_generate(*args: Any, **kwargs: Any) -> Any:
    """Run `hf_unmask.diffusion_generate` with the arguments transformers gives a `custom_generate` function.

    transformers calls it as `generate(model=model, inputs=..., generation_config=..., logits_processor=...,
    stopping_criteria=..., ..., **user_kwargs)`; when a model repo itself contains `custom_generate/` it binds
    `model=` and passes the user's arguments (positional ones included) as given. Diffusion options
    (`strategy`, `max_new_tokens`, `block_length`, `steps`, `mask_token_id`, `seed`, ...) pass through.

    Example (the folder itself, here with a small random BERT and transformers' LM-head class):
        ```python
        >>> import torch
        >>> import hf_unmask
        >>> from transformers import BertConfig, BertLMHeadModel
        >>> config = BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        ...                     intermediate_size=64, is_decoder=False)
        >>> model = BertLMHeadModel(config)
        >>> out = model.generate(torch.tensor([[5, 6, 7]]), custom_generate=hf_unmask.CUSTOM_GENERATE_DIR,
        ...                      trust_remote_code=True, strategy="top_k_confidence", max_new_tokens=4,
        ...                      mask_token_id=3)
        >>> out.shape
        torch.Size([1, 7])
        ```
    """
    from .generation.inputs import normalize_generate_arguments
    from .generation.loop import diffusion_generate

    if "model" in kwargs:
        model = kwargs.pop("model")
    elif args:
        model, args = args[0], args[1:]
    else:
        raise TypeError("custom_generate() needs the model (transformers passes it as model=...).")
    kwargs = normalize_generate_arguments(args, kwargs)
    adapter = kwargs.pop("adapter", None) or getattr(model, "diffusion_adapter", None)
    return diffusion_generate(model, adapter=adapter, **kwargs)


def push_custom_generate(
    repo_id: str,
    *,
    token: Optional[str] = None,
    private: Optional[bool] = None,
    revision: Optional[str] = None,
    commit_message: str = "Upload hf_unmask custom_generate (diffusion generation)",
) -> Any:
    """Create `repo_id` (a model repo) if needed and upload `CUSTOM_GENERATE_DIR` to it in one commit.

    Example (not run in tests: it writes to the Hub):
        ```python
        >>> import hf_unmask
        >>> hf_unmask.push_custom_generate("me/diffusion-generate")  # doctest: +SKIP
        ```
    """
    from huggingface_hub import HfApi

    api = HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=CUSTOM_GENERATE_DIR,
        revision=revision,
        commit_message=commit_message,
        ignore_patterns=["__pycache__/*", "**/__pycache__/*", "*.pyc"],
    )
