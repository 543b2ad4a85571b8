"""The paper's policy network (`architecture="paper"`) and loading checkpoints saved by the paper's code.

`Reference` below is an independent implementation of the paper's confidence policy written from its description:
separate q/k/v projections, RoPE on interleaved pairs, adaLN chunks in the order (scale, shift, gate) x 2 with no
SiLU before them, time features sinusoidal with max period 1 rounded through bfloat16. Its weights are saved in the
layout of the paper's code (`config.json` of a transformers `PolicyHFWrapper`, `base_policy.*` tensors).
"""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from torch import nn

from hf_unmask.strategies import (
    ConfidencePolicy,
    HiddenStatePolicy,
    UnmaskingPolicy,
    UnmaskingStrategy,
    get_strategy_by_name,
    load_builtin_policy,
    resolve_strategy_name,
)
from hf_unmask.strategies.paper_checkpoint import save_paper_layout
from hf_unmask.strategies.policy_network import paper_time_features

PAPER_CONFIG = {
    "architectures": ["PolicyHFWrapper"],
    "model_type": "policy",
    "torch_dtype": "float32",
    "transformers_version": "4.46.0",
}


class ReferenceBlock(nn.Module):
    def __init__(self, d: int, heads: int, ffn: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.q_proj, self.k_proj, self.v_proj = nn.Linear(d, d), nn.Linear(d, d), nn.Linear(d, d)
        self.out_proj = nn.Linear(d, d)
        self.register_buffer("inv_freq", 10000.0 ** -(torch.arange(0, self.head_dim, 2).float() / self.head_dim))
        self.linear1, self.linear2 = nn.Linear(d, ffn), nn.Linear(ffn, d)
        self.ada_conditioning = nn.Linear(d, 6 * d)
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)

    def rotate(self, x: torch.Tensor) -> torch.Tensor:  # [B, L, H, hd]: pairs (2i, 2i + 1) -> [evens', odds']
        angle = torch.arange(x.shape[1]).float()[:, None] * self.inv_freq
        cos, sin = angle.cos()[None, :, None], angle.sin()[None, :, None]
        even, odd = x[..., 0::2], x[..., 1::2]
        return torch.cat([even * cos - odd * sin, even * sin + odd * cos], dim=-1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        scale1, shift1, gate1, scale2, shift2, gate2 = self.ada_conditioning(cond).chunk(6, dim=-1)
        h = self.norm1(x) * (1 + scale1) + shift1
        B, L, D = h.shape
        q, k, v = (proj(h).view(B, L, self.heads, self.head_dim) for proj in (self.q_proj, self.k_proj, self.v_proj))
        q, k, v = self.rotate(q).transpose(1, 2), self.rotate(k).transpose(1, 2), v.transpose(1, 2)
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(self.head_dim), dim=-1)
        x = x + self.out_proj((weights @ v).transpose(1, 2).reshape(B, L, D)) * (1 + gate1)
        h = self.norm2(x) * (1 + scale2) + shift2
        return x + self.linear2(F.gelu(self.linear1(h))) * (1 + gate2)


class Reference(nn.Module):
    def __init__(self, d: int = 128, heads: int = 2, ffn: int = 512, time_dim: int = 128, blocks: int = 1, top_p=1):
        super().__init__()
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, d), nn.SiLU(), nn.Linear(d, d))
        self.confidence_proj = nn.Linear(top_p, d)
        self.mask_embedding = nn.Embedding(2, d)
        self.transformer_blocks = nn.ModuleList([ReferenceBlock(d, heads, ffn) for _ in range(blocks)])
        self.final_norm = nn.LayerNorm(d)
        self.output_proj = nn.Linear(d, 1)

    def forward(self, m: torch.Tensor, c: torch.Tensor, t: torch.Tensor, bf16: bool = True) -> torch.Tensor:
        half = self.time_dim // 2
        freqs = torch.exp(-math.log(1.0) * torch.arange(half).float() / half)  # max period 1
        args = t.float()[:, None, None] * freqs
        time = torch.cat([args.cos(), args.sin()], dim=-1)
        time = (time.to(torch.bfloat16) if bf16 else time).float().expand(-1, m.shape[1], -1)
        cond = self.mask_embedding(m.int()) + self.time_mlp(time)
        x = self.confidence_proj(c.unsqueeze(-1))
        for block in self.transformer_blocks:
            x = block(x, cond)
        return self.output_proj(self.final_norm(x)).squeeze(-1)


