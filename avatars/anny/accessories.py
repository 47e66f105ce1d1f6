"""What Anny does not model: hair, eyebrows, eyelashes, beard, shirt, glasses and hats, fitted to a bust.

Hair, eyebrows, facial hair and the shirt are shells: the skin under them, pushed out along its
normals, keeping the skin's weights and morph deltas (a beard follows jawOpen). Glasses and hats
are rigid and ride on the head bone. Eyelashes are strips grown from the upper lid margins that carry
the margin's weights and morph deltas (they close with eyeBlink). Regions are chosen in a head frame measured on the bust
(eye centres, lips, neck base), so they fit every phenotype.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatars.anny.rigged import Part, RiggedMesh
from avatars.engine.attributes import (
    Age,
    AvatarAttributes,
    FacialHair,
    Glasses,
    HairStyle,
    Hat,
)

_GREYING = {Age.YOUNG: 0.0, Age.MIDDLE_AGED: 0.2, Age.OLD: 0.55}
_GREY = np.array([0.69, 0.69, 0.70])


@dataclass(frozen=True)
class HeadFrame:
    """Landmarks of one bust, world frame (metres)."""

    eye_l: np.ndarray
    eye_r: np.ndarray
    mouth: np.ndarray
    """Centre of the lips."""
    neck_base: float
    """Height of the neck's base."""
    centre: np.ndarray
    """Centre of the skull: mid-width, mid-depth, at eye height."""
    radii: np.ndarray
    """Half width, height above `centre`, half depth of the skull (over the ears and hair line)."""

    @property
    def eye_y(self) -> float:
        return float((self.eye_l[1] + self.eye_r[1]) / 2)


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[V, 3] float64 unit area-weighted vertex normals (the mean of the adjacent faces' normals)."""
    v = np.asarray(vertices, np.float64)
    cross = np.cross(v[faces[:, 1]] - v[faces[:, 0]], v[faces[:, 2]] - v[faces[:, 0]])  # [F, 3], |.| = 2 area
    idx = np.asarray(faces).reshape(-1)
    out = np.stack([np.bincount(idx, np.repeat(cross[:, c], 3), minlength=len(v)) for c in range(3)], 1)
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


def head_frame(bust: RiggedMesh) -> HeadFrame:
    """Landmarks of a bare bust (see `HeadFrame`)."""
    sk = bust.skeleton
    eye_l, eye_r = sk.world[sk.index("eye.L"), :3, 3], sk.world[sk.index("eye.R"), :3, 3]
    mouth = bust.vertices[bust.parts == Part.LIPS].mean(0)
    eye_y = (eye_l[1] + eye_r[1]) / 2
    skull = bust.vertices[(bust.parts == Part.SKIN) & (bust.vertices[:, 1] > eye_y + 0.015)].astype(np.float64)
    lo, hi = skull.min(0), skull.max(0)
    centre = np.array([(lo[0] + hi[0]) / 2, eye_y, (lo[2] + hi[2]) / 2])
    radii = np.array([(hi[0] - lo[0]) / 2, hi[1] - eye_y, (hi[2] - lo[2]) / 2])
    neck = sk.world[sk.index("neck01"), 1, 3]
    return HeadFrame(eye_l, eye_r, mouth, float(neck), centre, radii)


def _shell(bust: RiggedMesh, normals: np.ndarray, select: np.ndarray, thickness: np.ndarray | float,
           color: np.ndarray, part: Part) -> RiggedMesh | None:
    """The selected skin's faces, offset outward by `thickness` (per vertex or scalar), as a new mesh."""
    faces = bust.faces[select[bust.faces].all(1)]
    if len(faces) == 0:
        return None
    used = np.unique(faces)
    remap = np.full(len(bust.vertices), -1)
    remap[used] = np.arange(len(used))
    t = np.broadcast_to(np.asarray(thickness, np.float64), (len(bust.vertices),))[used, None]
    colors = np.broadcast_to(np.asarray(color, np.float32), (len(used), 3)) if np.ndim(color) == 1 else color[used]
    return RiggedMesh(
        vertices=(bust.vertices[used] + t * normals[used]).astype(np.float32), faces=remap[faces],
        colors=np.array(colors, np.float32), parts=np.full(len(used), part, np.int8),
        weights=bust.weights[used], morphs=bust.morphs[:, used], morph_names=bust.morph_names,
        skeleton=bust.skeleton)


def _rigid(bust: RiggedMesh, vertices: np.ndarray, faces: np.ndarray, color, part: Part, bone: str = "head") -> RiggedMesh:
    """A rigid mesh bound entirely to one bone, with no morph deltas."""
    weights = np.zeros((len(vertices), bust.weights.shape[1]), np.float32)
    weights[:, bust.skeleton.index(bone)] = 1.0
    return RiggedMesh(vertices.astype(np.float32), faces.astype(np.int64),
                      np.tile(np.asarray(color, np.float32), (len(vertices), 1)), np.full(len(vertices), part, np.int8),
                      weights, np.zeros((len(bust.morph_names), len(vertices), 3), np.float32), bust.morph_names,
                      bust.skeleton)


def orient_outward(verts: np.ndarray, faces: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """Faces [F, 3] flipped where needed so each faces away from its `inside` point [F, 3]."""
    tri = verts[faces]
    n = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])
    wrong = ((tri.mean(1) - inside) * n).sum(1) < 0
    return np.where(wrong[:, None], faces[:, ::-1], faces)


