"""Stratified sampling of rays inside the scene box, optionally dropping empty-space samples.

Samples are kept dense, `[N, S]`, with a boolean `valid` mask rather than packed: each ray's
transmittance is then a cumulative sum along one row, exact in float32, and a dropped sample
is simply a zero density. Only the valid samples are sent to the field.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dream3d.renderer.occupancy import OccupancyGrid
from dream3d.renderer.rays import RayBundle, intersect_aabb


@dataclass(frozen=True)
class RaySamples:
    """S samples on each of N rays; sample i stands for the interval [t_starts, t_ends]."""

    t_starts: Tensor
    """[N, S] interval starts along the ray."""
    t_ends: Tensor
    """[N, S] interval ends; intervals of a ray tile [t_near, t_far] with no gap."""
    t_mid: Tensor
    """[N, S] where the field is queried (jittered inside the interval when stratified)."""
    valid: Tensor
    """[N, S] bool: inside the box and in an occupied cell; others count as empty space."""

    @property
    def deltas(self) -> Tensor:
        """[N, S] interval lengths."""
        return self.t_ends - self.t_starts


def stratified_samples(
    rays: RayBundle,
    num_samples: int,
    bound: float = 1.0,
    near: float = 0.0,
    randomize: bool = True,
    occupancy: OccupancyGrid | None = None,
    generator: torch.Generator | None = None,
) -> RaySamples:
    """`num_samples` equal intervals between each ray's box entry and exit.

    With `randomize`, each query point is uniform inside its interval (training); otherwise it
    is the interval's midpoint (evaluation). Rays that miss the box get no valid samples.
    With an occupancy grid, samples in empty cells are marked invalid.
    """
    t_near, t_far, hit = intersect_aabb(rays, bound, near)  # [N] each
    n = len(rays)
    edges = torch.linspace(0.0, 1.0, num_samples + 1, device=t_near.device, dtype=t_near.dtype)  # [S+1]
    t_edges = t_near[:, None] + (t_far - t_near)[:, None] * edges  # [N, S+1]
    t_starts, t_ends = t_edges[:, :-1], t_edges[:, 1:]
    if randomize:
        u = torch.rand((n, num_samples), generator=generator).to(t_near)
    else:
        u = torch.full((n, num_samples), 0.5, device=t_near.device, dtype=t_near.dtype)
    t_mid = t_starts + (t_ends - t_starts) * u
    valid = hit[:, None].expand(n, num_samples)
    if occupancy is not None:
        points = rays.origins[:, None, :] + rays.directions[:, None, :] * t_mid[..., None]  # [N, S, 3]
        valid = valid & occupancy.is_occupied(points.reshape(-1, 3)).reshape(n, num_samples)
    return RaySamples(t_starts=t_starts, t_ends=t_ends, t_mid=t_mid, valid=valid)


def sample_points(rays: RayBundle, t: Tensor) -> Tensor:
    """rays of N, t [N, S] -> [N, S, 3] points origin + t * direction."""
    return rays.origins[:, None, :] + rays.directions[:, None, :] * t[..., None]
