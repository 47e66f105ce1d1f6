"""The renderer's one entry: `render_cameras(field, cameras, ...) -> RenderOutput`.

Steps for each chunk of rays: (1) rays from the cameras, (2) stratified samples inside the
box, minus empty cells of the occupancy grid (only the stretch of each ray inside the box of
the occupied cells is laid out), (3) the field at the valid samples (no-grad renders with a
shade_weight_threshold query density front to back and stop rays that have gone opaque), (4)
normals from the density gradient where shading or the caller needs them, (5) per-sample
shading, (6) alpha compositing; then (7) the background behind what is not opaque.

Video renders (scripts/bench_video.py): the avatar CLI's turntable, 48 frames of 128 px at 96
samples, one thread, took 11.6 s before the occupied box, the early stop and an in-place
cell lookup, and 8.0 s after (median of 4 each, interleaved); the largest pixel change on the
frames was at 2 pixels a grid cell had missed, which the new render gets right.

Normals: by default the exact density gradient, `Field.forward_with_density_gradient`:
autograd with `create_graph=True` while training (the orientation loss and lit shading train
the field through a double backward), or a field's closed form that agrees with it. The
tri-plane has one (`sample_triplane_with_derivatives`): autograd's double backward through
grid_sample was half of an SDS step, and the closed form made the default step 25 % shorter
(181 -> 137 ms median, table prompt, 2 threads, steps 40-160 interleaved). Central finite
differences (`NormalMethod.FINITE_DIFFERENCE`, 6 extra density queries per sample, first-order
autograd only) remain for fields without double backward. scripts/bench_render.py on this CPU
(tri-plane, 64x64, mushroom occupancy, forward + backward): exact 59 ms, finite differences 107 ms.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass

import torch
from torch import Tensor

from dream3d.cameras import Cameras
from dream3d.fields.base import Field, FieldOutput
from dream3d.renderer import nerfacc_backend
from dream3d.renderer.background import Background
from dream3d.renderer.compositing import composite_depth, weights_from_density
from dream3d.renderer.occupancy import OccupancyGrid
from dream3d.renderer.rays import RayBundle, camera_rays
from dream3d.renderer.sampling import stratified_samples
from dream3d.renderer.shading import AMBIENT, lambertian, textureless


class ShadingMode(enum.Enum):
    """How a sample's colour is made (DreamFusion samples among these during training)."""

    ALBEDO = "albedo"
    """The field's albedo as is: no light, no normals needed."""
    LAMBERTIAN = "lambertian"
    """Albedo lit by the point light (diffuse + ambient)."""
    TEXTURELESS = "textureless"
    """A white surface lit by the point light: geometry only."""


class NormalMethod(enum.Enum):
    """How normals are computed from the density field."""

    FINITE_DIFFERENCE = "finite_difference"
    """Central differences, 6 extra density queries per sample; works for any field."""
    AUTOGRAD = "autograd"
    """The exact gradient, `Field.forward_with_density_gradient`: autograd with a double
    backward while training, or a field's closed form that agrees with it (the tri-plane's)."""


@dataclass(frozen=True)
class RenderConfig:
    """How rays are sampled and composited."""

    num_samples: int = 64
    """Stratified samples per ray inside the box (before empty-space skipping)."""
    bound: float = 1.0
    """The scene box is [-bound, bound]^3; nothing outside it is rendered."""
    near: float = 0.05
    """No sample closer than this to the camera."""
    randomize: bool = True
    """Jitter samples inside their intervals (training); False: interval midpoints (evaluation)."""
    normal_method: NormalMethod = NormalMethod.AUTOGRAD
    """How normals are computed when needed."""
    finite_difference_eps: float = 1.0 / 64
    """Step of the central differences, in scene units (about one tri-plane texel at R = 64)."""
    compute_normals: bool = False
    """Compute normals even in albedo shading (they always are for lambertian / textureless)."""
    return_samples: bool = True
    """Keep the per-sample weights, normals and directions (the orientation loss needs them);
    turn off for large no-grad renders such as videos."""
    chunk_rays: int = 16384
    """Rays per chunk: bounds the memory of one step (a 256x256 frame is 4 chunks)."""
    ambient: float = AMBIENT
    """Ambient share of the light in lambertian / textureless shading."""
    use_nerfacc: bool | None = None
    """True: composite with nerfacc (CUDA); False: pure torch; None: nerfacc when available."""
    skip_outside_occupied_box: bool = True
    """With an occupancy grid, sample only the stretch of each ray inside the box of the
    occupied cells (the samples elsewhere would all be skipped as empty anyway; the render is
    the same and cheaper). False samples the whole scene box: the reference the tests compare."""
    shade_weight_threshold: float = 0.0
    """No-grad renders only (videos, previews): query density first, front to back in slabs of
    `density_slab` samples, stopping a ray once the light left to it falls below this (every
    later sample's weight would be smaller); then compute albedo and normals only at samples
    whose compositing weight exceeds this. A skipped sample adds at most this much colour, a
    stopped ray at most this much opacity. 0: query and shade every sample (training always does)."""
    density_slab: int = 16
    """Samples per ray queried together before rays that have gone opaque are dropped (with
    shade_weight_threshold > 0): smaller stops sooner but calls the field more often."""


