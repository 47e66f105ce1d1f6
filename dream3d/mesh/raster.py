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
    Candidates are each triangle's scanline spans widened by a margin (a cost in proportion to
    the pixels covered, not to bounding boxes), then tested exactly; `max_candidates` bounds the
    candidates held at once.
    """
    tri = np.asarray(tri, np.float64)
    empty = np.zeros(0, np.int64)
    lo, hi = tri.min(axis=1), tri.max(axis=1)  # [F, 2]
    box_lo = np.maximum(np.ceil(lo - 0.5).astype(np.int64), 0)  # [F, 2] pixels inside the bounding box
    box_hi = np.minimum(np.floor(hi - 0.5).astype(np.int64), np.array([width - 1, height - 1]))
    row_lo = box_lo[:, 1]
    rows_n = np.maximum(box_hi[:, 1] - row_lo + 1, 0)
    rows_n[box_hi[:, 0] < box_lo[:, 0]] = 0
    valid = np.nonzero(rows_n)[0]
    if valid.size == 0:
        return empty, empty, empty, np.zeros((0, 3))
    est = np.cumsum(rows_n[valid] * (hi[valid, 0] - lo[valid, 0] + 4))
    out: list[tuple[np.ndarray, ...]] = []
    start = 0
    while start < valid.size:
        done = est[start - 1] if start else 0.0
        stop = min(max(start + 1, int(np.searchsorted(est, done + max_candidates, "right"))), valid.size)
        part = _scanline_pairs(tri, valid[start:stop], row_lo, rows_n, box_lo[:, 0], box_hi[:, 0], eps)
        if part is not None:
            out.append(part)
        start = stop
    if not out:
        return empty, empty, empty, np.zeros((0, 3))
    face, row, col, bary = (np.concatenate(x) for x in zip(*out))
    return face, row, col, bary


_SLACK = 1e-6
"""Pixels by which a scanline span is widened: a centre this close to an edge is still tested."""


def _scanline_pairs(tri, faces, row_lo, rows_n, col_lo, col_hi, eps):
    """`rasterize_triangles` for the triangles `faces` [n]: (face, row, col, bary) or None.
    Each row's span is taken on the triangle grown to barycentric tolerance eps (the triangle
    scaled by 1 + 3 eps about its centroid), widened by `_SLACK` against rounding."""
    f = np.repeat(faces, rows_n[faces])  # one entry per (triangle, row)
    first = np.cumsum(rows_n[faces]) - rows_n[faces]
    row = row_lo[f] + np.arange(f.size) - np.repeat(first, rows_n[faces])
    t = tri[f]  # [P, 3, 2]
    if eps:
        centre = t.mean(1, keepdims=True)
        t = centre + (1 + 3 * eps) * (t - centre)
    ty, tx = t[:, :, 1], t[:, :, 0]
    y = np.clip(row + 0.5, np.minimum(np.minimum(ty[:, 0], ty[:, 1]), ty[:, 2]),
                np.maximum(np.maximum(ty[:, 0], ty[:, 1]), ty[:, 2]))  # a row past a vertex: that vertex
    x_min = np.minimum(np.minimum(tx[:, 0], tx[:, 1]), tx[:, 2])  # degenerate (flat) triangles keep their box
    x_max = np.maximum(np.maximum(tx[:, 0], tx[:, 1]), tx[:, 2])
    span_lo, span_hi = np.full(f.size, np.inf), np.full(f.size, -np.inf)
    for i, j in ((0, 1), (1, 2), (2, 0)):
        ay, by, ax, bx = t[:, i, 1], t[:, j, 1], t[:, i, 0], t[:, j, 0]
        dy = by - ay
        crosses = (dy != 0) & (y >= np.minimum(ay, by)) & (y <= np.maximum(ay, by))
        x = ax + np.clip((y - ay) / np.where(dy != 0, dy, 1.0), 0.0, 1.0) * (bx - ax)
        span_lo = np.where(crosses, np.minimum(span_lo, x), span_lo)
        span_hi = np.where(crosses, np.maximum(span_hi, x), span_hi)
    none = ~np.isfinite(span_lo)
    span_lo, span_hi = np.where(none, x_min, span_lo), np.where(none, x_max, span_hi)
    c_lo = np.maximum(np.ceil(span_lo - 0.5 - _SLACK).astype(np.int64), col_lo[f])
    c_hi = np.minimum(np.floor(span_hi - 0.5 + _SLACK).astype(np.int64), col_hi[f])
    n = np.maximum(c_hi - c_lo + 1, 0)
    if n.sum() == 0:
        return None
    k = np.repeat(np.arange(f.size), n)  # one entry per candidate pixel
    col = c_lo[k] + np.arange(k.size) - np.repeat(np.cumsum(n) - n, n)
    face, row = f[k], row[k]
    a, b_, c = tri[face, 0], tri[face, 1], tri[face, 2]  # [K, 2]
    v0, v1 = b_ - a, c - a
    den = v0[:, 0] * v1[:, 1] - v1[:, 0] * v0[:, 1]  # [K] twice the signed area
    ok_den = np.abs(den) > 1e-12
    den = np.where(ok_den, den, 1.0)
    px, py = col + 0.5 - a[:, 0], row + 0.5 - a[:, 1]
    w1 = (px * v1[:, 1] - v1[:, 0] * py) / den
    w2 = (v0[:, 0] * py - px * v0[:, 1]) / den
    w0 = 1.0 - w1 - w2
    hit = ok_den & (w0 >= -eps) & (w1 >= -eps) & (w2 >= -eps)
    return face[hit], row[hit], col[hit], np.stack([w0[hit], w1[hit], w2[hit]], -1)


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


def zbuffer(tri: np.ndarray, depth: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The nearest triangle at each pixel centre: a z-buffered rasterisation.

    tri: [F, 3, 2] vertex positions in pixels (as `rasterize_triangles`); depth: [F, 3] camera depth
    of each vertex (> 0; smaller is nearer). Depth and barycentrics are perspective-correct (1 / depth
    is what is linear on screen). Returns face [H, W] int64 (-1: nothing) and bary [H, W, 3] float32.
    """
    face, row, col, bary = rasterize_triangles(tri, height, width, eps=1e-6)
    face_map = np.full((height, width), -1, np.int64)
    bary_map = np.zeros((height, width, 3), np.float32)
    if face.size == 0:
        return face_map, bary_map
    persp = bary / depth[face]  # [K, 3] screen-space weights over depth
    inv = persp[:, 0] + persp[:, 1] + persp[:, 2]  # [K] 1 / depth at the pixel
    cell = row * width + col
    nearest = np.zeros(height * width)
    np.maximum.at(nearest, cell, inv)  # the largest 1 / depth: the nearest surface
    win = np.flatnonzero(inv == nearest[cell])  # an exact tie keeps either
    face_map.reshape(-1)[cell[win]] = face[win]
    bary_map.reshape(-1, 3)[cell[win]] = persp[win] / inv[win, None]
    return face_map, bary_map
