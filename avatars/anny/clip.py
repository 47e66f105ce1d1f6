"""Cut a mesh with a plane and close the cut: the clean bust edge.

Vertex attributes (colour, dense skin weights, morph deltas ...) ride along: vertices made on
cut edges get them by linear interpolation, the cap's centre vertex gets its loop's mean.
"""
from __future__ import annotations

import numpy as np


def _edge_vertex(i: np.ndarray, j: np.ndarray, t: np.ndarray, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Attributes of points (1 - t) * a[i] + t * a[j], for every per-vertex array (first axis V)."""
    out = {}
    for name, a in arrays.items():
        shape = (-1,) + (1,) * (a.ndim - 1)
        out[name] = (1.0 - t).reshape(shape) * a[i] + t.reshape(shape) * a[j]
    return out


def _chain_loops(edges: np.ndarray) -> list[list[int]]:
    """Directed boundary edges [E, 2] -> closed loops of vertex indices (open chains are dropped)."""
    nxt = {int(a): int(b) for a, b in edges}
    loops, seen = [], set()
    for start in nxt:
        if start in seen:
            continue
        loop, v = [], start
        while v in nxt and v not in seen:
            seen.add(v)
            loop.append(v)
            v = nxt[v]
        if v == start and len(loop) >= 3:
            loops.append(loop)
    return loops


def clip_and_cap(
    arrays: dict[str, np.ndarray], faces: np.ndarray, normal: np.ndarray, offset: float, cap: bool = True
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Keep the part of a mesh where dot(normal, position) <= offset and close each cut loop.

    arrays: per-vertex arrays, first axis V; "position" [V, 3] is required.
    faces: [F, 3] int, counter-clockwise from outside. normal: [3] unit, pointing to the removed side.
    Returns (arrays of the kept + new vertices, faces [F', 3]); unused vertices are dropped.
    Each cap is a fan from its loop's centroid, facing `normal` (the bust's cut is near-convex).
    """
    pos = arrays["position"]
    side = pos @ normal - offset  # > 0: removed
    inside = side <= 0
    tri_in = inside[faces]
    count = tri_in.sum(1)
    kept = [faces[count == 3]]
    new_arrays: list[dict[str, np.ndarray]] = []
    edge_ids: dict[tuple[int, int], int] = {}
    n_vertices = len(pos)
    cut_edges: list[tuple[int, int]] = []

    def cut(a: int, b: int) -> int:
        nonlocal n_vertices
        key = (min(a, b), max(a, b))
        if key not in edge_ids:
            t = side[key[0]] / (side[key[0]] - side[key[1]])
            new_arrays.append(_edge_vertex(np.array([key[0]]), np.array([key[1]]), np.array([t]), arrays))
            edge_ids[key] = n_vertices
            n_vertices += 1
        return edge_ids[key]

    extra = []
    for tri, c in zip(faces[(count == 1) | (count == 2)], count[(count == 1) | (count == 2)]):
        flags = inside[tri]
        # Rotate so the odd one out comes first (keeps the winding).
        k = int(np.flatnonzero(flags if c == 1 else ~flags)[0])
        a, b, d = tri[k], tri[(k + 1) % 3], tri[(k + 2) % 3]
        ab, ad = cut(a, b), cut(a, d)
        if c == 1:  # a inside: one triangle
            extra.append((a, ab, ad))
            cut_edges.append((ab, ad))
        else:  # a outside: a quad b, d, ad, ab
            extra.append((ab, b, d))
            extra.append((ab, d, ad))
            cut_edges.append((ad, ab))
    if new_arrays:
        arrays = {k: np.concatenate([arrays[k]] + [n[k] for n in new_arrays]) for k in arrays}
    if extra:
        kept.append(np.array(extra, dtype=faces.dtype))
    faces = np.concatenate(kept)
    if cap and cut_edges:
        # The kept surface's boundary runs ab -> ad along the cut; the cap runs the other way.
        caps = []
        for loop in _chain_loops(np.array([(b, a) for a, b in cut_edges])):
            idx = np.array(loop)
            centre = {k: v[idx].mean(0, keepdims=True) for k, v in arrays.items()}
            c_id = len(arrays["position"])
            arrays = {k: np.concatenate([arrays[k], centre[k]]) for k in arrays}
            fan = np.stack([idx, np.roll(idx, -1), np.full_like(idx, c_id)], 1)
            p = arrays["position"]
            n = np.cross(p[fan[:, 1]] - p[fan[:, 0]], p[fan[:, 2]] - p[fan[:, 0]]).sum(0)
            caps.append(fan if n @ normal >= 0 else fan[:, ::-1])
        if caps:
            faces = np.concatenate([faces, *caps])
    used = np.unique(faces)
    remap = np.full(len(arrays["position"]), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return {k: v[used] for k, v in arrays.items()}, remap[faces]
