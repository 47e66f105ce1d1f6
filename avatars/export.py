"""The avatar run folder's export settings, and the export of a tri-plane/SDF avatar field.

`AvatarExportConfig` is what `dream3d avatar` hands to library code (no argparse in here);
`export_field` writes a field avatar (the SDF engine, a fitted or a generated tri-plane)
through dream3d's exporters. Rigged Anny avatars are written by avatars.anny.runfolder.
Nothing here imports torch at module level, so the CLI reads the defaults cheaply.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path


@dataclass(frozen=True)
class AvatarExportConfig:
    """How an avatar run folder is written."""

    seed: int = 0
    """Recorded in config.yaml (the avatar's seed)."""
    frames: int = 48
    """Turntable frames."""
    size: int = 128
    """Turntable and preview side, pixels."""
    samples: int = 96
    """Samples per ray of a field's turntable (field avatars only)."""
    mesh_resolution: int = 128
    """Marching-cubes grid per axis (field avatars only)."""
    texture_size: int = 512
    """Baked texture side, pixels (field avatars only)."""


def export_field(folder, field, prompt: str, config: AvatarExportConfig,
                 say: Callable[[str], None]) -> tuple[list[Path], dict[str, float]]:
    """An avatar field -> config.yaml, meshes (GLB, OBJ, PLY), preview and turntable in the run
    folder (a dream3d RunFolder). Returns (files, {"mesh_s", "video_s"})."""
    import yaml

    from avatars.evaluation import occupancy_grid
    from dream3d.atomic import write_text_atomic
    from dream3d.configtools import to_plain
    from dream3d.mesh import MeshConfig
    from dream3d.outputs import ExportConfig, export_meshes, write_video
    from dream3d.renderer import RenderConfig
    from dream3d.video import VideoConfig

    # config.yaml holds what this avatar was written with, nothing of text-to-3D training.
    write_text_atomic(folder.config, yaml.safe_dump({"engine": "field", "prompt": prompt, "export": to_plain(config)},
                                                    sort_keys=False))
    export = ExportConfig(mesh=MeshConfig(resolution=config.mesh_resolution), texture_size=config.texture_size)
    video = replace(VideoConfig(), num_frames=config.frames, image_size=config.size, num_samples=config.samples)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    files = export_meshes(folder, field, export)
    timings["mesh_s"] = time.perf_counter() - t
    say(f"meshes in {timings['mesh_s']:.1f}s")
    t = time.perf_counter()
    files += write_video(folder, field, video, RenderConfig(), occupancy_grid(field))
    timings["video_s"] = time.perf_counter() - t
    say(f"video in {timings['video_s']:.1f}s -> {folder.root}")
    return files, timings
