"""A video's face -> an avatar animation: per-frame ARKit blendshapes and head rotation from the
landmarker (video mode), smoothed by a one-euro filter; frames without a face hold the last pose.
"""
from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatars.face.landmarks import FaceLandmarker, LandmarkerConfig
from dream3d.errors import UsageError


@dataclass(frozen=True)
class DriveConfig:
    """How a video drives an avatar."""

    max_frames: int = 1800
    """Frames read at most (a minute at 30 fps); the rest of the video is left out, with a note."""
    frame_height: int = 256
    """Input frames are kept at this height (for driven.mp4's left half)."""
    min_cutoff_hz: float = 1.5
    """One-euro filter: the cutoff at rest (lower: smoother, more lag)."""
    beta: float = 0.3
    """One-euro filter: how fast the cutoff opens with speed (higher: less lag on fast moves)."""


@dataclass(frozen=True)
class DriveTrack:
    """An avatar animation read from a video, one key per frame."""

    fps: float
    weights: np.ndarray
    """[T, 52] float32 ARKit blendshape weights (ARKIT_NAMES order), smoothed."""
    rotations: np.ndarray
    """[T, 3, 3] float64 head rotations (x right, y up, z toward the viewer), smoothed."""
    found: np.ndarray
    """[T] bool: the landmarker found a face in the frame."""
    frames: np.ndarray
    """[T, H, W, 3] uint8 input frames, `DriveConfig.frame_height` tall."""

    @property
    def times(self) -> np.ndarray:
        """[T] float32 seconds."""
        return (np.arange(len(self.weights)) / self.fps).astype(np.float32)

    def summary(self) -> dict:
        return {"frames": len(self.weights), "fps": round(float(self.fps), 3),
                "frames_with_face": int(self.found.sum())}


def _alpha(cutoff: float, dt: float) -> float:
    return 1.0 / (1.0 + 1.0 / (2 * math.pi * cutoff * dt))


def one_euro(values: np.ndarray, fps: float, min_cutoff: float, beta: float, d_cutoff: float = 1.0) -> np.ndarray:
    """[T, D] -> [T, D] one-euro filtered (Casiez et al. 2012): smooth when still, quick when moving."""
    out = np.empty_like(values, dtype=np.float64)
    dt = 1.0 / fps
    prev, d_prev = values[0].astype(np.float64), np.zeros(values.shape[1])
    out[0] = prev
    for t in range(1, len(values)):
        d = (values[t] - prev) / dt
        d_prev = d_prev + _alpha(d_cutoff, dt) * (d - d_prev)
        cutoff = min_cutoff + beta * np.abs(d_prev)
        a = 1.0 / (1.0 + 1.0 / (2 * math.pi * cutoff * dt))
        prev = prev + a * (values[t] - prev)
        out[t] = prev
    return out


def _quaternions(rotations: np.ndarray) -> np.ndarray:
    """[T, 3, 3] -> [T, 4] (x, y, z, w), signs made continuous (q and -q are the same rotation)."""
    import roma
    import torch

    q = roma.rotmat_to_unitquat(torch.as_tensor(rotations, dtype=torch.float64)).numpy()
    for t in range(1, len(q)):
        if q[t] @ q[t - 1] < 0:
            q[t] = -q[t]
    return q


def _rotations(quaternions: np.ndarray) -> np.ndarray:
    import roma
    import torch

    q = torch.as_tensor(quaternions / np.linalg.norm(quaternions, axis=1, keepdims=True))
    return roma.unitquat_to_rotmat(q).numpy()


def hold_last(values: np.ndarray, found: np.ndarray, neutral: np.ndarray) -> np.ndarray:
    """[T, ...] with the frames where `found` is False holding the last found value (neutral before the first)."""
    out = values.copy()
    last = neutral
    for t in range(len(values)):
        if found[t]:
            last = values[t]
        else:
            out[t] = last
    return out


def _resize(frame: np.ndarray, height: int) -> np.ndarray:
    from PIL import Image

    h, w = frame.shape[:2]
    width = max(2, round(w * height / h / 2) * 2)
    return np.asarray(Image.fromarray(frame).resize((width, height), Image.BILINEAR))


def video_frames(path: str | os.PathLike, limit: int):
    """(fps, iterator of [H, W, 3] uint8 frames) of a video; unreadable or corrupt: one UsageError line."""
    import imageio_ffmpeg

    path = Path(path)
    try:
        reader = imageio_ffmpeg.read_frames(str(path))
        meta = next(reader)
    except (OSError, RuntimeError, StopIteration) as error:
        raise UsageError(f"cannot read video {path} ({str(error).strip().splitlines()[0][:120] if str(error) else 'no frames'}): "
                         "give an MP4 or another video ffmpeg reads") from None
    w, h = meta["size"]
    fps = float(meta.get("fps") or 25.0)

    def frames():
        try:
            for k, raw in enumerate(reader):
                if k >= limit:
                    break
                yield np.frombuffer(raw, np.uint8).reshape(h, w, 3)
        except (OSError, RuntimeError) as error:
            raise UsageError(f"video {path} is corrupt ({str(error).strip()[:120]}): re-encode it") from None
        finally:
            reader.close()

    return fps, frames()


