"""Small building blocks shared by the fields: an MLP, density activations, the initial blob.

DreamFusion starts from a soft blob of density in the centre of the scene so that the first
renders show an object rather than empty space; both the tri-plane and the hash-grid field
add `density_blob` to the pre-activation density.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

import torch
from torch import Tensor, nn


class DensityActivation(enum.Enum):
    """How the raw density output becomes a density >= 0."""

    SOFTPLUS = "softplus"
    """softplus(x): smooth, gentle gradients; the default for the tri-plane field."""
    TRUNC_EXP = "trunc_exp"
    """exp(x) with the gradient clamped (Instant-NGP): reaches large densities quickly."""


class _TruncExp(torch.autograd.Function):
    """exp(x) whose backward uses exp(min(x, 15)) so large pre-activations cannot blow up."""

    @staticmethod
    def forward(ctx, x: Tensor) -> Tensor:  # type: ignore[override]
        ctx.save_for_backward(x)
        return torch.exp(x)

    @staticmethod
    def backward(ctx, grad: Tensor) -> Tensor:  # type: ignore[override]
        (x,) = ctx.saved_tensors
        return grad * torch.exp(x.clamp(max=15.0))


def trunc_exp(x: Tensor) -> Tensor:
    """exp(x) with a clamped gradient. Same shape as x."""
    return _TruncExp.apply(x)


def activate_density(raw: Tensor, activation: DensityActivation) -> Tensor:
    """Raw pre-activation density -> density >= 0. Same shape as raw."""
    if activation is DensityActivation.SOFTPLUS:
        return nn.functional.softplus(raw)
    return trunc_exp(raw)


class BlobShape(enum.Enum):
    """Radial profile of the initial density blob."""

    GAUSSIAN = "gaussian"
    """strength * exp(-|x|^2 / (2 radius^2)): never negative, so with softplus the space around
    the blob starts at density softplus(0) = 0.69 per unit (a light fog). Fine for fitting to
    images, which clear the fog at once."""
    LINEAR = "linear"
    """strength * (1 - |x| / radius) (Magic3D's blob, threestudio's `blob_magic3d`): positive
    inside the radius, increasingly negative outside, so the scene starts as an opaque ball in
    empty space. Score distillation needs this: its gradients are too weak to clear a fog, and
    an all-foggy start also defeats empty-space skipping."""


@dataclass(frozen=True)
class DensityBlobConfig:
    """A radial bump added to the raw density so the initial field is a central blob."""

    strength: float = 5.0
    """Added to the raw density at the centre; 0 disables the blob."""
    radius: float = 0.5
    """Scale of the blob in scene units: the Gaussian's standard deviation, or where the linear
    profile crosses zero."""
    shape: BlobShape = BlobShape.GAUSSIAN
    """Radial profile."""


def density_blob(points: Tensor, config: DensityBlobConfig) -> Tensor:
    """[N, 3] points -> [N, 1] raw-density offset with the configured profile."""
    r2 = (points * points).sum(dim=-1, keepdim=True)
    if config.shape is BlobShape.LINEAR:
        return config.strength * (1.0 - torch.sqrt(r2 + 1e-12) / config.radius)
    return config.strength * torch.exp(-r2 / (2.0 * config.radius**2))


class MLP(nn.Sequential):
    """Linear -> ReLU blocks with a linear output layer: in_dim -> hidden x layers -> out_dim."""

    def __init__(self, in_dim: int, hidden_dim: int, num_hidden_layers: int, out_dim: int):
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(num_hidden_layers):
            layers += [nn.Linear(dim, hidden_dim), nn.ReLU(inplace=True)]
            dim = hidden_dim
        layers.append(nn.Linear(dim, out_dim))
        super().__init__(*layers)
