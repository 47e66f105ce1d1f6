"""A small numpy triangle rasteriser: mesh silhouettes along the grid axes, compared by IoU."""
from __future__ import annotations

import numpy as np


def rasterize_triangles(
    tri: np.ndarray, height: int, width: int, eps: float = 0.0, max_candidates: int = 4_000_000
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """All (triangle, pixel) pairs whose pixel centre lies inside the 2D triangle.

    tri: [F, 3, 2] vertex positions in pixel units (x = column, y = row; the centre of pixel
    (row r, col c) is (c + 0.5, r + 0.5)). eps: barycentric tolerance (> 0 includes edges).
    Returns face [K] int64, row [K] int64, col [K] int64, bary [K, 3] float64.
    A pixel covered by several triangles appears once per triangle.
    """
    tri = np.asarray(tri, np.float64)
    lo = np.ceil(tri.min(axis=1) - 0.5).astype(np.int64)  # [F, 2] first pixel index inside bbox
    hi = np.floor(tri.max(axis=1) - 0.5).astype(np.int64)
    lo = np.maximum(lo, 0)
    hi = np.minimum(hi, np.array([width - 1, height - 1]))
    size = np.maximum(hi - lo + 1, 0).max(axis=1)  # [F] bbox side in pixels
    out: list[tuple[np.ndarray, ...]] = []
    valid = np.nonzero(size > 0)[0]
    if valid.size == 0:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty, np.zeros((0, 3))
    # Bucket triangles by bbox size (powers of two) so each bucket is one dense numpy op.
    bucket = np.ceil(np.log2(size[valid])).astype(np.int64)
    for b in np.unique(bucket):
        k = 1 << int(b)
        faces_b = valid[bucket == b]
        oy, ox = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
        ox, oy = ox.reshape(-1), oy.reshape(-1)
        per_chunk = max(1, max_candidates // (k * k))
        for s in range(0, faces_b.size, per_chunk):
            f = faces_b[s : s + per_chunk]
            cols = lo[f, 0:1] + ox[None]  # [n, k*k]
            rows = lo[f, 1:2] + oy[None]
            inside_box = (cols <= hi[f, 0:1]) & (rows <= hi[f, 1:2])
            a, b_, c = tri[f, 0], tri[f, 1], tri[f, 2]  # [n, 2]
            v0, v1 = b_ - a, c - a
            den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]  # [n] twice the signed area
            ok_den = np.abs(den) > 1e-12
            den = np.where(ok_den, den, 1.0)[:, None]
            px = cols + 0.5 - a[:, 0:1]
            py = rows + 0.5 - a[:, 1:2]
            w1 = (px * v1[:, 1:2] - v1[:, 0:1] * py) / den
            w2 = (v0[:, 0:1] * py - px * v0[:, 1:2]) / den
            w0 = 1.0 - w1 - w2
            hit = inside_box & ok_den[:, None] & (w0 >= -eps) & (w1 >= -eps) & (w2 >= -eps)
            fi, ci = np.nonzero(hit)
            out.append((f[fi], rows[fi, ci], cols[fi, ci], np.stack([w0[fi, ci], w1[fi, ci], w2[fi, ci]], -1)))
    face, row, col, bary = (np.concatenate(x) for x in zip(*out))
    return face.astype(np.int64), row.astype(np.int64), col.astype(np.int64), bary


def silhouette_masks(vertices: np.ndarray, faces: np.ndarray, resolution: int, bound: float) -> list[np.ndarray]:
    """The mesh's orthographic silhouettes along x, y, z on the density grid's pixel lattice.

    Pixel (i, j) of the mask along axis a is the grid column through grid points i, j of the two
    other axes (same layout as `opacity_masks`). Returns three [R, R] bool masks.
    """
    spacing = 2.0 * bound / (resolution - 1)
    masks = []
    for a in range(3):
        u, v = [d for d in range(3) if d != a]
        # Grid point index i sits at pixel centre i + 0.5: shift so the lattices coincide.
        tri = (vertices[faces][:, :, [v, u]] + bound) / spacing + 0.5
        mask = np.zeros((resolution, resolution), bool)
        _, row, col, _ = rasterize_triangles(tri, resolution, resolution, eps=1e-6)
        mask[row, col] = True  # row indexes axis u, col indexes axis v
        masks.append(mask)
    return masks


def mask_iou(a: np.ndarray, b: np.ndarray, tolerance_px: int = 0) -> float:
    """IoU of bool masks a, b [H, W], ignoring pixels within `tolerance_px` of b's edge."""
    care = np.ones_like(b, dtype=bool)
    if tolerance_px > 0 and b.any():
        from scipy.ndimage import binary_dilation, binary_erosion

        band = binary_dilation(b, iterations=tolerance_px) & ~binary_erosion(b, iterations=tolerance_px)
        care = ~band
    union = (np.logical_or(a, b) & care).sum()
    return float((np.logical_and(a, b) & care).sum() / union) if union else 1.0
