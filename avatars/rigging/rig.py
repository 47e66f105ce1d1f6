"""A generated avatar's mesh -> a rigged Anny avatar of the same shape and colours.

    rigged = rig_generated(GeneratedMesh(vertices, faces, colors), attributes)   # field frame in
    write_rigged_glb(rigged.avatar, "model.glb")                                 # 79 bones, 52 morphs

The template is the bare Anny bust the attributes give (avatars.anny.body), so shape, skeleton,
skin weights and the 52 ARKit morphs come with it. Its surface is registered onto the generated
mesh (register.py) after a similarity into the template's metric frame (align.py); bones move
with the surface around them; skin, lips and the cut take the generated colours at their
closest generated point, while eyes, mouth cavity, teeth and lashes keep the template's own
(the generated eyes are blurs a blink could not move).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from avatars.anny.rigged import Part, RiggedMesh, Skeleton, merge
from avatars.engine.attributes import AvatarAttributes
from avatars.rigging.align import (
    FaceRegion,
    Similarity,
    engine_landmarks,
    face_vertices,
    landmark_similarity,
    refine_on_face,
    template_landmarks,
)
from avatars.rigging.register import RegistrationConfig, closest_points, register

FITTED_PARTS = (Part.SKIN, Part.LIPS, Part.CAP)
"""Template parts registered onto the generated surface and coloured from it."""


@dataclass(frozen=True)
class RigConfig:
    """How the template is fitted to a generated avatar."""

    registration: RegistrationConfig = field(default_factory=RegistrationConfig)
    """The non-rigid ICP's schedule."""
    region: FaceRegion = field(default_factory=FaceRegion)
    """Where the face is (what the fit's distance is reported on)."""
    eye_free_radius: float = 0.028
    """Skin this close (metres) to an eye's centre has no data term: generated faces have no eye
    openings to register the lids onto (they closed over the eyes, or the eyeballs poked through)."""
    eye_rigid_radius: float = 0.022
    """... and this close it moves as one piece with the eyeball, so lids, lashes and eye keep the
    template's fit (a blink closes over the eye)."""
    eye_ring: float = 0.01
    """The skin near an eye takes the median colour of the ring this wide outside it, not the
    generated eye's paint."""


@dataclass(frozen=True)
class GeneratedMesh:
    """The generated avatar's surface in the field's frame (the bust fills [-1, 1]^3)."""

    vertices: np.ndarray
    """[V, 3] float."""
    faces: np.ndarray
    """[F, 3] int."""
    colors: np.ndarray
    """[V, 3] float sRGB in [0, 1]."""


@dataclass(frozen=True)
class RiggedGenerated:
    """The rigged avatar and how well it sits on the generated one."""

    avatar: RiggedMesh
    """Registered bust, teeth and lashes: skeleton, skin weights, 52 morphs, generated colours."""
    similarity: Similarity
    """Field frame -> the avatar's metric frame."""
    generated: GeneratedMesh
    """The generated mesh in the avatar's metric frame (what the distances are measured to)."""
    face: np.ndarray
    """[V] bool: the avatar's face vertices (`align.FaceRegion`)."""
    face_distance_m: np.ndarray
    """[N] metres from each face vertex to the generated surface."""


def move_bones(skeleton: Skeleton, weights: np.ndarray, rest: np.ndarray, moved: np.ndarray, k: int = 16,
               min_weight: float = 1.0) -> Skeleton:
    """The skeleton with each joint shifted by the skin-weighted mean displacement of the vertices
    it moves (an eye bone goes with its eyeball, the jaw with the chin), or, for a bone that moves
    less than `min_weight` in all (the spine above the cut), by the inverse-distance mean of its k
    nearest vertices'. Rotations are kept, so the skin weights keep their meaning."""
    from scipy.spatial import cKDTree

    world = skeleton.world.copy()
    d = moved - rest
    dist, idx = cKDTree(rest).query(world[:, :3, 3], k=k)
    w = 1.0 / np.maximum(dist, 1e-6)
    shift = (d[idx] * w[..., None]).sum(1) / w.sum(1, keepdims=True)
    total = weights.sum(0)
    skinned = total >= min_weight
    shift[skinned] = (weights[:, skinned].T.astype(np.float64) @ d) / total[skinned, None]
    world[:, :3, 3] += shift
    return Skeleton(skeleton.names, skeleton.parents, world)


