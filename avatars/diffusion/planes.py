"""Plane layouts (pooling, upsampling) and the per-channel statistics that normalise them."""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn


def downsample_planes(planes: Tensor, factor: int) -> Tensor:
    """Average pooling per plane. planes: [B, 3, C, R, R] -> [B, 3, C, R / factor, R / factor]."""
    b, p, c, r, _ = planes.shape
    pooled = nn.functional.avg_pool2d(planes.reshape(b * p, c, r, r), factor)
    return pooled.reshape(b, p, c, r // factor, r // factor)


def upsample_planes(planes: Tensor, resolution: int, align_corners: bool = False) -> Tensor:
    """Bilinear upsampling per plane. planes: [B, 3, C, r, r] -> [B, 3, C, R, R].

    align_corners=True is the tri-plane field's own texel layout (texel centres on the cube's
    faces): the R planes then decode, at their texels, exactly what the r planes decode there
    (for planes fitted at r; on 30 dataset avatars it kept attribute accuracy 0.87 against 0.84
    with False). False is the half-texel layout that matches average pooling (pooled planes)."""
    b, p, c, r, _ = planes.shape
    up = nn.functional.interpolate(planes.reshape(b * p, c, r, r), size=(resolution, resolution),
                                   mode="bilinear", align_corners=align_corners)
    return up.reshape(b, p, c, resolution, resolution)


@dataclass
class PlaneStats:
    """Per-plane, per-channel statistics of a dataset's planes: each [3, C]."""

    mean: Tensor
    std: Tensor
    low_mean: Tensor
    low_std: Tensor


def plane_stats(planes: Tensor, factor: int = 2, min_std: float = 1e-4, low_planes: Tensor | None = None) -> PlaneStats:
    """Statistics of planes [N, 3, C, R, R] at R and of the low-resolution planes [N, 3, C, r, r]
    (default: `planes` average-pooled by `factor`), std floored at `min_std`."""
    low = downsample_planes(planes, factor) if low_planes is None else low_planes
    return PlaneStats(planes.mean(dim=(0, 3, 4)), planes.std(dim=(0, 3, 4)).clamp(min=min_std),
                      low.mean(dim=(0, 3, 4)), low.std(dim=(0, 3, 4)).clamp(min=min_std))


def _scale(stat: Tensor) -> Tensor:
    """[3, C] -> [1, 3, C, 1, 1], to broadcast over [B, 3, C, R, R]."""
    return stat[None, :, :, None, None]
