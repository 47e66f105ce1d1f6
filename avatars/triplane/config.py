"""The avatar tri-plane's sizes, its shared decoder and the dream3d field an avatar's planes make."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from dream3d.fields.mlp import DensityActivation, DensityBlobConfig
from dream3d.fields.triplane import (
    FeatureAggregation,
    TriplaneDecoder,
    TriplaneDecoderConfig,
    TriplaneField,
    TriplaneFieldConfig,
)


@dataclass(frozen=True)
class AvatarTriplaneConfig:
    """Shapes of the planes and the shared decoder (fixed for a whole dataset)."""

    resolution: int = 48
    """Texels R per side of each plane (over [-1, 1])."""
    channels: int = 12
    """Feature channels C of each plane."""
    hidden_dim: int = 64
    """Width of the decoder's hidden layers."""
    num_hidden_layers: int = 2
    """Hidden layers of the decoder."""
    sharpness: float = 200.0
    """The engine's density sharpness the fit reproduces (AvatarField's default): density
    sharpness * sigmoid(-sdf * sharpness), so density sharpness / 2 lies on the surface."""

    def decoder_config(self) -> TriplaneDecoderConfig:
        return TriplaneDecoderConfig(
            channels=self.channels,
            aggregation=FeatureAggregation.SUM,
            hidden_dim=self.hidden_dim,
            num_hidden_layers=self.num_hidden_layers,
            density_activation=DensityActivation.TRUNC_EXP,  # raw output = log density
            blob=DensityBlobConfig(strength=0.0),
        )

    def field_config(self) -> TriplaneFieldConfig:
        return TriplaneFieldConfig(resolution=self.resolution, init_std=0.01, decoder=self.decoder_config())

    @property
    def surface_density(self) -> float:
        """Density on the engine's surface (sdf = 0): the threshold for a voxel IoU."""
        return self.sharpness / 2.0

    @property
    def plane_shape(self) -> tuple[int, int, int, int]:
        return (3, self.channels, self.resolution, self.resolution)


def make_decoder(config: AvatarTriplaneConfig = AvatarTriplaneConfig(), seed: int = 0) -> TriplaneDecoder:
    """A fresh shared decoder, initialised from `seed`."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return TriplaneDecoder(config.decoder_config())


def avatar_field(planes: Tensor, decoder: TriplaneDecoder, config: AvatarTriplaneConfig | None = None) -> TriplaneField:
    """A dream3d TriplaneField over planes [3, C, R, R] and the shared decoder (mesh export and
    turntable video work on it unchanged). The planes are stored as given (no copy)."""
    if config is None:
        c, r = planes.shape[1], planes.shape[-1]
        config = AvatarTriplaneConfig(resolution=r, channels=c, hidden_dim=decoder.config.hidden_dim,
                                      num_hidden_layers=decoder.config.num_hidden_layers)
    fc = dataclasses.replace(config.field_config(), resolution=planes.shape[-1], decoder=decoder.config)
    return TriplaneField(fc, planes=planes, decoder=decoder)
