"""Fit Anny's head to a face reading: phenotypes and local face targets by least squares on the
478 landmarks, through Anny's own differentiable phenotype -> blendshape map, jointly with a
weak-perspective camera.

Only the landmarks' corresponding vertices are evaluated (Anny's rest surface is linear in its
blendshape coefficients), so a fit is a few seconds on a CPU.
"""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from avatars.anny.body import AnnyParameters
from avatars.anny.model import ANNY_TO_WORLD, AnnyModelConfig, load_anny
from avatars.face.landmarks import FaceReading

CORRESPONDENCE_PATH = Path(__file__).resolve().parents[2] / "assets" / "face-landmarker" / "anny_landmark_vertices.json"
"""Landmark -> Anny vertex table (scripts/face_correspondence.py)."""

FACE_TARGET_PREFIXES = ("head-", "chin-", "l-cheek-", "r-cheek-", "l-eye-", "r-eye-", "nose-", "mouth-", "forehead-")
"""Anny local targets the fit may move (the face and skull; not ears, neck or body)."""


@dataclass(frozen=True)
class FitConfig:
    """The photo fit's optimisation."""

    rounds: int = 2
    """Alternations of camera fit and shape solve."""
    camera_steps: int = 150
    """Adam steps of each camera fit (rotation, scale, translation; 6 numbers, cheap)."""
    camera_learning_rate: float = 0.02
    local_weight: float = 0.0005
    """Ridge penalty on local targets (in squared inter-ocular distances per unit target): pulls
    toward Anny's average face."""
    search: tuple[tuple[str, tuple[float, ...]], ...] = (
        ("gender", (0.0, 0.25, 0.5, 0.75, 1.0)), ("age", (0.5, 0.67, 0.85, 1.0)), ("weight", (0.3, 0.5, 0.7)),
        ("asian", (0.2, 0.5, 0.8)))
    """Phenotypes searched one after the other (Anny's phenotype map is nonlinear): value grid each."""
    max_correspondence_px: float = 4.0
    """Landmarks whose correspondence was worse than this (in the correspondence render) are not fitted."""


@dataclass(frozen=True)
class WeakPerspective:
    """Image pixel = scale * (rotation @ world)[x, -y] + translation."""

    scale: float
    rotation: np.ndarray
    """[3, 3] head rotation (world frame = camera frame: x right, y up, z toward the viewer)."""
    translation: np.ndarray
    """[2] pixels."""

    def project(self, points: np.ndarray) -> np.ndarray:
        """[N, 3] world -> [N, 2] pixels."""
        r = np.asarray(points, np.float64) @ self.rotation.T
        return self.scale * np.stack([r[:, 0], -r[:, 1]], 1) + self.translation


@dataclass(frozen=True)
class FaceFit:
    """The fitted Anny shape and camera, and how well they explain the landmarks."""

    params: AnnyParameters
    camera: WeakPerspective
    projected: np.ndarray
    """[478, 2] the fitted avatar's corresponding vertices, projected (pixels)."""
    error_iod: np.ndarray
    """[478] distance to the detected landmark / inter-ocular distance."""
    used: np.ndarray
    """[478] bool: landmarks the fit used."""

    def median_error_iod(self) -> float:
        return float(np.median(self.error_iod[self.used]))


@functools.lru_cache(maxsize=1)
def correspondence(path: Path = CORRESPONDENCE_PATH) -> tuple[np.ndarray, np.ndarray]:
    """(vertex index [478] int64, correspondence residual [478] px)."""
    table = json.loads(Path(path).read_text())
    return np.array(table["vertex"], np.int64), np.array(table["residual_px"], np.float64)


def _rodrigues(w):
    """[3] axis-angle tensor -> [3, 3] rotation tensor (differentiable)."""
    import torch

    theta = torch.sqrt((w * w).sum() + 1e-12)
    k = w / theta
    zero = torch.zeros((), dtype=w.dtype)
    kx = torch.stack([torch.stack([zero, -k[2], k[1]]), torch.stack([k[2], zero, -k[0]]),
                      torch.stack([-k[1], k[0], zero])])
    return torch.eye(3, dtype=w.dtype) + torch.sin(theta) * kx + (1 - torch.cos(theta)) * kx @ kx


