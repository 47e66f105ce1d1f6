"""Mesh -> GLB / OBJ+MTL+PNG / PLY, in metres, oriented so Blender's default importers stand the
object upright at true size. Every file is written atomically (temporary file, then rename).

Orientation, per format (world frame: +Y up, +Z front, 1 unit = 1 m):
- GLB: glTF is +Y up, +Z front, metres by spec, so the world frame is written as is. Blender's
  glTF importer maps (x, y, z) -> (x, -z, y): up becomes Blender +Z, our front faces Blender -Y
  (what Blender's "Front" view looks at).
- OBJ: written in the world frame as is. Blender's OBJ importer defaults (forward -Z, up Y)
  apply the same mapping as glTF, so the object stands upright with its front toward -Y.
- PLY: Blender's PLY importer applies no axis conversion (Blender frame is Z up), so by default
  the PLY is written in Blender's frame, (x, y, z)_world -> (x, -z, y); `z_up=False` writes the
  world frame as is (for Y-up viewers such as MeshLab's default or Open3D).

Colours: the field's albedo is sRGB-encoded. glTF's baseColorTexture is sRGB by spec, so the
texture is written unchanged; glTF COLOR_0 is linear, so vertex colours are linearised before
they go into a GLB (only used when the mesh has no texture). OBJ/MTL textures and PLY colours
are conventionally sRGB and written unchanged.
"""
from __future__ import annotations

import io
import json
import os
import struct
from pathlib import Path

import numpy as np