def tube(path: np.ndarray, radius: float, closed: bool, sides: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """A tube of `radius` swept along a polyline [N, 3]: (vertices [N*sides, 3], faces)."""
    n = len(path)
    tangent = np.roll(path, -1, 0) - np.roll(path, 1, 0) if closed else np.gradient(path, axis=0)
    tangent /= np.linalg.norm(tangent, axis=1, keepdims=True)
    ref = np.where(np.abs(tangent[:, 1:2]) < 0.9, [[0.0, 1.0, 0.0]], [[1.0, 0.0, 0.0]])
    u = np.cross(tangent, ref)
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    w = np.cross(tangent, u)
    ang = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    ring = radius * (np.cos(ang)[None, :, None] * u[:, None] + np.sin(ang)[None, :, None] * w[:, None])
    verts = (path[:, None] + ring).reshape(-1, 3)
    faces = []
    for i in range(n if closed else n - 1):
        j = (i + 1) % n
        for s in range(sides):
            a, b = i * sides + s, i * sides + (s + 1) % sides
            c, d = j * sides + s, j * sides + (s + 1) % sides
            faces += [(a, c, b), (b, c, d)]
    faces = np.array(faces)
    return verts, orient_outward(verts, faces, path[faces[:, 0] // sides])


def ellipsoid_cap(centre: np.ndarray, radii: np.ndarray, theta_max: float, rings: int = 16, segments: int = 32,
                  tilt: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The top of an ellipsoid (polar angle 0..theta_max from +Y, tilted back by `tilt` radians)."""
    theta = np.linspace(0, theta_max, rings + 1)[1:]
    phi = np.linspace(0, 2 * np.pi, segments, endpoint=False)
    t, p = np.meshgrid(theta, phi, indexing="ij")
    unit = np.stack([np.sin(t) * np.sin(p), np.cos(t), np.sin(t) * np.cos(p)], -1).reshape(-1, 3)
    rot = np.array([[1, 0, 0], [0, np.cos(tilt), np.sin(tilt)], [0, -np.sin(tilt), np.cos(tilt)]])
    verts = np.vstack([[0.0, 1.0, 0.0], unit]) * radii
    verts = verts @ rot.T + centre
    faces = [(0, 1 + (s + 1) % segments, 1 + s) for s in range(segments)]
    for r in range(rings - 1):
        for s in range(segments):
            a, b = 1 + r * segments + s, 1 + r * segments + (s + 1) % segments
            c, d = a + segments, b + segments
            faces += [(a, b, c), (b, d, c)]
    faces = np.array(faces)
    return verts, orient_outward(verts, faces, np.broadcast_to(centre, (len(faces), 3)))


def _hairline(v: np.ndarray, f: HeadFrame, front: float, back: float) -> np.ndarray:
    """[V] heights of a hairline running from `front` (above the eyes) to `back` (at the nape)."""
    rel = v - f.centre
    c = rel[:, 2] / np.maximum(np.hypot(rel[:, 0], rel[:, 2]), 1e-9)  # 1 at the front, -1 behind
    return f.eye_y + front + (back - front) * (1 - c) / 2


def hair_color(attributes: AvatarAttributes, beard: bool = False) -> np.ndarray:
    base = np.array(attributes.hair_colour.srgb) / 255.0
    g = min(1.0, _GREYING[attributes.age] * (1.3 if beard else 1.0))
    return (base + g * (_GREY - base)).astype(np.float32)


def _upper_lid_margin(bust: RiggedMesh, eye: np.ndarray, blink: str, bins: int = 10) -> np.ndarray:
    """Vertex indices along one eye's upper lid edge, ordered by x: the front skin that eyeBlink
    pulls down, its lowest vertex per x slice (the frontmost of those)."""
    v = bust.vertices.astype(np.float64)
    rel = v - eye
    drop = -bust.morphs[bust.morph_names.index(blink), :, 1]
    lid = (bust.parts == Part.SKIN) & (np.abs(rel[:, 0]) < 0.016) & (np.abs(rel[:, 1]) < 0.014) & \
        (rel[:, 2] > 0.008) & (np.linalg.norm(rel, axis=1) < 0.022) & (drop > 0.3 * drop.max())
    edges = np.linspace(-0.016, 0.016, bins + 1)
    row = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        idx = np.flatnonzero(lid & (rel[:, 0] >= lo) & (rel[:, 0] < hi))
        if len(idx):
            edge = idx[rel[idx, 1] <= rel[idx, 1].min() + 0.001]
            row.append(edge[np.argmax(rel[edge, 2])])
    return np.array(row, np.int64)


def _lash_strip(bust: RiggedMesh, margin: np.ndarray, length: float, up: float, color) -> RiggedMesh | None:
    """A two-sided strip of lashes grown forward and `up` (+1) or down (-1) from lid vertices."""
    if len(margin) < 2:
        return None
    base = bust.vertices[margin].astype(np.float64) + [0.0, 0.0, 0.0005]
    t = np.linspace(0.0, 1.0, len(margin))
    grow = length * (0.45 + 0.55 * np.sin(np.pi * t))[:, None]  # shorter at the corners
    rows = [base, base + grow * [0.0, 0.15 * up, 0.6], base + grow * [0.0, 0.55 * up, 0.85]]  # curling
    n = len(margin)
    verts = np.concatenate(rows)
    quads = [(r * n + i, (r + 1) * n + i, (r + 1) * n + i + 1, r * n + i + 1) for r in range(2) for i in range(n - 1)]
    faces = np.array([f for a, b, c, d in quads for f in ((a, b, c), (a, c, d))])
    faces = np.concatenate([faces, faces[:, ::-1]])
    src = np.tile(margin, 3)  # every lash vertex moves like the lid vertex it grows from
    return RiggedMesh(verts.astype(np.float32), faces, np.tile(np.asarray(color, np.float32), (len(verts), 1)),
                      np.full(len(verts), Part.EYELASH, np.int8), bust.weights[src], bust.morphs[:, src],
                      bust.morph_names, bust.skeleton)


def eyelashes(bust: RiggedMesh, f: HeadFrame, color: np.ndarray) -> list[RiggedMesh]:
    """Upper lashes of both eyes (lower ones, a pixel wide in a preview, only darkened the irises)."""
    out = []
    for eye, blink in ((f.eye_l, "eyeBlinkLeft"), (f.eye_r, "eyeBlinkRight")):
        if blink in bust.morph_names:
            out.append(_lash_strip(bust, _upper_lid_margin(bust, eye, blink), 0.0065, 1.0, color))
    return [m for m in out if m is not None]


def accessories(bust: RiggedMesh, attributes: AvatarAttributes) -> list[RiggedMesh]:
    """The meshes worn by this bust for these attributes (in the order they are drawn)."""
    f = head_frame(bust)
    v = bust.vertices.astype(np.float64)
    normals = vertex_normals(v, bust.faces)
    skin = bust.parts == Part.SKIN
    out: list[RiggedMesh | None] = []
    hair = hair_color(attributes)
    rel = v - f.centre

    # Shirt and collar: everything below a crew neckline, plus a raised band along it.
    neckline = f.neck_base + 0.01 - 0.035 * np.clip(rel[:, 2] / 0.08, 0, 1)
    cloth = np.array(attributes.clothing_colour.srgb, np.float32) / 255.0
    out.append(_shell(bust, normals, (skin | (bust.parts == Part.CAP)) & (v[:, 1] < neckline), 0.006, cloth, Part.SHIRT))
    band = skin & (v[:, 1] < neckline + 0.012) & (v[:, 1] > neckline - 0.012)
    out.append(_shell(bust, normals, band, 0.011, cloth * 0.85, Part.SHIRT))

    # Hair.
    style = attributes.hair_style
    if style is not HairStyle.BALD:
        back = {HairStyle.SHORT: -0.06, HairStyle.LONG: -0.09, HairStyle.BUN: -0.05}[style]
        scalp = skin & (v[:, 1] > _hairline(v, f, 0.045, back)) & (v[:, 1] > f.neck_base + 0.05)
        lift = np.clip((v[:, 1] - f.eye_y) / 0.08, 0.3, 1.0)  # fuller on top than at the hairline
        thick = {HairStyle.SHORT: 0.012, HairStyle.LONG: 0.016, HairStyle.BUN: 0.006}[style]
        out.append(_shell(bust, normals, scalp, thick * lift, hair, Part.HAIR))
        if style is HairStyle.LONG:
            # A curtain behind the head and over the ears, down to the shoulders.
            phi = np.linspace(np.radians(68), np.radians(292), 28)
            heights = np.linspace(f.eye_y + 0.01, f.neck_base - 0.06, 12)
            ring = np.stack([np.sin(phi) * (f.radii[0] + 0.02), np.zeros_like(phi), np.cos(phi) * (f.radii[2] + 0.02)], 1)
            rows = [ring * [1 + 0.3 * max(0.0, f.eye_y - h) / 0.2, 1, 1] + [f.centre[0], h, f.centre[2]]
                    for h in heights]
            grid = np.stack(rows)  # [H, P, 3]
            n_h, n_p = grid.shape[:2]
            idx = np.arange(n_h * n_p).reshape(n_h, n_p)
            quads = np.stack([idx[:-1, :-1], idx[1:, :-1], idx[1:, 1:], idx[:-1, 1:]], -1).reshape(-1, 4)
            faces = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
            faces = np.concatenate([faces, faces[:, ::-1] + n_h * n_p])  # two-sided: an inner copy
            verts = grid.reshape(-1, 3)
            inner = verts - 0.008 * np.c_[np.sin(np.tile(phi, n_h)), np.zeros(n_h * n_p), np.cos(np.tile(phi, n_h))]
            out.append(_rigid(bust, np.vstack([verts, inner]), faces, hair, Part.HAIR))
        if style is HairStyle.BUN:
            c = f.centre + [0.0, 0.06, -f.radii[2] - 0.01]
            verts, faces = ellipsoid_cap(c, np.array([0.038, 0.035, 0.038]), np.pi)
            out.append(_rigid(bust, verts, faces, hair, Part.HAIR))

    # Eyebrows: a thin band arched over each eye.
    for eye in (f.eye_l, f.eye_r):
        dx = (v[:, 0] - eye[0]) / 0.027
        arch = eye[1] + 0.02 + 0.005 * (1 - dx**2)
        brow = skin & (np.abs(dx) < 1) & (np.abs(v[:, 1] - arch) < 0.007) & (v[:, 2] > eye[2])
        out.append(_shell(bust, normals, brow, 0.003, hair * 0.8, Part.EYEBROW))

    out += eyelashes(bust, f, hair * 0.3 + 0.02)

    # Facial hair.
    if attributes.facial_hair is not FacialHair.NONE:
        lips = v[bust.parts == Part.LIPS]
        near_lips = np.min(np.linalg.norm(v[:, None, :] - lips[None, ::4, :], axis=2), axis=1) < 0.006
        nose_base = f.mouth[1] + 0.02
        front = rel[:, 2] > -0.01
        moustache = skin & front & ~near_lips & (v[:, 1] > f.mouth[1] + 0.003) & (v[:, 1] < nose_base) & \
            (np.abs(v[:, 0] - f.mouth[0]) < 0.032)
        select = moustache
        if attributes.facial_hair is FacialHair.BEARD:
            jaw = skin & ~near_lips & (v[:, 1] < f.mouth[1] + 0.005) & (v[:, 1] > f.neck_base + 0.03) & \
                (rel[:, 2] > -0.035) & (v[:, 1] < f.eye_y - 0.045 + 0.0 * rel[:, 2])
            select = select | jaw
        out.append(_shell(bust, normals, select, 0.007, hair_color(attributes, beard=True), Part.FACIAL_HAIR))

    # Glasses: two rims, a bridge and temples back to the ears.
    if attributes.glasses is not Glasses.NONE:
        frame = np.array(attributes.glasses_colour.srgb, np.float32) / 255.0
        z = max(f.eye_l[2], f.eye_r[2]) + 0.022
        parts = []
        for eye in (f.eye_l, f.eye_r):
            a = np.linspace(0, 2 * np.pi, 32, endpoint=False)
            if attributes.glasses is Glasses.ROUND:
                rim = np.stack([0.021 * np.cos(a), 0.021 * np.sin(a)], 1)
            else:
                rim = np.stack([np.clip(0.03 * np.cos(a), -0.023, 0.023), np.clip(0.026 * np.sin(a), -0.016, 0.016)], 1)
            parts.append(tube(np.c_[eye[0] + rim[:, 0], eye[1] + rim[:, 1], np.full(len(a), z)], 0.0022, True))
        inner_x = 0.021 if attributes.glasses is Glasses.ROUND else 0.023
        bridge = np.array([[f.eye_r[0] + inner_x, f.eye_y + 0.004, z], [0.0, f.eye_y + 0.008, z + 0.002],
                           [f.eye_l[0] - inner_x, f.eye_y + 0.004, z]])
        parts.append(tube(bridge, 0.0018, False))
        for eye, sign in ((f.eye_l, 1), (f.eye_r, -1)):
            x = eye[0] + sign * inner_x
            # Straight back above the ear, at the skull's width.
            side = f.centre[0] + sign * (f.radii[0] + 0.006)
            parts.append(tube(np.array([[x, eye[1] + 0.004, z], [side, eye[1] + 0.006, z - 0.02],
                                        [side, eye[1] + 0.004, f.centre[2] - 0.02]]), 0.0018, False))
        verts, faces, offset = [], [], 0
        for pv, pf in parts:
            verts.append(pv)
            faces.append(pf + offset)
            offset += len(pv)
        out.append(_rigid(bust, np.vstack(verts), np.vstack(faces), frame, Part.GLASSES))

    # Hats, in the clothing colour.
    if attributes.hat is not Hat.NONE:
        radii = f.radii + (0.02 if style is not HairStyle.BALD else 0.008)
        c = f.centre + [0.0, 0.02, 0.0]
        segments = 40
        verts, faces = ellipsoid_cap(c, radii, np.radians(95), segments=segments, tilt=np.radians(12))
        pieces = [(verts, faces)]
        if attributes.hat is Hat.CAP:
            rim = verts[-segments:]
            front = np.r_[np.arange(segments - 8, segments), np.arange(0, 9)]  # +-72 degrees around the front
            edge = rim[front]
            out_dir = np.c_[edge[:, 0] - c[0], np.zeros(len(edge)), edge[:, 2] - c[2]]
            out_dir /= np.linalg.norm(out_dir, axis=1, keepdims=True)
            outer = edge + out_dir * [0.025, 0, 0.075] + [0.0, -0.01, 0.0]
            bv = np.vstack([edge, outer])
            n = len(edge)
            bf = np.array([(i, i + 1, n + i) for i in range(n - 1)] + [(i + 1, n + i + 1, n + i) for i in range(n - 1)])
            bf = np.vstack([bf, bf[:, ::-1] + 2 * n])
            pieces.append((np.vstack([bv, bv - [0, 0.003, 0]]), bf))
        else:  # beanie: a rolled cuff and a pompom
            pieces.append(tube(verts[-segments:], 0.011, True, sides=10))  # along the dome's rim
            top = verts[0] + [0.0, 0.02, 0.0]
            pieces.append(ellipsoid_cap(top, np.full(3, 0.026), np.pi))
        verts, faces, offset = [], [], 0
        for pv, pf in pieces:
            verts.append(pv)
            faces.append(pf + offset)
            offset += len(pv)
        out.append(_rigid(bust, np.vstack(verts), np.vstack(faces), cloth, Part.HAT))
    return [m for m in out if m is not None]
