"""Backgrounds behind the object: solid, random solid (the training convention), small MLP.

Every background maps view directions `[B, H, W, 3]` to colours `[B, H, W, 3]` in [0, 1];
the renderer composites rgb = foreground + (1 - opacity) * background.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dream3d.fields.mlp import MLP


class Background(nn.Module):
    """A background colour for every pixel, from its view direction."""

    def forward(self, directions: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """directions: [B, H, W, 3] unit. Returns [B, H, W, 3] in [0, 1]."""
        raise NotImplementedError


class SolidBackground(Background):
    """One fixed colour everywhere (white by default)."""

    def __init__(self, color: tuple[float, float, float] = (1.0, 1.0, 1.0)):
        super().__init__()
        self.register_buffer("color", torch.tensor(color, dtype=torch.float32), persistent=False)

    def forward(self, directions: Tensor, generator: torch.Generator | None = None) -> Tensor:
        return self.color.to(directions).expand(directions.shape).clone()


@dataclass(frozen=True)
class RandomSolidConfig:
    """The shared training convention: one random solid colour per image."""

    white_probability: float = 0.5
    """Chance that an image's background is white; otherwise uniform in [0, 1]^3."""


def random_solid_colors(
    batch_size: int, config: RandomSolidConfig = RandomSolidConfig(), generator: torch.Generator | None = None
) -> Tensor:
    """[B, 3] colours: white with probability `white_probability`, else uniform RGB."""
    white = torch.rand(batch_size, 1, generator=generator) < config.white_probability
    colors = torch.rand(batch_size, 3, generator=generator)
    return torch.where(white, torch.ones_like(colors), colors)


class RandomSolidBackground(Background):
    """A fresh random solid colour per image on every call (prior training and SDS alike)."""

    def __init__(self, config: RandomSolidConfig = RandomSolidConfig()):
        super().__init__()
        self.config = config

    def forward(self, directions: Tensor, generator: torch.Generator | None = None) -> Tensor:
        colors = random_solid_colors(directions.shape[0], self.config, generator).to(directions)  # [B, 3]
        return colors[:, None, None, :].expand(directions.shape).clone()


@dataclass(frozen=True)
class MLPBackgroundConfig:
    """A learned environment colour as a function of view direction (DreamFusion)."""

    hidden_dim: int = 16
    """Width of the hidden layer."""
    num_hidden_layers: int = 1
    """Number of hidden layers."""
    num_frequencies: int = 2
    """Sin/cos frequencies of the direction encoding; few, so the background stays smooth."""


class MLPBackground(Background):
    """sigmoid(MLP(direction encoding)): trained with the field."""

    def __init__(self, config: MLPBackgroundConfig = MLPBackgroundConfig()):
        super().__init__()
        self.config = config
        in_dim = 3 + 6 * config.num_frequencies
        self.mlp = MLP(in_dim, config.hidden_dim, config.num_hidden_layers, 3)

    def forward(self, directions: Tensor, generator: torch.Generator | None = None) -> Tensor:
        freqs = 2.0 ** torch.arange(self.config.num_frequencies, device=directions.device, dtype=directions.dtype)
        scaled = directions[..., None, :] * freqs[:, None]  # [B, H, W, K, 3]
        enc = torch.cat([directions, scaled.sin().flatten(-2), scaled.cos().flatten(-2)], dim=-1)
        return torch.sigmoid(self.mlp(enc))
