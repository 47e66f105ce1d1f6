"""The rigged mesh every avatar stage hands on: geometry, colours, skin, ARKit morphs, skeleton."""
from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np

MAX_INFLUENCES = 8
"""Bones per vertex in the export (glTF JOINTS_0/WEIGHTS_0 + JOINTS_1/WEIGHTS_1)."""


class Part(enum.IntEnum):
    """What each vertex belongs to (lets tests and renders ask where an attribute shows)."""

    SKIN = 0
    LIPS = 1
    EYE_WHITE = 2
    IRIS = 3
    PUPIL = 4
    MOUTH = 5
    CAP = 6
    HAIR = 7
    EYEBROW = 8
    FACIAL_HAIR = 9
    SHIRT = 10
    GLASSES = 11
    HAT = 12
    TEETH = 13
    EYELASH = 14


@dataclass(frozen=True)
class Skeleton:
    """Bones in parent-before-child order, in the world frame (+Y up, +Z front, metres)."""

    names: tuple[str, ...]
    parents: tuple[int, ...]
    """Index of each bone's parent, -1 for the root."""
    world: np.ndarray
    """[J, 4, 4] float64 bone-to-world transforms in the bind (rest) pose."""

    def index(self, name: str) -> int:
        return self.names.index(name)


@dataclass(frozen=True)
class RiggedMesh:
    """A skinned triangle mesh with named morph targets, in the world frame.

    Posed surface: skin(vertices + sum_k w_k * morphs[k]) by linear blend skinning.
    """

    vertices: np.ndarray
    """[V, 3] float32 bind-pose positions in metres."""
    faces: np.ndarray
    """[F, 3] int64, counter-clockwise from outside."""
    colors: np.ndarray
    """[V, 3] float32 sRGB albedo in [0, 1]."""
    parts: np.ndarray
    """[V] int8 `Part` of each vertex."""
    weights: np.ndarray
    """[V, J] float32 skin weights over `skeleton` (rows sum to 1)."""
    morphs: np.ndarray
    """[M, V, 3] float32 position deltas of the morph targets."""
    morph_names: tuple[str, ...]
    """The M morph target names (ARKit blendshape names)."""
    skeleton: Skeleton

    def morphed(self, expression: dict[str, float]) -> np.ndarray:
        """[V, 3] bind-pose positions with the named morph weights applied."""
        v = self.vertices.astype(np.float32).copy()
        for name, w in expression.items():
            v += w * self.morphs[self.morph_names.index(name)]
        return v

    def subtree_weight(self, bone: str) -> np.ndarray:
        """[V] float32 summed skin weight of `bone` and every bone below it."""
        sk = self.skeleton
        inside = np.zeros(len(sk.names), bool)
        for j, parent in enumerate(sk.parents):  # parents come before children
            inside[j] = sk.names[j] == bone or (parent >= 0 and inside[parent])
        return self.weights[:, inside].sum(1)

    def head_turned(self, vertices: np.ndarray, rotation: np.ndarray, bone: str = "head") -> np.ndarray:
        """[V, 3] `vertices` (bind pose, e.g. `morphed`) skinned with `bone` rotated by the world-frame
        [3, 3] `rotation` about its joint (what the GLB's head rotation channel plays)."""
        pivot = self.skeleton.world[self.skeleton.index(bone)][:3, 3]
        w = self.subtree_weight(bone)[:, None]
        turned = (vertices - pivot) @ np.asarray(rotation, np.float64).T + pivot
        return (vertices + w * (turned - vertices)).astype(np.float32)

    def top_influences(self, k: int = MAX_INFLUENCES) -> tuple[np.ndarray, np.ndarray]:
        """The k largest weights per vertex, renormalised: (joints [V, k] int, weights [V, k] float32)."""
        joints = np.argsort(-self.weights, axis=1)[:, :k]
        weights = np.take_along_axis(self.weights, joints, 1).astype(np.float64)
        weights /= weights.sum(1, keepdims=True)
        joints = np.where(weights > 0, joints, 0)
        return joints.astype(np.int64), weights.astype(np.float32)


def merge(meshes: list[RiggedMesh]) -> RiggedMesh:
    """One mesh of several on the same skeleton and morph names."""
    offsets = np.cumsum([0] + [len(m.vertices) for m in meshes[:-1]])
    first = meshes[0]
    return RiggedMesh(
        vertices=np.concatenate([m.vertices for m in meshes]).astype(np.float32),
        faces=np.concatenate([m.faces + o for m, o in zip(meshes, offsets)]),
        colors=np.concatenate([m.colors for m in meshes]).astype(np.float32),
        parts=np.concatenate([m.parts for m in meshes]).astype(np.int8),
        weights=np.concatenate([m.weights for m in meshes]).astype(np.float32),
        morphs=np.concatenate([m.morphs for m in meshes], axis=1).astype(np.float32),
        morph_names=first.morph_names,
        skeleton=first.skeleton,
    )
