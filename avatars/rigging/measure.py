"""How clean an avatar's colours are (and where on a render to look), and how closely a rigged
generated avatar's face sits on the generated one, measured from the generated side.

COLOUR NOISE: the mean, over the pixels of a region whose whole window lies inside it, of the
local colour variance (per-channel variance over a `window` x `window` neighbourhood, summed over
R, G, B, sRGB in [0, 1]) of an unshaded front render. Flat colour gives 0; blotches and speckle
raise it. Regions: SKIN is the face (`align.face_vertices`, lips excluded), HAIR the engine's hair
shell or, on a rigged generated avatar, the skull above the hairline the engine's hair would cover.
`scripts/eval_colour_noise.py` compares generated avatars with engine ones.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

from avatars.anny.rigged import Part, RiggedMesh


class Region(enum.IntEnum):
    """What a pixel of a region render shows."""

    OTHER = 0
    SKIN = 1
    HAIR = 2


def local_colour_variance(image: np.ndarray, mask: np.ndarray, window: int = 5) -> float:
    """image [H, W, 3] float in [0, 1], mask [H, W] bool -> the mean over the pixels whose whole
    window x window neighbourhood is in the mask of the neighbourhood's colour variance (summed over
    channels); nan when no pixel qualifies."""
    from numpy.lib.stride_tricks import sliding_window_view

    img = np.asarray(image, np.float64)
    inside = sliding_window_view(np.asarray(mask, bool), (window, window)).all((-1, -2))  # [H-w+1, W-w+1]
    if not inside.any():
        return float("nan")
    patches = sliding_window_view(img, (window, window), axis=(0, 1))  # [H-w+1, W-w+1, 3, w, w]
    var = patches.reshape(*patches.shape[:3], -1).var(-1).sum(-1)
    return float(var[inside].mean())


def hair_line_height(mesh: RiggedMesh, above_eyes: float = 0.045) -> float:
    """Height (metres) above which a bare skull is hair-covered: `above_eyes` over the eyes' centres
    (the front hairline of avatars.anny.accessories)."""
    sk = mesh.skeleton
    return float((sk.world[sk.index("eye.L"), 1, 3] + sk.world[sk.index("eye.R"), 1, 3]) / 2 + above_eyes)


def vertex_regions(mesh: RiggedMesh, face: np.ndarray) -> np.ndarray:
    """[V] `Region` of each vertex: SKIN where `face` [V] bool and the part is skin, HAIR for hair
    parts, and for a mesh without hair (a rigged generated avatar) the skin above `hair_line_height`."""
    regions = np.full(len(mesh.vertices), Region.OTHER, np.int8)
    regions[face & (mesh.parts == Part.SKIN)] = Region.SKIN
    hair = mesh.parts == Part.HAIR
    if not hair.any():
        hair = (mesh.parts == Part.SKIN) & (mesh.vertices[:, 1] > hair_line_height(mesh)) & ~face
    regions[hair] = Region.HAIR
    return regions


@dataclass(frozen=True)
class NoiseView:
    """The camera of the colour-noise renders: the head, from the front."""

    size: int = 192
    distance: float = 0.55
    target_height: float = 0.27
    window: int = 5


def flat_render(vertices: np.ndarray, faces: np.ndarray, colors: np.ndarray, view: NoiseView = NoiseView()) -> np.ndarray:
    """[H, W, 3] float unshaded front render: every sample gets the same normal, so the same
    Lambert factor, which is divided out (colours, not shading)."""
    from avatars.anny.render import (
        RenderConfig,
        lambert_shade,
        orbit_camera,
        render_view,
        sample_surface,
    )

    config = RenderConfig(size=view.size, distance=view.distance, target_height=view.target_height)
    s = sample_surface(np.asarray(vertices, np.float32), faces, np.asarray(colors, np.float32),
                       config.sample_count(), config.seed)
    _, right, up, forward = orbit_camera(0.0, config)
    normal = -forward  # faces the camera
    shade = float(lambert_shade(normal, right, up, forward))
    lit = type(s)(s.points, s.colors, np.tile(normal.astype(np.float32), (len(s.points), 1)), s.bias)
    return np.clip(render_view(lit, 0.0, config).astype(np.float64) / 255.0 / shade, 0.0, 1.0)


def region_mask(mesh: RiggedMesh, regions: np.ndarray, region: Region, view: NoiseView = NoiseView()) -> np.ndarray:
    """[H, W] bool: pixels of a front render of `mesh` that show `region`."""
    paint = np.zeros((len(mesh.vertices), 3), np.float32)
    paint[regions == region] = (1.0, 0.0, 0.0)
    paint[regions != region] = (0.0, 0.0, 1.0)
    image = flat_render(mesh.vertices, mesh.faces, paint, view)
    return (image[..., 0] > 0.5) & (image[..., 2] < 0.5)


def reverse_face_distance(avatar: RiggedMesh, face: np.ndarray, generated_vertices: np.ndarray,
                          generated_faces: np.ndarray, samples: int = 20000, seed: int = 0) -> np.ndarray:
    """[N] metres from points sampled on the generated surface to the rigged avatar's surface, for
    the points whose nearest avatar vertex is a face vertex (`face` [V] bool): the other way round
    from `RiggedGenerated.face_distance_m`, so a generated feature the template skipped (a nose
    tip it did not reach) counts too."""
    import trimesh
    from scipy.spatial import cKDTree

    from avatars.rigging.register import closest_points

    points, _ = trimesh.sample.sample_surface_even(
        trimesh.Trimesh(generated_vertices, generated_faces, process=False), samples, seed=seed)
    _, nearest = cKDTree(avatar.vertices).query(points)
    on_face = points[face[nearest]]
    return closest_points(on_face, avatar.vertices, avatar.faces)[1]
