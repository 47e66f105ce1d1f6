"""Rays from cameras (OpenGL convention, through pixel centres) and ray/box intersection."""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dream3d.cameras import Cameras


@dataclass(frozen=True)
class RayBundle:
    """A flat batch of rays."""

    origins: Tensor
    """[N, 3] ray origins in world space."""
    directions: Tensor
    """[N, 3] unit ray directions in world space."""

    def __len__(self) -> int:
        return self.origins.shape[0]

    def __getitem__(self, index: slice | Tensor) -> "RayBundle":
        return RayBundle(self.origins[index], self.directions[index])


def camera_rays(cameras: Cameras) -> RayBundle:
    """One ray per pixel centre of every camera, row-major: N = B * H * W.

    Pixel (row v, column u) looks along camera-space ((u + 0.5 - W/2) / f, -(v + 0.5 - H/2) / f, -1):
    row 0 is the top of the image, the camera looks down its -Z axis (OpenGL).
    """
    h, w = cameras.height, cameras.width
    device, dtype = cameras.c2w.device, cameras.c2w.dtype
    v, u = torch.meshgrid(
        torch.arange(h, device=device, dtype=dtype) + 0.5,
        torch.arange(w, device=device, dtype=dtype) + 0.5,
        indexing="ij",
    )  # [H, W] each
    focal = cameras.focal_px.to(dtype)[:, None, None]  # [B, 1, 1]
    x = (u - 0.5 * w) / focal  # [B, H, W]
    y = -(v - 0.5 * h) / focal
    dirs_cam = torch.stack([x, y, -torch.ones_like(x)], dim=-1)  # [B, H, W, 3]
    rotation = cameras.c2w[:, :3, :3]  # [B, 3, 3]
    dirs = torch.einsum("bij,bhwj->bhwi", rotation, dirs_cam)  # [B, H, W, 3]
    dirs = torch.nn.functional.normalize(dirs, dim=-1)
    origins = cameras.c2w[:, None, None, :3, 3].expand_as(dirs)  # [B, H, W, 3]
    return RayBundle(origins.reshape(-1, 3), dirs.reshape(-1, 3))


def intersect_aabb(rays: RayBundle, bound: float = 1.0, near: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """Slab test of each ray with the cube [-bound, bound]^3.

    Returns t_near [N], t_far [N] (distances along the ray, t_near >= `near`) and hit [N] bool
    (the ray crosses the box in front of `near`). Where hit is False, t_near = t_far.
    """
    return intersect_box(rays, -bound, bound, near)


def intersect_box(rays: RayBundle, low: float | Tensor, high: float | Tensor, near: float = 0.0) -> tuple[Tensor, Tensor, Tensor]:
    """Slab test of each ray with the axis-aligned box [low, high] (scalars or [3] corners).

    Returns t_near [N], t_far [N] and hit [N] as `intersect_aabb` does.
    """
    inv = 1.0 / torch.where(rays.directions.abs() < 1e-9, torch.full_like(rays.directions, 1e-9), rays.directions)
    t0 = (low - rays.origins) * inv  # [N, 3]
    t1 = (high - rays.origins) * inv
    t_near = torch.minimum(t0, t1).amax(dim=-1).clamp(min=near)  # [N]
    t_far = torch.maximum(t0, t1).amin(dim=-1)  # [N]
    hit = t_far > t_near
    t_far = torch.where(hit, t_far, t_near)
    return t_near, t_far, hit
