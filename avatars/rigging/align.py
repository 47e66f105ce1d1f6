"""The similarity (scale, shift) that takes a generated avatar from the field's frame (the bust
fills [-1, 1]^3) into the Anny template's metric frame, and the template's face region.

Start: the SDF engine's landmarks for the prompt's attributes (eyes, mouth: the diffusion model
learned those busts) matched to the template's (eye bones, lips). Then scaled ICP of the
template's face onto the generated surface settles scale and position on the face itself.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatars.anny.rigged import Part, RiggedMesh
from avatars.engine.attributes import AvatarAttributes


@dataclass(frozen=True)
class Similarity:
    """x -> scale * x + shift."""

    scale: float
    shift: np.ndarray
    """[3]"""

    def apply(self, points: np.ndarray) -> np.ndarray:
        """[N, 3] -> [N, 3]."""
        return self.scale * np.asarray(points, np.float64) + self.shift


@dataclass(frozen=True)
class FaceRegion:
    """The face, in a bust's head frame (metres): what the registration distance is measured on."""

    above_mouth: float = 0.035
    """Up to this far above the eyes' centres (the brows; the forehead is left to the hair)."""
    below_mouth: float = 0.045
    """Down to this far below the lips' centre (the chin)."""
    half_width: float = 0.055
    """At most this far either side of the mid-line (the outer eye corners and cheeks)."""
    in_front: float = -0.005
    """Only surface in front of the eye bones' depth plus this (the face, not the ears)."""


def face_vertices(bust: RiggedMesh, region: FaceRegion = FaceRegion()) -> np.ndarray:
    """[V] bool: skin and lip vertices of the face (see `FaceRegion`)."""
    sk = bust.skeleton
    eyes = (sk.world[sk.index("eye.L"), :3, 3] + sk.world[sk.index("eye.R"), :3, 3]) / 2
    mouth = bust.vertices[bust.parts == Part.LIPS].mean(0)
    v = bust.vertices
    surface = np.isin(bust.parts, (Part.SKIN, Part.LIPS))
    return surface & (v[:, 1] < eyes[1] + region.above_mouth) & (v[:, 1] > mouth[1] - region.below_mouth) & \
        (np.abs(v[:, 0] - eyes[0]) < region.half_width) & (v[:, 2] > eyes[2] + region.in_front)


def template_landmarks(bust: RiggedMesh) -> np.ndarray:
    """[3, 3]: the eyes' centres (+x first) and the lips' centre."""
    sk = bust.skeleton
    eye_l, eye_r = sk.world[sk.index("eye.L"), :3, 3], sk.world[sk.index("eye.R"), :3, 3]
    plus, minus = (eye_l, eye_r) if eye_l[0] > eye_r[0] else (eye_r, eye_l)
    return np.stack([plus, minus, bust.vertices[bust.parts == Part.LIPS].mean(0)])


def engine_landmarks(attributes: AvatarAttributes) -> np.ndarray:
    """[3, 3]: the same landmarks on the SDF engine's bust (field frame) for these attributes."""
    from avatars.engine.shape import head_shape

    s = head_shape(attributes)
    ex, ey, ez = s.eye_centre
    return np.array([[ex, ey, ez], [-ex, ey, ez], [0.0, s.mouth_y, s.nose_tip[2] - 0.6 * (s.nose_tip[2] - ez)]])


def landmark_similarity(source: np.ndarray, target: np.ndarray) -> Similarity:
    """The scale and shift (no rotation: both frames are +Y up, +Z front) that best maps
    source [N, 3] onto target [N, 3] in least squares."""
    sc, tc = source.mean(0), target.mean(0)
    a, b = source - sc, target - tc
    scale = float((a * b).sum() / max((a * a).sum(), 1e-12))
    return Similarity(scale, tc - scale * sc)


def refine_on_face(start: Similarity, template_face: np.ndarray, target_vertices: np.ndarray,
                   target_faces: np.ndarray, iterations: int = 20) -> Similarity:
    """Scaled ICP (scale and shift only) of the template's face points [N, 3] onto the target mesh
    (field frame): the similarity field -> template that puts the generated face on the template's."""
    import trimesh
    from scipy.spatial import cKDTree

    target = trimesh.Trimesh(target_vertices, target_faces, process=False)
    points, _ = trimesh.sample.sample_surface_even(target, 40000, seed=0)
    sim = start
    for _ in range(iterations):
        moved = sim.apply(points)
        tree = cKDTree(moved)
        dist, k = tree.query(template_face)
        keep = dist < max(np.median(dist) * 3, 1e-4)
        # Least squares for field points p_k mapped onto the template's face points f.
        sim = landmark_similarity(points[k[keep]], template_face[keep])
    return sim
