"""Shared pytest fixtures."""

from __future__ import annotations

import os

import pytest
import torch

# Tests are tiny: one intra-op thread per pytest worker (the suite runs with `-n 2` on 2 cores) avoids
# oversubscription that made single tests 20-50x slower on a loaded machine.
torch.set_num_threads(1)
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Back to one thread after a test that chose more (the CLI and the demo pick threads for their process)."""
    yield
    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_masked_lm():
    """A seeded random-weight 2-layer BERT masked LM (vocab 64, mask id 3) with hf_unmask's diffusion `generate`.

    Weights are drawn with a large init range (0.3) so the prompt visibly changes the predictions, and the output
    layer norm is scaled by 4 so confidences spread over ~0.25-0.99 (random weights otherwise give ~1/64 everywhere).
    Token ids 0-3 are special (3 is the mask); use ids 4-63 in prompts. Read-only: do not train or modify it.
    """
    from tiny_bert import seeded_tiny_bert

    import hf_unmask

    model = seeded_tiny_bert(0, initializer_range=0.3)
    with torch.no_grad():
        norm = model.cls.predictions.transform.LayerNorm
        norm.weight.mul_(4.0)
        norm.bias.mul_(4.0)
    return hf_unmask.enable_diffusion_generate(model, mask_token_id=3)
