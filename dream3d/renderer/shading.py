"""Shading shared by the renderer and by the bundled prior's training renders.

DreamFusion shades the albedo with a point light near the camera plus ambient light; the
bundled prior is trained on images shaded by this same function, so SDS renders look like
what the prior saw.
"""
from __future__ import annotations

import torch
from torch import Tensor

AMBIENT = 0.35
"""Default ambient share of the light: enough that colours stay recognisable in shadow."""


def lambertian(albedo: Tensor, normal: Tensor, light_dir: Tensor, ambient: float = AMBIENT) -> Tensor:
    """Diffuse shading: albedo * (ambient + (1 - ambient) * max(0, n . l)).

    albedo: [..., 3]; normal: [..., 3] unit; light_dir: [..., 3] unit, pointing from the
    surface toward the light (broadcastable). Returns [..., 3].
    """
    cos = (normal * light_dir).sum(dim=-1, keepdim=True).clamp(min=0.0)
    return albedo * (ambient + (1.0 - ambient) * cos)


def textureless(normal: Tensor, light_dir: Tensor, ambient: float = AMBIENT) -> Tensor:
    """Lambertian shading of a white surface: shows geometry without colour. Shapes as lambertian."""
    return lambertian(torch.ones_like(normal), normal, light_dir, ambient)


def sample_light_positions(
    camera_positions: Tensor, generator: torch.Generator | None = None, jitter: float = 0.5
) -> Tensor:
    """Point lights near each camera, as in DreamFusion.

    camera_positions: [B, 3]. Returns [B, 3]: the camera position moved by Gaussian noise of
    `jitter` times the camera distance, so the light mostly comes from the viewer's side.
    """
    distance = camera_positions.norm(dim=-1, keepdim=True)
    noise = torch.randn(camera_positions.shape, generator=generator).to(camera_positions)
    return camera_positions + jitter * distance * noise