@dataclass
class SampleData:
    """The valid samples of a render, packed (M = number of samples the field was queried at)."""

    weights: Tensor
    """[M] compositing weights."""
    normals: Tensor | None
    """[M, 3] unit normals (None when none were computed)."""
    directions: Tensor
    """[M, 3] unit view directions of the samples' rays (camera -> scene)."""
    ray_indices: Tensor
    """[M] index of each sample's ray in B * H * W row-major order (samples of a ray are
    contiguous and sorted by distance)."""
    t_starts: Tensor
    """[M] start of each sample's interval along its ray."""
    t_ends: Tensor
    """[M] end of each sample's interval along its ray."""
    num_rays: int
    """B * H * W: for averaging per-ray sums."""


@dataclass
class RenderOutput:
    """Images of a batch of cameras."""

    rgb: Tensor
    """[B, H, W, 3] colour composited over the background, in [0, 1]."""
    opacity: Tensor
    """[B, H, W, 1] accumulated alpha, sum of the weights."""
    depth: Tensor
    """[B, H, W, 1] expected distance along the ray of what was hit (0 where nothing was)."""
    normal: Tensor
    """[B, H, W, 3] weight-composited world-space normals (zeros where not computed)."""
    background: Tensor
    """[B, H, W, 3] the background colours used."""
    samples: SampleData | None
    """Per-sample data for the regularisers (None when RenderConfig.return_samples is False)."""


def finite_difference_normals(field: Field, points: Tensor, eps: float) -> Tensor:
    """Unit normals -grad(density)/|grad(density)| at points [M, 3] by central differences of
    step `eps`. Returns [M, 3]. Parameter gradients flow through them (first order only)."""
    offsets = torch.eye(3, device=points.device, dtype=points.dtype) * eps  # [3, 3]
    shifted = torch.cat([points[:, None, :] + offsets, points[:, None, :] - offsets], dim=1)  # [M, 6, 3]
    density = field.query_density(shifted.reshape(-1, 3)).reshape(-1, 6)  # [M, 6]
    grad = (density[:, :3] - density[:, 3:]) / (2 * eps)  # [M, 3]
    return -torch.nn.functional.normalize(grad, dim=-1, eps=1e-12)


def _field_with_exact_normals(field: Field, points: Tensor) -> tuple[FieldOutput, Tensor]:
    """field(points) and unit normals -grad(density) from the same evaluation. points: [M, 3]."""
    out, grad = field.forward_with_density_gradient(points)
    return out, -torch.nn.functional.normalize(grad, dim=-1, eps=1e-12)


@torch.no_grad()
def density_front_to_back(field: Field, points: Tensor, valid: Tensor, deltas: Tensor, stop_transmittance: float,
                          slab: int) -> Tensor:
    """Density at the valid samples, queried `slab` samples per ray at a time from the front; a
    ray whose transmittance has fallen below `stop_transmittance` is not queried any further
    (its later samples read 0).

    points [N, W, 3], valid [N, W], deltas [N, W] -> density [N, W] (0 where not queried).
    """
    n, width = valid.shape
    density = points.new_zeros(n, width)
    optical_depth = points.new_zeros(n)  # [N] sum of density * delta so far
    max_depth = -math.log(stop_transmittance)
    for start in range(0, width, slab):
        cols = slice(start, start + slab)
        query = valid[:, cols] & (optical_depth < max_depth)[:, None]  # [N, s]
        if not query.any():
            continue
        slab_density = density[:, cols]  # a view: filled in place
        slab_density[query] = field.query_density(points[:, cols][query])[:, 0]
        optical_depth += (slab_density * deltas[:, cols]).sum(dim=-1)
    return density


