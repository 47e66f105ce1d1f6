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
    fill_gap: float = 0.003
    """Speckle fill: a pixel that shows something this much (metres) deeper than at least 5 of its
    8 neighbours (a gap between splats, showing the background, the inside or the teeth behind
    the lips) takes their colour (`fill_see_through`). 0: off."""


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
    bias: np.ndarray | None = None
    """[N] float32 metres added to each sample's depth in the z-test (None: 0)."""


@dataclass(frozen=True)
class SamplePattern:
    """Where the surface samples lie on a mesh's triangles: reusable across poses of the same mesh
    (an animation re-poses the points instead of re-drawing them)."""

    mesh_faces: np.ndarray
    """[F, 3] int64 the mesh's triangles."""
    face_index: np.ndarray
    """[N] int64 each sample's triangle."""
    corners: np.ndarray
    """[N, 3] int64 vertex indices of each sample's triangle (mesh_faces[face_index])."""
    bary: np.ndarray
    """[N, 3] float32 barycentric weights."""

    def _mix(self, values: np.ndarray) -> np.ndarray:
        """[V, C] per-vertex values -> [N, C] at the samples."""
        c, b = self.corners, self.bary
        return values[c[:, 0]] * b[:, 0:1] + values[c[:, 1]] * b[:, 1:2] + values[c[:, 2]] * b[:, 2:3]

    def apply(self, vertices: np.ndarray, colors: np.ndarray, bias: np.ndarray | None = None) -> SurfaceSamples:
        """The samples on the mesh posed at `vertices` [V, 3] (per-vertex depth `bias` [V], optional)."""
        v = np.asarray(vertices, np.float32)
        tri = v[self.mesh_faces]  # [F, 3, 3]: face normals once per pose, then gathered
        cross = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
        normals = cross / np.maximum(np.linalg.norm(cross, axis=1, keepdims=True), 1e-12)
        b = None if bias is None else self._mix(np.asarray(bias, np.float32)[:, None])[:, 0]
        return SurfaceSamples(self._mix(v), self._mix(np.asarray(colors, np.float32)),
                              normals[self.face_index].astype(np.float32), b)


def sample_pattern(vertices: np.ndarray, faces: np.ndarray, count: int, seed: int) -> SamplePattern:
    """Area-weighted random sample positions on the triangles [F, 3]."""
    rng = np.random.default_rng(seed)
    tri = vertices[faces].astype(np.float64)  # [F, 3, 3]
    area = np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    pick = rng.choice(len(faces), size=count, p=area / area.sum())
    u, v = rng.random(count), rng.random(count)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    faces = np.asarray(faces, np.int64)
    return SamplePattern(faces, pick, faces[pick], np.stack([1 - u - v, u, v], 1).astype(np.float32))


def sample_surface(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, count: int, seed: int) -> SurfaceSamples:
    """Area-weighted random points on the triangles [F, 3], colours interpolated."""
    return sample_pattern(vertices, faces, count, seed).apply(vertices, colors)


def orbit_camera(azimuth_degrees: float, config: RenderConfig):
    """(eye, right, up, forward) of the orbiting camera."""
    az, el = np.radians(azimuth_degrees), np.radians(config.elevation_degrees)
    target = np.array([0.0, config.target_height, 0.0])
    eye = target + config.distance * np.array([np.sin(az) * np.cos(el), np.sin(el), np.cos(az) * np.cos(el)])
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, [0.0, 1.0, 0.0])
    right /= np.linalg.norm(right)
    return eye, right, np.cross(right, forward), forward


