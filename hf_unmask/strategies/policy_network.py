"""The network of a learned unmasking policy: one DiT-style transformer block over the L generated positions.

Per position it reads a feature (the dLLM confidence, or its last hidden state for the ablation), the mask bit and
the time (steps used / L), and returns one logit (or `output_dim` logits: two for a re-masking policy). Architecture
(the paper's "policy network"):

- `input_proj`: Linear(input_dim -> d) on the feature (input_dim = 1 for the confidence);
- conditioning `c = mask_embedding(mask bit) + time_embedding(time)`, per position;
- one `AdaLNBlock`: pre-LayerNorm attention and GELU FFN, each modulated by shift / scale / gate produced from `c`
  (`x * (1 + scale) + shift`, residual scaled by `1 + gate`), bidirectional attention with rotary position
  embeddings on q and k, so the network runs at any L;
- final LayerNorm and `head`: Linear(d -> 1) (Linear(d -> output_dim) in general).

With d = 128, 2 heads, FFN 512 and a 128-frequency time embedding this is 331,265 parameters. At initialisation
the adaLN projections are zero and the head bias is -2: the block is a plain pre-LN block (gates 1 + 0).

Two variants (`architecture`), with the same parameters and state-dict keys:

- `"hf_unmask"` (default): SiLU before the adaLN linear, time features of `1000 * t` at 64 geometric frequencies,
  zero head weight at initialisation (every position starts with unmask probability sigmoid(-2));
- `"paper"`: the paper's released network: the adaLN linear reads the conditioning directly (no SiLU), the time
  features are `[cos t] * 64 + [sin t] * 64` (sinusoidal features with max period 1, so every frequency is 1),
  rounded through bfloat16 as the paper's code does, and the head weight keeps PyTorch's default initialisation
  (the starting probabilities vary around sigmoid(-2) with the seed).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

#: Time (steps used / L, in [0, 1]) is multiplied by this before the sinusoidal embedding, the way diffusion models
#: embed integer timesteps in [0, 1000).
TIME_SCALE = 1000.0
#: Output bias at initialisation: unmask probability sigmoid(-2) ~ 0.12 on every position.
INITIAL_LOGIT = -2.0
#: The network variants: this library's (`"hf_unmask"`) and the paper's released one (`"paper"`); see the module doc.
ARCHITECTURES = ("hf_unmask", "paper")


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """`[N] -> [N, dim]` float64 sinusoidal features of `t * TIME_SCALE` (cosines then sines, geometric frequencies)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float64) / half)
    args = (t.double() * TIME_SCALE).unsqueeze(-1) * freqs
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[..., :1])], dim=-1)
    return emb


def paper_time_features(t: torch.Tensor, dim: int, bfloat16: bool = True) -> torch.Tensor:
    """`[N] -> [N, dim]` float64 time features of the paper's network: `cos t` then `sin t`, `dim // 2` times each.

    They are sinusoidal features with max period 1 (every frequency exp(-log(1) * i / half) is 1), computed in
    float32 like the paper's code; `bfloat16=True` rounds them through bfloat16, as the paper's code returns them.
    """
    half = dim // 2
    args = t.float().unsqueeze(-1).expand(*t.shape, half)
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[..., :1])], dim=-1)
    if bfloat16:
        emb = emb.to(torch.bfloat16)
    return emb.double()


class TimeEmbedding(nn.Module):
    """Sinusoidal embedding of the time followed by an MLP (Linear, SiLU, Linear).

    `architecture` picks the features: `sinusoidal_embedding` (`"hf_unmask"`) or `paper_time_features` (`"paper"`);
    `bfloat16_features` rounds them through bfloat16 before the MLP.
    """

    def __init__(
        self, hidden_size: int, frequency_dim: int, architecture: str = "hf_unmask", bfloat16_features: bool = False
    ) -> None:
        super().__init__()
        self.frequency_dim = frequency_dim
        self.architecture = architecture
        self.bfloat16_features = bfloat16_features
        self.mlp = nn.Sequential(nn.Linear(frequency_dim, hidden_size), nn.SiLU(), nn.Linear(hidden_size, hidden_size))

    def features(self, t: torch.Tensor) -> torch.Tensor:
        """`[N] -> [N, frequency_dim]` float64 time features, before the MLP."""
        if self.architecture == "paper":
            return paper_time_features(t, self.frequency_dim, self.bfloat16_features)
        x = sinusoidal_embedding(t, self.frequency_dim)
        return x.to(torch.bfloat16).double() if self.bfloat16_features else x

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        # Computed in float64 and rounded back: this MLP sees one row per sequence, and BLAS picks different kernels
        # (different summation orders) for 1-3 rows than for many. In float32 that made the logits of a step differ
        # by ~1e-5 between sampling (a few rows) and `log_prob` over a whole trajectory (thousands of rows).
        first, second = self.mlp[0], self.mlp[2]
        x = self.features(t)
        x = F.silu(F.linear(x, first.weight.double(), first.bias.double()))
        x = F.linear(x, second.weight.double(), second.bias.double())
        return x.to(first.weight.dtype)