@dataclass
class RayRenderOutput:
    """What `render_rays` returns for N rays, before any background."""

    rgb_foreground: Tensor
    """[N, 3] premultiplied colour: composite over a background b as rgb + (1 - opacity) * b."""
    opacity: Tensor
    """[N, 1] accumulated alpha."""
    depth: Tensor
    """[N, 1] expected distance of what was hit (0 where nothing was)."""
    normal: Tensor
    """[N, 3] weight-composited normals (zeros where not computed)."""
    samples: SampleData | None
    """Per-sample data (None when RenderConfig.return_samples is False)."""


def _render_chunk(
    field: Field,
    rays: RayBundle,
    ray_offset: int,
    config: RenderConfig,
    shading: ShadingMode,
    light_positions: Tensor | None,
    occupancy: OccupancyGrid | None,
    generator: torch.Generator | None,
) -> RayRenderOutput:
    """One chunk of N rays; light_positions: [N, 3] per ray or None."""
    n = len(rays)
    samples = stratified_samples(
        rays, config.num_samples, config.bound, config.near, config.randomize, occupancy, generator,
        config.skip_outside_occupied_box,
    )
    valid = samples.valid  # [N, S]
    points = samples.points[valid]  # [M, 3]
    need_normals = shading is not ShadingMode.ALBEDO or config.compute_normals
    use_nerfacc = config.use_nerfacc if config.use_nerfacc is not None else nerfacc_backend.available()
    ray_index_local = valid.nonzero(as_tuple=True)[0]  # [M] chunk-local ray of each sample

    def weights_of_dense(density: Tensor) -> Tensor:  # [N, W], 0 off the valid samples -> [N, W]
        if use_nerfacc:
            return nerfacc_backend.weights_from_density_nerfacc(density, samples.t_starts, samples.t_ends, valid)[0]
        return weights_from_density(density, samples.deltas)[0]

    def weights_of(sample_density: Tensor) -> Tensor:  # [M] -> [N, W]
        density = torch.zeros(valid.shape, device=points.device, dtype=sample_density.dtype)
        return weights_of_dense(density.masked_scatter(valid, sample_density))  # empty space is 0

    if config.shade_weight_threshold > 0 and not torch.is_grad_enabled():
        # Density first; albedo and normals only where they can show (most samples lie
        # behind the surface or in thin fog, and shading is the expensive part).
        weights = weights_of_dense(density_front_to_back(field, samples.points, valid, samples.deltas,
                                                         config.shade_weight_threshold, config.density_slab))
        shaded = weights[valid] > config.shade_weight_threshold  # [M]
        points, ray_index_local = points[shaded], ray_index_local[shaded]
    else:
        weights, shaded = None, None
    normals = None
    if need_normals and config.normal_method is NormalMethod.AUTOGRAD:
        # One field evaluation serves both the colour and the gradient w.r.t. the points.
        out, normals = _field_with_exact_normals(field, points)
    else:
        out = field(points)  # density [M, 1], albedo [M, 3]
        if need_normals:
            normals = (finite_difference_normals(field, points, config.finite_difference_eps)
                       if points.shape[0] > 0 else points.new_zeros(0, 3))
    if weights is None:
        weights = weights_of(out.density[:, 0])  # [N, S]
        w = weights[valid]  # [M]
    else:
        w = weights[valid][shaded]

    if shading is ShadingMode.ALBEDO:
        colors = out.albedo
    else:
        if light_positions is None:
            raise ValueError(f"{shading} shading needs light positions")
        light_dir = torch.nn.functional.normalize(light_positions[ray_index_local] - points, dim=-1)
        if shading is ShadingMode.LAMBERTIAN:
            colors = lambertian(out.albedo, normals, light_dir, config.ambient)
        else:
            colors = textureless(normals, light_dir, config.ambient)

    opacity = weights.sum(dim=-1, keepdim=True)  # [N, 1]
    rgb = torch.zeros(n, 3, device=points.device, dtype=colors.dtype).index_add(0, ray_index_local, w[:, None] * colors)
    depth = composite_depth(weights, samples.t_mid, opacity)
    normal = torch.zeros(n, 3, device=points.device, dtype=weights.dtype)
    if normals is not None:
        normal = normal.index_add(0, ray_index_local, w[:, None] * normals)
    sample_data = None
    if config.return_samples:
        t_starts, t_ends = samples.t_starts[valid], samples.t_ends[valid]
        if shaded is not None:
            t_starts, t_ends = t_starts[shaded], t_ends[shaded]
        sample_data = SampleData(
            weights=w,
            normals=normals,
            directions=rays.directions[ray_index_local],
            ray_indices=ray_index_local + ray_offset,
            t_starts=t_starts,
            t_ends=t_ends,
            num_rays=n,
        )
    return RayRenderOutput(rgb, opacity, depth, normal, sample_data)


