"""A trained field -> the run folder's outputs: meshes (GLB, OBJ+MTL+PNG, PLY), preview, turntable.

field -> mesh -> export; field -> orbit renders -> video. Every file is written atomically by
the exporters it calls.
"""
from __future__ import annotations

import dataclasses
import json
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import torch
from torch import Tensor

from dream3d.atomic import write_text_atomic, write_with
from dream3d.cameras import Cameras, orbit_cameras
from dream3d.errors import Dream3DError
from dream3d.fields import Field
from dream3d.mesh import MeshConfig
from dream3d.renderer import OccupancyGrid, RenderConfig, ShadingMode, SolidBackground, render_cameras
from dream3d.runfolder import RunFolder
from dream3d.video import VideoConfig, render_turntable, to_uint8, write_gif, write_mp4

if TYPE_CHECKING:
    from dream3d.mesh import Mesh

MESH_FORMATS = ("glb", "obj", "ply")


@dataclass(frozen=True)
class ExportConfig:
    """Mesh extraction and texture baking."""

    mesh: MeshConfig = field(default_factory=MeshConfig)
    """Marching cubes and the iso-level check."""
    texture_size: int = 512
    """Side of the baked albedo texture in texels."""


def make_mesh(field: Field, export: ExportConfig):
    """Marching cubes with the checked iso-level, then the albedo baked into a texture."""
    from dream3d.mesh import EmptyMeshError, bake_texture, extract_mesh

    try:
        with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mesh = extract_mesh(field, export.mesh)
            textured = bake_texture(mesh, field, export.texture_size)
    except EmptyMeshError as error:
        raise Dream3DError(f"no mesh written: {error}") from None
    for w in caught:  # doubtful meshes are still written; say why they may disappoint
        print(f"warning: {w.message}", flush=True)
    return textured


def export_meshes(folder: RunFolder, field: Field, export: ExportConfig, formats: Sequence[str] = MESH_FORMATS) -> list[Path]:
    """The field's mesh in each of `formats` (and mesh.json) into the run folder."""
    from dream3d.export import export_glb, export_obj, export_ply

    unknown = [f for f in formats if f not in MESH_FORMATS]
    if unknown:
        raise Dream3DError(f"unknown mesh format {unknown[0]!r}: use glb, obj or ply")
    mesh = make_mesh(field, export)
    files: list[Path] = [write_mesh_report(folder, mesh)]
    if "glb" in formats:
        files.append(export_glb(mesh, folder.glb))
    if "obj" in formats:
        files += export_obj(mesh, folder.obj)
    if "ply" in formats:
        files.append(export_ply(mesh, folder.ply))
    return files


def write_mesh_report(folder: RunFolder, mesh: "Mesh") -> Path:
    """mesh.json: the mesh's size and how its iso-level was chosen (`IsoLevelReport`), so a
    disappointing mesh can be told apart from a disappointing field without re-extracting it."""
    report = {"vertices": int(len(mesh.vertices)), "faces": int(len(mesh.faces)),
              "iso": dataclasses.asdict(mesh.iso) if mesh.iso is not None else None}
    write_text_atomic(folder.mesh_report, json.dumps(report, indent=1) + "\n")
    return folder.mesh_report


def render_views(field: Field, occupancy: OccupancyGrid | None, cameras: Cameras, video: VideoConfig,
                 render: RenderConfig) -> Tensor:
    """Lambertian renders over white with the light at the camera: [B, H, W, 3] in [0, 1].
    `render` is the run's render config; the video's sample count and shading threshold replace its own."""
    render = replace(render, num_samples=video.num_samples, randomize=False, compute_normals=True,
                     return_samples=False, shade_weight_threshold=video.shade_weight_threshold)
    from dream3d.mesh import field_device

    device = field_device(field)
    cameras = cameras.to(device)
    with torch.no_grad():
        out = render_cameras(field, cameras, render, SolidBackground(), ShadingMode.LAMBERTIAN,
                             cameras.positions, occupancy)
    return out.rgb.clamp(0, 1).cpu()


def write_video(folder: RunFolder, field: Field, video: VideoConfig, render: RenderConfig,
                occupancy: OccupancyGrid | None = None) -> list[Path]:
    """preview.png (front three-quarter view) and turntable.mp4 / turntable.gif."""
    import imageio.v3 as iio

    preview_cams = orbit_cameras(1, elevation_deg=video.elevation_deg, image_size=video.image_size, start_azimuth_deg=30.0)
    preview = to_uint8(render_views(field, occupancy, preview_cams, video, render))[0]
    write_with(folder.preview, lambda tmp: iio.imwrite(tmp, preview))
    frames = render_turntable(lambda cams: render_views(field, occupancy, cams, video, render), num_frames=video.num_frames,
                              elevation_deg=video.elevation_deg, image_size=video.image_size)
    return [folder.preview, write_mp4(frames, folder.mp4, fps=video.fps), write_gif(frames, folder.gif, fps=video.gif_fps)]


__all__ = ["ExportConfig", "MESH_FORMATS", "export_meshes", "make_mesh", "render_views", "write_mesh_report", "write_video"]
