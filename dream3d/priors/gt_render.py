"""Ground-truth renders of the primitives world: the bundled prior's training images.

Sphere tracing of the exact SDF, normals from the SDF's central differences, Lambertian shading
with a point light near the camera (`dream3d.renderer.shading`, the same function the volume
renderer uses), a solid background (white with probability 0.5, else a uniform random colour),
and anti-aliasing by rendering at `supersample` times the size and average pooling, so object
edges are soft like a volume render's.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from dream3d.cameras import Cameras
from dream3d.priors.world import object_by_id
from dream3d.renderer.shading import AMBIENT, lambertian, sample_light_positions


@dataclass(frozen=True)
class GTRenderConfig:
    """How ground-truth images are made."""

    supersample: int = 2
    """Render at this many times the camera's size, then average-pool (anti-aliasing)."""
    max_steps: int = 64
    """Sphere-tracing iterations."""
    hit_epsilon: float = 1e-3
    """A ray hits when the SDF falls below this (scene units)."""
    step_scale: float = 0.95
    """Fraction of the SDF each step advances: < 1 because the mushroom cap's SDF is a bound."""
    bound_radius: float = 1.0
    """Rays start where they enter this sphere around the origin (every object fits in it)."""
    white_background_prob: float = 0.5
    """Chance of a white background; otherwise a uniform random RGB colour."""
    ambient: float = AMBIENT
    """Ambient share of the Lambertian shading."""
    light_jitter: float = 0.5
    """Light position noise, in units of the camera distance (see sample_light_positions)."""


@dataclass
class GTRender:
    """A batch of ground-truth renders."""

    rgb: Tensor
    """[B, H, W, 3] in [0, 1] (sRGB: albedo is shaded directly, no gamma curve)."""
    mask: Tensor
    """[B, H, W] in [0, 1]: the share of each pixel the object covers."""
    background: Tensor
    """[B, 3] background colour of each image."""


def camera_rays(cameras: Cameras) -> tuple[Tensor, Tensor]:
    """Ray origins and unit directions through pixel centres.

    Returns origins [B, H, W, 3] and directions [B, H, W, 3] in world space.
    """
    B, H, W = len(cameras), cameras.height, cameras.width
    device = cameras.c2w.device
    j, i = torch.meshgrid(torch.arange(H, device=device) + 0.5, torch.arange(W, device=device) + 0.5, indexing="ij")
    f = cameras.focal_px.view(B, 1, 1)
    # OpenGL camera: +X right, +Y up in the image, looking down -Z.
    dirs_cam = torch.stack(
        [(i - 0.5 * W).expand(B, H, W) / f, -(j - 0.5 * H).expand(B, H, W) / f, -torch.ones(B, H, W, device=device)],
        dim=-1,
    )  # [B, H, W, 3]
    rot = cameras.c2w[:, :3, :3]  # [B, 3, 3]
    dirs = torch.einsum("bij,bhwj->bhwi", rot, dirs_cam)
    dirs = F.normalize(dirs, dim=-1)
    origins = cameras.c2w[:, :3, 3].view(B, 1, 1, 3).expand(B, H, W, 3)
    return origins, dirs


def sphere_trace(sdf, origins: Tensor, dirs: Tensor, config: GTRenderConfig = GTRenderConfig()) -> tuple[Tensor, Tensor]:
    """March rays to the surface of `sdf` ([N, 3] -> [N]).

    origins, dirs: [N, 3] (dirs unit). Returns hit points [N, 3] and a bool hit mask [N].
    """
    # Start where the ray enters the bounding sphere; rays that miss it are done.
    b = (origins * dirs).sum(-1)
    c = (origins * origins).sum(-1) - config.bound_radius**2
    disc = b * b - c
    active = disc > 0
    sq = disc.clamp(min=0).sqrt()
    t = (-b - sq).clamp(min=0.0)
    t_far = -b + sq
    hit = torch.zeros_like(active)
    idx = active.nonzero().squeeze(-1)
    for _ in range(config.max_steps):
        if idx.numel() == 0:
            break
        p = origins[idx] + t[idx, None] * dirs[idx]
        d = sdf(p)
        now_hit = d < config.hit_epsilon
        hit[idx[now_hit]] = True
        t[idx] = t[idx] + config.step_scale * d.clamp(min=0.0)
        keep = (~now_hit) & (t[idx] < t_far[idx])
        idx = idx[keep]
    return origins + t[:, None] * dirs, hit


