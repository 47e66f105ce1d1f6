"""The round trip that checks face reading against known truth: render an Anny avatar with known
blendshape weights (random combinations, or natural expressions) and head rotation, read the render
with the landmarker, compare.

Used by tests/test_face_avatar.py (small) and scripts/bench_face.py (the reported figures).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatars.anny.expressions import ARKIT_NAMES, Expression
from avatars.anny.mesh_render import Shading, closed_faces, render_mesh
from avatars.anny.render import RenderConfig, eye_depth_bias
from avatars.anny.rigged import RiggedMesh
from avatars.face.drive import face_view
from avatars.face.landmarks import (
    FaceLandmarker,
    LandmarkerConfig,
    rotation_from_yaw_pitch_roll,
    yaw_pitch_roll,
)


@dataclass(frozen=True)
class RoundTripConfig:
    """What the round trip varies."""

    samples: int = 40
    """Renders (random expression + head pose each)."""
    size: int = 256
    """Render size in pixels (the face is about 40% of it)."""
    visible: int = 10
    """Blendshapes compared: the ones whose morph moves the face most in the front view."""
    active_probability: float = 0.5
    """Random combinations: each compared blendshape is on in a render with this probability
    (weight uniform in 0.2..1)."""
    natural: bool = False
    """Draw natural expressions instead of random combinations (see `natural_weights`)."""
    preset_probability: float = 0.3
    """Natural expressions: the share of renders showing a preset expression (the rest: one group's
    1-3 blendshapes)."""
    max_yaw: float = 25.0
    """Head yaw uniform in +-this, degrees."""
    max_pitch: float = 15.0
    """Head pitch uniform in +-this, degrees."""
    seed: int = 0
    view: RenderConfig | None = None
    """The renders' camera (None: the driven video's face view at `size`)."""
    shading: Shading = Shading()
    """The renders' light and supersampling."""


@dataclass(frozen=True)
class RoundTripResult:
    names: tuple[str, ...]
    """The compared blendshapes."""
    truth: np.ndarray
    """[S, B] weights applied."""
    read: np.ndarray
    """[S, B] scores read (NaN rows: no face found)."""
    pose_truth: np.ndarray
    """[S, 2] (yaw, pitch) degrees applied."""
    pose_read: np.ndarray
    """[S, 2] read."""
    applied: np.ndarray
    """[S, 52] every weight applied (ARKit order; `truth` is the compared columns)."""
    scores: np.ndarray
    """[S, 52] every score read (ARKit order; NaN rows: no face found)."""

    @property
    def found(self) -> np.ndarray:
        return ~np.isnan(self.read[:, 0])

    def correlations(self) -> np.ndarray:
        """[B] Pearson correlation of applied and read weight, over the renders with a face."""
        t, r = self.truth[self.found], self.read[self.found]
        return np.array([np.corrcoef(t[:, b], r[:, b])[0, 1] for b in range(len(self.names))])

    def pose_errors(self) -> np.ndarray:
        """[S_found, 2] absolute yaw and pitch errors, degrees."""
        return np.abs(self.pose_read[self.found] - self.pose_truth[self.found])


NATURAL_GROUPS: tuple[tuple[str, ...], ...] = (
    ("eyeBlinkLeft", "eyeBlinkRight"),
    ("mouthSmileLeft", "mouthSmileRight", "cheekSquintLeft", "cheekSquintRight"),
    ("jawOpen", "mouthFunnel"),
    ("jawOpen", "mouthClose"),
    ("jawOpen", "mouthPucker"),
    ("mouthLeft",),
    ("mouthRight",),
    ("browInnerUp", "browOuterUpLeft", "browOuterUpRight"),
    ("browDownLeft", "browDownRight"),
    ("mouthFrownLeft", "mouthFrownRight", "mouthShrugLower"),
    ("eyeWideLeft", "eyeWideRight"),
    ("eyeSquintLeft", "eyeSquintRight", "cheekSquintLeft", "cheekSquintRight"),
)
"""Blendshapes that faces move together (natural-expression round trip): a render draws one group
and 1-3 of its members. Left and right are separate groups where a face moves one or the other
(mouthLeft / mouthRight). mouthClose comes with jawOpen at least as large: ARKit defines it as the
lips closing while the jaw is open, so alone (jaw shut) it is no visible motion."""


