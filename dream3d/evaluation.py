"""Evaluation helpers: volumetric IoU of a mesh against an exact occupancy function, mesh
loading, and image/colour metrics (PSNR, CIELAB, CIEDE2000 colour difference).

The mesh's inside is found by ray parity along grid columns (pure numpy, no embree or rtree):
every triangle is rasterised onto the grid's columns, and a grid point is inside when an odd
number of crossings lie below it. Three axes vote, which tolerates small holes in the mesh.
"""
from __future__ import annotations

import math
import os
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from dream3d.mesh import Mesh, rasterize_triangles

# Column positions are nudged by these tiny irrational fractions of a voxel so rays never pass
# exactly through mesh vertices or edges (which would count a crossing twice).
_JITTER = (1.234567e-3, 3.141593e-3)


def _as_arrays(mesh) -> tuple[np.ndarray, np.ndarray]:
    if isinstance(mesh, Mesh):
        return mesh.vertices.astype(np.float64), mesh.faces
    return np.asarray(mesh.vertices, np.float64), np.asarray(mesh.faces, np.int64)


def inside_by_parity(vertices: np.ndarray, faces: np.ndarray, axis_coords: np.ndarray, axis: int) -> np.ndarray:
    """Inside test for the grid axis_coords^3 by ray parity along `axis`.

    vertices [V, 3], faces [F, 3]; axis_coords [R] sorted, evenly spaced. Returns [R, R, R] bool,
    indexed [x, y, z].
    """
    r = axis_coords.size
    step = float(axis_coords[1] - axis_coords[0])
    u, v = [d for d in range(3) if d != axis]
    tri = vertices[faces]  # [F, 3, 3]
    # Pixel centre (row i, col j) is grid column (u = coord[i], v = coord[j]), nudged by _JITTER.
    px = np.stack(
        [(tri[..., v] - axis_coords[0]) / step + 0.5 - _JITTER[1], (tri[..., u] - axis_coords[0]) / step + 0.5 - _JITTER[0]],
        axis=-1,
    )
    face, row, col, bary = rasterize_triangles(px, r, r)
    depth = np.einsum("kj,kj->k", bary, tri[face][:, :, axis])  # [K] crossing position along axis
    # Number of crossings strictly below each grid point, per column.
    below = np.searchsorted(axis_coords, depth, side="left")  # first grid index above the crossing
    counts = np.zeros((r, r, r + 1), np.int32)  # [u, v, index along axis]
    np.add.at(counts, (row, col, below), 1)
    parity = np.cumsum(counts, axis=-1)[..., :r] % 2 == 1  # [u, v, axis]
    # Reorder [u, v, axis] to [x, y, z].
    order = np.argsort([u, v, axis])
    return np.transpose(parity, order)