def sdf_normals(sdf, points: Tensor, eps: float = 1e-3) -> Tensor:
    """Unit normals [N, 3] at `points` [N, 3] from central differences of `sdf`."""
    offsets = torch.eye(3, device=points.device, dtype=points.dtype) * eps  # [3, 3]
    plus = sdf((points[:, None, :] + offsets).reshape(-1, 3)).view(-1, 3)
    minus = sdf((points[:, None, :] - offsets).reshape(-1, 3)).view(-1, 3)
    return F.normalize(plus - minus, dim=-1)


def sample_backgrounds(batch_size: int, generator: torch.Generator | None = None,
                       white_prob: float = 0.5) -> Tensor:
    """[B, 3] solid background colours: white with probability `white_prob`, else uniform RGB."""
    white = torch.rand(batch_size, generator=generator) < white_prob
    colour = torch.rand(batch_size, 3, generator=generator)
    return torch.where(white[:, None], torch.ones_like(colour), colour)


def render_objects(
    object_ids: list[str],
    colours: list[str | None],
    cameras: Cameras,
    generator: torch.Generator | None = None,
    config: GTRenderConfig = GTRenderConfig(),
    backgrounds: Tensor | None = None,
    light_positions: Tensor | None = None,
) -> GTRender:
    """Render object `object_ids[b]` in colour `colours[b]` (None: default) from camera b.

    backgrounds: [B, 3] (default: sample_backgrounds); light_positions: [B, 3] (default:
    sample_light_positions near each camera). Images are cameras.height x cameras.width.
    """
    B = len(cameras)
    assert len(object_ids) == B and len(colours) == B
    if backgrounds is None:
        backgrounds = sample_backgrounds(B, generator, config.white_background_prob)
    if light_positions is None:
        light_positions = sample_light_positions(cameras.positions, generator, config.light_jitter)
    s = config.supersample
    H, W = cameras.height, cameras.width
    hi = cameras.with_size(H * s, W * s)
    origins, dirs = camera_rays(hi)  # [B, Hs, Ws, 3]
    rgb = backgrounds.view(B, 1, 1, 3).expand(B, H * s, W * s, 3).clone()
    mask = torch.zeros(B, H * s, W * s)
    # One sphere-tracing pass per object, over every image of that object.
    for object_id in sorted(set(object_ids)):
        spec = object_by_id(object_id)
        images = [b for b in range(B) if object_ids[b] == object_id]
        o = origins[images].reshape(-1, 3)
        d = dirs[images].reshape(-1, 3)
        points, hit = sphere_trace(spec.sdf, o, d, config)
        n_pix = H * s * W * s
        which = torch.tensor(images).repeat_interleave(n_pix)  # image index of every ray
        hit_idx = hit.nonzero().squeeze(-1)
        p = points[hit_idx]
        normals = sdf_normals(spec.sdf, p)
        light_dir = F.normalize(light_positions[which[hit_idx]] - p, dim=-1)
        albedo = _albedo_per_image(spec, p, which[hit_idx], colours)
        shaded = lambertian(albedo, normals, light_dir, config.ambient).clamp(0.0, 1.0)
        flat_rgb = rgb.view(-1, 3)
        flat_mask = mask.view(-1)
        # Global pixel index of each hit ray: image * n_pix + pixel.
        local = hit_idx % n_pix
        glob = which[hit_idx] * n_pix + local
        flat_rgb[glob] = shaded
        flat_mask[glob] = 1.0
    rgb = F.avg_pool2d(rgb.permute(0, 3, 1, 2), s).permute(0, 2, 3, 1)
    mask = F.avg_pool2d(mask[:, None], s)[:, 0]
    return GTRender(rgb=rgb.contiguous(), mask=mask, background=backgrounds)


def _albedo_per_image(spec, points: Tensor, image_index: Tensor, colours: list[str | None]) -> Tensor:
    """Albedo [N, 3] of `points` [N, 3], each with the main colour of its image."""
    out = torch.empty_like(points)
    for b in image_index.unique().tolist():
        sel = image_index == b
        out[sel] = spec.albedo(points[sel], colours[b])
    return out