def reference(seed: int = 0, **sizes) -> Reference:
    torch.manual_seed(seed)
    ref = Reference(**sizes)
    with torch.no_grad():  # non-zero everywhere: adaLN, head, norms
        for name, p in ref.named_parameters():
            p.add_(torch.randn_like(p) * (0.3 if "norm" in name else 0.05))
    return ref.eval()


def save_paper_folder(folder, module: nn.Module, inv_freq: bool = True, config=None, dtype=None):
    folder.mkdir(parents=True, exist_ok=True)
    state = {f"base_policy.{k}": v.contiguous() for k, v in module.state_dict().items()}
    state = {k: v.to(dtype) if dtype else v for k, v in state.items() if inv_freq or not k.endswith("inv_freq")}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    (folder / "config.json").write_text(json.dumps(config or PAPER_CONFIG))
    return folder


def inputs(batch: int, length: int, seed: int):
    gen = torch.Generator().manual_seed(seed)
    t = torch.rand(batch, generator=gen)
    t[0] = 0.0
    t[-1] = 1.0
    return torch.rand(batch, length, generator=gen), torch.rand(batch, length, generator=gen) < 0.6, t


def max_differences(policy: ConfidencePolicy, ref: Reference, bf16: bool) -> tuple[float, float]:
    logits_gap, probs_gap = 0.0, 0.0
    for length in (1, 7, 32, 100):
        c, m, t = inputs(3, length, seed=length)
        with torch.no_grad():
            expected = ref(m, c, t, bf16=bf16)
            states = {"confidence": c, "masked": m, "eligible": torch.ones_like(m), "time": t}
            probs = policy.unmask_probabilities(states)
            logits_gap = max(logits_gap, (policy(c, m, t) - expected).abs().max().item())
        expected_probs = (policy.unmask_beta * torch.sigmoid(expected / policy.temperature)).clamp(max=1.0)
        probs_gap = max(probs_gap, (probs - expected_probs).abs().max().item())
    return logits_gap, probs_gap


# ------------------------------------------------------------------------------------ the paper's checkpoints
@pytest.mark.parametrize("bf16", [True, False])
def test_a_paper_checkpoint_gives_the_reference_outputs(tmp_path, bf16):
    ref = reference(seed=1)
    folder = save_paper_folder(tmp_path / "paper", ref)
    policy = ConfidencePolicy.from_pretrained(folder, **({} if bf16 else {"time_features_bfloat16": False}))
    assert (policy.architecture, policy.time_features_bfloat16, policy.num_heads) == ("paper", bf16, 2)
    assert policy.num_parameters() == sum(p.numel() for p in ref.parameters()) == 331_265
    logits_gap, probs_gap = max_differences(policy, ref, bf16=bf16)
    assert logits_gap <= 1e-5 and probs_gap <= 1e-5, (logits_gap, probs_gap)
    # the rounding is visible: the other choice is further off than the tolerance
    assert max_differences(policy, ref, bf16=not bf16)[0] > 1e-4


def test_sizes_come_from_the_weights_and_heads_from_inv_freq_or_the_override(tmp_path):
    ref = reference(seed=2, d=32, heads=4, ffn=48, time_dim=16)
    policy = ConfidencePolicy.from_pretrained(save_paper_folder(tmp_path / "a", ref), temperature=0.5, mode="dpls")
    assert (policy.hidden_size, policy.num_heads, policy.ffn_size, policy.time_frequency_dim) == (32, 4, 48, 16)
    assert (policy.temperature, policy.mode) == (0.5, "dpls")
    assert max(max_differences(policy, ref, bf16=True)) <= 1e-5
    without = save_paper_folder(tmp_path / "b", ref, inv_freq=False)
    assert max(max_differences(ConfidencePolicy.from_pretrained(without, num_heads=4), ref, bf16=True)) <= 1e-5
    assert max_differences(ConfidencePolicy.from_pretrained(without), ref, bf16=True)[0] > 1e-4  # 2 heads: wrong
    with pytest.raises(ValueError, match="RoPE frequencies.*4 heads"):
        ConfidencePolicy.from_pretrained(tmp_path / "a", num_heads=2)