def mesh_inside(mesh, resolution: int = 96, bound: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """The mesh's solid on a grid over [-bound, bound]^3: majority vote of parity along x, y, z.

    Returns inside [R, R, R] bool (indexed x, y, z) and the grid points [R, R, R, 3].
    """
    vertices, faces = _as_arrays(mesh)
    coords = np.linspace(-bound, bound, resolution)
    votes = sum(inside_by_parity(vertices, faces, coords, a).astype(np.int32) for a in range(3))
    points = np.stack(np.meshgrid(coords, coords, coords, indexing="ij"), axis=-1)
    return votes >= 2, points


def _rotation_y(deg: float) -> np.ndarray:
    t = math.radians(deg)
    c, s = math.cos(t), math.sin(t)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def volumetric_iou(
    mesh,
    occupancy_fn: Callable[[np.ndarray], np.ndarray],
    resolution: int = 96,
    rotations_about_y: Sequence[float] = (0.0,),
    bound: float = 1.0,
) -> float:
    """IoU of the mesh's solid with `occupancy_fn` on a resolution^3 grid over [-bound, bound]^3.

    mesh: dream3d Mesh or anything with .vertices [V, 3] and .faces [F, 3] (e.g. trimesh).
    occupancy_fn: points [N, 3] float (numpy, or a torch Tensor is accepted back) -> [N] bool.
    rotations_about_y: the mesh is rotated by each angle (degrees) about +Y and the best IoU is
    returned (for generated objects whose facing direction is arbitrary).
    """
    vertices, faces = _as_arrays(mesh)
    coords = np.linspace(-bound, bound, resolution)
    points = np.stack(np.meshgrid(coords, coords, coords, indexing="ij"), axis=-1).reshape(-1, 3)
    occ = np.asarray(_call_occupancy(occupancy_fn, points), bool).reshape(-1)
    best = 0.0
    for deg in rotations_about_y:
        rotated = vertices @ _rotation_y(deg).T
        votes = sum(inside_by_parity(rotated, faces, coords, a).astype(np.int32) for a in range(3))
        inside = (votes >= 2).reshape(-1)
        union = np.logical_or(inside, occ).sum()
        iou = float(np.logical_and(inside, occ).sum() / union) if union else 1.0
        best = max(best, iou)
    return best


def _call_occupancy(fn, points: np.ndarray) -> np.ndarray:
    """Call `fn` with numpy points; if it insists on tensors, call it with a float32 tensor."""
    try:
        out = fn(points)
    except (TypeError, AttributeError):
        out = fn(torch.from_numpy(points.astype(np.float32)))
    if isinstance(out, torch.Tensor):
        out = out.detach().cpu().numpy()
    return np.asarray(out).reshape(-1).astype(bool)


def mesh_masks(mesh, cameras) -> np.ndarray:
    """The mesh's silhouette seen by each camera, with the renderer's pixel convention.

    mesh: dream3d Mesh or anything with .vertices [V, 3] / .faces [F, 3]; cameras: dream3d
    Cameras (pixel (row v, col u) looks through ((u + 0.5 - W/2) / f, -(v + 0.5 - H/2) / f, -1)).
    Returns bool [B, H, W]: pixel centres covered by a triangle in front of the camera.
    Compare with a render's `opacity > 0.5` to see whether an exported mesh matches the field.
    """
    vertices, faces = _as_arrays(mesh)
    c2w = cameras.c2w.detach().cpu().double().numpy()  # [B, 4, 4]
    focal = cameras.focal_px.detach().cpu().double().numpy()  # [B]
    h, w = cameras.height, cameras.width
    masks = np.zeros((c2w.shape[0], h, w), bool)
    for b in range(c2w.shape[0]):
        cam = (vertices - c2w[b, :3, 3]) @ c2w[b, :3, :3]  # [V, 3] camera space (rotation^T applied)
        depth = -cam[:, 2]
        in_front = (depth[faces] > 1e-6).all(axis=1)
        safe = np.maximum(depth, 1e-6)
        px = np.stack([focal[b] * cam[:, 0] / safe + 0.5 * w, -focal[b] * cam[:, 1] / safe + 0.5 * h], axis=-1)
        _, row, col, _ = rasterize_triangles(px[faces[in_front]], h, w, eps=1e-6)
        masks[b, row, col] = True
    return masks


def load_mesh(path: str | os.PathLike):
    """Load a GLB / OBJ / PLY as one trimesh.Trimesh, vertices kept as stored (no merging).

    Scene node transforms are applied; several geometries are concatenated. A single geometry is
    returned as loaded, so its visuals (texture, material, COLOR_0 as `visual.vertex_attributes`)
    survive intact.
    """
    import trimesh

    loaded = trimesh.load(str(path), process=False)
    if isinstance(loaded, trimesh.Trimesh):
        return loaded
    placed = []
    for node in loaded.graph.nodes_geometry:
        transform, name = loaded.graph[node]
        geometry = loaded.geometry[name]
        if isinstance(geometry, trimesh.Trimesh):
            placed.append((np.asarray(transform), geometry))
    if not placed:
        raise ValueError(f"{path} holds no triangle mesh")
    if len(placed) == 1 and np.allclose(placed[0][0], np.eye(4)):
        return placed[0][1]  # as loaded: copies would drop visual.vertex_attributes
    return trimesh.util.concatenate([g.copy().apply_transform(t) for t, g in placed])


# ----------------------------------------------------------------------------- colour / image metrics


def _np(x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    return np.asarray(x, np.float64)


def srgb_to_lab(rgb) -> np.ndarray:
    """sRGB-encoded colours in [0, 1] [..., 3] -> CIELAB (D65 white) [..., 3]."""
    c = np.clip(_np(rgb), 0.0, 1.0)
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750], [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    eps, kappa = 216.0 / 24389.0, 24389.0 / 27.0
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16.0) / 116.0)
    return np.stack([116.0 * f[..., 1] - 16.0, 500.0 * (f[..., 0] - f[..., 1]), 200.0 * (f[..., 1] - f[..., 2])], -1)


