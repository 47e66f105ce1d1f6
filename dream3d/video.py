"""Turntable videos: N frames orbiting the origin at one elevation, written as MP4 (H.264,
yuv420p, faststart: plays in browsers) and GIF, atomically.

The renderer stays out of this module: callers pass a closure `render_fn(cameras) -> [B, H, W, 3]`.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from dream3d.atomic import atomic_path
from dream3d.cameras import Cameras, orbit_cameras


@dataclass(frozen=True)
class VideoConfig:
    """The turntable video and the preview image."""

    num_frames: int = 48
    """Frames of one full turn."""
    image_size: int = 160
    """Pixels per side."""
    elevation_deg: float = 15.0
    """Camera elevation of the orbit."""
    fps: int = 24
    """MP4 frame rate."""
    gif_fps: int = 12
    """GIF frame rate."""
    num_samples: int = 80
    """Samples per ray for the video and preview renders."""
    shade_weight_threshold: float = 1e-3
    """Albedo and normals only at samples whose compositing weight exceeds this, and no density
    queries once a ray's transmittance is below it (see RenderConfig.shade_weight_threshold):
    about half the render time for at most ~1/255 of pixel change (docs/decisions.md)."""


@torch.no_grad()
def render_turntable(
    render_fn: Callable[[Cameras], Tensor],
    num_frames: int,
    elevation_deg: float,
    image_size: int,
    distance: float = 3.1,
    fov_y_deg: float = 45.0,
    start_azimuth_deg: float = 0.0,
    batch_size: int = 4,
) -> np.ndarray:
    """Render `num_frames` views on a circle (counter-clockwise seen from above, starting at the front).

    render_fn: Cameras (B views) -> [B, H, W, 3] float in [0, 1].
    Returns uint8 frames [num_frames, image_size, image_size, 3].
    """
    cameras = orbit_cameras(
        num_frames,
        elevation_deg=elevation_deg,
        distance=distance,
        fov_y_deg=fov_y_deg,
        image_size=image_size,
        start_azimuth_deg=start_azimuth_deg,
    )
    frames = []
    for start in range(0, num_frames, batch_size):
        images = render_fn(cameras[start : start + batch_size])  # [b, H, W, 3]
        frames.append(to_uint8(images))
    return np.concatenate(frames, axis=0)


def to_uint8(images: Tensor | np.ndarray) -> np.ndarray:
    """Float images in [0, 1] [..., 3] -> uint8 (NaNs become 0)."""
    if isinstance(images, Tensor):
        images = images.detach().float().cpu().numpy()
    images = np.nan_to_num(np.asarray(images, np.float32), nan=0.0)
    return np.round(np.clip(images, 0.0, 1.0) * 255.0).astype(np.uint8)


def pad_to_even(frames: np.ndarray) -> np.ndarray:
    """[N, H, W, 3] -> [N, H', W', 3] with H', W' even (yuv420p needs it), padding by edge replication."""
    n, h, w, _ = frames.shape
    return np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _check_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must be [N>0, H, W, 3]; got {frames.shape}")
    return frames if frames.dtype == np.uint8 else to_uint8(frames)


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: int, crf: int = 18) -> Path:
    """H.264 MP4 (yuv420p, even size, moov atom first) from uint8 frames [N, H, W, 3]."""
    import imageio_ffmpeg

    frames = pad_to_even(_check_frames(frames))
    _, h, w, _ = frames.shape
    with atomic_path(path) as tmp:
        writer = imageio_ffmpeg.write_frames(
            str(tmp),
            size=(w, h),
            fps=fps,
            codec="libx264",
            pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p",
            macro_block_size=1,  # we padded to even sizes ourselves; no rescaling
            output_params=["-crf", str(crf), "-movflags", "+faststart"],
            ffmpeg_log_level="error",
        )
        writer.send(None)  # start the generator
        for frame in frames:
            writer.send(np.ascontiguousarray(frame))
        writer.close()
    return Path(path)


def write_gif(frames: np.ndarray, path: str | os.PathLike, fps: int) -> Path:
    """Looping GIF from uint8 frames [N, H, W, 3]."""
    from PIL import Image

    frames = _check_frames(frames)
    images = [Image.fromarray(f) for f in frames]
    with atomic_path(path) as tmp:
        images[0].save(
            tmp,
            format="GIF",
            save_all=True,
            append_images=images[1:],
            duration=max(20, round(1000 / fps)),  # ms per frame; browsers clamp < 20 ms
            loop=0,
            optimize=False,
        )
    return Path(path)
