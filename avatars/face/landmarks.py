"""The one place that imports MediaPipe: its Face Landmarker (Tasks API) reads a face from an
image or a video frame as a typed `FaceReading` (478 landmarks, 52 ARKit blendshape scores,
head pose).

The model bundle `face_landmarker.task` (Google, Apache-2.0) is carried in
assets/face-landmarker/ with its licence notice; see docs/FACE_AVATARS.md.
"""
from __future__ import annotations

import contextlib
import importlib
import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from avatars.anny.expressions import ARKIT_NAMES
from dream3d.errors import Dream3DError, UsageError

INSTALL_HINT = "pip install 'dream3d[face]' (or: pip install mediapipe==1.2.3)"
MODEL_PATH = Path(__file__).resolve().parents[2] / "assets" / "face-landmarker" / "face_landmarker.task"
"""The Face Landmarker bundle (face detector, 478-point landmark model, blendshape model)."""

LEFT_EYE_CORNERS = (33, 133)
"""Outer and inner corner of the subject's right eye (image left) in MediaPipe's face mesh."""
RIGHT_EYE_CORNERS = (362, 263)
"""Inner and outer corner of the subject's left eye (image right)."""
IRIS_CENTRES = (468, 473)
"""Iris centre landmarks (image-left eye, image-right eye)."""


class MediaPipeMissingError(Dream3DError):
    """MediaPipe (the face extra) is not installed, or its model bundle is missing."""


def mediapipe_installed() -> bool:
    """Whether `import mediapipe` would work (without importing it)."""
    return importlib.util.find_spec("mediapipe") is not None


def require_mediapipe() -> ModuleType:
    """The mediapipe module, or one clear line saying how to install it."""
    try:
        return importlib.import_module("mediapipe")
    except ImportError as error:
        raise MediaPipeMissingError(f"MediaPipe is not installed ({error}); install: {INSTALL_HINT}") from None


@dataclass(frozen=True)
class FaceReading:
    """One face as the landmarker reads it, in the pixel frame of its image."""

    landmarks: np.ndarray
    """[478, 3] float64: x, y in pixels (origin top-left), z in pixels (same scale as x, smaller is
    nearer the camera; relative to the face's centre)."""
    blendshapes: dict[str, float]
    """The 52 ARKit blendshape names -> score in [0, 1] (MediaPipe reads no tongueOut: always 0)."""
    pose: np.ndarray
    """[4, 4] float64 facial transformation: canonical face (cm) -> camera (x right, y up, z toward
    the viewer); its rotation is the head's."""
    image_size: tuple[int, int]
    """(width, height) of the image read."""
    faces_found: int = 1
    """How many faces the image held (this reading is the largest)."""

    def blendshape_vector(self) -> np.ndarray:
        """[52] float32 scores in ARKIT_NAMES order."""
        return np.array([self.blendshapes[n] for n in ARKIT_NAMES], np.float32)

    def yaw_pitch_roll(self) -> tuple[float, float, float]:
        """Head rotation in degrees: yaw (+: the face turned toward the image's right), pitch
        (+: looking up), roll (+: counter-clockwise in the image); see `yaw_pitch_roll`."""
        return yaw_pitch_roll(self.pose[:3, :3])

    def inter_ocular(self) -> float:
        """Distance between the two iris centres, pixels."""
        a, b = (self.landmarks[i, :2] for i in IRIS_CENTRES)
        return float(np.linalg.norm(a - b))

    def box(self) -> tuple[float, float, float, float]:
        """(x0, y0, x1, y1) of the landmarks, pixels."""
        lo, hi = self.landmarks[:, :2].min(0), self.landmarks[:, :2].max(0)
        return float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])


def _ry(degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    return np.array([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]])


