"""nerfacc's CUDA compositing behind the same dense-sample interface (CUDA only).

The pure-torch path (`compositing.weights_from_density`) is the reference; this one sends
only the valid samples to nerfacc as a packed batch and scatters the weights back, so the
renderer can switch between them without knowing which ran. Parity: tests/test_renderer.py
(marked gpu).
"""
from __future__ import annotations

import torch
from torch import Tensor

from dream3d import optional


def available() -> bool:
    """nerfacc is installed and CUDA is present."""
    return optional.nerfacc() is not None


def weights_from_density_nerfacc(
    density: Tensor, t_starts: Tensor, t_ends: Tensor, valid: Tensor
) -> tuple[Tensor, Tensor]:
    """Same contract as `compositing.weights_from_density`, computed by nerfacc on the packed samples.

    density, t_starts, t_ends: [N, S]; valid: [N, S] bool (invalid samples have zero density).
    Returns weights [N, S] and the final transmittance [N].
    """
    nerfacc = optional.require("nerfacc")
    n_rays = density.shape[0]
    ray_indices = valid.nonzero(as_tuple=True)[0]  # [M], sorted by ray then sample
    packed_weights, _, _ = nerfacc.render_weight_from_density(
        t_starts[valid], t_ends[valid], density[valid], ray_indices=ray_indices, n_rays=n_rays
    )
    weights = torch.zeros_like(density).masked_scatter(valid, packed_weights)
    final_transmittance = 1.0 - weights.sum(dim=-1)
    return weights, final_transmittance
