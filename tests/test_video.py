"""Turntable video: the frames asked for, from the orbit asked for, in files browsers play."""
from __future__ import annotations

import imageio_ffmpeg
import numpy as np
import pytest
import torch
from PIL import Image

from dream3d.video import render_turntable, write_gif, write_mp4


def azimuth_colour_render(cameras):
    """Each view is a flat image whose red channel encodes the camera's azimuth."""
    red = (cameras.azimuth_deg + 180.0) / 360.0  # [B]
    image = torch.zeros(len(cameras), cameras.height, cameras.width, 3)
    image[..., 0] = red[:, None, None]
    image[..., 1] = (cameras.elevation_deg[:, None, None] / 90.0).clamp(0, 1)
    return image


def test_turntable_renders_the_orbit_asked_for():
    frames = render_turntable(azimuth_colour_render, num_frames=6, elevation_deg=30.0, image_size=16, batch_size=4)
    assert frames.shape == (6, 16, 16, 3) and frames.dtype == np.uint8
    azimuths = frames[:, 0, 0, 0] / 255.0 * 360.0 - 180.0
    expected = (np.arange(6) * 60.0 + 180.0) % 360.0 - 180.0  # starts at the front, 60 degrees apart
    assert np.allclose(azimuths, expected, atol=1.5)
    assert np.allclose(frames[..., 1] / 255.0, 30.0 / 90.0, atol=0.01)


def _distinct_frames(n: int, h: int, w: int) -> np.ndarray:
    frames = np.zeros((n, h, w, 3), np.uint8)
    for i in range(n):
        frames[i, :, : (i + 1) * w // (n + 1)] = 200  # a bar growing frame by frame
        frames[i, ..., 2] = 40 * i
    return frames


def test_mp4_is_h264_yuv420p_with_every_frame(tmp_path):
    frames = _distinct_frames(7, 33, 47)  # odd sizes must be padded to even for yuv420p
    path = write_mp4(frames, tmp_path / "turntable.mp4", fps=10)
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = reader.__next__()
    read = [np.frombuffer(f, np.uint8) for f in reader]
    assert meta["codec"].startswith("h264")
    assert meta["pix_fmt"].startswith("yuv420p")
    assert meta["size"] == (48, 34)
    assert len(read) == 7
    first = read[0].reshape(34, 48, 3)[:33, :47]
    assert np.abs(first.astype(int) - frames[0]).mean() < 6  # lossy but faithful
    # faststart: the moov atom precedes the media data, so browsers can start playing at once.
    data = path.read_bytes()
    assert data.find(b"moov") < data.find(b"mdat")
    assert [p.name for p in tmp_path.iterdir()] == ["turntable.mp4"]


def test_gif_loops_with_every_frame(tmp_path):
    frames = _distinct_frames(5, 20, 30)
    path = write_gif(frames, tmp_path / "turntable.gif", fps=10)
    with Image.open(path) as gif:
        assert gif.n_frames == 5
        assert gif.info.get("loop") == 0
        assert gif.info.get("duration") == 100


def test_bad_frames_are_refused(tmp_path):
    with pytest.raises(ValueError):
        write_mp4(np.zeros((0, 8, 8, 3), np.uint8), tmp_path / "x.mp4", fps=10)
