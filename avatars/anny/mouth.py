"""Teeth for Anny's mouth cavity, so an open mouth (jawOpen, `--expression surprise`) looks right.

Two arches of small rounded boxes behind the lips: the upper one rides on the head bone, the
lower one on the jaw bone and carries the jaw blendshapes (jawOpen, jawLeft, jawRight,
jawForward) as a rigid motion fitted to the chin's own deltas, so it follows both a posed jaw
bone and the ARKit streams. Sizes are an adult's, scaled by the mouth's width.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatars.anny.rigged import Part, RiggedMesh

JAW_MORPHS = ("jawOpen", "jawLeft", "jawRight", "jawForward")
"""The blendshapes that move the lower jaw as a whole (the lower teeth follow these only)."""


@dataclass(frozen=True)
class TeethConfig:
    """Where the teeth sit relative to the lips (metres, for a mouth `reference_half_width` wide)."""

    reference_half_width: float = 0.0245
    """Half the lips' width the sizes below are for (they scale with the avatar's mouth)."""
    behind_lips: float = 0.0045
    """Front of the upper incisors, this far behind the lips' mean depth."""
    arch_depth: float = 0.036
    """How far back the arch reaches at its last tooth (a parabola from the incisors)."""
    arch_half_width: float = 0.026
    """Half the arch's width at its last tooth."""
    widths: tuple[float, ...] = (0.0085, 0.0066, 0.0075, 0.007, 0.007, 0.0095)
    """Crown widths from the centre back (incisors, canine, premolars, molar), upper arch."""
    upper: tuple[float, float] = (0.011, -0.0015)
    """Top and bottom of the upper crowns, relative to the lips' parting line."""
    lower: tuple[float, float] = (-0.0025, -0.012)
    """Top and bottom of the lower crowns, relative to the lips' parting line."""
    overjet: float = 0.0045
    """The lower arch sits this far behind the upper one."""
    color: tuple[float, float, float] = (0.93, 0.9, 0.82)
    """sRGB enamel."""


def _box(centre: np.ndarray, axes: np.ndarray, half: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A box [8, 3] with its 12 outward triangles; axes [3, 3] rows are its unit directions."""
    corners = np.array([[i, j, k] for i in (-1, 1) for j in (-1, 1) for k in (-1, 1)], np.float64)
    verts = centre + (corners * half) @ axes
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    faces = np.array([f for a, b, c, d in quads for f in ((a, b, c), (a, c, d))])
    tri = verts[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    inward = ((tri.mean(1) - centre) * n).sum(1) < 0
    return verts, np.where(inward[:, None], faces[:, ::-1], faces)


def arch(front: np.ndarray, half_width: float, depth: float, widths: tuple[float, ...], top: float,
         bottom: float) -> tuple[np.ndarray, np.ndarray]:
    """Crowns along a parabolic arch z = front_z - depth * (x / half_width)^2, both sides.

    front [3]: the arch's front centre (x, -, z); top/bottom: absolute heights. Returns (vertices, faces).
    """
    xs = np.linspace(0.0, half_width, 200)
    zs = front[2] - depth * (xs / half_width) ** 2
    arc = np.r_[0.0, np.cumsum(np.hypot(np.diff(xs), np.diff(zs)))]
    edges = np.r_[0.0, np.cumsum(widths)] * arc[-1] / sum(widths)
    verts, faces = [], []
    for k, w in enumerate(widths):
        s = (edges[k] + edges[k + 1]) / 2
        x, z = np.interp(s, arc, xs), np.interp(s, arc, zs)
        tangent = np.array([1.0, 0.0, -2 * depth * x / half_width**2])
        tangent /= np.linalg.norm(tangent)
        outward = np.cross(tangent, [0.0, 1.0, 0.0])  # horizontal, away from the tongue
        thick = 0.0065 + 0.003 * k / max(len(widths) - 1, 1)  # molars are deeper than incisors
        for side in (1.0, -1.0):
            centre = np.array([front[0] + side * x, (top + bottom) / 2, z - thick / 2])
            axes = np.stack([tangent * [side, 1, 1], [0.0, 1.0, 0.0], outward * [side, 1, 1]])
            v, f = _box(centre, axes, np.array([0.45 * (edges[k + 1] - edges[k]), (top - bottom) / 2, thick / 2]))
            faces.append(f + sum(len(p) for p in verts))
            verts.append(v)
    return np.vstack(verts), np.vstack(faces)


def rigid_fit(points: np.ndarray, moved: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares rotation R [3, 3] and translation t [3] with moved ~ points @ R.T + t (Kabsch)."""
    cp, cm = points.mean(0), moved.mean(0)
    u, _, vt = np.linalg.svd((points - cp).T @ (moved - cm))
    d = np.sign(np.linalg.det(vt.T @ u.T))
    r = vt.T @ np.diag([1.0, 1.0, d]) @ u.T
    return r, cm - cp @ r.T


def _jaw_deltas(bust: RiggedMesh, verts: np.ndarray) -> np.ndarray:
    """[M, N, 3] morph deltas of points that move rigidly with the lower jaw (zero for other morphs).

    Each jaw morph's motion is the rigid fit to the mouth's lining and lower lip next to the points
    (the soft tissue the lower teeth sit in), so the teeth stay with the lower lip.
    """
    lining = np.flatnonzero(np.isin(bust.parts, (Part.MOUTH, Part.LIPS)))
    dist = np.linalg.norm(bust.vertices[lining][None].astype(np.float64) - verts[:, None], axis=2)  # [N, L]
    near = lining[np.unique(np.argsort(dist, axis=1)[:, :6])]
    src = bust.vertices[near].astype(np.float64)
    out = np.zeros((len(bust.morph_names), len(verts), 3), np.float32)
    for name in JAW_MORPHS:
        if name in bust.morph_names:
            m = bust.morph_names.index(name)
            r, t = rigid_fit(src, src + bust.morphs[m, near])
            out[m] = verts @ r.T + t - verts
    return out


def teeth(bust: RiggedMesh, config: TeethConfig = TeethConfig()) -> list[RiggedMesh]:
    """The upper (head bone) and lower (jaw bone, jaw blendshapes) teeth of a bare bust."""
    lips = bust.vertices[bust.parts == Part.LIPS].astype(np.float64)
    mouth = lips.mean(0)
    s = np.abs(lips[:, 0] - mouth[0]).max() / config.reference_half_width
    front = mouth - [0.0, 0.0, config.behind_lips * s]
    out = []
    for bone, (top, bottom), back in (("head", config.upper, 0.0), ("jaw", config.lower, config.overjet)):
        verts, faces = arch(front - [0.0, 0.0, back * s], config.arch_half_width * s, config.arch_depth * s,
                            tuple(w * s for w in config.widths), mouth[1] + top * s, mouth[1] + bottom * s)
        weights = np.zeros((len(verts), bust.weights.shape[1]), np.float32)
        weights[:, bust.skeleton.index(bone)] = 1.0
        morphs = _jaw_deltas(bust, verts) if bone == "jaw" else np.zeros((len(bust.morph_names), len(verts), 3),
                                                                          np.float32)
        out.append(RiggedMesh(verts.astype(np.float32), faces.astype(np.int64),
                              np.tile(np.asarray(config.color, np.float32), (len(verts), 1)),
                              np.full(len(verts), Part.TEETH, np.int8), weights, morphs, bust.morph_names,
                              bust.skeleton))
    return out
