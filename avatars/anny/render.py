"""A small CPU renderer for rigged avatars: dense surface points, z-buffered, Lambert-shaded.

Enough for the run folder's preview and turntable (a few hundred thousand points per frame,
~30 ms each at 256 px on a CPU core) without a GPU or an OpenGL context.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RenderConfig:
    """Camera and sampling of the avatar renders."""

    size: int = 256
    """Image side in pixels."""
    points_per_pixel: float = 3.0
    """Surface samples per image pixel (each is drawn as a 2x2 splat)."""
    fov_degrees: float = 30.0
    """Vertical field of view."""
    distance: float = 1.05
    """Camera distance from the target, metres."""
    target_height: float = 0.24
    """Height the camera looks at, metres above the bust's base (the face)."""
    elevation_degrees: float = 5.0
    """Camera elevation above the horizon."""
    background: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """sRGB background."""
    seed: int = 0
    """Seeds the surface sampling (renders are deterministic)."""
    see_through_depth: float = 0.003
    """A pixel this far (metres) behind most of its neighbours shows a surface it should not (a gap
    between splats): it takes their colour."""

    def sample_count(self) -> int:
        """Surface samples for this view: `points_per_pixel` at the default distance, more when closer."""
        return int(self.points_per_pixel * self.size**2 * (_REFERENCE_DISTANCE / self.distance) ** 2)


_REFERENCE_DISTANCE = 1.05


@dataclass(frozen=True)
class SurfaceSamples:
    """Points on a mesh with their colours and normals."""

    points: np.ndarray
    """[N, 3] float32."""
    colors: np.ndarray
    """[N, 3] float32 sRGB."""
    normals: np.ndarray
    """[N, 3] float32 unit face normals."""


def sample_surface(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, count: int, seed: int) -> SurfaceSamples:
    """Area-weighted random points on the triangles [F, 3], colours interpolated."""
    rng = np.random.default_rng(seed)
    tri = vertices[faces].astype(np.float64)  # [F, 3, 3]
    cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    area = np.linalg.norm(cross, axis=1)
    pick = rng.choice(len(faces), size=count, p=area / area.sum())
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    bary = np.stack([1 - u - v, u, v], 1)[:, :, None]
    points = (tri[pick] * bary).sum(1)
    col = (colors[faces[pick]] * bary).sum(1)
    normals = cross[pick] / np.maximum(area[pick, None], 1e-12)
    return SurfaceSamples(points.astype(np.float32), col.astype(np.float32), normals.astype(np.float32))


def _camera(azimuth_degrees: float, config: RenderConfig):
    """(eye, right, up, forward) of the orbiting camera."""
    az, el = np.radians(azimuth_degrees), np.radians(config.elevation_degrees)
    target = np.array([0.0, config.target_height, 0.0])
    eye = target + config.distance * np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    return eye, right, np.cross(right, forward), forward


def project(points: np.ndarray, azimuth_degrees: float, config: RenderConfig) -> np.ndarray:
    """[N, 3] world points -> [N, 2] pixel (column, row) in `render_view`'s image."""
    eye, right, up, forward = _camera(azimuth_degrees, config)
    rel = np.asarray(points, np.float64) - eye
    focal = 0.5 * config.size / np.tan(np.radians(config.fov_degrees) / 2)
    z = rel @ forward
    return np.stack([config.size / 2 + focal * (rel @ right) / z, config.size / 2 - focal * (rel @ up) / z], 1)


def render_view(samples: SurfaceSamples, azimuth_degrees: float, config: RenderConfig) -> np.ndarray:
    """[H, W, 3] uint8 image from a camera orbiting the +Y axis (azimuth 0: looking at the front)."""
    eye, right, up, forward = _camera(azimuth_degrees, config)
    rel = samples.points - eye
    x, y, z = rel @ right, rel @ up, rel @ forward
    focal = 0.5 * config.size / np.tan(np.radians(config.fov_degrees) / 2)
    px = np.floor(config.size / 2 + focal * x / z).astype(np.int64)
    py = np.floor(config.size / 2 - focal * y / z).astype(np.int64)
    ok = (z > 0.01) & (px >= 0) & (px < config.size) & (py >= 0) & (py < config.size)
    ok &= (px < config.size - 1) & (py < config.size - 1)
    src = np.flatnonzero(ok)
    base = (py * config.size + px)[ok]
    pix = np.concatenate([base, base + 1, base + config.size, base + config.size + 1])
    depth = np.tile(z[ok], 4)
    order = np.argsort(depth, kind="stable")
    first = np.unique(pix[order], return_index=True)
    idx = np.tile(src, 4)[order[first[1]]]
    # Two-sided: the z-buffer hides back faces, and a few of Anny's triangles (lips) face inward.
    normals = samples.normals[idx] * np.where(samples.normals[idx] @ forward > 0, -1.0, 1.0)[:, None]
    light = np.clip(normals @ (-forward + 0.4 * up - 0.3 * right) / 1.17, 0.0, 1.0)
    shade = 0.45 + 0.6 * light
    image = np.tile(np.asarray(config.background, np.float32), (config.size * config.size, 1))
    image[first[0]] = np.clip(samples.colors[idx] * shade[:, None], 0.0, 1.0)
    zbuf = np.full(config.size * config.size, np.inf, np.float32)
    zbuf[first[0]] = depth[order[first[1]]]
    image = fill_see_through(image.reshape(config.size, config.size, 3), zbuf.reshape(config.size, config.size),
                             config.see_through_depth)
    return np.round(image * 255).astype(np.uint8)


def fill_see_through(image: np.ndarray, depth: np.ndarray, tolerance: float, passes: int = 4) -> np.ndarray:
    """Pixels [H, W, 3] that no front sample reached, so a surface behind (or the background) shows,
    take the mean colour of their nearer neighbours: where at least 5 of the 8 neighbours are more
    than `tolerance` (metres) closer. Silhouettes and real depth steps have fewer such neighbours."""
    h, w = depth.shape
    offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]
    for _ in range(passes):
        pd = np.pad(depth, 1, constant_values=np.inf)
        pi = np.pad(image, ((1, 1), (1, 1), (0, 0)))
        nd = np.stack([pd[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in offsets])  # [8, H, W]
        ni = np.stack([pi[1 + dy:1 + dy + h, 1 + dx:1 + dx + w] for dy, dx in offsets])  # [8, H, W, 3]
        nearer = nd < depth[None] - tolerance
        hole = nearer.sum(0) >= 5  # splats are 2x2, so are their gaps
        if not hole.any():
            break
        weight = nearer[..., None].astype(np.float32)
        image = image.copy()
        image[hole] = ((ni * weight).sum(0) / np.maximum(weight.sum(0), 1))[hole]
        depth = depth.copy()
        depth[hole] = np.where(nearer, nd, np.inf).min(0)[hole]
    return image


def render_turntable_frames(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, frames: int,
                            config: RenderConfig) -> np.ndarray:
    """[T, H, W, 3] uint8: a full turn starting from the front."""
    samples = sample_surface(vertices, faces, colors, config.sample_count(), config.seed)
    return np.stack([render_view(samples, 360.0 * i / frames, config) for i in range(frames)])
