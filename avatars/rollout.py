"""RODIN's rolled-out tri-planes and 3D-aware convolution (Wang et al., CVPR 2023).

A tri-plane diffusion model sees an avatar's planes [3, C, R, R] as ONE 2D feature map: the
planes side by side, [C, R, 3R] (`roll_out`), so an ordinary 2D UNet can process them. Two
things must then be handled on purpose:

- Plane borders are not neighbourhoods: the last column of plane xy and the first column of
  plane xz are unrelated 3D places. Every convolution here works on each plane separately
  (the planes are folded into the batch, `fold_planes`), so zero padding surrounds each plane
  and no kernel straddles a border.
- A texel of one plane describes a whole line of 3D points; the other two planes describe the
  same points at other texels. `aware_features` brings those features to the texel (pooled
  along the line) and `Aware3DConv` convolves them together with the plane's own features:
  the only place where information flows between planes.

Axis convention (exactly `dream3d.fields.triplane.sample_triplane`, whose `PLANE_AXES` are
xy, xz, yz; in each plane the FIRST coordinate indexes the width (column) axis and the SECOND
the height (row) axis; texel i sits at coordinate -1 + 2 i / (R - 1)):

    plane 0  xy : rows = y, columns = x        (missing axis z)
    plane 1  xz : rows = z, columns = x        (missing axis y)
    plane 2  yz : rows = z, columns = y        (missing axis x)

    rolled [C, R, 3R]:  columns [0, R) = xy,  [R, 2R) = xz,  [2R, 3R) = yz

    roll_out(planes)                                  # [B, 3, C, R, R] -> [B, C, R, 3R]
    conv = Aware3DConv(12, 32)                        # rolled in, rolled out: [B, 32, R, 3R]
"""
from __future__ import annotations

import enum

import torch
from torch import Tensor, nn

NUM_PLANES = 3


class AxisPool(enum.Enum):
    """How a plane's features are reduced along the axis the receiving plane does not have."""

    MEAN = "mean"
    """Average (RODIN's choice): every point on the line counts; smooth gradients."""
    MAX = "max"
    """Maximum: keeps the strongest response on the line (gradient to one texel only)."""


# ---------------------------------------------------------------------------------------------
# Layouts


def roll_out(planes: Tensor) -> Tensor:
    """Planes side by side. planes: [B, 3, C, R, R] -> [B, C, R, 3R] (xy | xz | yz)."""
    b, p, c, r, r2 = planes.shape
    if p != NUM_PLANES or r != r2:
        raise ValueError(f"planes must be [B, 3, C, R, R], got {tuple(planes.shape)}")
    return planes.permute(0, 2, 3, 1, 4).reshape(b, c, r, NUM_PLANES * r)  # [B, C, R, 3, R] -> [B, C, R, 3R]


def roll_in(x: Tensor) -> Tensor:
    """The exact inverse of `roll_out`. x: [B, C, R, 3R] -> [B, 3, C, R, R]."""
    b, c, r, w = x.shape
    if w != NUM_PLANES * r:
        raise ValueError(f"a rolled-out tri-plane is [B, C, R, 3R], got {tuple(x.shape)}")
    return x.reshape(b, c, r, NUM_PLANES, r).permute(0, 3, 1, 2, 4)  # [B, 3, C, R, R]


def fold_planes(x: Tensor) -> Tensor:
    """Each plane its own batch item, so 2D ops never see a plane border.
    x: [B, C, R, 3R] -> [3B, C, R, R] (item 3b + p is plane p of sample b)."""
    return roll_in(x).flatten(0, 1)


def unfold_planes(y: Tensor) -> Tensor:
    """The inverse of `fold_planes`. y: [3B, C, R, R] -> [B, C, R, 3R]."""
    return roll_out(y.unflatten(0, (-1, NUM_PLANES)))


# ---------------------------------------------------------------------------------------------
# 3D-aware features


def _pool(x: Tensor, dim: int, pool: AxisPool) -> Tensor:
    """Reduce `dim` of x, keeping it as size 1 (ready to broadcast back)."""
    if pool is AxisPool.MEAN:
        return x.mean(dim=dim, keepdim=True)
    return x.amax(dim=dim, keepdim=True)