def delta_e(a, b) -> np.ndarray:
    """CIEDE2000 colour difference between sRGB colours a, b in [0, 1] [..., 3]. Returns [...].

    About 1 is a just-noticeable difference; > 10 reads as a different colour.
    """
    from skimage.color import deltaE_ciede2000

    return deltaE_ciede2000(srgb_to_lab(a), srgb_to_lab(b))


def psnr(a, b, max_value: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB between images a, b (same shape, values in [0, max_value])."""
    mse = float(np.mean((_np(a) - _np(b)) ** 2))
    return float("inf") if mse == 0 else 10.0 * math.log10(max_value**2 / mse)


def object_mask(image: np.ndarray, threshold: float = 0.12) -> np.ndarray:
    """Object pixels of a render over a solid background. image: [H, W, 3] in [0, 1] -> bool [H, W].

    The background is the median colour of the 1-pixel border (the prior's training images and
    dream3d's training views have solid backgrounds); a pixel belongs to the object when any
    channel differs from it by more than `threshold`.
    """
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    background = np.median(border, axis=0)
    return np.abs(image - background).max(axis=-1) > threshold


@torch.no_grad()
def field_voxel_iou(field, occupancy: Callable[[Tensor], Tensor], threshold: float, resolution: int = 128,
                    fill_cavities: bool = False, chunk_size: int = 65536) -> float:
    """IoU of {field density > threshold} with an exact solid on a resolution^3 grid over [-1, 1]^3.

    occupancy: points [N, 3] -> bool [N]. fill_cavities: empty pockets enclosed by the field's
    solid count as inside (images never see the inside of an opaque object, so a fitted field may
    leave low density there; a mesher's flood fill would fill them).
    """
    axis = torch.linspace(-1.0, 1.0, resolution)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), dim=-1).reshape(-1, 3)  # [R^3, 3]
    fitted = torch.cat([field.query_density(p)[:, 0] > threshold for p in points.split(chunk_size)])
    if fill_cavities:
        from scipy import ndimage

        solid = ndimage.binary_fill_holes(fitted.reshape(resolution, resolution, resolution).numpy())
        fitted = torch.from_numpy(solid.reshape(-1))
    exact = torch.cat([occupancy(p) for p in points.split(chunk_size)])
    return float((fitted & exact).sum() / (fitted | exact).sum().clamp(min=1))


def field_mesh_iou(field, occupancy: Callable[[Tensor], Tensor], resolution: int = 96) -> float:
    """IoU of the field's dream3d mesh (automatic iso-level) with an exact solid (occupancy as in
    `field_voxel_iou`), both on a resolution^3 grid."""
    from dream3d.mesh import MeshConfig, extract_mesh

    with torch.no_grad():
        mesh = extract_mesh(field, MeshConfig(resolution=resolution))
    return volumetric_iou(mesh, lambda p: occupancy(torch.as_tensor(p, dtype=torch.float32)), resolution=resolution)
