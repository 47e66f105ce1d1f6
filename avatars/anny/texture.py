"""The avatar's colours as a PBR base-colour texture: a UV atlas (xatlas) of the whole rigged mesh,
skin and accessories alike, with the per-vertex sRGB colours baked into it.

glTF multiplies COLOR_0 into the base colour, so a textured GLB carries no vertex colours; the
texture is what Blender's Principled BSDF, game engines and three.js show.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatars.anny.rigged import RiggedMesh


@dataclass(frozen=True)
class TextureConfig:
    """Size and layout of the baked base-colour texture."""

    size: int = 1024
    """Texture side in texels."""
    padding_px: int = 3
    """Gap xatlas leaves between charts, in texels."""
    dilation_px: int = 3
    """Texels past each chart's border filled from its edge (no background bleeds in at seams)."""


@dataclass(frozen=True)
class BakedTexture:
    """A UV layout of a mesh and its base-colour image."""

    vertex_map: np.ndarray
    """[V'] int64: the original vertex each atlas vertex copies (vertices split along UV seams)."""
    faces: np.ndarray
    """[F, 3] int64 faces over the atlas vertices (same order as the mesh's faces)."""
    uv: np.ndarray
    """[V', 2] float32 texture coordinates, glTF convention (v = 0 at the image's top row)."""
    image: np.ndarray
    """[S, S, 3] uint8 sRGB base colour."""


def bake_base_color(mesh: RiggedMesh, config: TextureConfig = TextureConfig()) -> BakedTexture:
    """Unwrap `mesh` with xatlas and bake its vertex colours (interpolated over each triangle)."""
    import xatlas

    from dream3d.mesh.raster import rasterize_triangles
    from dream3d.mesh.texture import _dilate

    atlas = xatlas.Atlas()
    atlas.add_mesh(mesh.vertices.astype(np.float32), mesh.faces.astype(np.uint32))
    pack = xatlas.PackOptions()
    pack.padding = config.padding_px
    pack.resolution = config.size
    pack.bilinear = True
    atlas.generate(pack_options=pack)
    vmapping, indices, uvs = atlas[0]
    vmapping, faces, uv = vmapping.astype(np.int64), indices.astype(np.int64), uvs.astype(np.float32)

    s = config.size
    tri_px = uv[faces] * s  # glTF: texel row 0 is v = 0
    face, row, col, bary = rasterize_triangles(tri_px, s, s, eps=1e-4)
    _, first = np.unique(row * s + col, return_index=True)  # one sample per texel
    face, row, col, bary = face[first], row[first], col[first], bary[first]
    colors = mesh.colors[vmapping].astype(np.float64)
    texture = np.zeros((s, s, 3), np.float64)
    covered = np.zeros((s, s), bool)
    texture[row, col] = np.einsum("kj,kjd->kd", bary, colors[faces[face]])
    covered[row, col] = True
    texture, covered = _dilate(texture, covered, config.dilation_px)
    if covered.any():  # the background gets the mean colour so coarse mip levels stay on-colour
        texture[~covered] = texture[covered].mean(axis=0)
    image = np.round(np.clip(texture, 0.0, 1.0) * 255).astype(np.uint8)
    return BakedTexture(vmapping, faces, uv, image)


def png_bytes(image: np.ndarray) -> bytes:
    """[H, W, 3] uint8 -> PNG file bytes."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(image).save(out, format="PNG", optimize=False)
    return out.getvalue()
