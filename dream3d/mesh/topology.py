"""Triangle-soup helpers: normals, connected components, floaters, marching cubes, simplification."""
from __future__ import annotations

import numpy as np


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """[V, 3] float32 area-weighted unit vertex normals.

    Vertices at the same position (copies made along UV seams) share one normal, so shading
    shows no seam where the texture atlas cuts the surface.
    """
    if vertices.shape[0] == 0:
        return np.zeros((0, 3), np.float32)
    _, weld = np.unique(vertices, axis=0, return_inverse=True)  # [V] welded index
    weld = weld.reshape(-1)
    tri = vertices[faces].astype(np.float64)
    fn = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # [F, 3], length = 2 * area
    normals = np.zeros((int(weld.max()) + 1, 3), np.float64)
    for k in range(3):
        np.add.at(normals, weld[faces[:, k]], fn)
    normals = normals[weld]
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    fallback = np.array([0.0, 1.0, 0.0])
    return np.where(length > 1e-20, normals / np.maximum(length, 1e-20), fallback).astype(np.float32)


def face_components(faces: np.ndarray, num_vertices: int) -> np.ndarray:
    """[F] int64 connected-component label per face (faces sharing a vertex are connected)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    f = faces.shape[0]
    rows = np.repeat(np.arange(f), 3)
    # Faces and vertices as one bipartite graph: components of it are the mesh's pieces.
    n = f + num_vertices
    big = coo_matrix((np.ones(3 * f), (rows, f + faces.reshape(-1))), shape=(n, n))
    _, labels = connected_components(big, directed=False)
    return labels[:f].astype(np.int64)


def remove_floaters(vertices: np.ndarray, faces: np.ndarray, keep_area_fraction: float) -> tuple[np.ndarray, np.ndarray, float]:
    """Keep the largest components that together hold `keep_area_fraction` of the area.

    Returns vertices [V', 3], faces [F', 3] (unused vertices dropped) and the removed area share.
    """
    if faces.shape[0] == 0:
        return vertices, faces, 0.0
    labels = face_components(faces, vertices.shape[0])
    tri = vertices[faces].astype(np.float64)
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    comp_area = np.bincount(labels, weights=area)
    order = np.argsort(-comp_area)
    total = comp_area.sum()
    cumulative = np.cumsum(comp_area[order])
    n_keep = int(np.searchsorted(cumulative, keep_area_fraction * total - 1e-12) + 1)
    keep = np.zeros(comp_area.shape[0], bool)
    keep[order[:n_keep]] = True
    removed = float(1.0 - comp_area[keep].sum() / total) if total > 0 else 0.0
    return (*drop_unused_vertices(vertices, faces[keep[labels]]), removed)


def drop_unused_vertices(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vertices [V, 3] and faces [F, 3] -> only the vertices `faces` uses, faces [F, 3] int64 renumbered."""
    used = np.unique(faces)
    remap = np.full(vertices.shape[0], -1, np.int64)
    remap[used] = np.arange(used.size)
    return vertices[used], remap[faces]


def boundary_edge_fraction(faces: np.ndarray) -> float:
    """Share of undirected edges used by exactly one face (0 for a closed surface)."""
    if faces.shape[0] == 0:
        return 0.0
    edges = np.sort(np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]]), axis=1)
    _, counts = np.unique(edges, axis=0, return_counts=True)
    return float((counts == 1).sum() / counts.size)


def marching_cubes(grid: np.ndarray, level: float, bound: float) -> tuple[np.ndarray, np.ndarray]:
    """Iso-surface of `grid` [R, R, R] (indexed x, y, z) at `level`, in world coordinates.

    The grid is padded with one layer of zero density so surfaces cut by the bound close.
    Returns vertices [V, 3] float32, faces [F, 3] int64 with outward (CCW) winding.
    """
    from skimage.measure import marching_cubes as sk_marching_cubes

    res = grid.shape[0]
    spacing = 2.0 * bound / (res - 1)
    padded = np.pad(grid, 1, mode="constant", constant_values=0.0)
    if not (padded.max() > level > padded.min()):
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.int64)
    verts, faces, _, _ = sk_marching_cubes(padded, level=level, spacing=(spacing,) * 3)
    verts = verts - spacing - bound  # padded index 1 is grid point 0 at -bound
    # skimage winds faces clockwise seen from the denser side's outside; flip to CCW outward.
    faces = faces[:, ::-1]
    return verts.astype(np.float32), np.ascontiguousarray(faces, dtype=np.int64)


def decimate(vertices: np.ndarray, faces: np.ndarray, max_faces: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadric edge-collapse simplification to at most about `max_faces` faces (no-op below it).

    vertices: [V, 3]; faces: [F, 3] with outward winding, which is kept. Returns vertices
    [V', 3] float32 (unused ones dropped) and faces [F', 3] int64.
    """
    if faces.shape[0] <= max_faces:
        return vertices, faces
    import fast_simplification

    v, f = fast_simplification.simplify(
        np.ascontiguousarray(vertices, np.float32), np.ascontiguousarray(faces, np.int64), target_count=int(max_faces)
    )
    f = np.asarray(f, np.int64)
    f = f[(f[:, 0] != f[:, 1]) & (f[:, 1] != f[:, 2]) & (f[:, 2] != f[:, 0])]  # drop collapsed slivers
    return drop_unused_vertices(np.asarray(v, np.float32), f)


def signed_volume(vertices: np.ndarray, faces: np.ndarray) -> float:
    tri = vertices[faces].astype(np.float64)
    return float(np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0)