def aware_features(x: Tensor, pool: AxisPool = AxisPool.MEAN) -> Tensor:
    """At every texel of each plane, the other two planes' features of the same 3D points.

    x: [B, C, R, 3R] rolled out. Returns [B, 2C, R, 3R] rolled out: for plane p, channels
    [0, C) come from the lower-indexed other plane and [C, 2C) from the higher-indexed one.

    A texel of plane p fixes its two world coordinates and leaves the third (the axis p lacks)
    free: it stands for the line of points along that axis. Another plane q shares exactly
    one axis with p and contains the missing axis; so q's features of the line's points are
    q's texels at p's shared coordinate, all along the missing axis. Pooling them over the
    missing axis gives one vector per value of the shared coordinate, which is broadcast
    along p's other axis. With plane layouts xy = [y, x], xz = [z, x], yz = [z, y] (rows,
    columns):

        xy texel (y, x), missing z:  xz pooled over z (rows) -> a function of x: a row vector
                                     yz pooled over z (rows) -> a function of y: made a column
        xz texel (z, x), missing y:  xy pooled over y (rows) -> a function of x: a row vector
                                     yz pooled over y (cols) -> a function of z: a column
        yz texel (z, y), missing x:  xy pooled over x (cols) -> a function of y: made a row
                                     xz pooled over x (cols) -> a function of z: a column

    ("made a row/column": the pooled vector's index is on the other axis of p than it was on
    q, so it is transposed before broadcasting.)
    """
    planes = roll_in(x)  # [B, 3, C, R, R]
    xy, xz, yz = planes.unbind(1)  # each [B, C, R, R]: xy [y, x], xz [z, x], yz [z, y]
    r = x.shape[-2]
    full = (*xy.shape[:2], r, r)

    xz_over_z = _pool(xz, -2, pool)  # [B, C, 1, R(x)]
    yz_over_z = _pool(yz, -2, pool).transpose(-1, -2)  # [B, C, R(y), 1]
    xy_over_y = _pool(xy, -2, pool)  # [B, C, 1, R(x)]
    yz_over_y = _pool(yz, -1, pool)  # [B, C, R(z), 1]
    xy_over_x = _pool(xy, -1, pool).transpose(-1, -2)  # [B, C, 1, R(y)]
    xz_over_x = _pool(xz, -1, pool)  # [B, C, R(z), 1]

    for_xy = torch.cat([xz_over_z.expand(full), yz_over_z.expand(full)], dim=1)  # [B, 2C, R(y), R(x)]
    for_xz = torch.cat([xy_over_y.expand(full), yz_over_y.expand(full)], dim=1)  # [B, 2C, R(z), R(x)]
    for_yz = torch.cat([xy_over_x.expand(full), xz_over_x.expand(full)], dim=1)  # [B, 2C, R(z), R(y)]
    return roll_out(torch.stack([for_xy, for_xz, for_yz], dim=1))  # [B, 2C, R, 3R]


# ---------------------------------------------------------------------------------------------
# Convolutions


class PlaneConv(nn.Module):
    """A 2D convolution applied to each plane separately, rolled layout in and out.

    The weights are shared by the three planes (as in RODIN's one conv over the rolled map);
    zero padding surrounds each plane, so nothing crosses a plane border. `stride` 2 halves R
    (R must be even). x: [B, C_in, R, 3R] -> [B, C_out, R', 3R'].
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, bias: bool = True):
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError("kernel_size must be odd (same-size output needs symmetric padding)")
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if self.conv.stride[0] > 1 and x.shape[-2] % self.conv.stride[0]:
            raise ValueError(f"plane resolution {x.shape[-2]} is not divisible by the stride {self.conv.stride[0]}")
        return unfold_planes(self.conv(fold_planes(x)))  # [3B, C_out, R', R'] -> [B, C_out, R', 3R']


class Aware3DConv(nn.Module):
    """RODIN's 3D-aware convolution: a per-plane conv over concat(own, aware) features.

    x: [B, C_in, R, 3R] -> [B, C_out, R, 3R]. The conv sees 3 C_in channels at every texel:
    the plane's own C_in, then `aware_features` (2 C_in) from the other two planes. Padding is
    per plane (`PlaneConv`), so the only cross-plane path is the aware features.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3,
                 pool: AxisPool = AxisPool.MEAN, bias: bool = True):
        super().__init__()
        self.pool = pool
        self.conv = PlaneConv(3 * in_channels, out_channels, kernel_size, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        features = torch.cat([x, aware_features(x, self.pool)], dim=1)  # [B, 3 C_in, R, 3R]
        return self.conv(features)
