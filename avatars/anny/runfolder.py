"""A rigged Anny avatar -> the avatar run folder: rigged model.glb, static OBJ/PLY, preview,
turntable and (with an animation) the expression reel video."""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from avatars.anny.expressions import reel_keys, reel_weights_at
from avatars.anny.gltf import MorphAnimation, write_rigged_glb
from avatars.anny.render import (
    RenderConfig,
    render_turntable_frames,
    render_view,
    sample_surface,
)
from avatars.anny.rigged import RiggedMesh
from avatars.export import AvatarExportConfig


@dataclass(frozen=True)
class RiggedExport:
    """What goes into a rigged avatar's run folder besides the export sizes."""

    expression: dict[str, float]
    """ARKit blendshape weights the avatar wears (GLB default morph weights; baked into OBJ/PLY and renders)."""
    animate: bool = False
    """Add the expression reel: expressions.mp4 and the same animation in model.glb."""
    reel_fps: int = 12
    """Frames per second of expressions.mp4."""
    drive: object | None = None
    """An `avatars.face.drive.DriveTrack`: driven.mp4 (video and avatar side by side) and the same
    animation (morph weights + head rotation) in model.glb."""


def export_rigged(folder, avatar: RiggedMesh, config: AvatarExportConfig, rigged: RiggedExport,
                  say: Callable[[str], None]) -> tuple[list[Path], dict[str, float]]:
    """Write model.glb (rigged), model.obj, model.ply, preview.png, turntable.mp4/.gif, config.yaml
    [and expressions.mp4]. Returns (files, timings)."""
    import yaml

    from dream3d.atomic import write_text_atomic
    from dream3d.export import export_obj, export_ply
    from dream3d.mesh import Mesh
    from dream3d.video import VideoConfig, write_gif, write_mp4

    timings: dict[str, float] = {}
    t = time.perf_counter()
    write_text_atomic(folder.config, yaml.safe_dump({"engine": "anny", "export": asdict(config),
                                                     "expression": rigged.expression, "animate": rigged.animate,
                                                     "driven": rigged.drive is not None}))
    animation = None
    if rigged.animate:
        times, weights = reel_keys()
        animation = MorphAnimation(times, weights)
    if rigged.drive is not None:
        animation = MorphAnimation(rigged.drive.times, rigged.drive.weights, name="driven",
                                   head_rotations=rigged.drive.rotations)
    files = [write_rigged_glb(avatar, folder.glb, rigged.expression, animation)]
    posed = avatar.morphed(rigged.expression)
    static = Mesh(vertices=posed, faces=avatar.faces, vertex_colors=avatar.colors)
    files += export_obj(static, folder.obj)
    files.append(export_ply(static, folder.ply))
    timings["mesh_s"] = time.perf_counter() - t
    say(f"rigged GLB ({len(avatar.skeleton.names)} bones, {len(avatar.morph_names)} blendshapes), OBJ, PLY "
        f"in {timings['mesh_s']:.1f}s")

    t = time.perf_counter()
    render = RenderConfig(size=config.size)
    frames = render_turntable_frames(posed, avatar.faces, avatar.colors, config.frames, render)
    from PIL import Image

    preview_config = RenderConfig(size=256)
    preview = render_view(sample_surface(posed, avatar.faces, avatar.colors, preview_config.sample_count(),
                                         render.seed), 20.0, preview_config)
    from dream3d.atomic import write_with

    write_with(folder.preview, lambda p: Image.fromarray(preview).save(p, format="PNG"))
    video = VideoConfig()  # the frame rates of every dream3d turntable
    files += [folder.preview, write_mp4(frames, folder.mp4, fps=video.fps), write_gif(frames, folder.gif, fps=video.gif_fps)]
    if rigged.drive is not None:
        from avatars.face.drive import driven_frames

        files.append(write_mp4(driven_frames(avatar, rigged.drive, RenderConfig(size=rigged.drive.frames.shape[1])),
                               folder.root / "driven.mp4", fps=max(1, round(rigged.drive.fps))))
    elif animation is not None:
        n = int(animation.times[-1] * rigged.reel_fps) + 1
        reel = []
        for k in range(n):
            w = reel_weights_at(k / rigged.reel_fps, animation.times, animation.weights)
            v = avatar.morphed(dict(zip(avatar.morph_names, w.tolist())))
            reel.append(render_view(sample_surface(v, avatar.faces, avatar.colors, render.sample_count(),
                                                   render.seed), 0.0, render))
        files.append(write_mp4(np.stack(reel), folder.root / "expressions.mp4", fps=rigged.reel_fps))
    timings["video_s"] = time.perf_counter() - t
    say(f"renders in {timings['video_s']:.1f}s -> {folder.root}")
    return files, timings