def rotary_tables(
    length: int, head_dim: int, theta: float, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(cos, sin)` of shape `[length, head_dim]` for rotary embeddings (rotate-half convention)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=device, dtype=torch.float32) / head_dim))
    angles = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(-1) * inv_freq
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().to(dtype), angles.sin().to(dtype)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate `x` `[..., L, head_dim]` by the position angles."""
    first, second = x.chunk(2, dim=-1)
    return x * cos + torch.cat([-second, first], dim=-1) * sin


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    return x * (1 + scale) + shift


class AdaLNBlock(nn.Module):
    """One DiT-style block: RoPE self-attention and a GELU FFN, both with adaptive LayerNorm from a per-position
    conditioning vector, gates used as `1 + gate` so the zero-initialised adaLN is the identity.

    `adaLN_modulation` is `Sequential(SiLU, Linear(d, 6d))`, or `Sequential(Identity, Linear(d, 6d))` with
    `modulation_silu=False` (the paper's block); its output chunks are (shift, scale, gate) for the attention, then
    for the FFN.
    """

    def __init__(
        self,
        hidden_size: int,
        num_heads: int,
        ffn_size: int,
        rope_theta: float = 10_000.0,
        modulation_silu: bool = True,
    ) -> None:
        super().__init__()
        if hidden_size % num_heads or (hidden_size // num_heads) % 2:
            raise ValueError(
                f"hidden_size={hidden_size} must split into num_heads={num_heads} heads of even size (RoPE rotates "
                "pairs of dimensions)."
            )
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.rope_theta = rope_theta
        self.norm1 = nn.LayerNorm(hidden_size)
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out_proj = nn.Linear(hidden_size, hidden_size)
        self.norm2 = nn.LayerNorm(hidden_size)
        self.ffn = nn.Sequential(nn.Linear(hidden_size, ffn_size), nn.GELU(), nn.Linear(ffn_size, hidden_size))
        activation = nn.SiLU() if modulation_silu else nn.Identity()
        self.adaLN_modulation = nn.Sequential(activation, nn.Linear(hidden_size, 6 * hidden_size))
        nn.init.zeros_(self.adaLN_modulation[1].weight)
        nn.init.zeros_(self.adaLN_modulation[1].bias)

    def attention(self, x: torch.Tensor, key_mask: Optional[torch.Tensor]) -> torch.Tensor:
        B, L, D = x.shape
        q, k, v = self.qkv(x).view(B, L, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        cos, sin = rotary_tables(L, self.head_dim, self.rope_theta, x.device, x.dtype)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        attn_mask = None if key_mask is None else key_mask[:, None, None, :]
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out_proj(out.transpose(1, 2).reshape(B, L, D))

    def forward(self, x: torch.Tensor, cond: torch.Tensor, key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """`x`, `cond`: `[B, L, d]`; `key_mask`: `[B, L]` bool, True at real (non-padding) positions."""
        shift1, scale1, gate1, shift2, scale2, gate2 = self.adaLN_modulation(cond).chunk(6, dim=-1)
        x = x + (1 + gate1) * self.attention(modulate(self.norm1(x), shift1, scale1), key_mask)
        x = x + (1 + gate2) * self.ffn(modulate(self.norm2(x), shift2, scale2))
        return x


class PolicyNetwork(nn.Module):
    """Per-position features, mask bits and time -> one unmasking logit per position.

    Args:
        input_dim: size of the per-position feature (1 for the confidence policy, the dLLM hidden size for the
            hidden-state ablation).
        hidden_size, num_heads, ffn_size: width of the block, attention heads, FFN width.
        time_frequency_dim: size of the sinusoidal time features.
        rope_theta: RoPE base.
        project_input: apply `input_proj` (Linear(input_dim -> hidden_size)); must be True unless
            `input_dim == hidden_size`.
        init_bias: the head bias at initialisation.
        architecture: `"hf_unmask"` or `"paper"` (see the module doc): same parameters, other time features, no SiLU
            before the adaLN linear and a randomly initialised head weight for `"paper"`.
        time_features_bfloat16: round the time features through bfloat16 before the time MLP; None means True for
            `"paper"` (the paper's code does, so its checkpoints see the inputs they were trained on) and False for
            `"hf_unmask"`.
        output_dim: logits per position: 1 (default; `forward` returns `[B, L]`) or more (`[B, L, output_dim]`,
            e.g. 2 for the unmask and re-mask logits of `RemaskingPolicy`), every head bias set to `init_bias`.

    Example:
        ```python
        >>> import torch
        >>> from hf_unmask.strategies.policy_network import PolicyNetwork
        >>> net = PolicyNetwork(input_dim=1)
        >>> sum(p.numel() for p in net.parameters())
        331265
        >>> net(torch.rand(2, 16, 1), torch.ones(2, 16, dtype=torch.bool), torch.zeros(2)).shape
        torch.Size([2, 16])
        ```
    """

    def __init__(
        self,
        input_dim: int = 1,
        hidden_size: int = 128,
        num_heads: int = 2,
        ffn_size: int = 512,
        time_frequency_dim: int = 128,
        rope_theta: float = 10_000.0,
        project_input: bool = True,
        init_bias: float = INITIAL_LOGIT,
        architecture: str = "hf_unmask",
        time_features_bfloat16: Optional[bool] = None,
        output_dim: int = 1,
    ) -> None:
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise ValueError(f"Unknown architecture {architecture!r}. Use one of {ARCHITECTURES}.")
        if time_features_bfloat16 is None:
            time_features_bfloat16 = architecture == "paper"
        self.architecture = architecture
        self.time_features_bfloat16 = bool(time_features_bfloat16)
        if not isinstance(output_dim, int) or isinstance(output_dim, bool) or output_dim < 1:
            raise ValueError(f"output_dim must be a positive integer (logits per position), got {output_dim!r}.")
        self.output_dim = output_dim
        if not project_input and input_dim != hidden_size:
            raise ValueError(f"project_input=False needs input_dim == hidden_size, got {input_dim} != {hidden_size}.")
        self.input_proj = nn.Linear(input_dim, hidden_size) if project_input else nn.Identity()
        self.mask_embedding = nn.Embedding(2, hidden_size)
        self.time_embedding = TimeEmbedding(
            hidden_size, time_frequency_dim, architecture, bfloat16_features=self.time_features_bfloat16
        )
        paper = architecture == "paper"
        self.block = AdaLNBlock(hidden_size, num_heads, ffn_size, rope_theta, modulation_silu=not paper)
        self.final_norm = nn.LayerNorm(hidden_size)
        self.head = nn.Linear(hidden_size, output_dim)
        if not paper:  # the paper's initialisation keeps PyTorch's default head weight
            nn.init.zeros_(self.head.weight)
        nn.init.constant_(self.head.bias, init_bias)

    def forward(
        self,
        features: torch.Tensor,
        masked: torch.Tensor,
        time: torch.Tensor,
        padding_mask: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Logits `[B, L]` (`[B, L, output_dim]` above 1) from `features [B, L, input_dim]`, `masked [B, L]` (bool),
        `time [B]`.

        `padding_mask` `[B, L]` (bool, True = real position) lets rows of different lengths share a batch: padded
        positions are not attended to, and their logits are meaningless.
        """
        dtype = self.mask_embedding.weight.dtype
        x = self.input_proj(features.to(dtype))
        cond = self.mask_embedding(masked.long()) + self.time_embedding(time).unsqueeze(1)
        x = self.block(x, cond, padding_mask)
        logits = self.head(self.final_norm(x))
        return logits.squeeze(-1) if self.output_dim == 1 else logits
