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
from dream3d.renderer.rays import RayBundle, intersect_aabb, intersect_box


@dataclass(frozen=True)
class RaySamples:
    """Up to W samples on each of N rays: consecutive intervals of the ray's tiling of
    [t_near, t_far] into `num_samples` equal ones (W <= num_samples when the occupancy grid's
    box lets the sampler leave out intervals that cannot hold an occupied cell)."""

    t_starts: Tensor
    """[N, W] interval starts along the ray."""
    t_ends: Tensor
    """[N, W] interval ends; a ray's valid intervals are consecutive pieces of its tiling."""
    t_mid: Tensor
    """[N, W] where the field is queried (jittered inside the interval when stratified)."""
    valid: Tensor
    """[N, W] bool: inside the box and in an occupied cell; others count as empty space."""
    points: Tensor
    """[N, W, 3] world positions of t_mid along each ray."""

    @property
    def deltas(self) -> Tensor:
        """[N, W] interval lengths."""
        return self.t_ends - self.t_starts


def stratified_samples(
    rays: RayBundle,
    num_samples: int,
    bound: float = 1.0,
    near: float = 0.0,
    randomize: bool = True,
    occupancy: OccupancyGrid | None = None,
    generator: torch.Generator | None = None,
    skip_outside_occupied_box: bool = True,
) -> RaySamples:
    """`num_samples` equal intervals between each ray's box entry and exit.

    With `randomize`, each query point is uniform inside its interval (training); otherwise it
    is the interval's midpoint (evaluation). Rays that miss the box get no valid samples.
    With an occupancy grid, samples in empty cells are marked invalid; and, with
    `skip_outside_occupied_box`, the intervals outside the box of the occupied cells are left
    out altogether (they would all be invalid), so a small object in a large box costs less.
    Either way the valid samples and their positions are the same (random draws included).
    """
    t_near, t_far, hit = intersect_aabb(rays, bound, near)  # [N] each
    n, device, dtype = len(rays), t_near.device, t_near.dtype
    edges = torch.linspace(0.0, 1.0, num_samples + 1, device=device, dtype=dtype)  # [S+1]
    if randomize:
        u_all = torch.rand((n, num_samples), generator=generator).to(t_near)  # drawn for all S: same draws either way
    first = torch.zeros(n, dtype=torch.long, device=device)  # [N] first interval kept
    count = torch.where(hit, num_samples, 0)  # [N] intervals kept
    if occupancy is not None and skip_outside_occupied_box:
        low, high = occupancy.occupied_box()
        t_low, t_high, hit_box = intersect_box(rays, low.to(dtype), high.to(dtype), near)
        step = ((t_far - t_near) / num_samples).clamp(min=1e-12)  # [N]
        # One spare interval each side, so rounding of t never drops an occupied sample.
        first = (((t_low - t_near) / step).floor() - 1).clamp(0, num_samples - 1).long()
        last = (((t_high - t_near) / step).floor() + 1).clamp(0, num_samples - 1).long()
        count = torch.where(hit & hit_box, last - first + 1, 0)
    width = int(count.max()) if n else 0
    column = torch.arange(width, device=device)  # [W]
    index = (first[:, None] + column).clamp(max=num_samples - 1)  # [N, W] interval of each column
    t_starts = t_near[:, None] + (t_far - t_near)[:, None] * edges[index]
    t_ends = t_near[:, None] + (t_far - t_near)[:, None] * edges[index + 1]
    if randomize:
        u = u_all.gather(1, index)
    else:
        u = torch.full((n, width), 0.5, device=device, dtype=dtype)
    t_mid = t_starts + (t_ends - t_starts) * u
    valid = column < count[:, None]  # [N, W]
    points = sample_points(rays, t_mid)  # [N, W, 3]
    if occupancy is not None:
        valid = valid & occupancy.is_occupied(points.reshape(-1, 3)).reshape(n, width)
    return RaySamples(t_starts=t_starts, t_ends=t_ends, t_mid=t_mid, valid=valid, points=points)


def sample_points(rays: RayBundle, t: Tensor) -> Tensor:
    """rays of N, t [N, W] -> [N, W, 3] points origin + t * direction."""
    return torch.addcmul(rays.origins[:, None, :], rays.directions[:, None, :], t[..., None])
