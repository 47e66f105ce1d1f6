"""A small UNet over rolled-out tri-planes: RODIN's denoiser, sized for the avatar planes.

Input and output are rolled-out planes [B, C, R, 3R] (`avatars.rollout.roll_out`). Every
convolution works on each plane separately (`PlaneConv`); each ResNet block's first conv is an
`Aware3DConv`, the path by which planes exchange information. Down- and upsampling act per
plane too (R halves per level, so R must be divisible by 2^(levels - 1)). GroupNorm and the
optional mid attention see all three planes at once: shared statistics, and attention tokens
from every plane (RODIN attends over the rolled map as well).

Conditioning: a timestep embedding plus a projected global vector `cond` [B, D] (the pooled
caption embedding of a text encoder, or an image encoder's embedding of a portrait), added
together and fed to every block. A learned null condition stands in for `cond` where it is
absent or dropped, so one model gives both terms of classifier-free guidance:

    unet = TriplaneUNet(TriplaneUNetConfig())
    eps = unet(x_t, t, cond)                            # [B, 12, 48, 144]
    eps = unet(x_t, t, cond, drop_cond=torch.rand(B) < 0.1)   # training: CFG dropout
    eps = unet.guided(x_t, t, cond, guidance_scale=3.0)       # sampling

Default config (R = 48, C = 12, widths 32/64/96, one block per level, mid attention):
2,402,284 parameters; at batch 2 on one CPU core (torch 2.13, `OMP_NUM_THREADS=1`) a forward
takes about 0.18 s and a forward + backward about 0.48 s. `tiny()`: 56,636 parameters.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers.models.embeddings import get_timestep_embedding
from torch import Tensor, nn

from avatars.triplane.config import AvatarTriplaneConfig
from avatars.rollout import NUM_PLANES, Aware3DConv, AxisPool, PlaneConv
from dream3d.diffusion_math import classifier_free_guidance


@dataclass(frozen=True)
class TriplaneUNetConfig:
    """Sizes of a TriplaneUNet. Defaults fit the avatar planes (AvatarTriplaneConfig: R 48, C 12)."""

    plane_channels: int = AvatarTriplaneConfig.channels
    """Feature channels C of each plane (input and output channels)."""
    resolution: int = AvatarTriplaneConfig.resolution
    """Texels R per side of each plane; must be divisible by 2^(len(channels) - 1)."""
    channels: tuple[int, ...] = (32, 64, 96)
    """Feature width of each level; a level after the first halves R (48 -> 24 -> 12)."""
    blocks_per_level: int = 1
    """ResNet blocks per level on the way down (and as many on the way up)."""
    time_embed_dim: int = 128
    """Width of the timestep + condition embedding fed to every block."""
    cond_dim: int = 64
    """Width D of the global condition [B, D] (64: the bundled prior's text encoder, whose
    pooled [BOS] embedding is the natural caption vector)."""
    groups: int = 8
    """GroupNorm groups; every width in `channels` must be divisible by it."""
    pool: AxisPool = AxisPool.MEAN
    """How Aware3DConv pools the other planes along the missing axis."""
    aware_second_conv: bool = False
    """Make a block's second conv 3D-aware too. Off: one crossing per block already reaches
    every plane, and the aware conv has three times the input channels (and cost)."""
    mid_attention: bool = True
    """Self-attention at the lowest resolution over the tokens of all three planes (3 R'^2
    tokens: 432 at R' = 12), the one place where distant texels of any plane meet."""
    attention_heads: int = 4
    """Heads of the mid attention (the lowest width must be divisible by it)."""
    dropout: float = 0.0
    """Dropout inside each block, before its second conv."""
    scale_shift: bool = False
    """Condition every ResBlock multiplicatively too (AdaGN, Dhariwal & Nichol 2021): after the
    second GroupNorm its features are scaled by 1 + a projection of the timestep + condition
    embedding, beside the added shift. Why: an added shift moves a channel everywhere at once,
    while a scale can turn up features that are already where an attribute shows (the hair for
    a hair colour). The projection starts at zero, so a trained model gains it without changing
    its outputs. Off in configs saved before it."""
    spatial_channels: int = 0
    """Channels S of an optional spatial condition [B, S, R, 3R] laid out like the input (e.g. a
    template of the planes the condition asks for). It enters the first feature map through a
    zero-initialised conv, so a trained model gains it without changing its outputs, and it is
    dropped (zeroed) together with `cond`. 0: none."""

    def __post_init__(self):
        factor = 2 ** (len(self.channels) - 1)
        if self.resolution % factor:
            raise ValueError(f"resolution {self.resolution} is not divisible by 2^(levels - 1) = {factor}")
        if any(c % self.groups for c in self.channels):
            raise ValueError(f"every width in {self.channels} must be divisible by groups={self.groups}")
        if self.mid_attention and self.channels[-1] % self.attention_heads:
            raise ValueError(f"width {self.channels[-1]} is not divisible by {self.attention_heads} heads")

    @classmethod
    def tiny(cls) -> "TriplaneUNetConfig":
        """56,636 parameters on 8 x 8 planes of 4 channels: a forward takes milliseconds (tests)."""
        return cls(plane_channels=4, resolution=8, channels=(8, 16), time_embed_dim=16, cond_dim=8,
                   groups=4, attention_heads=2)


def timestep_embedding(t: Tensor, dim: int) -> Tensor:
    """Sinusoidal features of (possibly fractional) timesteps, [cos, sin]. t: [B] -> [B, dim] (dim even)."""
    return get_timestep_embedding(t.float(), dim, flip_sin_to_cos=True, downscale_freq_shift=0)


class ResBlock(nn.Module):
    """norm-act-Aware3DConv, + embedding, norm (x (1 + scale) with `scale_shift`)-act-conv, + skip.
    [B, C_in, R, 3R] -> [B, C_out, R, 3R]."""

    def __init__(self, in_channels: int, out_channels: int, config: TriplaneUNetConfig):
        super().__init__()
        self.norm1 = nn.GroupNorm(config.groups, in_channels)
        self.conv1 = Aware3DConv(in_channels, out_channels, pool=config.pool)
        self.embed = nn.Linear(config.time_embed_dim, out_channels)
        self.norm2 = nn.GroupNorm(config.groups, out_channels)
        self.embed_scale = nn.Linear(config.time_embed_dim, out_channels) if config.scale_shift else None
        if self.embed_scale is not None:
            nn.init.zeros_(self.embed_scale.weight)
            nn.init.zeros_(self.embed_scale.bias)
        self.dropout = nn.Dropout(config.dropout)
        self.conv2 = (Aware3DConv(out_channels, out_channels, pool=config.pool) if config.aware_second_conv
                      else PlaneConv(out_channels, out_channels))
        self.skip = PlaneConv(in_channels, out_channels, kernel_size=1) if in_channels != out_channels else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """x: [B, C_in, R, 3R]; emb: [B, E] (already activated)."""
        h = self.conv1(nn.functional.silu(self.norm1(x)))  # [B, C_out, R, 3R]
        h = self.norm2(h + self.embed(emb)[:, :, None, None])
        if self.embed_scale is not None:
            h = h * (1.0 + self.embed_scale(emb)[:, :, None, None])
        h = self.conv2(self.dropout(nn.functional.silu(h)))
        return self.skip(x) + h


class JointAttention(nn.Module):
    """Pre-norm self-attention over every texel of all three planes, with a residual."""

    def __init__(self, channels: int, config: TriplaneUNetConfig):
        super().__init__()
        self.norm = nn.GroupNorm(config.groups, channels)
        self.attention = nn.MultiheadAttention(channels, config.attention_heads, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        b, c, r, w = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # [B, R * 3R, C]
        out, _ = self.attention(tokens, tokens, tokens, need_weights=False)
        return x + out.transpose(1, 2).reshape(b, c, r, w)


class Upsample(nn.Module):
    """Nearest x2 then a per-plane conv. [B, C, R, 3R] -> [B, C, 2R, 6R].

    Nearest-neighbour doubling of the rolled map is exactly doubling each plane (plane p's
    columns [pR, (p+1)R) become [2pR, 2(p+1)R)), so no texel crosses a border."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = PlaneConv(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(nn.functional.interpolate(x, scale_factor=2.0, mode="nearest"))


class TriplaneUNet(nn.Module):
    """Noise (or x0) prediction over rolled-out tri-planes. [B, C, R, 3R] -> [B, C, R, 3R]."""

    def __init__(self, config: TriplaneUNetConfig = TriplaneUNetConfig()):
        super().__init__()
        self.config = config
        widths = config.channels
        e = config.time_embed_dim

        self.time_mlp = nn.Sequential(nn.Linear(widths[0], e), nn.SiLU(), nn.Linear(e, e))
        self.cond_mlp = nn.Sequential(nn.Linear(config.cond_dim, e), nn.SiLU(), nn.Linear(e, e))
        # Learned "no condition": CFG's unconditional term. Zeros at first; training with
        # condition dropout makes it whatever input means "any avatar".
        self.null_cond = nn.Parameter(torch.zeros(config.cond_dim))
        # The convs share weights across planes; this bias tells the network which plane
        # (xy, xz, yz) a texel is on, since the planes' contents differ in kind.
        self.plane_embedding = nn.Parameter(torch.zeros(NUM_PLANES, widths[0]))

        self.conv_in = PlaneConv(config.plane_channels, widths[0])
        self.spatial_in = PlaneConv(config.spatial_channels, widths[0]) if config.spatial_channels else None
        if self.spatial_in is not None:
            for param in self.spatial_in.parameters():
                nn.init.zeros_(param)
        self.down_blocks = nn.ModuleList()
        self.downsamples = nn.ModuleList()
        skip_widths = []
        width = widths[0]
        for level, level_width in enumerate(widths):
            for _ in range(config.blocks_per_level):
                self.down_blocks.append(ResBlock(width, level_width, config))
                width = level_width
                skip_widths.append(width)
            if level < len(widths) - 1:
                self.downsamples.append(PlaneConv(width, width, stride=2))

        self.mid1 = ResBlock(width, width, config)
        self.mid_attention = JointAttention(width, config) if config.mid_attention else nn.Identity()
        self.mid2 = ResBlock(width, width, config)

        self.up_blocks = nn.ModuleList()
        self.upsamples = nn.ModuleList()
        for level in reversed(range(len(widths))):
            for _ in range(config.blocks_per_level):
                self.up_blocks.append(ResBlock(width + skip_widths.pop(), widths[level], config))
                width = widths[level]
            if level > 0:
                self.upsamples.append(Upsample(width))

        self.norm_out = nn.GroupNorm(config.groups, width)
        self.conv_out = PlaneConv(width, config.plane_channels)

    def embed(self, t: Tensor, cond: Tensor | None, drop_cond: Tensor | None) -> Tensor:
        """Timestep [B] (or scalar), condition [B, D] or None, drop mask [B] bool -> [B, E]."""
        b = t.shape[0]
        if cond is None:
            cond = self.null_cond.expand(b, -1)
        elif drop_cond is not None:
            cond = torch.where(drop_cond[:, None], self.null_cond.expand_as(cond), cond)  # [B, D]
        emb = self.time_mlp(timestep_embedding(t, self.config.channels[0])) + self.cond_mlp(cond)
        return nn.functional.silu(emb)

    def forward(self, x: Tensor, t: Tensor | float, cond: Tensor | None = None,
                drop_cond: Tensor | None = None, spatial: Tensor | None = None) -> Tensor:
        """x: [B, C, R, 3R] rolled-out planes; t: [B] or a scalar timestep; cond: [B, D] or
        None (unconditional: the null condition for all); drop_cond: [B] bool, True where
        `cond` is replaced by the null condition (classifier-free-guidance training);
        spatial: [B, S, R, 3R] or None, the spatial condition (`spatial_channels`; zeros where
        it is None, cond is None or cond is dropped). Returns [B, C, R, 3R]."""
        b, c, r, w = x.shape
        if c != self.config.plane_channels or w != NUM_PLANES * r or r % 2 ** (len(self.config.channels) - 1):
            raise ValueError(f"expected [B, {self.config.plane_channels}, R, 3R] with R divisible by "
                             f"{2 ** (len(self.config.channels) - 1)}, got {tuple(x.shape)}")
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(b)  # [B]
        emb = self.embed(t, cond, drop_cond)  # [B, E]

        h = self.conv_in(x)  # [B, W0, R, 3R]
        if self.spatial_in is not None:  # no spatial condition is a zero one (the learned conv has a bias)
            if spatial is None or cond is None:
                spatial = x.new_zeros(b, self.config.spatial_channels, r, w)
            elif drop_cond is not None:
                spatial = spatial * (~drop_cond).to(spatial.dtype)[:, None, None, None]  # the null condition has none
            h = h + self.spatial_in(spatial)
        h = (h.unflatten(-1, (NUM_PLANES, r)) + self.plane_embedding.T[None, :, None, :, None]).flatten(-2)
        skips = []
        blocks = iter(self.down_blocks)
        for level in range(len(self.config.channels)):
            for _ in range(self.config.blocks_per_level):
                h = next(blocks)(h, emb)
                skips.append(h)
            if level < len(self.downsamples):
                h = self.downsamples[level](h)  # R -> R / 2 per plane

        h = self.mid2(self.mid_attention(self.mid1(h, emb)), emb)

        blocks = iter(self.up_blocks)
        for level in range(len(self.config.channels)):
            for _ in range(self.config.blocks_per_level):
                h = next(blocks)(torch.cat([h, skips.pop()], dim=1), emb)
            if level < len(self.upsamples):
                h = self.upsamples[level](h)  # R -> 2R per plane

        return self.conv_out(nn.functional.silu(self.norm_out(h)))  # [B, C, R, 3R]

    def guided(self, x: Tensor, t: Tensor | float, cond: Tensor, guidance_scale: float,
               spatial: Tensor | None = None) -> Tensor:
        """Classifier-free guidance in one batch of 2B: uncond + s (cond - uncond).
        x: [B, C, R, 3R]; cond: [B, D]; spatial: [B, S, R, 3R] or None (the unconditional
        half never sees it). Returns [B, C, R, 3R]."""
        b = x.shape[0]
        t = torch.as_tensor(t, device=x.device).reshape(-1).expand(b)
        drop = torch.cat([torch.zeros(b, dtype=torch.bool), torch.ones(b, dtype=torch.bool)]).to(x.device)
        out = self(torch.cat([x, x]), torch.cat([t, t]), torch.cat([cond, cond]), drop_cond=drop,
                   spatial=None if spatial is None else torch.cat([spatial, spatial]))
        cond_out, uncond_out = out.chunk(2)
        return classifier_free_guidance(cond_out, uncond_out, guidance_scale)


def count_parameters(module: nn.Module) -> int:
    """Trainable parameters of a module."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
