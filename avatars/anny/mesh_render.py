"""Triangle-rasterised views of an avatar mesh: z-buffered, colours and smooth normals
interpolated across each triangle, Lambert-shaded, supersampled.

The same camera as the point-splat renderer (`avatars.anny.render.RenderConfig`), but every pixel
shows the nearest surface exactly: no gaps, no speckle, eyelids and lips as sharp as the mesh. The
face landmarker reads these (the round trip, the driven video's avatar half).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatars.anny.accessories import vertex_normals
from avatars.anny.render import RenderConfig, orbit_camera
from dream3d.mesh.raster import zbuffer


@dataclass(frozen=True)
class Shading:
    """Light and anti-aliasing of the mesh renders."""

    supersample: int = 2
    """Rendered at this many times the image side, then box-filtered down (anti-aliasing)."""
    ambient: float = 0.45
    """Brightness of a surface facing away from the light."""
    diffuse: float = 0.6
    """Lambert term's weight (a surface facing the light: ambient + diffuse)."""
    light: tuple[float, float, float] = (-0.3, 0.4, 1.0)
    """Direction toward the light in camera axes (right, up, toward the camera)."""


def closed_faces(faces: np.ndarray, parts: np.ndarray) -> np.ndarray:
    """[F] bool: the avatar's faces on closed, outward-wound surfaces (skin, eyeballs), which a
    camera never sees from behind. Hair, clothes, lashes, lips and the mouth are open or wound
    inward in places and stay two-sided."""
    from avatars.anny.rigged import Part

    closed = np.isin(parts, (Part.SKIN, Part.EYE_WHITE, Part.IRIS, Part.PUPIL))
    return closed[faces].all(1)


def render_mesh(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, azimuth_degrees: float,
                config: RenderConfig, bias: np.ndarray | None = None, shading: Shading = Shading(),
                cullable: np.ndarray | None = None) -> np.ndarray:
    """[H, W, 3] uint8 view of the mesh (vertices [V, 3], faces [F, 3], sRGB colors [V, 3]) from the
    orbiting camera of `config` (azimuth 0: the front). bias: [V] metres added to each vertex's depth
    in the z-test (None: 0). Two-sided: a face seen from behind is lit as if it faced the camera,
    unless `cullable` [F] bool marks it (`closed_faces`): then it is skipped (a speed-up only)."""
    eye, right, up, forward = orbit_camera(azimuth_degrees, config)
    s = config.size * shading.supersample
    rel = np.asarray(vertices, np.float64) - eye
    depth = rel @ forward
    focal = 0.5 * s / np.tan(np.radians(config.fov_degrees) / 2)
    safe = np.maximum(depth, 1e-6)
    px = np.stack([s / 2 + focal * (rel @ right) / safe, s / 2 - focal * (rel @ up) / safe], 1)
    faces = np.asarray(faces, np.int64)
    normals = vertex_normals(vertices, faces).astype(np.float32)  # from every face, culled or not
    keep = (depth[faces] > 0.01).all(1)
    if cullable is not None:
        tri = px[faces]  # screen winding: seen from behind, the signed area flips
        area = (tri[:, 1, 0] - tri[:, 0, 0]) * (tri[:, 2, 1] - tri[:, 0, 1]) - (tri[:, 2, 0] - tri[:, 0, 0]) * (tri[:, 1, 1] - tri[:, 0, 1])
        keep &= ~(cullable & (area > 0))
    faces = faces[keep]
    z = depth if bias is None else depth + np.asarray(bias, np.float64)
    face, bary = zbuffer(px[faces], z[faces], s, s)
    hit = face >= 0
    corners = faces[face[hit]]  # [K, 3]
    b = bary[hit]  # [K, 3]

    def mix(values: np.ndarray) -> np.ndarray:  # [V, C] per vertex -> [K, C] per pixel
        return (values[corners[:, 0]] * b[:, 0:1] + values[corners[:, 1]] * b[:, 1:2]
                + values[corners[:, 2]] * b[:, 2:3])

    color = mix(np.asarray(colors, np.float32))
    n = mix(normals)
    camera = np.stack([n @ right, n @ up, -(n @ forward)], 1)  # camera axes, z toward the camera
    length = np.sqrt(camera[:, 0] ** 2 + camera[:, 1] ** 2 + camera[:, 2] ** 2)
    camera *= (np.where(camera[:, 2] < 0, -1.0, 1.0) / np.maximum(length, 1e-12))[:, None]
    light = np.asarray(shading.light, np.float64) / np.linalg.norm(shading.light)
    shade = shading.ambient + shading.diffuse * np.clip(camera @ light, 0.0, 1.0)
    image = np.empty((s, s, 3), np.float32)
    image[:] = np.asarray(config.background, np.float32)
    image[hit] = np.clip(color * shade[:, None], 0.0, 1.0)
    k = shading.supersample
    if k > 1:
        image = image.reshape(config.size, k, config.size, k, 3).mean((1, 3))
    return np.round(image * 255).astype(np.uint8)