def fit_camera(points: np.ndarray, target: np.ndarray, rotation: np.ndarray, config: FitConfig) -> WeakPerspective:
    """Weak-perspective camera taking world `points` [N, 3] to pixel `target` [N, 2], starting from
    `rotation` (closed-form scale and translation first, then Adam on all six)."""
    import torch

    p = torch.as_tensor(points, dtype=torch.float64)
    t = torch.as_tensor(target, dtype=torch.float64)
    r0 = torch.as_tensor(rotation, dtype=torch.float64)
    xy = (p @ r0.T)[:, :2] * torch.tensor([1.0, -1.0], dtype=torch.float64)
    xc, tc = xy - xy.mean(0), t - t.mean(0)
    scale0 = float((xc * tc).sum() / (xc * xc).sum())
    omega = torch.full((3,), 1e-5, dtype=torch.float64, requires_grad=True)
    log_scale = torch.tensor(np.log(max(scale0, 1e-6)), dtype=torch.float64, requires_grad=True)
    shift = (t.mean(0) - scale0 * xy.mean(0)).clone().requires_grad_(True)
    unit = float((tc * tc).sum(1).mean())
    opt = torch.optim.Adam([omega, log_scale, shift], lr=config.camera_learning_rate)
    for _ in range(config.camera_steps):
        opt.zero_grad()
        r = p @ (r0 @ _rodrigues(omega)).T
        proj = torch.exp(log_scale) * torch.stack([r[:, 0], -r[:, 1]], 1) + shift
        (((proj - t) ** 2).sum(1).mean() / unit).backward()
        with torch.no_grad():  # the shift moves in pixels: give it pixel-sized steps
            shift.grad *= unit
        opt.step()
    with torch.no_grad():
        return WeakPerspective(float(torch.exp(log_scale)), (r0 @ _rodrigues(omega)).numpy(), shift.numpy().copy())