def lambert_shade(normals: np.ndarray, right: np.ndarray, up: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """Brightness factor [N] of unit normals [N, 3] (or one [3]) under the renders' fixed light: from
    the camera, a little above and to the left, plus ambient."""
    light = np.clip(normals @ (-forward + 0.4 * up - 0.3 * right) / 1.17, 0.0, 1.0)
    return 0.45 + 0.6 * light


def project(points: np.ndarray, azimuth_degrees: float, config: RenderConfig) -> np.ndarray:
    """[N, 3] world points -> [N, 2] pixel (column, row) in `render_view`'s image."""
    eye, right, up, forward = orbit_camera(azimuth_degrees, config)
    rel = np.asarray(points, np.float64) - eye
    focal = 0.5 * config.size / np.tan(np.radians(config.fov_degrees) / 2)
    z = rel @ forward
    return np.stack([config.size / 2 + focal * (rel @ right) / z, config.size / 2 - focal * (rel @ up) / z], 1)


def render_view(samples: SurfaceSamples, azimuth_degrees: float, config: RenderConfig) -> np.ndarray:
    """[H, W, 3] uint8 image from a camera orbiting the +Y axis (azimuth 0: looking at the front)."""
    eye, right, up, forward = orbit_camera(azimuth_degrees, config)
    rel = samples.points - eye.astype(np.float32)
    x, y, z = (rel @ axis.astype(np.float32) for axis in (right, up, forward))
    focal = 0.5 * config.size / np.tan(np.radians(config.fov_degrees) / 2)
    px = np.floor(config.size / 2 + focal * x / z).astype(np.int64)
    py = np.floor(config.size / 2 - focal * y / z).astype(np.int64)
    # Two-sided: the z-buffer hides back faces, and a few of Anny's triangles (lips) face inward.
    ok = (z > 0.01) & (px >= 0) & (px < config.size) & (py >= 0) & (py < config.size)
    ok &= (px < config.size - 1) & (py < config.size - 1)
    src = np.flatnonzero(ok)
    n = config.size
    cell = (py * n + px)[ok]
    d = z[ok] if samples.bias is None else z[ok] + samples.bias[ok]
    # The nearest sample in each pixel, then the 2x2 splat: a pixel shows the nearest sample of its
    # own cell and the three cells up and to the left (same result as splatting, a quarter the sort).
    order = np.argsort(d, kind="stable")
    cells, at = np.unique(cell[order], return_index=True)
    near = np.full(n * n, np.inf)
    near[cells] = d[order[at]]
    owner = np.full(n * n, -1, np.int64)
    owner[cells] = src[order[at]]
    near, owner = near.reshape(n, n), owner.reshape(n, n)
    stack_d = np.full((4, n, n), np.inf)
    stack_i = np.full((4, n, n), -1, np.int64)
    for k, (dy, dx) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
        stack_d[k, dy:, dx:] = near[: n - dy, : n - dx]
        stack_i[k, dy:, dx:] = owner[: n - dy, : n - dx]
    best = np.argmin(stack_d, axis=0)[None]
    zbuf = np.take_along_axis(stack_d, best, 0)[0].reshape(-1)
    hit = np.flatnonzero(np.isfinite(zbuf))
    idx = np.take_along_axis(stack_i, best, 0)[0].reshape(-1)[hit]
    first = (hit,)
    normals = samples.normals[idx] * np.where(samples.normals[idx] @ forward > 0, -1.0, 1.0)[:, None]
    shade = lambert_shade(normals, right, up, forward)
    image = np.tile(np.asarray(config.background, np.float32), (config.size * config.size, 1))
    image[first[0]] = np.clip(samples.colors[idx] * shade[:, None], 0.0, 1.0)
    image = image.reshape(config.size, config.size, 3)
    if config.fill_gap > 0:
        image = fill_see_through(image, zbuf.reshape(n, n), config.fill_gap)
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


def eye_depth_bias(parts: np.ndarray, metres: float = 0.01) -> np.ndarray:
    """[V] depth bias pushing the eyeballs (white, iris, pupil) back: a closed eyelid lies within
    millimetres of the eyeball, and without it the splats of both interleave."""
    from avatars.anny.rigged import Part

    return np.where(np.isin(parts, (Part.EYE_WHITE, Part.IRIS, Part.PUPIL)), metres, 0.0).astype(np.float32)
