"""The field interface every representation implements (tri-plane, hash-grid NeRF, ground truth)."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn


@dataclass
class FieldOutput:
    """What a field says about a batch of points."""

    density: Tensor
    """[N, 1] volume density (>= 0), per scene unit."""
    albedo: Tensor
    """[N, 3] base colour in [0, 1] (linear in the shading model, stored as sRGB in textures)."""


class Field(nn.Module):
    """A radiance field over the scene bound [-1, 1]^3.

    Subclasses implement `forward`; `query_density` may be overridden with a cheaper path
    (the occupancy grid and marching cubes only need density).
    """

    def forward(self, points: Tensor) -> FieldOutput:  # points: [N, 3] world coordinates
        raise NotImplementedError

    def query_density(self, points: Tensor) -> Tensor:
        """[N, 3] -> [N, 1] density."""
        return self.forward(points).density

    def query_albedo(self, points: Tensor) -> Tensor:
        """[N, 3] -> [N, 3] albedo."""
        return self.forward(points).albedo

    def forward_with_density_gradient(self, points: Tensor) -> tuple[FieldOutput, Tensor]:
        """field(points) and d density / d points [N, 3] from the same evaluation.

        This is the autograd reference: while grad is enabled the gradient keeps its graph
        (`create_graph=True`), so losses on normals train the field through a double backward.
        Fields may override it with a closed form that must agree with it (see TriplaneField).
        """
        training = torch.is_grad_enabled()
        with torch.enable_grad():
            p = points.detach().requires_grad_(True)
            out = self.forward(p)
            if p.shape[0] == 0:
                return out, p.new_zeros(0, 3)
            (grad,) = torch.autograd.grad(out.density.sum(), p, create_graph=training)
        if not training:  # a no-grad render (video): drop the graph built for the gradient
            return FieldOutput(out.density.detach(), out.albedo.detach()), grad.detach()
        return out, grad
