"""Cameras in the world frame of the primitives world: +Y up, +Z front, scene bound [-1, 1]^3.

A camera at azimuth 0, elevation 0 sits on +Z and looks at the origin; azimuth grows
counter-clockwise seen from above (+X at azimuth 90). Camera-to-world matrices use the
OpenGL convention: the camera looks down its -Z axis, +Y is up in the image, +X is right.

The training distribution (`CameraSamplingConfig`) is shared by score distillation and by the
bundled prior's training renders: the prior must see the cameras that SDS will sample.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace

import torch
from torch import Tensor


@dataclass(frozen=True)
class Cameras:
    """A batch of pinhole cameras that all render images of one size."""

    c2w: Tensor
    """[B, 4, 4] camera-to-world transforms (OpenGL convention)."""
    fov_y: Tensor
    """[B] vertical field of view in radians."""
    azimuth_deg: Tensor
    """[B] azimuth in degrees, in [-180, 180); 0 is the front (+Z), 90 is +X."""
    elevation_deg: Tensor
    """[B] elevation in degrees above the XZ plane."""
    distance: Tensor
    """[B] distance from the origin."""
    height: int
    """Image height in pixels."""
    width: int
    """Image width in pixels."""

    def __len__(self) -> int:
        return self.c2w.shape[0]

    @property
    def positions(self) -> Tensor:
        """[B, 3] camera centres in world space."""
        return self.c2w[:, :3, 3]

    @property
    def focal_px(self) -> Tensor:
        """[B] focal length in pixels (square pixels)."""
        return 0.5 * self.height / torch.tan(0.5 * self.fov_y)

    def to(self, device: torch.device | str) -> "Cameras":
        return replace(
            self,
            c2w=self.c2w.to(device),
            fov_y=self.fov_y.to(device),
            azimuth_deg=self.azimuth_deg.to(device),
            elevation_deg=self.elevation_deg.to(device),
            distance=self.distance.to(device),
        )

    def __getitem__(self, index: int | slice | Tensor) -> "Cameras":
        if isinstance(index, int):
            index = slice(index, index + 1)
        return replace(
            self,
            c2w=self.c2w[index],
            fov_y=self.fov_y[index],
            azimuth_deg=self.azimuth_deg[index],
            elevation_deg=self.elevation_deg[index],
            distance=self.distance[index],
        )

    def with_size(self, height: int, width: int) -> "Cameras":
        """The same cameras rendering at another resolution (same field of view)."""
        return replace(self, height=height, width=width)


@dataclass(frozen=True)
class CameraSamplingConfig:
    """Where training cameras are drawn from (uniform in each range)."""

    distance_range: tuple[float, float] = (2.8, 3.4)
    """Distance of the camera from the origin, in scene units (metres)."""
    elevation_range_deg: tuple[float, float] = (-10.0, 80.0)
    """Elevation above the horizon in degrees; > 60 counts as an overhead view."""
    azimuth_range_deg: tuple[float, float] = (-180.0, 180.0)
    """Azimuth in degrees; 0 is the front (+Z)."""
    fov_y_range_deg: tuple[float, float] = (40.0, 50.0)
    """Vertical field of view in degrees."""
    image_size: int = 64
    """Rendered images are square, this many pixels a side."""


def spherical_to_position(azimuth_deg: Tensor, elevation_deg: Tensor, distance: Tensor) -> Tensor:
    """Camera centres on a sphere around the origin.

    azimuth_deg, elevation_deg, distance: [B]. Returns [B, 3].
    """
    az = torch.deg2rad(azimuth_deg)
    el = torch.deg2rad(elevation_deg)
    x = distance * torch.cos(el) * torch.sin(az)
    y = distance * torch.sin(el)
    z = distance * torch.cos(el) * torch.cos(az)
    return torch.stack([x, y, z], dim=-1)


def look_at(positions: Tensor, target: Tensor | None = None, up: Tensor | None = None) -> Tensor:
    """Camera-to-world matrices for cameras at `positions` looking at `target`.

    positions: [B, 3]; target: [3] (default origin); up: [3] (default +Y). Returns [B, 4, 4].
    Straight-down or straight-up views fall back to +Z (or -Z) as the image's up hint.
    """
    device, dtype = positions.device, positions.dtype
    target = torch.zeros(3, device=device, dtype=dtype) if target is None else target.to(positions)
    up = torch.tensor([0.0, 1.0, 0.0], device=device, dtype=dtype) if up is None else up.to(positions)
    forward = torch.nn.functional.normalize(target - positions, dim=-1)  # [B, 3] camera looks this way
    up_b = up.expand_as(forward).clone()
    degenerate = torch.linalg.cross(forward, up_b).norm(dim=-1) < 1e-6
    # Looking straight down the up axis: use the direction back toward the front as image-up.
    up_b[degenerate] = torch.tensor([0.0, 0.0, -1.0], device=device, dtype=dtype) * torch.sign(
        forward[degenerate, 1:2]
    ).neg()
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, up_b), dim=-1)
    true_up = torch.linalg.cross(right, forward)
    c2w = torch.eye(4, device=device, dtype=dtype).repeat(positions.shape[0], 1, 1)
    c2w[:, :3, 0] = right
    c2w[:, :3, 1] = true_up
    c2w[:, :3, 2] = -forward  # OpenGL: the camera looks down -Z
    c2w[:, :3, 3] = positions
    return c2w


def make_cameras(
    azimuth_deg: Tensor,
    elevation_deg: Tensor,
    distance: Tensor,
    fov_y_deg: Tensor,
    height: int,
    width: int,
) -> Cameras:
    """Cameras on a sphere looking at the origin. All tensor arguments are [B]."""
    positions = spherical_to_position(azimuth_deg, elevation_deg, distance)
    wrapped_az = torch.remainder(azimuth_deg + 180.0, 360.0) - 180.0
    return Cameras(
        c2w=look_at(positions),
        fov_y=torch.deg2rad(fov_y_deg),
        azimuth_deg=wrapped_az,
        elevation_deg=elevation_deg,
        distance=distance,
        height=height,
        width=width,
    )


def sample_cameras(
    config: CameraSamplingConfig, batch_size: int, generator: torch.Generator | None = None
) -> Cameras:
    """Random training cameras, uniform in every range of `config`. Returns B = batch_size."""

    def uniform(bounds: tuple[float, float]) -> Tensor:
        low, high = bounds
        return low + (high - low) * torch.rand(batch_size, generator=generator)

    return make_cameras(
        azimuth_deg=uniform(config.azimuth_range_deg),
        elevation_deg=uniform(config.elevation_range_deg),
        distance=uniform(config.distance_range),
        fov_y_deg=uniform(config.fov_y_range_deg),
        height=config.image_size,
        width=config.image_size,
    )


def orbit_cameras(
    num_views: int,
    elevation_deg: float = 15.0,
    distance: float = 3.1,
    fov_y_deg: float = 45.0,
    image_size: int = 256,
    start_azimuth_deg: float = 0.0,
) -> Cameras:
    """Evenly spaced cameras on a circle at one elevation: for turntables and evaluation.

    Returns B = num_views cameras, the first at `start_azimuth_deg`, going counter-clockwise.
    """
    az = start_azimuth_deg + torch.arange(num_views, dtype=torch.float32) * (360.0 / num_views)
    ones = torch.ones(num_views)
    return make_cameras(az, elevation_deg * ones, distance * ones, fov_y_deg * ones, image_size, image_size)


def view_name(azimuth_deg: float, elevation_deg: float, overhead_deg: float = 60.0,
              front_deg: float = 45.0, back_deg: float = 135.0) -> str:
    """DreamFusion's view words: 'overhead', 'front', 'side' or 'back' (see primitives-world.md)."""
    if elevation_deg > overhead_deg:
        return "overhead"
    az = math.remainder(azimuth_deg, 360.0)
    if abs(az) < front_deg:
        return "front"
    if abs(az) > back_deg:
        return "back"
    return "side"