def render_rays(
    field: Field,
    rays: RayBundle,
    config: RenderConfig,
    shading: ShadingMode = ShadingMode.ALBEDO,
    light_positions: Tensor | None = None,
    occupancy: OccupancyGrid | None = None,
    generator: torch.Generator | None = None,
) -> RayRenderOutput:
    """Render N arbitrary rays (e.g. a random batch of pixels from many views), in chunks.

    light_positions: [N, 3], the point light of each ray (lambertian / textureless only).
    """
    parts = []
    for start in range(0, len(rays), config.chunk_rays):
        stop = start + config.chunk_rays
        lights = None if light_positions is None else light_positions[start:stop]
        parts.append(_render_chunk(field, rays[start:stop], start, config, shading, lights, occupancy, generator))
    samples = None
    if config.return_samples:
        pieces = [p.samples for p in parts]
        normals = None if pieces[0].normals is None else torch.cat([s.normals for s in pieces])
        samples = SampleData(
            weights=torch.cat([s.weights for s in pieces]),
            normals=normals,
            directions=torch.cat([s.directions for s in pieces]),
            ray_indices=torch.cat([s.ray_indices for s in pieces]),
            t_starts=torch.cat([s.t_starts for s in pieces]),
            t_ends=torch.cat([s.t_ends for s in pieces]),
            num_rays=len(rays),
        )
    return RayRenderOutput(
        rgb_foreground=torch.cat([p.rgb_foreground for p in parts]),
        opacity=torch.cat([p.opacity for p in parts]),
        depth=torch.cat([p.depth for p in parts]),
        normal=torch.cat([p.normal for p in parts]),
        samples=samples,
    )


def render_cameras(
    field: Field,
    cameras: Cameras,
    config: RenderConfig,
    background: Background,
    shading: ShadingMode = ShadingMode.ALBEDO,
    light_positions: Tensor | None = None,
    occupancy: OccupancyGrid | None = None,
    generator: torch.Generator | None = None,
) -> RenderOutput:
    """Render every camera of `cameras` through `field`.

    light_positions: [B, 3] point lights (see shading.sample_light_positions), needed for
    lambertian / textureless shading. Rays are processed in chunks of `config.chunk_rays`;
    wrap the call in torch.no_grad() for large frames (video) so chunks are freed as they go.
    """
    b, h, w = len(cameras), cameras.height, cameras.width
    rays = camera_rays(cameras)  # N = B*H*W, image-major
    ray_lights = None if light_positions is None else light_positions.repeat_interleave(h * w, dim=0)  # [N, 3]
    out = render_rays(field, rays, config, shading, ray_lights, occupancy, generator)
    bg = background(rays.directions.reshape(b, h, w, 3), generator)  # [B, H, W, 3]
    opacity = out.opacity.reshape(b, h, w, 1)
    rgb = out.rgb_foreground.reshape(b, h, w, 3) + (1.0 - opacity) * bg
    return RenderOutput(
        rgb=rgb,
        opacity=opacity,
        depth=out.depth.reshape(b, h, w, 1),
        normal=out.normal.reshape(b, h, w, 3),
        background=bg,
        samples=out.samples,
    )