from dream3d.atomic import write_bytes_atomic, write_text_atomic
from dream3d.mesh import Mesh


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear, same shape (IEC 61966-2-1)."""
    c = np.clip(np.asarray(c, np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def world_to_blender(vertices: np.ndarray) -> np.ndarray:
    """[V, 3] world (+Y up, +Z front) -> Blender (+Z up, front toward -Y): (x, y, z) -> (x, -z, y)."""
    return np.stack([vertices[:, 0], -vertices[:, 2], vertices[:, 1]], axis=1)


def _to_uint8(colors: np.ndarray) -> np.ndarray:
    return np.round(np.clip(colors, 0.0, 1.0) * 255.0).astype(np.uint8)


def _png_bytes(image: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def _trimesh(mesh: Mesh, linear_vertex_colors: bool):
    """A trimesh.Trimesh with either the texture (PBR, non-metallic, fully rough) or vertex colours."""
    import trimesh
    from PIL import Image

    tm = trimesh.Trimesh(
        vertices=mesh.vertices.astype(np.float64),
        faces=mesh.faces,
        vertex_normals=mesh.vertex_normals(),
        process=False,  # keep vertices split along UV seams; merging would break the atlas
    )
    if mesh.texture is not None and mesh.uv is not None:
        material = trimesh.visual.material.PBRMaterial(
            name="albedo",
            baseColorTexture=Image.fromarray(mesh.texture),
            baseColorFactor=[255, 255, 255, 255],
            # glTF's default is metallic = 1, which renders an albedo-only asset dark and mirror-like.
            metallicFactor=0.0,
            roughnessFactor=1.0,
            doubleSided=False,
        )
        tm.visual = trimesh.visual.TextureVisuals(uv=mesh.uv.astype(np.float64), material=material)
    else:
        colors = srgb_to_linear(mesh.vertex_colors) if linear_vertex_colors else mesh.vertex_colors
        rgba = np.concatenate([_to_uint8(colors), np.full((colors.shape[0], 1), 255, np.uint8)], axis=1)
        tm.visual = trimesh.visual.ColorVisuals(tm, vertex_colors=rgba)
    return tm


_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


def _patch_glb_json(data: bytes, patch) -> bytes:
    """Apply `patch(gltf: dict) -> None` to the JSON chunk of a GLB and repack it."""
    magic, version, _ = struct.unpack_from("<4sII", data, 0)
    json_len, json_type = struct.unpack_from("<II", data, 12)
    assert magic == b"glTF" and version == 2 and json_type == 0x4E4F534A, "not a glTF 2.0 GLB"
    gltf = json.loads(data[20 : 20 + json_len])
    rest = data[20 + json_len :]  # the BIN chunk, header included
    patch(gltf)
    text = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)  # chunks are 4-byte aligned; JSON pads with spaces
    body = struct.pack("<II", len(text), 0x4E4F534A) + text + rest
    return struct.pack("<4sII", b"glTF", 2, 12 + len(body)) + body


def _glb_fixes(gltf: dict) -> None:
    """Mark vertex/index bufferViews with their target, and give material-less primitives a
    non-metallic, fully rough material (glTF's default is metallic; Blender's importer only wires
    COLOR_0 into a material that exists)."""
    for mesh in gltf.get("meshes", []):
        for prim in mesh["primitives"]:
            for accessor in prim["attributes"].values():
                view = gltf["accessors"][accessor].get("bufferView")
                if view is not None:
                    gltf["bufferViews"][view]["target"] = _ARRAY_BUFFER
            if "indices" in prim:
                view = gltf["accessors"][prim["indices"]].get("bufferView")
                if view is not None:
                    gltf["bufferViews"][view]["target"] = _ELEMENT_ARRAY_BUFFER
            if "material" not in prim:
                materials = gltf.setdefault("materials", [])
                materials.append(
                    {"name": "vertex_colour", "pbrMetallicRoughness": {"metallicFactor": 0.0, "roughnessFactor": 1.0}}
                )
                prim["material"] = len(materials) - 1


def export_glb(mesh: Mesh, path: str | os.PathLike) -> Path:
    """Binary glTF with normals and, when the mesh is textured, a baseColorTexture (sRGB PNG).

    Untextured meshes carry linear COLOR_0 vertex colours instead (with a plain non-metallic
    material, which COLOR_0 multiplies). Returns the path written.
    """
    import trimesh

    tm = _trimesh(mesh, linear_vertex_colors=True)
    scene = trimesh.Scene()
    scene.add_geometry(tm, node_name="dream3d", geom_name="dream3d")
    data = trimesh.exchange.gltf.export_glb(scene, include_normals=True)
    write_bytes_atomic(path, _patch_glb_json(data, _glb_fixes))
    return Path(path)


def export_obj(mesh: Mesh, path: str | os.PathLike) -> list[Path]:
    """OBJ with normals; with a texture also an MTL (map_Kd) and a PNG beside it, named after `path`.

    Untextured meshes get per-vertex colours as the common `v x y z r g b` extension (sRGB).
    Returns the paths written (OBJ first).
    """
    path = Path(path)
    stem = path.stem
    textured = mesh.texture is not None and mesh.uv is not None
    v, n = mesh.vertices, mesh.vertex_normals()
    lines = ["# dream3d mesh: +Y up, +Z front, metres (Blender OBJ import defaults: forward -Z, up Y)"]
    if textured:
        lines += [f"mtllib {stem}.mtl", "usemtl albedo"]
        lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in v]
        lines += [f"vt {a:.6f} {b:.6f}" for a, b in mesh.uv]
    else:
        c = np.clip(mesh.vertex_colors, 0.0, 1.0)
        lines += [f"v {x:.6f} {y:.6f} {z:.6f} {r:.4f} {g:.4f} {b:.4f}" for (x, y, z), (r, g, b) in zip(v, c)]
    lines += [f"vn {x:.6f} {y:.6f} {z:.6f}" for x, y, z in n]
    f1 = mesh.faces + 1  # OBJ indices are 1-based
    if textured:
        lines += [f"f {a}/{a}/{a} {b}/{b}/{b} {c}/{c}/{c}" for a, b, c in f1]
    else:
        lines += [f"f {a}//{a} {b}//{b} {c}//{c}" for a, b, c in f1]
    written = [path]
    if textured:
        png, mtl = path.with_name(f"{stem}.png"), path.with_name(f"{stem}.mtl")
        # Write the texture and material first, so a reader that sees the OBJ finds them.
        write_bytes_atomic(png, _png_bytes(mesh.texture))
        write_text_atomic(
            mtl,
            "newmtl albedo\nKa 0 0 0\nKd 1 1 1\nKs 0 0 0\nNs 0\nillum 1\nd 1\n" f"map_Kd {png.name}\n",
        )
        written += [mtl, png]
    write_text_atomic(path, "\n".join(lines) + "\n")
    return written


def export_ply(mesh: Mesh, path: str | os.PathLike, z_up: bool = True) -> Path:
    """Binary PLY with uint8 sRGB vertex colours and normals.

    z_up=True (default) writes Blender's frame (x, -z, y) because Blender's PLY importer does no
    axis conversion; z_up=False writes the world frame (+Y up) unchanged.
    """
    v = world_to_blender(mesh.vertices) if z_up else mesh.vertices
    n = world_to_blender(mesh.vertex_normals()) if z_up else mesh.vertex_normals()
    colors = _to_uint8(mesh.vertex_colors)
    vertex = np.empty(
        v.shape[0],
        dtype=[("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("nx", "<f4"), ("ny", "<f4"), ("nz", "<f4"),
               ("red", "u1"), ("green", "u1"), ("blue", "u1")],
    )
    for k, name in enumerate("xyz"):
        vertex[name] = v[:, k]
        vertex["n" + name] = n[:, k]
    for k, name in enumerate(("red", "green", "blue")):
        vertex[name] = colors[:, k]
    face = np.empty(mesh.faces.shape[0], dtype=[("count", "u1"), ("idx", "<i4", (3,))])
    face["count"] = 3
    face["idx"] = mesh.faces
    frame = "+Z up, front toward -Y (Blender frame)" if z_up else "+Y up, +Z front (dream3d world frame)"
    header = (
        "ply\nformat binary_little_endian 1.0\ncomment dream3d mesh, metres, "
        f"{frame}\nelement vertex {v.shape[0]}\n"
        "property float x\nproperty float y\nproperty float z\n"
        "property float nx\nproperty float ny\nproperty float nz\n"
        "property uchar red\nproperty uchar green\nproperty uchar blue\n"
        f"element face {mesh.faces.shape[0]}\nproperty list uchar int vertex_indices\nend_header\n"
    )
    write_bytes_atomic(path, header.encode("ascii") + vertex.tobytes() + face.tobytes())
    return Path(path)


def export_mesh(mesh: Mesh, path: str | os.PathLike) -> list[Path]:
    """Export by file suffix: .glb, .obj (+ .mtl + .png when textured) or .ply (Blender frame).

    Returns the paths written. Raises ValueError for any other suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".glb":
        return [export_glb(mesh, path)]
    if suffix == ".obj":
        return export_obj(mesh, path)
    if suffix == ".ply":
        return [export_ply(mesh, path)]
    raise ValueError(f"cannot export a mesh as {suffix!r}: use .glb, .obj or .ply")
