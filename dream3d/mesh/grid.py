"""A field sampled on a regular grid, and the opacity the renderer would show through it."""
from __future__ import annotations

import math

import numpy as np
import torch

from dream3d.fields.base import Field


def grid_coordinates(resolution: int, bound: float) -> np.ndarray:
    """[R] float32 coordinates of the grid points along one axis."""
    return np.linspace(-bound, bound, resolution, dtype=np.float32)


@torch.no_grad()
def query_field_chunked(fn, points: np.ndarray, chunk_size: int, device: torch.device) -> np.ndarray:
    """Apply `fn: Tensor [n, 3] -> Tensor [n, C]` to `points` [N, 3] in chunks. Returns [N, C] float32."""
    outputs = []
    for start in range(0, points.shape[0], chunk_size):
        chunk = torch.from_numpy(np.ascontiguousarray(points[start : start + chunk_size])).to(device)
        outputs.append(fn(chunk).float().cpu().numpy())
    return np.concatenate(outputs, axis=0) if outputs else np.zeros((0, 1), np.float32)


def field_device(field: Field) -> torch.device:
    param = next(field.parameters(), None)
    if param is None:
        param = next(field.buffers(), None)
    return param.device if param is not None else torch.device("cpu")


def density_grid(field: Field, resolution: int, bound: float, chunk_size: int) -> np.ndarray:
    """[R, R, R] float32 density at the grid points, indexed [x, y, z]."""
    axis = grid_coordinates(resolution, bound)
    device = field_device(field)
    grid = np.zeros((resolution, resolution, resolution), np.float32)
    xs, ys = np.meshgrid(axis, axis, indexing="ij")  # one z-slab at a time keeps memory flat
    for k, z in enumerate(axis):
        pts = np.stack([xs, ys, np.full_like(xs, z)], axis=-1).reshape(-1, 3)
        dens = query_field_chunked(field.query_density, pts, chunk_size, device)
        grid[:, :, k] = dens.reshape(resolution, resolution)
    return np.nan_to_num(np.maximum(grid, 0.0), nan=0.0, posinf=1e6)


def alpha_iso_level(step: float, alpha: float = 0.5) -> float:
    """The density at which one step of length `step` has opacity `alpha`: -ln(1 - alpha) / step."""
    return -math.log(1.0 - alpha) / step


def depth_surface_level(grid: np.ndarray, voxel: float, transmittance: float = 0.5) -> float | None:
    """The median density where axis-aligned rays through the grid first fall to `transmittance`.

    This is where the renderer "sees" the surface (its expected-depth surface), so meshing at
    this density makes the mesh coincide with the render: for a hard step in density it puts
    the surface halfway between grid points; for a smooth shell it finds the shell's optical
    middle. Density is taken as piecewise linear between grid points (the marching-cubes
    model), and the optical depth is integrated exactly under it. Rays run both ways along all
    three axes. grid: [R, R, R]. Returns None when no ray gets that opaque.
    """
    target = -math.log(transmittance)
    levels = []
    for axis in range(3):
        for flip in (False, True):
            g = np.moveaxis(grid, axis, -1).reshape(-1, grid.shape[axis]).astype(np.float64)
            g = g[:, ::-1] if flip else g
            g = np.pad(g, ((0, 0), (1, 0)))  # rays start in empty space, like the padded MC grid
            tau = np.concatenate([np.zeros((g.shape[0], 1)), np.cumsum(0.5 * (g[:, 1:] + g[:, :-1]) * voxel, axis=1)], 1)
            crossed = tau[:, -1] >= target
            if not crossed.any():
                continue
            g, tau = g[crossed], tau[crossed]
            i = np.argmax(tau >= target, axis=1)  # first sample at or past the target, >= 1
            rows = np.arange(g.shape[0])
            s0, s1, t0 = g[rows, i - 1], g[rows, i], tau[rows, i - 1]
            # tau(t) = t0 + s0 t + (s1 - s0) t^2 / (2 h) = target, for t in [0, h].
            a, b, c = (s1 - s0) / (2.0 * voxel), s0, t0 - target
            disc = np.sqrt(np.maximum(b * b - 4.0 * a * c, 0.0))
            safe_a = np.where(np.abs(a) > 1e-12, a, 1.0)
            t = np.where(np.abs(a) > 1e-12, (-b + disc) / (2.0 * safe_a), -c / np.maximum(b, 1e-12))
            t = np.clip(t, 0.0, voxel)
            levels.append(s0 + (s1 - s0) * t / voxel)
    if not levels:
        return None
    return float(np.median(np.concatenate(levels)))


def opacity_masks(grid: np.ndarray, voxel: float) -> list[np.ndarray]:
    """The field's opacity > 0.5 seen along each axis: alpha compositing through the grid.

    grid: [R, R, R]. Returns three [R, R] bool masks (projections along x, y, z).
    """
    return [(1.0 - np.exp(-grid.sum(axis=a) * voxel)) > 0.5 for a in range(3)]