def test_every_loader_and_the_bare_weights_file_load_it(tmp_path):
    ref = reference(seed=3)
    folder = save_paper_folder(tmp_path / "paper", ref, dtype=torch.bfloat16)  # weights saved in bfloat16
    with torch.no_grad():
        for p in ref.parameters():
            p.copy_(p.to(torch.bfloat16).float())
    for loaded in (
        UnmaskingStrategy.from_pretrained(folder, unmask_beta=2.0),
        UnmaskingPolicy.from_pretrained(folder, unmask_beta=2.0),
        ConfidencePolicy.from_pretrained(folder / "model.safetensors", unmask_beta=2.0),
        get_strategy_by_name(str(folder)),
    ):
        assert isinstance(loaded, ConfidencePolicy) and next(loaded.parameters()).dtype == torch.float32
        assert max_differences(loaded, ref, bf16=True)[0] <= 1e-5
    assert resolve_strategy_name(str(folder))[0] is ConfidencePolicy
    with pytest.raises(TypeError, match="not a HiddenStatePolicy"):
        HiddenStatePolicy.from_pretrained(folder)


def test_unsupported_paper_checkpoints_and_options_are_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="2 transformer blocks.*policy_num_blocks=1"):
        ConfidencePolicy.from_pretrained(save_paper_folder(tmp_path / "blocks", reference(d=16, ffn=32, blocks=2)))
    with pytest.raises(ValueError, match="top 3 confidences.*confidences_top_p=1"):
        ConfidencePolicy.from_pretrained(save_paper_folder(tmp_path / "top3", reference(d=16, ffn=32, top_p=3)))
    hidden = {  # the paper's hidden-state policy: adaLN around a LLaDA decoder layer, no confidence_proj
        "base_policy.time_mlp.0.weight": torch.zeros(16, 8),
        "base_policy.mask_embedding.weight": torch.zeros(2, 16),
        "base_policy.ada_linears.0.weight": torch.zeros(32, 16),
        "base_policy.norms.0.weight": torch.zeros(16),
        "base_policy.transformer_blocks.0.attn_out.weight": torch.zeros(16, 16),
        "base_policy.output_proj.weight": torch.zeros(1, 16),
    }
    (tmp_path / "hidden").mkdir()
    save_file(hidden, str(tmp_path / "hidden" / "model.safetensors"))
    (tmp_path / "hidden" / "config.json").write_text(json.dumps(PAPER_CONFIG))
    with pytest.raises(ValueError, match="hidden-state policy \\(DiTHiddenStatePolicy\\).*cannot load"):
        ConfidencePolicy.from_pretrained(tmp_path / "hidden")
    folder = save_paper_folder(tmp_path / "ok", reference(d=16, ffn=32))
    for option, value in (("num_blocks", 2), ("confidences_top_p", 2), ("time_period", 10_000)):
        with pytest.raises(ValueError, match=f"{option}={value} is not supported.*Drop the {option}"):
            ConfidencePolicy.from_pretrained(folder, **{option: value})
    assert ConfidencePolicy.from_pretrained(folder, num_blocks=1, confidences_top_p=1, time_period=1).num_heads == 2
    with pytest.raises(ValueError, match="architecture='paper' only"):
        ConfidencePolicy.from_pretrained(folder, architecture="hf_unmask")
    (folder / "model.safetensors").unlink()
    torch.save({}, folder / "pytorch_model.bin")
    with pytest.raises(ValueError, match="pickled weights"):
        ConfidencePolicy.from_pretrained(folder)