def colours_at(points: np.ndarray, mesh: GeneratedMesh) -> np.ndarray:
    """[N, 3] the generated colours at the closest generated surface point of each point [N, 3]."""
    from trimesh.triangles import points_to_barycentric

    near, _, tri = closest_points(points, mesh.vertices, mesh.faces)
    corners = mesh.faces[tri]
    bary = np.clip(points_to_barycentric(mesh.vertices[corners].astype(np.float64), near), 0.0, 1.0)
    bary /= np.maximum(bary.sum(1, keepdims=True), 1e-12)
    return np.einsum("nk,nkc->nc", bary, mesh.colors[corners].astype(np.float64))


def rig_generated(generated: GeneratedMesh, attributes: AvatarAttributes,
                  config: RigConfig = RigConfig()) -> RiggedGenerated:
    """Fit the Anny template of `attributes` to a generated avatar (see the module docstring)."""
    from avatars.anny.accessories import eyelashes, head_frame
    from avatars.anny.body import build_bust
    from avatars.anny.mouth import teeth

    bust = build_bust(attributes)
    face = face_vertices(bust, config.region)
    rest = bust.vertices.astype(np.float64)
    # 1. Field frame -> metric: landmarks, then scaled ICP on the face.
    start = landmark_similarity(engine_landmarks(attributes), template_landmarks(bust))
    similarity = refine_on_face(start, rest[face], generated.vertices.astype(np.float64), generated.faces)
    target = GeneratedMesh(similarity.apply(generated.vertices), np.asarray(generated.faces, np.int64),
                           np.asarray(generated.colors, np.float64))
    # 2. The template's surface onto the generated one; bones follow.
    surface = np.isin(bust.parts, FITTED_PARTS)
    sk = bust.skeleton
    eyes = np.stack([sk.world[sk.index(b), :3, 3] for b in ("eye.L", "eye.R")])
    to_eye = np.linalg.norm(rest[:, None] - eyes[None], axis=2)  # [V, 2]
    near_eyes = surface & (to_eye.min(1) < config.eye_free_radius)
    groups = np.where(near_eyes & (to_eye.min(1) < config.eye_rigid_radius), 1 + to_eye.argmin(1), 0)
    moved = register(rest, bust.faces, surface & ~near_eyes, target.vertices, target.faces, config.registration,
                     free=near_eyes, rigid=groups).vertices
    skeleton = move_bones(bust.skeleton, bust.weights, rest, moved)
    # 3. Generated colours on the fitted surface.
    colors = bust.colors.copy()
    colors[surface] = colours_at(moved[surface], target)
    # The lids would wear the generated eye's paint: they get the skin ring's median colour instead.
    for k in (0, 1):
        ring = surface & (to_eye[:, k] >= config.eye_free_radius) & \
            (to_eye[:, k] < config.eye_free_radius + config.eye_ring)
        if ring.any():
            colors[near_eyes & (to_eye.argmin(1) == k)] = np.median(colors[ring], axis=0)
    registered = RiggedMesh(moved.astype(np.float32), bust.faces, colors.astype(np.float32), bust.parts,
                            bust.weights, bust.morphs, bust.morph_names, skeleton)
    lash_colour = np.clip(colors[face].mean(0) * 0.25, 0.0, 1.0)
    avatar = merge([registered, *teeth(registered), *eyelashes(registered, head_frame(registered), lash_colour)])
    _, dist, _ = closest_points(moved[face], target.vertices, target.faces)
    face_all = np.concatenate([face, np.zeros(len(avatar.vertices) - len(face), bool)])  # teeth, lashes: not face
    return RiggedGenerated(avatar, similarity, target, face_all, dist)
