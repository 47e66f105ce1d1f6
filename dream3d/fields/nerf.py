"""The hash-grid NeRF field: a multiresolution hash encoding and a small MLP (the CUDA default)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor

from dream3d.fields.base import Field, FieldOutput
from dream3d.fields.hashgrid import HashGridConfig, make_hash_encoding
from dream3d.fields.mlp import MLP, DensityActivation, DensityBlobConfig, activate_density, density_blob


@dataclass(frozen=True)
class HashGridFieldConfig:
    """A hash-grid NeRF field over [-bound, bound]^3."""

    encoding: HashGridConfig = field(default_factory=HashGridConfig)
    """The multiresolution hash encoding."""
    hidden_dim: int = 64
    """Width of the MLP's hidden layers."""
    num_hidden_layers: int = 2
    """Hidden layers of the MLP (density and albedo share it; DreamFusion has no view effects)."""
    density_activation: DensityActivation = DensityActivation.TRUNC_EXP
    """Raw density -> density >= 0 (Instant-NGP uses a truncated exp)."""
    blob: DensityBlobConfig = field(default_factory=DensityBlobConfig)
    """Initial soft blob of density in the centre (DreamFusion)."""
    bound: float = 1.0
    """The encoding covers [-bound, bound]^3."""
    use_tcnn: bool | None = None
    """True: require tinycudann; False: pure torch; None: tinycudann when it is available."""


class HashGridField(Field):
    """Points -> hash encoding -> MLP -> density (trunc_exp + blob) and albedo (sigmoid)."""

    def __init__(self, config: HashGridFieldConfig = HashGridFieldConfig(), generator: torch.Generator | None = None):
        super().__init__()
        self.config = config
        self.encoding = make_hash_encoding(config.encoding, config.use_tcnn, generator)
        self.mlp = MLP(config.encoding.output_dim, config.hidden_dim, config.num_hidden_layers, 4)

    def forward(self, points: Tensor) -> FieldOutput:
        """points: [N, 3] -> density [N, 1], albedo [N, 3]."""
        unit = ((points / self.config.bound + 1.0) * 0.5).clamp(0.0, 1.0)  # [N, 3] in [0, 1]
        raw = self.mlp(self.encoding(unit))  # [N, 4]
        raw_density = raw[:, :1] + density_blob(points, self.config.blob)
        return FieldOutput(
            density=activate_density(raw_density, self.config.density_activation),
            albedo=torch.sigmoid(raw[:, 1:]),
        )
