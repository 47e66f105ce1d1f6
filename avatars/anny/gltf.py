"""A rigged avatar -> binary glTF (GLB) that Blender, Unity, Unreal and three.js open animated.

The file holds the skeleton (joint nodes with inverse bind matrices), 8 skin weights per vertex
(JOINTS_0/WEIGHTS_0 + JOINTS_1/WEIGHTS_1), a non-metallic PBR material whose base colour is a baked
sRGB PNG texture (`texture.py`; or linear vertex colours when no texture is asked for),
and the ARKit blendshapes as morph targets named in `mesh.extras.targetNames` (Blender reads
them as shape key names; face-tracking streams drive them by name). Optional: default morph
weights (the expression the file opens with) and one animation of the morph weights.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatars.anny.accessories import vertex_normals
from avatars.anny.rigged import RiggedMesh
from avatars.anny.texture import TextureConfig, bake_base_color, png_bytes
from dream3d.atomic import write_bytes_atomic
from dream3d.export import srgb_to_linear

_FLOAT, _UINT, _USHORT = 5126, 5125, 5123
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963


@dataclass(frozen=True)
class MorphAnimation:
    """Keyframed morph weights: LINEAR interpolation between keys."""

    times: np.ndarray
    """[K] float32 seconds, increasing."""
    weights: np.ndarray
    """[K, M] float32 weight of each morph target at each key."""
    name: str = "expressions"
    head_rotations: np.ndarray | None = None
    """[K, 3, 3] world-frame rotations of the head about its joint at each key (None: the head stays)."""
    head_bone: str = "head"


def _orthonormal(world: np.ndarray) -> np.ndarray:
    """[J, 4, 4] rigid transforms with their rotations projected onto SO(3) (removes round-off)."""
    u, _, vt = np.linalg.svd(world[:, :3, :3])
    out = world.copy()
    out[:, :3, :3] = u @ vt
    return out


def _quaternion(r: np.ndarray) -> np.ndarray:
    """[3, 3] rotation -> unit quaternion (x, y, z, w)."""
    import roma
    import torch

    q = roma.rotmat_to_unitquat(torch.as_tensor(r, dtype=torch.float64)[None])[0].numpy()
    return q / np.linalg.norm(q)


class _Buffer:
    """Accumulates the BIN chunk and its bufferViews/accessors (pygltflib objects)."""

    def __init__(self, gltf):
        self.gltf, self.data = gltf, bytearray()

    def add(self, array: np.ndarray, kind: str, component: int, target: int | None = None,
            minmax: bool = False, normalized: bool = False) -> int:
        import pygltflib as g

        self.data += b"\0" * (-len(self.data) % 4)
        raw = np.ascontiguousarray(array).tobytes()
        self.gltf.bufferViews.append(g.BufferView(buffer=0, byteOffset=len(self.data), byteLength=len(raw), target=target))
        self.data += raw
        acc = g.Accessor(bufferView=len(self.gltf.bufferViews) - 1, componentType=component, count=len(array),
                         type=kind, normalized=normalized or None)
        if minmax:
            flat = array.reshape(len(array), -1)
            acc.min, acc.max = flat.min(0).tolist(), flat.max(0).tolist()
        self.gltf.accessors.append(acc)
        return len(self.gltf.accessors) - 1


def _add_base_color_texture(gltf, buf: _Buffer, image: np.ndarray) -> None:
    """The PNG (sRGB, in the BIN chunk) as image 0, sampler 0 and texture 0."""
    import pygltflib as g

    buf.data += b"\0" * (-len(buf.data) % 4)
    png = png_bytes(image)
    gltf.bufferViews.append(g.BufferView(buffer=0, byteOffset=len(buf.data), byteLength=len(png)))
    buf.data += png
    gltf.images.append(g.Image(bufferView=len(gltf.bufferViews) - 1, mimeType="image/png", name="base_color"))
    gltf.samplers.append(g.Sampler(magFilter=9729, minFilter=9987, wrapS=33071, wrapT=33071))  # linear, clamp
    gltf.textures.append(g.Texture(sampler=0, source=0, name="base_color"))


def rigged_glb_bytes(mesh: RiggedMesh, default_weights: dict[str, float] | None = None,
                     animation: MorphAnimation | None = None, texture: TextureConfig | None = TextureConfig()) -> bytes:
    """The GLB of a rigged mesh (see the module docstring); `texture=None`: vertex colours instead."""
    import pygltflib as g

    gltf = g.GLTF2(asset=g.Asset(generator="dream3d avatars (Anny)", version="2.0"))
    buf = _Buffer(gltf)
    sk = mesh.skeleton
    world = _orthonormal(sk.world)
    # Joint nodes: local transform relative to the parent joint.
    for j, name in enumerate(sk.names):
        parent = sk.parents[j]
        local = world[j] if parent < 0 else np.linalg.inv(world[parent]) @ world[j]
        gltf.nodes.append(g.Node(name=name, translation=local[:3, 3].tolist(),
                                 rotation=_quaternion(local[:3, :3]).tolist(), children=[]))
    for j, parent in enumerate(sk.parents):
        if parent >= 0:
            gltf.nodes[parent].children.append(j)
    for node in gltf.nodes:
        node.children = node.children or None
    # Inverse bind matrices from the transforms the nodes compose to (column-major).
    composed = np.empty_like(world)
    for j, parent in enumerate(sk.parents):
        local = world[j] if parent < 0 else np.linalg.inv(world[parent]) @ world[j]
        composed[j] = local if parent < 0 else composed[parent] @ local
    ibm = np.linalg.inv(composed).transpose(0, 2, 1).astype(np.float32)
    ibm[:, :3, 3] = 0.0
    ibm[:, 3, 3] = 1.0
    ibm_acc = buf.add(ibm.reshape(-1, 16), "MAT4", _FLOAT)

    normals = vertex_normals(mesh.vertices.astype(np.float64), mesh.faces)  # before the UV seams split vertices
    bad = np.linalg.norm(normals, axis=1) < 0.5
    normals[bad] = (0.0, 1.0, 0.0)
    joints, weights = mesh.top_influences(8)
    baked = bake_base_color(mesh, texture) if texture is not None else None
    vmap, faces = (baked.vertex_map, baked.faces) if baked else (np.arange(len(mesh.vertices)), mesh.faces)
    v, normals, joints, weights = mesh.vertices[vmap].astype(np.float32), normals[vmap], joints[vmap], weights[vmap]
    attrs = {
        "POSITION": buf.add(v, "VEC3", _FLOAT, _ARRAY_BUFFER, minmax=True),
        "NORMAL": buf.add(normals.astype(np.float32), "VEC3", _FLOAT, _ARRAY_BUFFER),
        "JOINTS_0": buf.add(joints[:, :4].astype(np.uint16), "VEC4", _USHORT, _ARRAY_BUFFER),
        "WEIGHTS_0": buf.add(weights[:, :4], "VEC4", _FLOAT, _ARRAY_BUFFER),
        "JOINTS_1": buf.add(joints[:, 4:].astype(np.uint16), "VEC4", _USHORT, _ARRAY_BUFFER),
        "WEIGHTS_1": buf.add(weights[:, 4:], "VEC4", _FLOAT, _ARRAY_BUFFER),
    }
    pbr = g.PbrMetallicRoughness(baseColorFactor=[1, 1, 1, 1], metallicFactor=0.0, roughnessFactor=0.8)
    if baked is not None:
        attrs["TEXCOORD_0"] = buf.add(baked.uv, "VEC2", _FLOAT, _ARRAY_BUFFER)
        _add_base_color_texture(gltf, buf, baked.image)
        pbr.baseColorTexture = g.TextureInfo(index=0)
    else:
        attrs["COLOR_0"] = buf.add(srgb_to_linear(mesh.colors).astype(np.float32), "VEC3", _FLOAT, _ARRAY_BUFFER)
    indices = buf.add(faces.astype(np.uint32).reshape(-1), "SCALAR", _UINT, _ELEMENT_ARRAY_BUFFER, minmax=True)
    targets = [{"POSITION": buf.add(d[vmap].astype(np.float32), "VEC3", _FLOAT, _ARRAY_BUFFER, minmax=True)}
               for d in mesh.morphs]
    gltf.materials.append(g.Material(name="avatar", pbrMetallicRoughness=pbr))
    start = [0.0] * len(mesh.morph_names)
    for name, w in (default_weights or {}).items():
        start[mesh.morph_names.index(name)] = float(w)
    gltf.meshes.append(g.Mesh(
        name="avatar", weights=start, extras={"targetNames": list(mesh.morph_names)},
        primitives=[g.Primitive(attributes=g.Attributes(**attrs), indices=indices, material=0, targets=targets)]))
    gltf.skins.append(g.Skin(name="armature", joints=list(range(len(sk.names))), inverseBindMatrices=ibm_acc,
                             skeleton=sk.parents.index(-1)))
    mesh_node = len(gltf.nodes)
    gltf.nodes.append(g.Node(name="avatar", mesh=0, skin=0))
    roots = [j for j, p in enumerate(sk.parents) if p < 0]
    gltf.scenes.append(g.Scene(name="avatar", nodes=[*roots, mesh_node]))
    gltf.scene = 0
    if animation is not None:
        t = buf.add(animation.times.astype(np.float32), "SCALAR", _FLOAT, minmax=True)
        w = buf.add(animation.weights.astype(np.float32).reshape(-1), "SCALAR", _FLOAT)
        samplers = [g.AnimationSampler(input=t, output=w, interpolation="LINEAR")]
        channels = [g.AnimationChannel(sampler=0, target=g.AnimationChannelTarget(node=mesh_node, path="weights"))]
        if animation.head_rotations is not None:
            head = sk.index(animation.head_bone)
            parent = world[sk.parents[head]][:3, :3] if sk.parents[head] >= 0 else np.eye(3)
            # Node rotation = parent^T @ R @ head: the head's world rotation becomes R @ head.
            local = parent.T[None] @ animation.head_rotations @ world[head][:3, :3][None]
            quats = np.stack([_quaternion(r) for r in local]).astype(np.float32)
            samplers.append(g.AnimationSampler(input=t, output=buf.add(quats, "VEC4", _FLOAT), interpolation="LINEAR"))
            channels.append(g.AnimationChannel(sampler=1, target=g.AnimationChannelTarget(node=head, path="rotation")))
        gltf.animations.append(g.Animation(name=animation.name, samplers=samplers, channels=channels))
    gltf.buffers.append(g.Buffer(byteLength=len(buf.data)))
    gltf.set_binary_blob(bytes(buf.data))
    return b"".join(gltf.save_to_bytes())


def write_rigged_glb(mesh: RiggedMesh, path: str | os.PathLike, default_weights: dict[str, float] | None = None,
                     animation: MorphAnimation | None = None, texture: TextureConfig | None = TextureConfig()) -> Path:
    """Write `rigged_glb_bytes` atomically to `path`."""
    write_bytes_atomic(path, rigged_glb_bytes(mesh, default_weights, animation, texture))
    return Path(path)
