"""Non-rigid registration of the Anny template's surface to a generated avatar's mesh.

A non-rigid ICP whose unknowns are per-vertex displacements d [V, 3] of the template, smoothed
by the squared graph Laplacian (a bi-harmonic membrane): each iteration solves

    (W + alpha * L^T L) d = W (c - x0)

for closest-point targets c (weights W: 0 where the match is too far or faces the other way),
with alpha falling stage by stage so the template first moves as a whole, then takes on the
target's detail. It is one sparse V x V solve per iteration (Amberg et al.'s per-vertex affine
transforms need a 4V x 4V one: `trimesh.registration.nricp_amberg` was slower on the bust and
fitted the face less closely, docs/avatar-diffusion.md). Vertices given no data (eyeballs, mouth
cavity) follow the surface through the same Laplacian, or their nearest fitted vertices when
they are a separate piece.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from avatars.anny.accessories import vertex_normals


@dataclass(frozen=True)
class RegistrationConfig:
    """Schedule of the non-rigid ICP (distances in metres, in the template's frame)."""

    stiffness: tuple[float, ...] = (30.0, 3.0, 1.0)
    """Laplacian weight alpha of each stage, stiff to loose (relative to a unit data weight)."""
    iterations: int = 3
    """Closest-point updates per stage."""
    max_distance: tuple[float, ...] = (0.06, 0.03, 0.015)
    """A vertex whose closest target point is farther than this (per stage) has no data term."""
    min_normal_cos: float = 0.0
    """... nor one whose normal and the target's disagree more than this (cosine)."""
    reverse_weight: float = 1.0
    """Weight of the target -> template matches (each target sample pulls its nearest template
    vertex), which let the template reach features it would skip, e.g. a long nose's tip."""
    target_samples: int = 60000
    """Points sampled on the target surface for the reverse matches."""
    seed: int = 0
    """Seeds the target surface sampling (registration is deterministic)."""


def uniform_laplacian(faces: np.ndarray, n: int):
    """[V, V] sparse graph Laplacian (I - mean of neighbours) of a triangle mesh; isolated rows are 0."""
    from scipy import sparse

    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.unique(np.sort(e, 1), axis=0)
    i, j = np.concatenate([e[:, 0], e[:, 1]]), np.concatenate([e[:, 1], e[:, 0]])
    adj = sparse.csr_matrix((np.ones(len(i)), (i, j)), shape=(n, n))
    deg = np.asarray(adj.sum(1)).ravel()
    inv = np.where(deg > 0, 1.0 / np.maximum(deg, 1), 0.0)
    return (sparse.diags((deg > 0).astype(np.float64)) - sparse.diags(inv) @ adj).tocsr()


@dataclass(frozen=True)
class RegistrationResult:
    vertices: np.ndarray
    """[V, 3] float64 registered template vertices."""
    matched_fraction: float
    """Share of the fitted vertices with a data term in the last iteration."""


def register(template: np.ndarray, faces: np.ndarray, fitted: np.ndarray, target_vertices: np.ndarray,
             target_faces: np.ndarray, config: RegistrationConfig = RegistrationConfig(),
             free: np.ndarray | None = None, rigid: np.ndarray | None = None) -> RegistrationResult:
    """Deform `template` [V, 3] (faces [F, 3]) onto the target mesh; only vertices where
    `fitted` [V] bool is set get data terms. Vertices in `free` [V] bool (default none) are part
    of the smoothed surface without data terms (they keep the template's shape, e.g. the eyelids
    over a generated face that has no eye openings); `rigid` [V] int labels groups (> 0) whose
    edges are held to equal displacements, so each moves as one piece (an eye and its lids);
    the rest follow (see the module docstring)."""
    import trimesh
    from scipy import sparse
    from scipy.sparse.linalg import factorized
    from scipy.spatial import cKDTree

    x0 = template.astype(np.float64)
    n = len(x0)
    target = trimesh.Trimesh(target_vertices, target_faces, process=False)
    points, face_index = trimesh.sample.sample_surface_even(target, config.target_samples, seed=config.seed)
    point_normals = target.face_normals[face_index]
    tree = cKDTree(points)
    fit_index = np.flatnonzero(fitted)
    fit_faces = faces[fitted[faces].all(1)]
    membrane = fitted | (free if free is not None else False)
    lap = uniform_laplacian(faces[membrane[faces].all(1)], n)
    smooth = (lap.T @ lap).tocsc()
    if rigid is not None:
        smooth = smooth + RIGID_WEIGHT * tie_edges(faces, rigid, n)
    d = np.zeros_like(x0)
    matched = 0.0
    for alpha, max_dist in zip(config.stiffness, config.max_distance):
        for _ in range(config.iterations):
            x = x0 + d
            normals = vertex_normals(x, fit_faces)
            # Forward: each fitted vertex to its closest target sample.
            dist, k = tree.query(x[fit_index])
            ok = (dist < max_dist) & ((normals[fit_index] * point_normals[k]).sum(1) > config.min_normal_cos)
            weight = np.zeros(n)
            goal = np.zeros((n, 3))
            weight[fit_index[ok]] = 1.0
            goal[fit_index[ok]] = points[k[ok]]
            # Reverse: each target sample pulls its nearest fitted vertex.
            if config.reverse_weight > 0:
                near = cKDTree(x[fit_index])
                rd, rk = near.query(points)
                v = fit_index[rk]
                rok = (rd < max_dist) & ((normals[v] * point_normals).sum(1) > config.min_normal_cos)
                share = config.reverse_weight * len(fit_index) / max(len(points), 1)
                np.add.at(weight, v[rok], share)
                np.add.at(goal, v[rok], share * points[rok])
            matched = float(ok.mean()) if len(ok) else 0.0
            # goal holds sum(w * c); the system wants W c, so it is the right-hand side as it is.
            rhs = goal - weight[:, None] * x0
            solve = factorized((sparse.diags(weight + 1e-8) + alpha * smooth).tocsc())
            d = np.stack([solve(rhs[:, c]) for c in range(3)], 1)
    return RegistrationResult(x0 + follow_pieces(x0, d, faces, membrane), matched)


RIGID_WEIGHT = 1e4
"""Weight of the equal-displacement terms of a rigid group (against the Laplacian's 1)."""


def tie_edges(faces: np.ndarray, groups: np.ndarray, n: int):
    """[V, V] sparse G^T G for the edges inside each group (label > 0): ||G d||^2 sums the squared
    differences of displacement along them."""
    from scipy import sparse

    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    e = np.unique(np.sort(e, 1), axis=0)
    e = e[(groups[e[:, 0]] > 0) & (groups[e[:, 0]] == groups[e[:, 1]])]
    rows = np.repeat(np.arange(len(e)), 2)
    g = sparse.csr_matrix((np.tile([1.0, -1.0], len(e)), (rows, e.ravel())), shape=(len(e), n))
    return (g.T @ g).tocsc()


def follow_pieces(x0: np.ndarray, d: np.ndarray, faces: np.ndarray, fitted: np.ndarray, k: int = 24) -> np.ndarray:
    """Displacements [V, 3] for the vertices not fitted: a connected piece without a fitted vertex
    (an eyeball) moves rigidly by the mean displacement of the k fitted vertices nearest its centre,
    but no further forward (+z) than the one that moved least forward (it stays behind its lids);
    any other (the mouth cavity, joined to the lips) by the inverse-distance mean of its k nearest
    fitted vertices', so it stays behind the skin it sits behind."""
    from scipy import sparse
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    n = len(x0)
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]]])
    _, label = connected_components(sparse.csr_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n, n)),
                                    directed=False)
    fit_index = np.flatnonzero(fitted)
    tree = cKDTree(x0[fit_index])
    out = d.copy()
    loose = np.flatnonzero(~fitted)
    if len(loose):
        dist, near = tree.query(x0[loose], k=min(k, len(fit_index)))
        w = 1.0 / np.maximum(dist.reshape(len(loose), -1), 1e-6)
        out[loose] = (d[fit_index[near.reshape(len(loose), -1)]] * w[..., None]).sum(1) / w.sum(1, keepdims=True)
    for piece in np.unique(label):
        members = label == piece
        if fitted[members].any():
            continue
        _, near = tree.query(x0[members].mean(0), k=min(k, len(fit_index)))
        around = d[fit_index[np.atleast_1d(near)]]
        out[members] = [around[:, 0].mean(), around[:, 1].mean(), around[:, 2].min()]
    return out


def closest_points(points: np.ndarray, vertices: np.ndarray, faces: np.ndarray, k: int = 16) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For points [N, 3], the closest point on the mesh among the k triangles with the nearest
    centroids: (closest [N, 3], distance [N], triangle [N]). No spatial index package needed."""
    from scipy.spatial import cKDTree
    from trimesh.triangles import closest_point as on_triangles

    tri = np.asarray(vertices, np.float64)[faces]
    k = min(k, len(faces))
    _, cand = cKDTree(tri.mean(1)).query(points, k=k)
    cand = cand.reshape(len(points), k)
    near = on_triangles(tri[cand.ravel()], np.repeat(np.asarray(points, np.float64), k, 0)).reshape(len(points), k, 3)
    dist = np.linalg.norm(near - np.asarray(points, np.float64)[:, None], axis=2)
    best = dist.argmin(1)
    rows = np.arange(len(points))
    return near[rows, best], dist[rows, best], cand[rows, best]
