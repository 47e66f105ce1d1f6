"""An occupancy grid over [-1, 1]^3 that lets the sampler skip empty space.

Instant-NGP's scheme in pure torch: every `update_every` training steps, query the field's
density at one jittered point per cell, keep an exponential moving average that decays old
values (so cells the field has emptied become free) but jumps up to new ones (so cells it has
filled are never skipped for long), and mark a cell occupied where the average exceeds a
threshold. Before the first update every cell counts as occupied.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dream3d.fields.base import Field


@dataclass(frozen=True)
class OccupancyGridConfig:
    """Resolution and update schedule of the occupancy grid."""

    resolution: int = 32
    """Cells per side; 32^3 cells of 1/16 scene units each."""
    bound: float = 1.0
    """The grid covers [-bound, bound]^3."""
    update_every: int = 16
    """`update(field, step)` refreshes the grid when step is a multiple of this."""
    decay: float = 0.95
    """Per-update decay of the moving average of density."""
    density_threshold: float = 0.1
    """A cell is occupied where its averaged density exceeds min(this, the mean over cells)
    (density per unit length: 0.1 over one cell of 1/16 gives alpha 0.006)."""
    warmup_steps: int = 0
    """Before this step, updates query every cell at its centre without decay (full refresh)."""
    dilation: int = 1
    """Cells within this many cells of an occupied one count as occupied too: one jittered
    point per cell can miss a thin part of a surface crossing it, and skipping is only safe
    when it errs on the side of sampling."""
    query_chunk: int = 65536
    """Cells queried per field call during an update."""

    def __post_init__(self) -> None:
        if not 1 <= self.resolution <= 256:  # cell_index is exact in float32 up to 256^3 cells
            raise ValueError(f"OccupancyGridConfig.resolution must be 1..256, got {self.resolution}")


class OccupancyGrid(nn.Module):
    """Buffers: `density` [R^3] moving average, `occupied` [R^3] bool. Cells are x-fastest."""

    def __init__(self, config: OccupancyGridConfig = OccupancyGridConfig()):
        super().__init__()
        self.config = config
        r = config.resolution
        self.register_buffer("density", torch.full((r**3,), float("inf")))
        self.register_buffer("occupied", torch.ones(r**3, dtype=torch.bool))

    def cell_centres(self) -> Tensor:
        """[R^3, 3] world positions of the cell centres, x fastest."""
        r, b = self.config.resolution, self.config.bound
        idx = torch.arange(r, device=self.density.device, dtype=torch.float32)
        z, y, x = torch.meshgrid(idx, idx, idx, indexing="ij")
        cells = torch.stack([x, y, z], dim=-1).reshape(-1, 3)
        return (cells + 0.5) / r * 2 * b - b

    def cell_index(self, points: Tensor) -> Tensor:
        """[N, 3] points -> [N] flat cell index (points outside are clamped to the border cell)."""
        r, b = self.config.resolution, self.config.bound
        cell = points.float() + b  # [N, 3]; in place from here on: videos look up millions of points
        cell.div_(2 * b).mul_(r).floor_().clamp_(0, r - 1)
        # x + r y + r^2 z as one matrix-vector product: exact in float32 below 2^24 = 256^3 cells.
        strides = torch.tensor([1.0, r, r * r], device=points.device, dtype=cell.dtype)
        return (cell @ strides).long()

    def is_occupied(self, points: Tensor) -> Tensor:
        """[N, 3] points -> [N] bool: their cell is occupied."""
        return self.occupied[self.cell_index(points)]

    def occupied_box(self) -> tuple[Tensor, Tensor]:
        """World corners (low [3], high [3]) of the smallest box that holds every occupied cell.

        A side whose cells touch the grid's border extends to infinity, since `cell_index`
        clamps points beyond the grid to the border cells. With nothing occupied the box is
        empty (low > high).
        """
        r, b = self.config.resolution, self.config.bound
        cells = self.occupied.reshape(r, r, r).nonzero()  # [K, 3] as (z, y, x)
        if cells.shape[0] == 0:
            return self.density.new_full((3,), float("inf")), self.density.new_full((3,), -float("inf"))
        first = cells.amin(dim=0).flip(0).to(self.density.dtype)  # (x, y, z)
        last = cells.amax(dim=0).flip(0).to(self.density.dtype)
        cell = 2 * b / r
        low = torch.where(first == 0, -float("inf"), first * cell - b)
        high = torch.where(last == r - 1, float("inf"), (last + 1) * cell - b)
        return low, high

    @torch.no_grad()
    def update(self, field: Field, step: int, generator: torch.Generator | None = None) -> bool:
        """Refresh from `field` when `step` is a multiple of update_every. Returns whether it did."""
        cfg = self.config
        if step % cfg.update_every != 0:
            return False
        centres = self.cell_centres()
        if step >= cfg.warmup_steps:
            cell = 2 * cfg.bound / cfg.resolution
            jitter = (torch.rand(centres.shape, generator=generator) - 0.5).to(centres) * cell
            points = centres + jitter  # one random point per cell
        else:
            points = centres
        new = torch.cat([field.query_density(chunk)[:, 0] for chunk in points.split(cfg.query_chunk)])
        new = new.to(self.density)
        old = torch.where(torch.isinf(self.density), torch.zeros_like(new), self.density)
        decay = cfg.decay if step >= cfg.warmup_steps else 0.0
        self.density.copy_(torch.maximum(old * decay, new))
        threshold = min(cfg.density_threshold, self.density.mean().item())
        occupied = (self.density > threshold).float().reshape(1, 1, *(cfg.resolution,) * 3)
        if cfg.dilation > 0:
            k = 2 * cfg.dilation + 1
            occupied = nn.functional.max_pool3d(occupied, k, stride=1, padding=cfg.dilation)
        occupied = occupied.reshape(-1) > 0
        if not occupied.any():
            # An all-empty grid would stop every sample, so the field would never get a
            # gradient again: sample everywhere instead and let training bring density back.
            occupied = torch.ones_like(occupied)
        self.occupied.copy_(occupied)
        return True

    @property
    def occupied_fraction(self) -> float:
        return self.occupied.float().mean().item()
