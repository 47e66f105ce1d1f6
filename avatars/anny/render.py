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


@dataclass(frozen=True)
class SamplePattern:
    """Where the surface samples lie on a mesh's triangles: reusable across poses of the same mesh
    (an animation re-poses the points instead of re-drawing them)."""

    faces: np.ndarray
    """[N, 3] int64 vertex indices of each sample's triangle."""
    bary: np.ndarray
    """[N, 3, 1] float64 barycentric weights."""

    def apply(self, vertices: np.ndarray, colors: np.ndarray) -> SurfaceSamples:
        """The samples on the mesh posed at `vertices` [V, 3]."""
        tri = vertices[self.faces].astype(np.float64)  # [N, 3, 3]
        cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals = cross / np.maximum(np.linalg.norm(cross, axis=1, keepdims=True), 1e-12)
        points = (tri * self.bary).sum(1)
        col = (colors[self.faces] * self.bary).sum(1)
        return SurfaceSamples(points.astype(np.float32), col.astype(np.float32), normals.astype(np.float32))


def sample_pattern(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int) -> SamplePattern:
    """Area-weighted random sample positions on the triangles [F, 3]."""
    rng = np.random.default_rng(seed)
    tri = vertices[faces].astype(np.float64)  # [F, 3, 3]
    area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    pick = rng.choice(len(faces), size=count, p=area / area.sum())
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    return SamplePattern(faces[pick], np.stack([1 - u - v, u, v], 1)[:, :, None])


def sample_surface(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, count: int, seed: int) -> SurfaceSamples:
    """Area-weighted random points on the triangles [F, 3], colours interpolated."""
    return sample_pattern(vertices, faces, count, seed).apply(vertices, colors)


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
    facing = (samples.normals @ -forward) > -0.05
    focal = 0.5 * config.size / np.tan(np.radians(config.fov_degrees) / 2)
    px = np.floor(config.size / 2 + focal * x / z).astype(np.int64)
    py = np.floor(config.size / 2 - focal * y / z).astype(np.int64)
    ok = facing & (z > 0.01) & (px >= 0) & (px < config.size) & (py >= 0) & (py < config.size)
    ok &= (px < config.size - 1) & (py < config.size - 1)
    src = np.flatnonzero(ok)
    base = (py * config.size + px)[ok]
    pix = np.concatenate([base, base + 1, base + config.size, base + config.size + 1])
    depth = np.tile(z[ok], 4)
    order = np.argsort(depth, kind="stable")
    first = np.unique(pix[order], return_index=True)
    idx = np.tile(src, 4)[order[first[1]]]
    light = np.clip(samples.normals[idx] @ (-forward + 0.4 * up - 0.3 * right) / 1.17, 0.0, 1.0)
    shade = 0.45 + 0.6 * light
    image = np.tile(np.asarray(config.background, np.float32), (config.size * config.size, 1))
    image[first[0]] = np.clip(samples.colors[idx] * shade[:, None], 0.0, 1.0)
    return np.round(image.reshape(config.size, config.size, 3) * 255).astype(np.uint8)


def render_turntable_frames(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, frames: int,
                            config: RenderConfig) -> np.ndarray:
    """[T, H, W, 3] uint8: a full turn starting from the front."""
    samples = sample_surface(vertices, faces, colors, config.sample_count(), config.seed)
    return np.stack([render_view(samples, 360.0 * i / frames, config) for i in range(frames)])
