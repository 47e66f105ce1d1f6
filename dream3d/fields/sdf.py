"""A solid given by a signed distance and an albedo, as a radiance field: the ground truth of the
primitives world and of the parametric avatar engine both render through it."""
from __future__ import annotations

import torch
from torch import Tensor

from dream3d.fields.base import Field, FieldOutput


def sdf_density(sdf: Tensor, sharpness: float) -> Tensor:
    """sdf [N] -> density [N, 1] = sharpness * sigmoid(-sdf * sharpness).

    A smooth step of height `sharpness` per scene unit across a shell about 4 / sharpness thick
    around the surface: a volume render looks like a crisp surface while staying differentiable.
    """
    return (sharpness * torch.sigmoid(-sdf * sharpness)).unsqueeze(-1)


class SDFField(Field):
    """Subclasses give `sdf`, `query_albedo` and `occupancy`; density follows from `sdf_density`.
    `evaluate` may be overridden to compute both from one pass."""

    def __init__(self, sharpness: float = 200.0) -> None:
        super().__init__()
        self.sharpness = float(sharpness)

    def sdf(self, points: Tensor) -> Tensor:
        """[N, 3] -> [N] signed distance (negative inside)."""
        raise NotImplementedError

    def occupancy(self, points: Tensor) -> Tensor:
        """[N, 3] -> bool [N]: inside the exact solid."""
        raise NotImplementedError

    def evaluate(self, points: Tensor) -> tuple[Tensor, Tensor]:
        """[N, 3] -> (sdf [N], albedo [N, 3])."""
        return self.sdf(points), self.query_albedo(points)

    def query_density(self, points: Tensor) -> Tensor:
        return sdf_density(self.sdf(points), self.sharpness)

    def forward(self, points: Tensor) -> FieldOutput:
        sdf, albedo = self.evaluate(points)
        return FieldOutput(density=sdf_density(sdf, self.sharpness), albedo=albedo)
