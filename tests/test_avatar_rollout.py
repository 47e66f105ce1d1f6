"""Rolled-out tri-planes, 3D-aware features and convolution, and the tri-plane UNet."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from avatars.rollout import (
    Aware3DConv,
    AxisPool,
    PlaneConv,
    aware_features,
    fold_planes,
    roll_in,
    roll_out,
    unfold_planes,
)
from avatars.triplane import AvatarTriplaneConfig
from avatars.triplane_unet import TriplaneUNet, TriplaneUNetConfig
from dream3d.fields.triplane import PLANE_AXES, sample_triplane


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_roll_out_in_exact_round_trip_and_layout():
    planes = torch.randn(2, 3, 5, 7, 7, generator=_gen())
    rolled = roll_out(planes)
    assert rolled.shape == (2, 5, 7, 21)
    for p in range(3):  # plane p occupies columns [pR, (p+1)R), untransposed
        assert torch.equal(rolled[..., 7 * p:7 * (p + 1)], planes[:, p])
    assert torch.equal(roll_in(rolled), planes)
    x = torch.randn(2, 5, 7, 21, generator=_gen(1))
    assert torch.equal(roll_out(roll_in(x)), x)
    assert torch.equal(unfold_planes(fold_planes(x)), x)
    assert torch.equal(fold_planes(x)[3 + 2], x[1, :, :, 14:])  # item 3b + p = plane p of sample b
    with pytest.raises(ValueError):
        roll_in(torch.zeros(1, 2, 4, 10))


def _texel_coordinate(i: int, r: int) -> float:
    """World coordinate of texel i (sample_triplane uses align_corners=True)."""
    return -1.0 + 2.0 * i / (r - 1)


def _brute_force_aware(planes: torch.Tensor, plane: int, row: int, col: int, pool: AxisPool) -> torch.Tensor:
    """The other planes' features along the line of 3D points behind one texel, read with
    dream3d's own sample_triplane at each point's projections. planes: [3, C, R, R] -> [2C]."""
    r = planes.shape[-1]
    width_axis, height_axis = PLANE_AXES[plane]  # columns index the first coordinate, rows the second
    missing = ({0, 1, 2} - {width_axis, height_axis}).pop()
    points = torch.zeros(r, 3)
    points[:, width_axis] = _texel_coordinate(col, r)
    points[:, height_axis] = _texel_coordinate(row, r)
    points[:, missing] = torch.tensor([_texel_coordinate(k, r) for k in range(r)])
    features = sample_triplane(planes, points)  # [R, 3, C]: every point's features on every plane
    others = [q for q in range(3) if q != plane]
    reduce = (lambda f: f.mean(0)) if pool is AxisPool.MEAN else (lambda f: f.amax(0))
    return torch.cat([reduce(features[:, q]) for q in others])  # [2C]


@pytest.mark.parametrize("pool", [AxisPool.MEAN, AxisPool.MAX])
def test_aware_features_match_brute_force_projection(pool):
    b, c, r = 2, 3, 6
    planes = torch.randn(b, 3, c, r, r, generator=_gen(2))
    aware = aware_features(roll_out(planes), pool)
    assert aware.shape == (b, 2 * c, r, 3 * r)
    g = _gen(3)
    for sample in range(b):
        for plane in range(3):
            for _ in range(4):
                row, col = torch.randint(0, r, (2,), generator=g).tolist()
                expected = _brute_force_aware(planes[sample], plane, row, col, pool)
                got = aware[sample, :, row, plane * r + col]
                torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)


def test_aware_conv_crosses_planes_and_plain_conv_does_not():
    torch.manual_seed(0)
    aware_conv, plain_conv = Aware3DConv(3, 4), PlaneConv(3, 4)
    x = torch.randn(1, 3, 6, 18, generator=_gen(4))
    for plane in range(3):
        changed = x.clone()
        changed[0, :, 2, plane * 6 + 3] += 1.0  # one texel of one plane
        others = [q for q in range(3) if q != plane]
        aware_delta = roll_in(aware_conv(changed) - aware_conv(x))[0]  # [3, 4, R, R]
        plain_delta = roll_in(plain_conv(changed) - plain_conv(x))[0]
        for q in others:
            assert aware_delta[q].abs().max() > 1e-4, f"plane {plane} did not reach plane {q}"
            assert torch.equal(plain_delta[q], torch.zeros_like(plain_delta[q]))


def _per_plane_reference(conv: nn.Conv2d, x: torch.Tensor) -> torch.Tensor:
    """Each plane convolved on its own, zero-padded by itself. x: [B, C, R, 3R] (rolled)."""
    planes = roll_in(x)
    out = [nn.functional.conv2d(planes[:, p], conv.weight, conv.bias, stride=conv.stride, padding=conv.padding)
           for p in range(3)]
    return roll_out(torch.stack(out, dim=1))


def test_padding_does_not_leak_between_planes():
    torch.manual_seed(0)
    r = 8
    x = torch.zeros(1, 2, r, 3 * r)
    x[..., r:2 * r] = torch.randn(1, 2, r, r, generator=_gen(5))  # only the middle plane (xz) is non-zero
    for stride in (1, 2):  # stride 2: per-plane downsampling
        conv = PlaneConv(2, 3, stride=stride, bias=False)
        y = roll_in(conv(x))[0]  # [3, 3, R', R']
        assert y.shape[-1] == r // stride
        assert torch.equal(y[0], torch.zeros_like(y[0])) and torch.equal(y[2], torch.zeros_like(y[2]))
        assert y[1].abs().max() > 0
        torch.testing.assert_close(conv(x), _per_plane_reference(conv.conv, x))
    # The test can see a leak: one conv over the rolled map smears the middle plane's edge
    # columns into its neighbours.
    naive = nn.functional.conv2d(x, conv.conv.weight, padding=1)
    assert roll_in(naive)[0, 0].abs().max() > 0

    aware_conv = Aware3DConv(2, 3)
    features = torch.cat([x, aware_features(x)], dim=1)
    torch.testing.assert_close(aware_conv(x), _per_plane_reference(aware_conv.conv.conv, features))


def test_default_unet_config_matches_avatar_planes():
    avatar, unet = AvatarTriplaneConfig(), TriplaneUNetConfig()
    assert (unet.resolution, unet.plane_channels) == (avatar.resolution, avatar.channels)
    with pytest.raises(ValueError):
        TriplaneUNetConfig(resolution=50, channels=(8, 16, 32))  # 50 is not divisible by 4


def test_unet_shape_condition_and_gradients():
    config = TriplaneUNetConfig.tiny()
    torch.manual_seed(0)
    unet = TriplaneUNet(config)
    with torch.no_grad():  # a non-zero null condition, as after training
        unet.null_cond.normal_()
    b, c, r = 3, config.plane_channels, config.resolution
    x = torch.randn(b, c, r, 3 * r, generator=_gen(6))
    t = torch.tensor([1.0, 250.0, 999.0])
    cond = torch.randn(b, config.cond_dim, generator=_gen(7))

    out = unet(x, t, cond)
    assert out.shape == x.shape
    assert (unet(x, t, cond + 1.0) - out).abs().max() > 1e-4  # depends on the condition
    uncond = unet(x, t, None)
    assert (uncond - out).abs().max() > 1e-4
    drop = torch.tensor([True, False, True])
    mixed = unet(x, t, cond, drop_cond=drop)
    torch.testing.assert_close(mixed[drop], uncond[drop])
    torch.testing.assert_close(mixed[~drop], out[~drop])
    torch.testing.assert_close(unet.guided(x, t, cond, guidance_scale=1.0), out, atol=1e-5, rtol=1e-5)
    guided = unet.guided(x, t, cond, guidance_scale=3.0)
    torch.testing.assert_close(guided, uncond + 3.0 * (out - uncond), atol=1e-5, rtol=1e-5)
    assert unet(x, 10.0, cond).shape == x.shape  # a scalar timestep broadcasts

    # One plane's change reaches the other planes' outputs.
    changed = x.clone()
    changed[0, :, 3, 2] += 1.0  # plane xy
    delta = roll_in(unet(changed, t, cond) - out)[0]
    assert delta[1].abs().max() > 1e-5 and delta[2].abs().max() > 1e-5

    loss = (mixed ** 2).mean()
    loss.backward()
    for name, p in unet.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
    assert unet.null_cond.grad.abs().sum() > 0
