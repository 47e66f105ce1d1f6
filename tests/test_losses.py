"""Regularisers: each one penalises what it says and nothing else."""
from __future__ import annotations

import pytest
import torch

from dream3d.losses import (
    RegularizerWeights,
    distortion_loss,
    opacity_entropy_loss,
    opacity_loss,
    orientation_loss,
    regularizers,
    triplane_tv_loss,
)
from dream3d.renderer import RenderOutput, SampleData


def samples(normals, weights=None):
    normals = torch.tensor(normals, dtype=torch.float32)
    n = normals.shape[0]
    weights = torch.ones(n) if weights is None else torch.tensor(weights)
    directions = torch.tensor([[0.0, 0.0, -1.0]]).expand(n, 3)  # looking down -Z
    t = torch.arange(n, dtype=torch.float32)
    return SampleData(
        weights=weights, normals=normals, directions=directions, ray_indices=torch.arange(n), t_starts=t, t_ends=t + 1,
        num_rays=n,
    )


def test_orientation_penalises_only_normals_facing_away():
    assert orientation_loss(samples([[0.0, 0.0, 1.0]])).item() == 0.0  # faces the camera
    assert orientation_loss(samples([[1.0, 0.0, 0.0]])).item() == 0.0  # grazing
    away = orientation_loss(samples([[0.0, 0.0, -1.0]], [0.5]))
    assert away.item() == pytest.approx(0.5)  # weight * (n.d)^2


def test_opacity_and_entropy():
    clear, half, full = torch.zeros(4, 1), torch.full((4, 1), 0.5), torch.ones(4, 1)
    assert opacity_loss(clear) < opacity_loss(half) < opacity_loss(full)
    assert opacity_entropy_loss(clear) < 1e-3 and opacity_entropy_loss(full) < 1e-3
    assert opacity_entropy_loss(half) > 0.6


def test_distortion_prefers_one_sharp_surface_to_fog_and_matches_brute_force():
    def ray_samples(weights, edges):
        w, e = torch.tensor(weights), torch.tensor(edges)
        n = len(weights)
        return SampleData(w, None, torch.zeros(n, 3), torch.zeros(n, dtype=torch.long), e[:-1], e[1:], 1)

    sharp = distortion_loss(ray_samples([0.0, 0.9, 0.0, 0.0], [0.0, 1.0, 1.1, 2.0, 3.0]))
    fog = distortion_loss(ray_samples([0.3, 0.3, 0.3, 0.0], [0.0, 1.0, 1.1, 2.0, 3.0]))
    assert sharp < 0.1 * fog
    # Brute force over two rays packed together.
    w = torch.tensor([0.2, 0.5, 0.1, 0.4, 0.3])
    starts, ends = torch.tensor([0.0, 0.5, 1.0, 0.0, 2.0]), torch.tensor([0.5, 1.0, 2.0, 2.0, 2.5])
    rays = torch.tensor([0, 0, 0, 1, 1])
    expected = 0.0
    for r in (0, 1):
        k = rays == r
        m = 0.5 * (starts[k] + ends[k])
        expected += (w[k][:, None] * w[k][None] * (m[:, None] - m[None]).abs()).sum()
        expected += (w[k] ** 2 * (ends[k] - starts[k])).sum() / 3
    got = distortion_loss(SampleData(w, None, torch.zeros(5, 3), rays, starts, ends, 2))
    assert got.item() == pytest.approx(expected.item() / 2, rel=1e-5)


def test_triplane_tv():
    assert triplane_tv_loss(torch.ones(3, 4, 8, 8)).item() == 0.0
    assert triplane_tv_loss(torch.randn(3, 4, 8, 8)).item() > 1.0


def test_regularizers_total_is_the_weighted_sum():
    opacity = torch.rand(1, 2, 2, 1)
    out = RenderOutput(
        rgb=torch.rand(1, 2, 2, 3), opacity=opacity, depth=torch.zeros(1, 2, 2, 1), normal=torch.zeros(1, 2, 2, 3),
        background=torch.ones(1, 2, 2, 3), samples=samples([[0.0, 0.0, -1.0], [0.0, 0.0, 1.0]]),
    )
    planes = torch.randn(3, 2, 4, 4)
    w = RegularizerWeights(orientation=2.0, opacity=3.0, opacity_entropy=0.5, triplane_tv=0.1, distortion=0.7)
    terms = regularizers(out, w, planes)
    expected = (
        2.0 * terms.orientation + 3.0 * terms.opacity + 0.5 * terms.opacity_entropy + 0.1 * terms.triplane_tv
        + 0.7 * terms.distortion
    )
    assert terms.total.item() == pytest.approx(expected.item())
    out.samples.normals = None
    with pytest.raises(ValueError):
        regularizers(out, w, planes)
