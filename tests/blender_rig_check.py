"""Run inside Blender: import a rigged avatar GLB and report its armature, shape keys and what jawOpen moves.

    blender -b --factory-startup --python tests/blender_rig_check.py -- <file.glb> <json-out>

The report (Blender frame, +Z up, front -Y): bone names, shape key names, and for the mesh
evaluated with every shape key at 0 and then jawOpen at 1, how far vertices moved and where.
tests/test_anny_export.py asserts.
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # blender_common, beside this file
from blender_common import bpy, numpy, evaluated  # noqa: E402


def material_report(obj) -> dict:
    """What colours the Principled BSDF gets: the image texture linked to its Base Color, that
    image's size and pixels at the mesh's UVs (sRGB bytes / 255), and any vertex colours."""
    out: dict = {"uv_layers": len(obj.data.uv_layers),
                 "color_attributes": len(getattr(obj.data, "color_attributes", obj.data.vertex_colors))}
    mat = obj.active_material
    bsdf = next((n for n in mat.node_tree.nodes if n.type == "BSDF_PRINCIPLED"), None) if mat else None
    link = bsdf.inputs["Base Color"].links[0] if bsdf and bsdf.inputs["Base Color"].is_linked else None
    node = link.from_node if link else None
    out["base_color_node"] = node.type if node else None
    if node is not None and node.type == "TEX_IMAGE" and node.image is not None:
        image = node.image
        w, h = image.size
        out["image_size"] = [w, h]
        out["image_colorspace"] = image.colorspace_settings.name
        pixels = numpy.array(image.pixels[:]).reshape(h, w, 4)[..., :3]
        uv = numpy.array([d.uv[:] for d in obj.data.uv_layers.active.data])  # one per loop
        cols = numpy.clip((uv[:, 0] * w).astype(int), 0, w - 1)
        rows = numpy.clip((uv[:, 1] * h).astype(int), 0, h - 1)  # Blender's image rows start at the bottom
        out["loop_colors"] = pixels[rows, cols].round(3).tolist()
        out["loop_vertex"] = [loop.vertex_index for loop in obj.data.loops]
        out["rest_z"] = [float(v.co.z) for v in obj.data.vertices]
    return out


def main(path: str, out: str) -> None:
    report: dict = {"ok": False}
    try:
        bpy.ops.wm.read_factory_settings(use_empty=True)
        bpy.ops.import_scene.gltf(filepath=path)
        arm = [o for o in bpy.data.objects if o.type == "ARMATURE"]
        meshes = [o for o in bpy.data.objects if o.type == "MESH"]
        report["armatures"] = len(arm)
        report["bones"] = [b.name for b in arm[0].data.bones] if arm else []
        (obj,) = meshes
        keys = obj.data.shape_keys.key_blocks if obj.data.shape_keys else []
        report["shape_keys"] = [k.name for k in keys]
        report["skinned"] = any(m.type == "ARMATURE" for m in obj.modifiers)
        report["vertex_groups"] = len(obj.vertex_groups)
        bpy.context.scene.frame_set(0)
        if obj.data.shape_keys and obj.data.shape_keys.animation_data:
            obj.data.shape_keys.animation_data.action = None  # judge the shape key alone
        for k in keys[1:]:
            k.value = 0.0
        rest = evaluated(obj)
        keys["jawOpen"].value = 1.0
        opened = evaluated(obj)
        moved = numpy.linalg.norm(opened - rest, axis=1)
        report["jaw_max_move"] = float(moved.max())
        report["jaw_moved_count"] = int((moved > 0.002).sum())
        report["jaw_moved_z_range"] = [float(rest[moved > 0.002, 2].min()), float(rest[moved > 0.002, 2].max())]
        report["mesh_z_range"] = [float(rest[:, 2].min()), float(rest[:, 2].max())]
        # Posing the jaw bone moves the chin too (the skin is bound to the skeleton).
        keys["jawOpen"].value = 0.0
        if arm and "jaw" in arm[0].pose.bones:
            arm[0].pose.bones["jaw"].rotation_mode = "XYZ"
            arm[0].pose.bones["jaw"].rotation_euler[0] = 0.3
            bpy.context.view_layer.update()
            posed = evaluated(obj)
            report["jaw_bone_max_move"] = float(numpy.linalg.norm(posed - rest, axis=1).max())
            report["jaw_bone_moves"] = numpy.linalg.norm(posed - rest, axis=1).round(5).tolist()
            report["rest_positions"] = rest.round(5).tolist()
        report["animations"] = [a.name for a in bpy.data.actions]
        report.update(material_report(obj))
        report["ok"] = True
    except Exception:  # noqa: BLE001 - reported to the test
        report["error"] = traceback.format_exc()
    with open(out, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    argv = sys.argv[sys.argv.index("--") + 1:]
    main(argv[0], argv[1])