def natural_weights(rng: np.random.Generator, samples: int, preset_probability: float) -> list[dict[str, float]]:
    """`samples` sparse, natural expressions: a preset (`Expression`, not neutral) at intensity uniform
    in 0.3..1, or 1-3 blendshapes of one `NATURAL_GROUPS` group (the groups in turn) at weights
    uniform in 0.2..1."""
    presets = [e for e in Expression if e is not Expression.NEUTRAL]
    # Groups in turn (shuffled), not independently drawn: every group, so every compared
    # blendshape, is on in about as many renders, which keeps each correlation's noise alike.
    turns = rng.permutation(np.resize(np.arange(len(NATURAL_GROUPS)), samples))
    out = []
    for k in range(samples):
        if rng.random() < preset_probability:
            scale = rng.uniform(0.3, 1.0)
            out.append({n: scale * w for n, w in presets[rng.integers(len(presets))].weights.items()})
            continue
        group = NATURAL_GROUPS[turns[k]]
        chosen = rng.choice(len(group), size=rng.integers(1, min(3, len(group)) + 1), replace=False)
        weights = {group[k]: float(rng.uniform(0.2, 1.0)) for k in chosen}
        if "mouthClose" in weights:
            lift = min(1.0, weights["mouthClose"] + float(rng.uniform(0.0, 0.3)))
            weights["jawOpen"] = max(weights.get("jawOpen", 0.0), lift)
        out.append(weights)
    return out


def _rotation(pose: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(pose[:3, :3])
    return u @ vt


def most_visible(avatar: RiggedMesh, count: int) -> tuple[str, ...]:
    """The `count` blendshapes whose largest front-view (x, y) vertex displacement is largest
    (tongueOut left out: MediaPipe does not read it)."""
    reach = np.linalg.norm(avatar.morphs[:, :, :2], axis=2).max(1)
    order = [avatar.morph_names[i] for i in np.argsort(-reach) if avatar.morph_names[i] != "tongueOut"]
    return tuple(order[:count])


def render_posed(avatar: RiggedMesh, weights: dict[str, float], yaw: float, pitch: float, size: int,
                 view: RenderConfig | None = None, shading: Shading = Shading()) -> np.ndarray:
    """[size, size, 3] uint8 front view (triangle-rasterised) of the avatar with these blendshapes
    and head rotation (view None: the driven video's face view)."""
    posed = avatar.head_turned(avatar.morphed(weights), rotation_from_yaw_pitch_roll(yaw, pitch))
    return render_mesh(posed, avatar.faces, avatar.colors, 0.0, view or face_view(RenderConfig(), size),
                       eye_depth_bias(avatar.parts), shading, closed_faces(avatar.faces, avatar.parts))


def round_trip(avatar: RiggedMesh, config: RoundTripConfig = RoundTripConfig()) -> RoundTripResult:
    """Render `config.samples` posed avatars, read each, return what was applied and read
    (random combinations of the compared blendshapes, or natural expressions: `config.natural`)."""
    rng = np.random.default_rng(config.seed)
    names = most_visible(avatar, config.visible)
    if config.natural:
        applied = natural_weights(rng, config.samples, config.preset_probability)
    else:
        truth = np.where(rng.random((config.samples, len(names))) < config.active_probability,
                         rng.uniform(0.2, 1.0, (config.samples, len(names))), 0.0)
        applied = [dict(zip(names, row)) for row in truth]
    truth = np.array([[w.get(n, 0.0) for n in names] for w in applied])
    pose = np.stack([rng.uniform(-config.max_yaw, config.max_yaw, config.samples),
                     rng.uniform(-config.max_pitch, config.max_pitch, config.samples)], 1)
    read = np.full_like(truth, np.nan)
    scores = np.full((config.samples, len(ARKIT_NAMES)), np.nan)
    pose_read = np.full_like(pose, np.nan)
    with FaceLandmarker(LandmarkerConfig(max_faces=1)) as landmarker:
        # Poses are read relative to the avatar's own rest pose as the landmarker sees it (Anny's
        # rest head reads a few degrees pitched down from this camera).
        rest = landmarker.read(render_posed(avatar, {}, 0.0, 0.0, config.size, config.view, config.shading))
        rest_rotation = np.eye(3) if rest is None else _rotation(rest.pose)
        for s in range(config.samples):
            image = render_posed(avatar, applied[s], pose[s, 0], pose[s, 1], config.size,
                                 config.view, config.shading)
            reading = landmarker.read(image)
            if reading is None:
                continue
            read[s] = [reading.blendshapes[n] for n in names]
            scores[s] = reading.blendshape_vector()
            pose_read[s] = yaw_pitch_roll(_rotation(reading.pose) @ rest_rotation.T)[:2]
    assert set(names) <= set(ARKIT_NAMES)
    applied_all = np.array([[w.get(n, 0.0) for n in ARKIT_NAMES] for w in applied])
    return RoundTripResult(names, truth, read, pose, pose_read, applied_all, scores)
