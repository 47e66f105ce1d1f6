"""Texture baking: a UV atlas (xatlas) and the albedo a render shows, baked into it."""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from dream3d.fields.base import Field
from dream3d.mesh.data import Mesh
from dream3d.mesh.grid import field_device
from dream3d.mesh.raster import rasterize_triangles
from dream3d.mesh.topology import vertex_normals
from dream3d.renderer.compositing import composite, weights_from_density


@dataclass(frozen=True)
class BakeConfig:
    """How the albedo is baked into a texture."""

    padding_px: int = 4
    """Gap xatlas leaves between charts, in texels."""
    dilation_px: int = 4
    """Texels past each chart border filled from the chart's edge, so bilinear/mip lookups near
    seams do not pull in the background."""
    chunk_size: int = 65536
    """Points per field query."""
    march_outside: float = 0.05
    """Seen albedo (`seen_albedo`): the march along the normal starts this far outside the
    surface (scene units, about 3 voxels of a 128^3 grid)..."""
    march_inside: float = 0.10
    """... and ends this far inside it."""
    march_samples: int = 24
    """Samples of that march."""


@torch.no_grad()
def seen_albedo(field: Field, points: np.ndarray, normals: np.ndarray, config: BakeConfig) -> np.ndarray:
    """The albedo a render shows at surface points: alpha-composited along the inward normal.

    points, normals: [P, 3] (unit outward normals). Returns [P, 3] in [0, 1]. The albedo exactly
    at the mesh surface is only right where the surface sits where the renderer's weights do;
    a mesh surface in the field's faint outer layer, or below a skin (`fill_deep_interior`),
    would read albedo no render ever showed (a red ball's filled mesh baked at its surface: delta
    E 13.4 against 8.6). Where the march meets no density the albedo at the point is kept.
    """
    offsets = np.linspace(config.march_outside, -config.march_inside, config.march_samples, dtype=np.float32)
    step = float(offsets[0] - offsets[1])
    device = field_device(field)
    out = np.zeros((points.shape[0], 3), np.float32)
    per_chunk = max(1, config.chunk_size // config.march_samples)
    for start in range(0, points.shape[0], per_chunk):
        p = torch.from_numpy(points[start:start + per_chunk]).float().to(device)
        n = torch.from_numpy(normals[start:start + per_chunk]).float().to(device)
        ray = p[:, None, :] + torch.from_numpy(offsets).to(device)[None, :, None] * n[:, None, :]  # [P, K, 3]
        result = field(ray.reshape(-1, 3))
        density = result.density.reshape(ray.shape[0], -1)  # [P, K]
        albedo = result.albedo.reshape(ray.shape[0], -1, 3)
        weights, _ = weights_from_density(density, torch.full_like(density, step))  # [P, K]
        total = weights.sum(dim=1, keepdim=True)
        composited = composite(weights, albedo) / total.clamp_min(1e-8)
        at_point = field.query_albedo(p) if (total < 1e-3).any() else composited
        chosen = torch.where(total >= 1e-3, composited, at_point)
        out[start:start + per_chunk] = chosen.clamp(0, 1).cpu().numpy()
    return out


def _dilate(texture: np.ndarray, covered: np.ndarray, iterations: int) -> tuple[np.ndarray, np.ndarray]:
    """Grow covered texels outward: each uncovered texel takes the mean of its covered 8-neighbours.

    texture: [H, W, 3] float; covered: [H, W] bool. Returns the new texture and coverage.
    """
    tex, cov = texture.copy(), covered.copy()
    for _ in range(iterations):
        acc = np.zeros_like(tex)
        cnt = np.zeros(cov.shape, np.float64)
        padded_t = np.pad(tex * cov[..., None], ((1, 1), (1, 1), (0, 0)))
        padded_c = np.pad(cov.astype(np.float64), 1)
        h, w = cov.shape
        for dy in (-1, 0, 1):
            for dx in (-1, 0, 1):
                if dy == 0 and dx == 0:
                    continue
                acc += padded_t[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
                cnt += padded_c[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]
        grow = (~cov) & (cnt > 0)
        if not grow.any():
            break
        tex[grow] = acc[grow] / cnt[grow, None]
        cov = cov | grow
    return tex, cov


def bake_texture(mesh: Mesh, field: Field, texture_size: int = 1024, config: BakeConfig = BakeConfig()) -> Mesh:
    """UV-unwrap `mesh` with xatlas and bake the field's albedo into a [S, S, 3] uint8 texture.

    Every texel whose centre falls inside a triangle in UV space is coloured with the albedo a
    render shows at the matching 3D point (`seen_albedo`); charts are then dilated by
    `config.dilation_px` texels.
    Returns a new Mesh with vertices split along seams (uv [V', 2], texture set).
    """
    import xatlas

    atlas = xatlas.Atlas()
    atlas.add_mesh(mesh.vertices.astype(np.float32), mesh.faces.astype(np.uint32))
    pack = xatlas.PackOptions()
    pack.padding = config.padding_px
    pack.resolution = texture_size
    pack.bilinear = True
    atlas.generate(pack_options=pack)
    vmapping, indices, uvs = atlas[0]
    vmapping = vmapping.astype(np.int64)
    vertices = mesh.vertices[vmapping]
    faces = indices.astype(np.int64)
    uv = uvs.astype(np.float32)  # [V', 2] in [0, 1]

    s = texture_size
    # Texture row 0 is v = 1 (OpenGL/OBJ convention, the one trimesh and the OBJ/MTL pair use).
    tri_px = np.stack([uv[faces][..., 0] * s, (1.0 - uv[faces][..., 1]) * s], axis=-1)  # [F, 3, 2]
    face, row, col, bary = rasterize_triangles(tri_px, s, s, eps=1e-4)
    # One sample per texel (where triangles touch, any of them will do: they agree on the edge).
    flat = row * s + col
    _, first = np.unique(flat, return_index=True)
    face, row, col, bary = face[first], row[first], col[first], bary[first]
    points = np.einsum("kj,kjd->kd", bary, vertices[faces[face]].astype(np.float64)).astype(np.float32)
    corner_normals = vertex_normals(vertices, faces)[faces[face]].astype(np.float64)  # [K, 3, 3]
    normals = np.einsum("kj,kjd->kd", bary, corner_normals)
    normals = (normals / np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)).astype(np.float32)
    albedo = seen_albedo(field, points, normals, config)

    texture = np.zeros((s, s, 3), np.float64)
    covered = np.zeros((s, s), bool)
    texture[row, col] = np.clip(albedo, 0.0, 1.0)
    covered[row, col] = True
    texture, covered = _dilate(texture, covered, config.dilation_px)
    if covered.any():  # the background gets the mean colour so coarse mip levels stay on-colour
        texture[~covered] = texture[covered].mean(axis=0)
    return replace(
        mesh,
        vertices=vertices.astype(np.float32),
        faces=faces,
        vertex_colors=mesh.vertex_colors[vmapping],
        uv=uv,
        texture=np.round(texture * 255.0).astype(np.uint8),
    )


def sample_texture(texture: np.ndarray, uv: np.ndarray) -> np.ndarray:
    """Bilinear lookup of `texture` [H, W, 3] uint8 at `uv` [N, 2] (v = 0 at the bottom). Returns [N, 3] in [0, 1]."""
    h, w = texture.shape[:2]
    x = np.clip(uv[:, 0] * w - 0.5, 0, w - 1)
    y = np.clip((1.0 - uv[:, 1]) * h - 0.5, 0, h - 1)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, w - 1), np.minimum(y0 + 1, h - 1)
    fx, fy = (x - x0)[:, None], (y - y0)[:, None]
    t = texture.astype(np.float64) / 255.0
    top = t[y0, x0] * (1 - fx) + t[y0, x1] * fx
    bottom = t[y1, x0] * (1 - fx) + t[y1, x1] * fx
    return top * (1 - fy) + bottom * fy