def probe_video(path: str | os.PathLike) -> None:
    """Check a video can be decoded (its first frame) before anything is written; one UsageError line if not."""
    _, frames = video_frames(path, 1)
    if next(frames, None) is None:
        raise UsageError(f"video {path} has no frames: give a video with at least one frame")


def read_drive(path: str | os.PathLike, say: Callable[[str], None] = print,
               config: DriveConfig = DriveConfig()) -> DriveTrack:
    """The animation a video's face performs (see the module docstring)."""
    from avatars.anny.expressions import ARKIT_NAMES

    fps, frames = video_frames(path, config.max_frames + 1)
    weights, rotations, found, kept, crowded = [], [], [], [], 0
    with FaceLandmarker(LandmarkerConfig(video=True)) as landmarker:
        for k, frame in enumerate(frames):
            if k == config.max_frames:
                say(f"note: {path} is longer than {config.max_frames} frames; the rest is left out")
                break
            reading = landmarker.read(frame, timestamp_ms=round(1000 * k / fps))
            found.append(reading is not None)
            crowded += reading is not None and reading.faces_found > 1
            weights.append(reading.blendshape_vector() if reading else np.zeros(len(ARKIT_NAMES), np.float32))
            rotations.append(reading.pose[:3, :3] if reading else np.eye(3))
            kept.append(_resize(frame, config.frame_height))
    if not kept:
        raise UsageError(f"video {path} has no frames: give a video with at least one frame")
    found_a = np.array(found)
    if not found_a.any():
        raise UsageError(f"no face found in any frame of {path}: give a video with a face visible, frontal")
    u, _, vt = np.linalg.svd(np.array(rotations))
    rot = u @ vt  # the pose matrices carry scale; keep their rotations
    w = hold_last(np.array(weights, np.float64), found_a, np.zeros(len(ARKIT_NAMES)))
    q = hold_last(_quaternions(rot), found_a, np.array([0.0, 0.0, 0.0, 1.0]))
    # Smoothed, then held again: a frame without a face shows exactly the pose before it.
    w = hold_last(np.clip(one_euro(w, fps, config.min_cutoff_hz, config.beta), 0.0, 1.0), found_a, np.zeros(len(ARKIT_NAMES)))
    q = hold_last(one_euro(q, fps, config.min_cutoff_hz, config.beta), found_a, np.array([0.0, 0.0, 0.0, 1.0]))
    if crowded:
        say(f"note: {crowded} frames of {path} show several faces; the largest drives the avatar")
    say(f"drive: {len(kept)} frames at {fps:.1f} fps, a face in {int(found_a.sum())}")
    return DriveTrack(fps, w.astype(np.float32), _rotations(q), found_a, np.stack(kept))


def driven_frames(avatar, track: DriveTrack, render_config) -> np.ndarray:
    """[T, H, W_in + H, 3] uint8: each input frame beside the avatar posed by the track (front view,
    triangle-rasterised without supersampling: the driven video's speed budget)."""
    from avatars.anny.expressions import ARKIT_NAMES
    from avatars.anny.mesh_render import Shading, closed_faces, render_mesh
    from avatars.anny.render import eye_depth_bias

    size = track.frames.shape[1]
    config = face_view(render_config, size)
    order = [avatar.morph_names.index(n) for n in ARKIT_NAMES]
    morphs = avatar.morphs[order].reshape(len(order), -1)  # [52, V * 3]: one matrix product per frame
    bias, cullable, shading = eye_depth_bias(avatar.parts), closed_faces(avatar.faces, avatar.parts), Shading(supersample=1)
    out = []
    for frame, w, r in zip(track.frames, track.weights, track.rotations):
        v = avatar.vertices + (w @ morphs).reshape(-1, 3)
        posed = avatar.head_turned(v, r)
        out.append(np.concatenate([frame, render_mesh(posed, avatar.faces, avatar.colors, 0.0, config, bias, shading, cullable)], 1))
    return np.stack(out)


def face_view(render_config, size: int):
    """The driven view: the renderer's camera closer in on the face, `size` pixels."""
    from dataclasses import replace

    return replace(render_config, size=size, distance=0.7, elevation_degrees=0.0, target_height=0.27)
