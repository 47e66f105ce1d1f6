"""Regularisers of text-to-3D training: orientation, opacity/sparsity, tri-plane total variation,
and the Mip-NeRF 360 distortion loss (sharp surfaces).

Weights are a typed dataclass; `regularizers(...)` returns every term and their weighted sum,
so the training loop logs each by name without string matching.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from dream3d.renderer.render import RenderOutput, SampleData


@dataclass(frozen=True)
class RegularizerWeights:
    """Multipliers of each regulariser in the training loss (0 turns one off). The SDS loss is a sum
    over pixels (~12k at 64x64) while the regularisers are means, hence the large weights."""

    orientation: float = 100.0
    """Normals facing away from the camera (Ref-NeRF / DreamFusion)."""
    opacity: float = 1e-3
    """Sparsity: sqrt(opacity^2 + 0.01) per pixel, discourages fog (DreamFusion)."""
    opacity_entropy: float = 200.0
    """Binary entropy of the opacity: pushes pixels to fully opaque or fully clear (a sharper,
    less foggy object; docs/decisions.md)."""
    triplane_tv: float = 0.0
    """Total variation of the tri-plane features: smooth planes, fewer floaters. Applies to
    tri-plane fields only; a field without planes (the hash grid) gets no TV term."""
    distortion: float = 0.0
    """Mip-NeRF 360 distortion: compact weights along each ray, i.e. sharp surfaces."""


@dataclass
class RegularizerTerms:
    """Each unweighted regulariser and the weighted total (all scalar tensors)."""

    orientation: Tensor
    opacity: Tensor
    opacity_entropy: Tensor
    triplane_tv: Tensor
    distortion: Tensor
    total: Tensor


def orientation_loss(samples: SampleData) -> Tensor:
    """Mean over rays of sum_i w_i max(0, n_i . d)^2 (d: view direction, camera -> scene).

    A visible normal points back toward the camera (n . d < 0); the loss penalises the
    others in proportion to how much they contribute to the image. Needs normals.
    """
    if samples.normals is None:
        raise ValueError("orientation loss needs normals: render with a lit shading or compute_normals=True")
    facing_away = (samples.normals * samples.directions).sum(dim=-1).clamp(min=0.0)  # [M]
    return (samples.weights * facing_away**2).sum() / max(samples.num_rays, 1)


def opacity_loss(opacity: Tensor, eps: float = 0.01) -> Tensor:
    """Sparsity: mean of sqrt(opacity^2 + eps) over pixels. opacity: [..., 1]."""
    return torch.sqrt(opacity**2 + eps).mean()


def opacity_entropy_loss(opacity: Tensor, eps: float = 1e-5) -> Tensor:
    """Mean binary entropy of the opacity (in nats): 0 when every pixel is 0 or 1."""
    a = opacity.clamp(eps, 1.0 - eps)
    return -(a * torch.log(a) + (1 - a) * torch.log(1 - a)).mean()


def distortion_loss(samples: SampleData) -> Tensor:
    """Mip-NeRF 360's distortion loss, mean over rays (scene units).

    sum_ij w_i w_j |m_i - m_j| + 1/3 sum_i w_i^2 (t_end_i - t_start_i), with m the interval
    midpoints: small when a ray's weight sits in one short stretch (a sharp surface), large
    for fog spread along the ray. Samples of a ray are contiguous and sorted (SampleData), so
    the pairwise sum is an exclusive cumulative sum per ray: O(M).
    """
    w, ray = samples.weights, samples.ray_indices
    mid = 0.5 * (samples.t_starts + samples.t_ends)
    # Exclusive per-ray prefix sums from one flat cumsum minus the ray's starting offset
    # (float64: the flat sums run over every ray of the batch).
    w64, wm64 = w.double(), (w * mid).double()
    cw, cwm = torch.cumsum(w64, 0) - w64, torch.cumsum(wm64, 0) - wm64  # [M] exclusive, flat
    first = torch.ones_like(ray, dtype=torch.bool)
    first[1:] = ray[1:] != ray[:-1]
    start = torch.cummax(torch.where(first, torch.arange(len(ray), device=ray.device), 0), 0).values  # [M]
    w_before = (cw - cw[start]).to(w.dtype)  # [M] sum of weights earlier on the same ray
    wm_before = (cwm - cwm[start]).to(w.dtype)
    pairwise = 2.0 * (w * (mid * w_before - wm_before)).sum()
    uniform = (w**2 * (samples.t_ends - samples.t_starts)).sum() / 3.0
    return (pairwise + uniform) / max(samples.num_rays, 1)


def triplane_tv_loss(planes: Tensor) -> Tensor:
    """Mean squared difference of neighbouring texels. planes: [..., C, R, R]."""
    dy = planes[..., 1:, :] - planes[..., :-1, :]
    dx = planes[..., :, 1:] - planes[..., :, :-1]
    return (dy**2).mean() + (dx**2).mean()


def regularizers(output: RenderOutput, weights: RegularizerWeights, planes: Tensor | None = None) -> RegularizerTerms:
    """Every regulariser of `output` (and of `planes` when given) and their weighted sum.

    Terms whose weight is 0 are still reported when they can be computed cheaply; the
    orientation term is 0 when the render has no normals and its weight is 0; the tri-plane
    TV term is 0 without `planes` (a hash-grid field), whatever its weight, so one set of
    weights serves both representations.
    """
    zero = output.opacity.new_zeros(())
    if output.samples is not None and output.samples.normals is not None:
        orientation = orientation_loss(output.samples)
    elif weights.orientation > 0:
        raise ValueError("orientation weight > 0 but the render has no per-sample normals")
    else:
        orientation = zero
    opacity = opacity_loss(output.opacity)
    entropy = opacity_entropy_loss(output.opacity)
    tv = triplane_tv_loss(planes) if planes is not None else zero
    if weights.distortion > 0 and output.samples is None:
        raise ValueError("distortion weight > 0 needs per-sample data (RenderConfig.return_samples)")
    distortion = distortion_loss(output.samples) if output.samples is not None else zero
    total = (
        weights.orientation * orientation
        + weights.opacity * opacity
        + weights.opacity_entropy * entropy
        + weights.triplane_tv * tv
        + weights.distortion * distortion
    )
    return RegularizerTerms(
        orientation=orientation, opacity=opacity, opacity_entropy=entropy, triplane_tv=tv, distortion=distortion, total=total
    )
