"""Alpha compositing along rays (the NeRF quadrature), on dense [N, S] samples."""
from __future__ import annotations

import torch
from torch import Tensor


def weights_from_density(density: Tensor, deltas: Tensor) -> tuple[Tensor, Tensor]:
    """Per-sample compositing weights and the transmittance left after each ray.

    density: [N, S] >= 0; deltas: [N, S] interval lengths. Returns weights [N, S] with
    w_i = T_i (1 - exp(-sigma_i delta_i)), T_i = exp(-sum_{j<i} sigma_j delta_j), and the
    final transmittance [N] = exp(-sum_i sigma_i delta_i) (so sum w + T_final = 1 exactly in
    exact arithmetic).
    """
    tau = density * deltas  # [N, S] optical depth of each interval
    cumulative = torch.cumsum(tau, dim=-1)  # [N, S]
    transmittance = torch.exp(-(cumulative - tau))  # [N, S] light reaching the start of each interval
    alpha = 1.0 - torch.exp(-tau)
    weights = transmittance * alpha
    return weights, torch.exp(-cumulative[:, -1])


def composite(weights: Tensor, values: Tensor) -> Tensor:
    """weights [N, S], values [N, S, C] -> [N, C] sum_i w_i v_i."""
    return (weights[..., None] * values).sum(dim=-2)


def composite_depth(weights: Tensor, t: Tensor, opacity: Tensor) -> Tensor:
    """Expected depth along the ray among what was hit: [N, S], [N, S], [N, 1] -> [N, 1].

    Normalised by the opacity so a faint surface still reports its distance; rays that hit
    nothing report 0.
    """
    depth = (weights * t).sum(dim=-1, keepdim=True)
    return depth / opacity.clamp(min=1e-6) * (opacity > 1e-6)
