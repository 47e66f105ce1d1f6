"""Signed distance building blocks the primitives world lacks: smooth booleans, segments,
rounded boxes, planes, a torus facing +Z, a rectangular frame. All points: [N, 3] -> [N].

The world's exact primitives (spheres, ellipsoids, boxes, cylinders, tori) are imported from
`dream3d.priors.world`, not copied. Smooth booleans are Inigo Quilez's polynomial smooth min:
a fillet of radius about `k` where two surfaces meet, which is what makes a union of
ellipsoids read as one organic head. They keep the sign (inside stays inside) but make the
distance a bound near the fillet, which density and occupancy do not mind.
"""
from __future__ import annotations

import torch
from torch import Tensor

from dream3d.priors.world import sd_box, sd_torus_y

Vec3 = tuple[float, float, float]


def smooth_min(a: Tensor, b: Tensor, k: float) -> Tensor:
    """Smooth union of two distances [N], [N] -> [N]; k = 0 is the plain min."""
    if k <= 0.0:
        return torch.minimum(a, b)
    h = (0.5 + 0.5 * (b - a) / k).clamp(0.0, 1.0)
    return b + (a - b) * h - k * h * (1.0 - h)


def smooth_max(a: Tensor, b: Tensor, k: float) -> Tensor:
    """Smooth intersection [N], [N] -> [N]."""
    return -smooth_min(-a, -b, k)


def smooth_subtract(d: Tensor, cut: Tensor, k: float) -> Tensor:
    """`d` minus the solid `cut`, with a fillet of about k. [N], [N] -> [N]."""
    return smooth_max(d, -cut, k)


def mirror_x(p: Tensor) -> Tensor:
    """[N, 3] -> [N, 3] with x -> |x|: one evaluation of a +x part models both sides."""
    return torch.cat([p[:, :1].abs(), p[:, 1:]], dim=-1)


def sd_segment(p: Tensor, a: Vec3, b: Vec3, radius: float) -> Tensor:
    """Capsule: points within `radius` of the segment a-b (exact)."""
    a_t, b_t = p.new_tensor(a), p.new_tensor(b)
    ab = b_t - a_t
    t = ((p - a_t) @ ab / (ab @ ab)).clamp(0.0, 1.0)  # [N] position along the segment
    return (p - a_t - t[:, None] * ab).norm(dim=-1) - radius


def sd_round_box(p: Tensor, centre: Vec3, half: Vec3, radius: float) -> Tensor:
    """Axis-aligned box of half extents `half` with edges rounded by `radius` (exact)."""
    lo = tuple(c - h + radius for c, h in zip(centre, half))
    hi = tuple(c + h - radius for c, h in zip(centre, half))
    return sd_box(p, lo, hi) - radius


def sd_below_plane(p: Tensor, normal: Vec3, offset: float) -> Tensor:
    """Half-space {p : n . p <= offset} for a unit or non-unit normal n (exact)."""
    n = p.new_tensor(normal)
    return (p @ n - offset) / n.norm()


def sd_torus_z(p: Tensor, centre: Vec3, major: float, minor: float) -> Tensor:
    """Exact torus whose ring lies in the plane z = centre z (it faces +Z, like a glasses rim)."""
    q = p - p.new_tensor(centre)
    return sd_torus_y(q[:, [0, 2, 1]], major, minor)  # swap y and z: the world's torus lies flat


def sd_rect_frame_z(p: Tensor, centre: Vec3, half_xy: tuple[float, float], corner: float,
                    thickness: float) -> Tensor:
    """A rectangular rim in the plane z = centre z: the outline of a rounded rectangle of half
    extents `half_xy` and corner radius `corner`, swept by a circle of radius `thickness`."""
    q = p - p.new_tensor(centre)
    dx = q[:, 0].abs() - (half_xy[0] - corner)
    dy = q[:, 1].abs() - (half_xy[1] - corner)
    outside = torch.sqrt(dx.clamp(min=0.0) ** 2 + dy.clamp(min=0.0) ** 2)
    in_plane = outside + torch.maximum(dx, dy).clamp(max=0.0) - corner  # 2D rounded rectangle
    return torch.sqrt(in_plane * in_plane + q[:, 2] * q[:, 2]) - thickness
