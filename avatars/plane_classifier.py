"""A noise-aware attribute classifier over noisy low-resolution tri-planes, for classifier
guidance of the base denoiser (Dhariwal & Nichol 2021, "Diffusion models beat GANs", sec. 4).

Why: with classifier-free guidance alone the base model keeps hair style and hats but loses
glasses, hair colour, age and beards on the way from noise to planes (the model card's table).
A classifier that reads those attributes off the *noisy* sample x_t at every step gives the
sampler a direct push toward planes that show them:

    eps' = eps - s * sqrt(1 - alpha_bar_t) * grad_x log p(named values | x_t, t)

It is trained only on the dataset's fitted low planes (engine avatars, their true attributes),
noised with the base model's own schedule, never on renders, so it is not the evaluation's
classifier (which reads rendered images).

    classifier = PlaneAttributeClassifier(PlaneClassifierConfig())
    logits = classifier(x_t, t)                                  # [B, K] (ATTRIBUTE_VALUES)
    grad = guidance_gradient(classifier, x_t, t, weights)       # [B, C, r, 3r]
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from avatars.triplane.config import AvatarTriplaneConfig
from avatars.engine.attributes import ATTRIBUTE_TYPES
from avatars.rollout import Aware3DConv, PlaneConv
from avatars.triplane_unet import timestep_embedding

ATTRIBUTE_SIZES: tuple[int, ...] = tuple(len(kind) for kind in ATTRIBUTE_TYPES.values())
"""Values per attribute, in `ATTRIBUTE_TYPES` order: the blocks of a [B, K] logit vector."""


@dataclass(frozen=True)
class PlaneClassifierConfig:
    """Sizes of a PlaneAttributeClassifier."""

    plane_channels: int = AvatarTriplaneConfig.channels
    """Feature channels C of each plane (the base model's planes)."""
    resolution: int = AvatarTriplaneConfig.resolution // 2
    """Texels r per side of each plane (the base model's low resolution); divisible by 2^(levels)."""
    channels: tuple[int, ...] = (48, 64, 96)
    """Width of each level; every level after the stem halves r (24 -> 12 -> 6 -> 3)."""
    hidden: int = 128
    """Width of the head's hidden layer (after flattening the last level)."""
    time_embed_dim: int = 64
    """Width of the timestep embedding added to every level."""
    groups: int = 8
    """GroupNorm groups; every width in `channels` must be divisible by it."""

    def __post_init__(self):
        if self.resolution % 2 ** len(self.channels):
            raise ValueError(f"resolution {self.resolution} must be divisible by 2^{len(self.channels)} "
                             f"(one halving per level of {self.channels})")
        if any(width % self.groups for width in self.channels):
            raise ValueError(f"every width of {self.channels} must be divisible by groups {self.groups}")

    @classmethod
    def tiny(cls, plane_channels: int = 4, resolution: int = 4) -> "PlaneClassifierConfig":
        """A few-thousand-parameter classifier (tests)."""
        return cls(plane_channels=plane_channels, resolution=resolution, channels=(8, 8), hidden=16,
                   time_embed_dim=16, groups=4)


class PlaneAttributeClassifier(nn.Module):
    """Noisy rolled-out low planes x_t [B, C, r, 3r] + timesteps t [B] -> logits [B, K] of every
    (attribute, value) of `ATTRIBUTE_VALUES` (a softmax per attribute block). The first conv is
    3D-aware (RODIN), so each plane's texels see what the other planes say about the same points;
    the rest are per-plane convs, and the flattened last level keeps where on the head a feature is."""

    def __init__(self, config: PlaneClassifierConfig):
        super().__init__()
        self.config = config
        widths = config.channels
        self.time_mlp = nn.Sequential(nn.Linear(config.time_embed_dim, config.time_embed_dim), nn.SiLU())
        self.stem = Aware3DConv(config.plane_channels, widths[0])
        self.levels = nn.ModuleList()
        self.time_proj = nn.ModuleList()
        in_width = widths[0]
        for width in widths:
            self.time_proj.append(nn.Linear(config.time_embed_dim, in_width))
            self.levels.append(nn.ModuleDict({
                "norm": nn.GroupNorm(config.groups, in_width),
                "down": PlaneConv(in_width, width, stride=2),
            }))
            in_width = width
        final = config.resolution // 2 ** len(widths)
        self.head = nn.Sequential(nn.GroupNorm(config.groups, in_width), nn.SiLU(), nn.Flatten(),
                                  nn.Linear(in_width * final * 3 * final, config.hidden), nn.SiLU(),
                                  nn.Linear(config.hidden, sum(ATTRIBUTE_SIZES)))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        emb = self.time_mlp(timestep_embedding(t.reshape(-1).expand(x.shape[0]), self.config.time_embed_dim))
        h = self.stem(x)
        for level, proj in zip(self.levels, self.time_proj):
            h = level["down"](nn.functional.silu(level["norm"](h) + proj(emb)[:, :, None, None]))
        return self.head(h)


def attribute_log_probs(logits: Tensor) -> Tensor:
    """[B, K] logits -> [B, K] log-softmax within each attribute's block of values."""
    return torch.cat([block.log_softmax(-1) for block in logits.split(ATTRIBUTE_SIZES, dim=-1)], dim=-1)


def named_log_likelihood(logits: Tensor, weights: Tensor) -> Tensor:
    """log p(what a condition names | x): [B, K] logits and [B, K] weights (`AvatarCondition.
    attributes`: 1 for a named value, a spread over kinds or a reader's probabilities) -> [B].
    Per attribute with any weight: log sum_v w_v p_v / sum_v w_v; attributes left unnamed add 0."""
    log_p = attribute_log_probs(logits)
    total = torch.zeros(logits.shape[0], device=logits.device)
    for lp, w in zip(log_p.split(ATTRIBUTE_SIZES, dim=-1), weights.split(ATTRIBUTE_SIZES, dim=-1)):
        mass = w.sum(-1)  # [B]
        named = mass > 0
        mixed = torch.logsumexp(lp + torch.log(w.clamp(min=1e-12)), dim=-1) - torch.log(mass.clamp(min=1e-12))
        total = total + torch.where(named, mixed, torch.zeros_like(mixed))
    return total


def guidance_gradient(classifier: PlaneAttributeClassifier, x: Tensor, t: Tensor, weights: Tensor) -> Tensor:
    """grad_x log p(named values | x_t, t): x [B, C, r, 3r], t scalar or [B], weights [B, K] ->
    [B, C, r, 3r]. Each sample's gradient is its own (the log-likelihoods are summed)."""
    with torch.enable_grad():
        x_in = x.detach().requires_grad_(True)
        log_likelihood = named_log_likelihood(classifier(x_in, torch.as_tensor(t, device=x.device)), weights)
        (grad,) = torch.autograd.grad(log_likelihood.sum(), x_in)
    return grad


def value_targets(values: Tensor) -> list[Tensor]:
    """[B, K] one-hot of each avatar's values (`attribute_vectors`) -> per attribute its value
    index [B] (what cross-entropy takes)."""
    return [block.argmax(-1) for block in values.split(ATTRIBUTE_SIZES, dim=-1)]


def classification_loss(logits: Tensor, values: Tensor) -> Tensor:
    """Mean over attributes of the cross-entropy. logits [B, K], values [B, K] one-hot per block."""
    losses = [nn.functional.cross_entropy(block, target)
              for block, target in zip(logits.split(ATTRIBUTE_SIZES, dim=-1), value_targets(values))]
    return torch.stack(losses).mean()


__all__ = [
    "ATTRIBUTE_SIZES",
    "PlaneAttributeClassifier",
    "PlaneClassifierConfig",
    "attribute_log_probs",
    "classification_loss",
    "guidance_gradient",
    "named_log_likelihood",
    "value_targets",
]