def _rx(degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    return np.array([[1.0, 0.0, 0.0], [0.0, math.cos(a), -math.sin(a)], [0.0, math.sin(a), math.cos(a)]])


def _rz(degrees: float) -> np.ndarray:
    a = math.radians(degrees)
    return np.array([[math.cos(a), -math.sin(a), 0.0], [math.sin(a), math.cos(a), 0.0], [0.0, 0.0, 1.0]])


def rotation_from_yaw_pitch_roll(yaw: float, pitch: float, roll: float = 0.0) -> np.ndarray:
    """[3, 3] R = Ry(yaw) @ Rx(-pitch) @ Rz(roll) (degrees; x right, y up, z toward the viewer):
    the face's forward axis R @ (0, 0, 1) turns `yaw` toward +x and `pitch` toward +y."""
    return _ry(yaw) @ _rx(-pitch) @ _rz(roll)


def yaw_pitch_roll(rotation: np.ndarray) -> tuple[float, float, float]:
    """[3, 3] head rotation -> (yaw, pitch, roll) degrees, the inverse of `rotation_from_yaw_pitch_roll`."""
    r = np.asarray(rotation, np.float64)
    forward = r[:, 2]
    pitch = math.degrees(math.asin(float(np.clip(forward[1], -1.0, 1.0))))
    yaw = math.degrees(math.atan2(float(forward[0]), float(forward[2])))
    rest = _rx(-pitch).T @ _ry(yaw).T @ r
    roll = math.degrees(math.atan2(float(rest[1, 0]), float(rest[0, 0])))
    return yaw, pitch, roll


@dataclass(frozen=True)
class LandmarkerConfig:
    """How the Face Landmarker runs."""

    model_path: Path = MODEL_PATH
    """The `face_landmarker.task` bundle."""
    max_faces: int = 4
    """Faces read per image (the largest is used; the others are counted for a note)."""
    min_detection_confidence: float = 0.5
    """Face detector threshold."""
    video: bool = False
    """Video mode: frames with timestamps, tracked from frame to frame (faster than detecting each)."""


@contextlib.contextmanager
def _quiet_native_stderr():
    """Silence file descriptor 2 for a moment: MediaPipe's C++ logs info lines there (graph set-up,
    XNNPACK) that would bury the CLI's one-line messages. Its errors still raise in Python."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


class FaceLandmarker:
    """MediaPipe's Face Landmarker as a context manager (always closed: MediaPipe raises at
    interpreter exit otherwise)."""

    def __init__(self, config: LandmarkerConfig = LandmarkerConfig()):
        mp = require_mediapipe()
        if not Path(config.model_path).is_file():
            raise MediaPipeMissingError(f"the face landmarker model {config.model_path} is missing; "
                                        "restore assets/face-landmarker/ from the repository")
        from mediapipe.tasks.python import BaseOptions, vision

        self._mp, self.config = mp, config
        mode = vision.RunningMode.VIDEO if config.video else vision.RunningMode.IMAGE
        options = vision.FaceLandmarkerOptions(
            base_options=BaseOptions(model_asset_path=str(config.model_path)), running_mode=mode,
            num_faces=config.max_faces, min_face_detection_confidence=config.min_detection_confidence,
            output_face_blendshapes=True, output_facial_transformation_matrixes=True)
        with _quiet_native_stderr():
            self._landmarker = vision.FaceLandmarker.create_from_options(options)

    def __enter__(self) -> FaceLandmarker:  # noqa: PYI034 - Python 3.10 has no typing.Self
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._landmarker is not None:
            with _quiet_native_stderr():
                self._landmarker.close()
            self._landmarker = None

    def read(self, image: np.ndarray, timestamp_ms: int | None = None) -> FaceReading | None:
        """The largest face of an [H, W, 3] uint8 RGB image, or None when there is none.
        In video mode pass increasing `timestamp_ms`."""
        mp = self._mp
        frame = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image[..., :3], np.uint8))
        with _quiet_native_stderr():  # the first inference logs too
            if self.config.video:
                result = self._landmarker.detect_for_video(frame, int(timestamp_ms or 0))
            else:
                result = self._landmarker.detect(frame)
        if not result.face_landmarks:
            return None
        h, w = image.shape[:2]
        readings = []
        for k, points in enumerate(result.face_landmarks):
            xyz = np.array([(p.x * w, p.y * h, p.z * w) for p in points], np.float64)
            scores = {c.category_name: float(c.score) for c in result.face_blendshapes[k]}
            shapes = {n: scores.get(n, 0.0) for n in ARKIT_NAMES}
            pose = np.array(result.facial_transformation_matrixes[k], np.float64)
            readings.append(FaceReading(xyz, shapes, pose, (w, h), len(result.face_landmarks)))
        return max(readings, key=lambda r: (r.box()[2] - r.box()[0]) * (r.box()[3] - r.box()[1]))


def read_image(path: str | os.PathLike) -> np.ndarray:
    """[H, W, 3] uint8 RGB of an image file; a missing, unreadable or corrupt file is one UsageError line."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"photo {path} not found: give the path of a JPEG or PNG portrait")
    try:
        with Image.open(path) as image:
            image.load()
            rgb = np.asarray(image.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as error:
        raise UsageError(f"cannot read photo {path} ({type(error).__name__}): give a JPEG or PNG portrait") from None
    if min(rgb.shape[:2]) < 32:
        raise UsageError(f"photo {path} is {rgb.shape[1]}x{rgb.shape[0]} pixels: too small to read a face "
                         "(give at least 128 pixels a side)")
    return rgb


def read_face(image: np.ndarray, source: str = "the photo", config: LandmarkerConfig = LandmarkerConfig()) -> FaceReading:
    """The largest face in an RGB image; no face is one UsageError line."""
    with FaceLandmarker(config) as landmarker:
        reading = landmarker.read(image)
    if reading is None:
        raise UsageError(f"no face found in {source}: give a portrait with the face visible, frontal, "
                         "at least ~100 pixels wide")
    return reading
