"""A generated avatar field -> the rigged run folder `dream3d avatar "prompt"` writes.

The field is meshed (dream3d's checked iso-level, albedo at the vertices), the Anny template of
the prompt's attributes is fitted to that mesh (rig.py) and written like an engine avatar
(avatars.anny.runfolder: rigged model.glb, OBJ, PLY, preview, turntable), plus generated.ply:
the generated mesh itself in the avatar's metric frame, what the fit is measured against.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np

from avatars.engine.attributes import AvatarAttributes
from avatars.export import AvatarExportConfig


def template_attributes(weights, seed: int) -> AvatarAttributes:
    """The template's attributes from a condition's attribute weights [K] (`AvatarCondition.attributes`
    of one avatar: 1 at each value a prompt names, the portrait reader's probabilities for a
    photo): each attribute's heaviest value where it has any weight, else the seed's draw."""
    from avatars.diffusion.conditioning import ATTRIBUTE_VALUES
    from avatars.engine.attributes import PartialAttributes, sample_attributes

    best: dict[str, tuple[float, object]] = {}
    for (name, value), w in zip(ATTRIBUTE_VALUES, (float(x) for x in weights)):
        if w > 0 and w > best.get(name, (0.0, None))[0]:
            best[name] = (w, value)
    return sample_attributes(seed, PartialAttributes(**{name: value for name, (_, value) in best.items()}))


def generated_mesh(field, resolution: int):
    """A generated field -> `rig.GeneratedMesh` (field frame), warnings about a doubtful surface printed."""
    import torch

    from avatars.rigging.rig import GeneratedMesh
    from dream3d.errors import Dream3DError
    from dream3d.mesh import EmptyMeshError, MeshConfig, extract_mesh

    try:
        with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            mesh = extract_mesh(field, MeshConfig(resolution=resolution))
    except EmptyMeshError as error:
        raise Dream3DError(f"no mesh written: {error}") from None
    for w in caught:
        print(f"warning: {w.message}", flush=True)
    return GeneratedMesh(mesh.vertices, mesh.faces, mesh.vertex_colors)


def export_generated_rigged(folder, field, attributes: AvatarAttributes, export: AvatarExportConfig,
                            say: Callable[[str], None]) -> tuple[list[Path], dict[str, float], dict]:
    """Mesh, rig and write a generated avatar into the run folder. Returns (files, timings,
    the "rig" entry of avatar.json)."""
    from avatars.anny.runfolder import RiggedExport, export_rigged
    from avatars.rigging.rig import rig_generated
    from avatars.triplane import attributes_to_json
    from dream3d.export import export_ply
    from dream3d.mesh import Mesh

    timings: dict[str, float] = {}
    t = time.perf_counter()
    mesh = generated_mesh(field, export.mesh_resolution)
    timings["generated_mesh_s"] = time.perf_counter() - t
    t = time.perf_counter()
    rigged = rig_generated(mesh, attributes)
    timings["rig_s"] = time.perf_counter() - t
    face_mm = rigged.face_distance_m * 1000.0
    say(f"rigged: Anny template fitted in {timings['rig_s']:.1f}s, face {np.median(face_mm):.2f} mm from the "
        f"generated surface (median), scale {rigged.similarity.scale:.3f} m per field unit")
    files, export_timings = export_rigged(folder, rigged.avatar, export, RiggedExport(expression={}), say)
    g = rigged.generated
    files.append(export_ply(Mesh(vertices=g.vertices.astype(np.float32), faces=g.faces,
                                 vertex_colors=g.colors.astype(np.float32)), folder.root / "generated.ply"))
    return files, timings | export_timings, {
        "template": "anny", "template_attributes": attributes_to_json(attributes),
        "bones": len(rigged.avatar.skeleton.names),
        "morph_targets": len(rigged.avatar.morph_names),
        "field_to_metres": {"scale": rigged.similarity.scale, "shift": [float(x) for x in rigged.similarity.shift]},
        "face_distance_mm": {"median": float(np.median(face_mm)), "p90": float(np.percentile(face_mm, 90)),
                             "vertices": len(face_mm)},
    }