def _solve(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x with a @ x = b for a symmetric positive definite a (on one thread: threaded BLAS stalls for
    tens of milliseconds on a busy CPU)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a ~200x200 system: threads only add synchronisation
    try:
        return torch.linalg.solve(torch.as_tensor(a), torch.as_tensor(b)).numpy()
    finally:
        torch.set_num_threads(threads)


class _Surface:
    """Anny's rest surface at the fitted vertices: phenotype part through Anny's own map, local
    targets as its linear rows (each target is an up and a down row; one of them is used)."""

    def __init__(self, model, index: np.ndarray, actions: dict[str, float]):
        import torch

        self.model, self.index = model, torch.as_tensor(index)
        self.labels = list(model.local_change_labels)
        self.rows = [i for i, name in enumerate(self.labels) if name.startswith(FACE_TARGET_PREFIXES)]
        coeff_labels = list(model.blendshape_labels)
        up = [coeff_labels.index(f"local_change:{self.labels[i]}") for i in self.rows]
        self.template = model.template_vertices[self.index].double()
        self.shapes = model.blendshapes[:, self.index].double()  # [K, N, 3]
        # Up rows then down rows (Anny stores each target's down shape right after its up shape).
        self.local_shapes = torch.cat([self.shapes[up], self.shapes[[u + 1 for u in up]]]).numpy() @ ANNY_TO_WORLD.T
        self.actions = torch.tensor([[actions.get(a, 0.0) for a in model.facial_action_labels]])

    def base(self, phenotypes: dict[str, float]) -> np.ndarray:
        """[N, 3] world positions with no local target, for these phenotypes (others 0.5)."""
        import torch

        phen = torch.tensor([[phenotypes.get(p, 0.5) for p in self.model.phenotype_labels]])
        with torch.no_grad():
            coeffs = self.model._get_phenotype_blendshape_coefficients(
                phen, torch.zeros(1, len(self.labels)), self.actions).double()
            rest = self.template + torch.einsum("bk,kvc->bvc", coeffs, self.shapes)[0]
        return rest.numpy() @ ANNY_TO_WORLD.T

    def solve_locals(self, base: np.ndarray, target: np.ndarray, camera: WeakPerspective, iod: float,
                     weight: float) -> tuple[np.ndarray, float]:
        """Ridge least squares of the local targets in [-1, 1] (camera fixed). Returns
        ([len(rows)] values, mean squared residual / iod^2)."""
        n_rows = len(self.rows)
        # d(projection)/d(coefficient): scale * [x, -y] of the rotated shape.
        rot = self.local_shapes @ camera.rotation.T  # [2R, N, 3]
        a = camera.scale * np.stack([rot[..., 0], -rot[..., 1]], -1).reshape(2 * n_rows, -1).T / iod  # [2N, 2R]
        b = ((target - camera.project(base)) / iod).reshape(-1)
        lam = weight * len(b)
        gram, rhs = a.T @ a, a.T @ b
        # Active set on coefficients in [0, 1]: both directions of each target first, then only the
        # stronger one; coefficients that want to go below 0 leave the set, above 1 are held at 1.
        active = np.ones(2 * n_rows, bool)
        fixed_one = np.zeros(2 * n_rows, bool)
        coeffs = np.zeros(2 * n_rows)
        for it in range(6):
            free = active & ~fixed_one
            r = rhs[free] - gram[np.ix_(free, fixed_one)].sum(1)
            coeffs = np.zeros(2 * n_rows)
            coeffs[fixed_one] = 1.0
            coeffs[free] = _solve(gram[np.ix_(free, free)] + lam * np.eye(free.sum()), r)
            if it == 0:
                up, down = coeffs[:n_rows], coeffs[n_rows:]
                active = np.concatenate([up - down >= 0, up - down < 0])
                continue
            if (coeffs[free] >= 0).all() and (coeffs[free] <= 1).all():
                break
            active &= ~((coeffs < 0) & free)
            fixed_one |= (coeffs > 1) & free
        coeffs = np.clip(np.where(active, coeffs, 0.0), 0.0, 1.0)
        values = coeffs[:n_rows] - coeffs[n_rows:]
        return values, float(np.mean((a @ coeffs - b) ** 2) * 2)

    def with_locals(self, base: np.ndarray, values: np.ndarray) -> np.ndarray:
        """[N, 3] world positions with local target values [len(rows)] added to `base`."""
        n_rows = len(self.rows)
        coeffs = np.concatenate([np.clip(values, 0, None), np.clip(-values, 0, None)])
        return base + np.einsum("k,knc->nc", coeffs, self.local_shapes.reshape(2 * n_rows, -1, 3))


def _upright(rotation: np.ndarray) -> np.ndarray:
    """The nearest rotation to a (scaled) 3x3 matrix."""
    u, _, vt = np.linalg.svd(rotation)
    return u @ vt


def fit_face(reading: FaceReading, config: FitConfig = FitConfig(),
             model_config: AnnyModelConfig = AnnyModelConfig()) -> FaceFit:
    """Least-squares Anny head + weak-perspective camera for `reading`. Its expression is applied
    as Anny facial actions while fitting, so a smile is not taken for face shape."""
    model = load_anny(model_config)
    index, corr_residual = correspondence()
    used = corr_residual <= config.max_correspondence_px
    target = reading.landmarks[used, :2]
    iod = reading.inter_ocular()
    surface = _Surface(model, index[used], reading.blendshapes)
    phenotypes: dict[str, float] = {}
    base = surface.base(phenotypes)
    camera = fit_camera(base, target, _upright(reading.pose[:3, :3]), config)
    values = np.zeros(len(surface.rows))
    for _ in range(config.rounds):
        for name, grid in config.search:  # each phenotype in turn, the others held
            scores = []
            for value in grid:
                trial = surface.base(phenotypes | {name: value})
                scores.append(surface.solve_locals(trial, target, camera, iod, config.local_weight)[1])
            phenotypes[name] = grid[int(np.argmin(scores))]
        base = surface.base(phenotypes)
        values, _ = surface.solve_locals(base, target, camera, iod, config.local_weight)
        camera = fit_camera(surface.with_locals(base, values), target, camera.rotation, config)
    values, _ = surface.solve_locals(base, target, camera, iod, config.local_weight)

    local = {surface.labels[i]: float(v) for i, v in zip(surface.rows, values) if abs(v) > 1e-3}
    params = AnnyParameters({**{p: 0.5 for p in ("gender", "age", "muscle", "weight", "height", "proportions",
                                                 "african", "asian", "caucasian")}, **phenotypes}, local)
    every = _Surface(model, index, reading.blendshapes)
    projected = camera.project(every.with_locals(every.base(phenotypes), values))
    error = np.linalg.norm(projected - reading.landmarks[:, :2], axis=1) / iod
    return FaceFit(params, camera, projected, error, used)