# ------------------------------------------------------------------------------------ the "paper" architecture
def test_the_paper_architecture_has_the_paper_s_parameters_init_and_modulation():
    torch.manual_seed(0)
    paper, ours = ConfidencePolicy(architecture="paper"), ConfidencePolicy()
    assert paper.num_parameters() == 331_265
    assert paper.state_dict().keys() == ours.state_dict().keys()
    assert isinstance(paper.network.block.adaLN_modulation[0], nn.Identity)
    assert isinstance(ours.network.block.adaLN_modulation[0], nn.SiLU)
    modulation = paper.network.block.adaLN_modulation[1]
    assert torch.count_nonzero(modulation.weight) == 0 and torch.count_nonzero(modulation.bias) == 0
    head = paper.network.head
    assert head.bias.item() == -2.0 and torch.count_nonzero(head.weight) == head.weight.numel()
    probs = paper.unmask_probabilities(
        {"confidence": torch.rand(2, 16), "masked": torch.ones(2, 16, dtype=torch.bool),
         "eligible": torch.ones(2, 16, dtype=torch.bool), "time": torch.tensor([0.0, 0.5])}
    )  # fmt: skip
    assert probs.std() > 1e-3 and abs(probs.mean().item() - torch.sigmoid(torch.tensor(-2.0)).item()) < 0.1
    assert ConfidencePolicy(architecture="paper", init_bias=0.5).network.head.bias.item() == 0.5
    with pytest.raises(ValueError, match="Unknown architecture 'dit'"):
        ConfidencePolicy(architecture="dit")


def test_paper_time_features_are_cos_and_sin_of_t_rounded_through_bfloat16():
    t = torch.tensor([0.0, 0.3, 1.0])
    features = paper_time_features(t, 128)
    expected = torch.cat([t.cos()[:, None].expand(3, 64), t.sin()[:, None].expand(3, 64)], dim=-1)
    assert features.dtype == torch.float64 and features.shape == (3, 128)
    assert torch.equal(features, expected.to(torch.bfloat16).double())
    assert torch.equal(paper_time_features(t, 128, bfloat16=False), expected.double())


def test_the_architecture_is_saved_and_configs_without_it_load_as_hf_unmask(tmp_path):
    policy = ConfidencePolicy(hidden_size=32, ffn_size=64, architecture="paper")
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.1 * torch.randn_like(p))
    policy.save_pretrained(tmp_path / "p")
    config = json.loads((tmp_path / "p" / "config.json").read_text())
    assert (config["architecture"], config["time_features_bfloat16"]) == ("paper", True)
    loaded = ConfidencePolicy.from_pretrained(tmp_path / "p")
    c, m, t = inputs(2, 12, seed=0)
    assert loaded.architecture == "paper" and torch.equal(loaded(c, m, t), policy(c, m, t))
    for key in ("architecture", "time_features_bfloat16"):  # a policy saved before the option existed
        del config[key]
    (tmp_path / "p" / "config.json").write_text(json.dumps(config))
    old = ConfidencePolicy.from_pretrained(tmp_path / "p")
    assert (old.architecture, old.time_features_bfloat16) == ("hf_unmask", False)
    assert isinstance(old.network.block.adaLN_modulation[0], nn.SiLU)


def test_shipped_policies_load_as_hf_unmask():
    policy = load_builtin_policy("tiny-dllm-program_trace-bl8-alpha1")
    assert (policy.architecture, policy.time_features_bfloat16) == ("hf_unmask", False)


def test_save_paper_layout_round_trips_and_refuses_other_networks(tmp_path):
    policy = ConfidencePolicy(hidden_size=32, num_heads=4, ffn_size=64, architecture="paper")
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(0.1 * torch.randn_like(p))
    folder = save_paper_layout(policy, tmp_path / "export")
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "policy" and config["architectures"] == ["PolicyHFWrapper"]
    ref = Reference(d=32, heads=4, ffn=64)  # the reference network reads the exported weights strictly
    ref.load_state_dict({k.removeprefix("base_policy."): v for k, v in _load(folder).items()}, strict=True)
    assert max(max_differences(policy, ref.eval(), bf16=True)) <= 1e-5
    with pytest.raises(ValueError, match="architecture='paper'"):
        save_paper_layout(ConfidencePolicy(hidden_size=32, ffn_size=64), tmp_path / "no")
    with pytest.raises(ValueError, match="log-odds"):
        save_paper_layout(ConfidencePolicy(architecture="paper", confidence_feature="log_odds"), tmp_path / "no")


def _load(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))
