"""Run inside Blender: import exported meshes with Blender's DEFAULT importers and report what came in.

    blender -b --factory-startup --python tests/blender_import_check.py -- <file> [<file> ...] <json-out>

For each file (.glb / .gltf, .obj, .ply) the scene is emptied, the file imported with default
options, and the report records, in Blender's frame (+Z up, front toward -Y): the world-space
bounding box of all imported mesh objects, the materials (image textures feeding Base Color),
and the mean colour of three regions of the test object (top, bottom, front), read from the
image texture at the loops' UVs or from the colour attribute. tests/test_blender.py asserts.
"""
from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # blender_common, beside this file
from blender_common import bpy, numpy  # noqa: E402
from mathutils import Vector  # noqa: E402


def import_file(path: str) -> None:
    lower = path.lower()
    if lower.endswith((".glb", ".gltf")):
        bpy.ops.import_scene.gltf(filepath=path)
    elif lower.endswith(".obj"):
        if "obj_import" in dir(bpy.ops.wm):
            bpy.ops.wm.obj_import(filepath=path)  # the default OBJ importer since Blender 3.2
        else:
            bpy.ops.import_scene.obj(filepath=path)
    elif lower.endswith(".ply"):
        if "ply_import" in dir(bpy.ops.wm):
            bpy.ops.wm.ply_import(filepath=path)  # Blender >= 3.6
        else:
            bpy.ops.import_mesh.ply(filepath=path)
    else:
        raise ValueError(f"unknown format: {path}")


def base_color_image(material):
    """The image of a TEX_IMAGE node linked (possibly through other nodes) to Base Color, or None."""
    if material is None or not material.use_nodes:
        return None
    for node in material.node_tree.nodes:
        if node.type == "BSDF_PRINCIPLED":
            links = node.inputs["Base Color"].links
            stack = [link.from_node for link in links]
            while stack:
                n = stack.pop()
                if n.type == "TEX_IMAGE" and n.image is not None:
                    return n.image
                for inp in n.inputs:
                    stack += [link.from_node for link in inp.links]
    return None


def regions(co: numpy.ndarray) -> dict[str, numpy.ndarray]:
    """Masks of the test object's regions, in Blender's frame (see tests/test_blender.py)."""
    return {
        "top": (co[:, 2] > 0.3) & (co[:, 1] > -0.1),
        "bottom": co[:, 2] < -0.3,
        "front": co[:, 1] < -0.22,
    }


def report_object(obj) -> dict:
    mesh = obj.data
    mw = obj.matrix_world
    co = numpy.array([tuple(mw @ v.co) for v in mesh.vertices], dtype=float)  # [V, 3] world
    loop_vertex = numpy.array([loop.vertex_index for loop in mesh.loops], dtype=int)
    out = {"name": obj.name, "num_vertices": len(mesh.vertices), "materials": [], "region_colours": {}}
    masks = {k: m[loop_vertex] for k, m in regions(co).items()}  # per loop
    for slot in obj.material_slots:
        image = base_color_image(slot.material)
        entry = {"name": slot.material.name if slot.material else None, "image": None}
        if image is not None:
            entry["image"] = {"size": list(image.size), "colorspace": image.colorspace_settings.name}
            if mesh.uv_layers.active is not None and image.size[0] > 0:
                w, h = image.size
                pixels = numpy.array(image.pixels[:], dtype=float).reshape(h, w, 4)  # row 0 = bottom
                uv = numpy.array([d.uv[:] for d in mesh.uv_layers.active.data], dtype=float)  # per loop
                x = numpy.clip((uv[:, 0] * w).astype(int), 0, w - 1)
                y = numpy.clip((uv[:, 1] * h).astype(int), 0, h - 1)
                texel = pixels[y, x, :3]
                out["region_colours"]["texture"] = {k: texel[m].mean(0).tolist() for k, m in masks.items() if m.any()}
        out["materials"].append(entry)
    attributes = getattr(mesh, "color_attributes", None)
    if attributes is not None and len(attributes):
        attr = attributes[0]
        # Byte-colour attributes hold sRGB-encoded bytes; `.color` converts them to linear.
        values = numpy.array([tuple(d.color)[:3] for d in attr.data], dtype=float)
        per_loop = values if attr.domain == "CORNER" else values[loop_vertex]
        linear = {k: per_loop[m].mean(0).tolist() for k, m in masks.items() if m.any()}
        out["region_colours"]["color_attribute"] = linear
        out["color_attribute"] = {"name": attr.name, "domain": attr.domain, "data_type": attr.data_type}
    return out


def main() -> None:
    argv = sys.argv[sys.argv.index("--") + 1 :]
    files, json_out = argv[:-1], argv[-1]
    results = {}
    for path in files:
        try:
            bpy.ops.wm.read_factory_settings(use_empty=True)
            import_file(path)
            objects = [o for o in bpy.context.scene.objects if o.type == "MESH"]
            corners = numpy.array(
                [tuple(o.matrix_world @ Vector(c)) for o in objects for c in o.bound_box], dtype=float
            )
            results[path] = {
                "ok": True,
                "bbox_min": corners.min(0).tolist(),
                "bbox_max": corners.max(0).tolist(),
                "objects": [report_object(o) for o in objects],
            }
        except Exception:  # noqa: BLE001 - reported to the test, which fails with the trace
            results[path] = {"ok": False, "error": traceback.format_exc()}
    results["blender_version"] = bpy.app.version_string
    with open(json_out, "w") as f:
        json.dump(results, f, indent=1)


main()
