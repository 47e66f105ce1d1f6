"""Fit a field to ground-truth renders of a primitives-world object: no diffusion.

Steps: (1) render train and held-out views of the exact object (GroundTruthField) with the
volume renderer, (2) fit a tri-plane (or hash-grid) field to random ray batches of the train
views over random solid backgrounds, updating the occupancy grid as it goes, (3) report PSNR
on the held-out views, the voxel IoU of the fitted density against the exact occupancy.
It checks that the renderer and fields can represent the world at all, apart from any prior;
`scripts/fit_reconstruction.py` is its command line.
"""
from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from dream3d.cameras import CameraSamplingConfig, Cameras, sample_cameras
from dream3d.config import OptimConfig, Representation
from dream3d.evaluation import field_voxel_iou, psnr
from dream3d.fields import (
    DensityActivation,
    Field,
    HashGridConfig,
    HashGridFieldConfig,
    TriplaneDecoderConfig,
    TriplaneField,
    TriplaneFieldConfig,
)
from dream3d.losses import distortion_loss, triplane_tv_loss
from dream3d.priors.multiview import sample_multiview_cameras
from dream3d.priors.world import GroundTruthField
from dream3d.renderer import (
    OccupancyGrid,
    OccupancyGridConfig,
    RayBundle,
    RenderConfig,
    SolidBackground,
    camera_rays,
    render_cameras,
    render_rays,
)
from dream3d.renderer.background import random_solid_colors
from dream3d.train import build_field, build_optimizer


@dataclass(frozen=True)
class FitConfig:
    """A reconstruction run: data, field, optimiser and budget."""

    object_id: str = "mushroom"
    """Primitives-world object to reconstruct (its default colours)."""
    field: Representation = Representation.TRIPLANE
    """Which field is fitted."""
    train_views: int = 32
    """Ground-truth views to fit."""
    multiview_sets: bool = False
    """Draw the train views as sets of 4 at 90 degree azimuth steps with a shared elevation, the
    layout the multi-view prior samples (train_views must then be a multiple of 4): how well a
    few such views pin an object down bounds a sample-then-reconstruct mode."""
    test_views: int = 8
    """Held-out views (other random cameras of the same distribution) for PSNR."""
    elevation_range_deg: tuple[float, float] = CameraSamplingConfig.elevation_range_deg
    """Elevations of the train and held-out views (the SDS camera range by default)."""
    image_size: int = 64
    """Pixels per side of every view."""
    steps: int = 1200
    """Optimiser steps."""
    rays_per_step: int = 4096
    """Random pixels (over all train views) per step."""
    num_samples: int = 64
    """Samples per ray when fitting and evaluating."""
    gt_samples: int = 256
    """Samples per ray for the ground-truth renders (the exact surface is sharp)."""
    lr: float = 0.01
    """Adam learning rate of the MLPs (and the hash table)."""
    plane_lr: float = 0.05
    """Adam learning rate of the tri-planes."""
    final_lr_fraction: float = 0.1
    """Learning rates decay exponentially to this fraction at the last step."""
    triplane_tv: float = 0.01
    """Weight of the tri-plane total variation. Images never see inside an opaque object, so
    without it the planes leave the inside of the mushroom's cap hollow; TV fills it
    (docs/decisions.md)."""
    distortion: float = 0.01
    """Weight of the distortion loss (sharper surfaces; see dream3d.losses.distortion_loss). Larger
    weights can collapse the field to empty (docs/decisions.md)."""
    triplane: TriplaneFieldConfig = dataclasses.field(
        default_factory=lambda: TriplaneFieldConfig(
            resolution=96,
            decoder=TriplaneDecoderConfig(channels=16, hidden_dim=32, density_activation=DensityActivation.TRUNC_EXP),
        )
    )
    """The tri-plane field (96 texels: at 64 a texel is 3 cm and the flat underside of the cap
    blurs over it)."""
    hashgrid: HashGridFieldConfig = dataclasses.field(
        default_factory=lambda: HashGridFieldConfig(
            encoding=HashGridConfig(num_levels=8, features_per_level=2, log2_table_size=16, base_resolution=16, max_resolution=256),
            hidden_dim=32,
            num_hidden_layers=1,
            use_tcnn=False,
        )
    )
    """The hash-grid field (small: the pure-torch encoding is slow on the CPU)."""
    occupancy: OccupancyGridConfig = dataclasses.field(default_factory=lambda: OccupancyGridConfig(update_every=16, warmup_steps=64))
    """Empty-space skipping during the fit."""
    iou_resolution: int = 128
    """Grid points per axis for the voxel IoU."""
    iou_densities: tuple[float, ...] = (5.0, 20.0, 50.0)
    """Fitted densities above which a voxel counts as inside; one voxel IoU is reported for each
    (20 per unit gives alpha 0.5 over one 1/28-unit step, about one sample interval at 64 samples)."""
    seed: int = 0
    """Seeds the cameras, the field and the ray batches."""
    log_every: int = 50
    """Print progress every this many steps."""


@dataclass
class GroundTruthViews:
    """All pixels of some views, flattened: N = views * H * W."""

    cameras: Cameras
    rays: RayBundle
    rgb_foreground: Tensor  # [N, 3] premultiplied
    opacity: Tensor  # [N, 1]

    def over(self, background: Tensor, index: Tensor | slice = slice(None)) -> Tensor:
        """Composite the selected pixels over background [n, 3] or [3]. Returns [n, 3]."""
        return self.rgb_foreground[index] + (1 - self.opacity[index]) * background


@torch.no_grad()
def render_ground_truth(gt: Field, cameras: Cameras, samples: int) -> GroundTruthViews:
    grid = OccupancyGrid(OccupancyGridConfig(resolution=64, dilation=1))
    grid.update(gt, step=0)  # warmup-free single refresh; dilation keeps the thin shell
    rays = camera_rays(cameras)
    config = RenderConfig(num_samples=samples, randomize=False, return_samples=False)
    out = render_rays(gt, rays, config, occupancy=grid)
    return GroundTruthViews(cameras, rays, out.rgb_foreground, out.opacity)


def fit(config: FitConfig, verbose: bool = True) -> tuple[dict[str, object], Field]:
    """Run the whole reconstruction; returns the measured figures and the fitted field."""
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    cams_cfg = CameraSamplingConfig(image_size=config.image_size, elevation_range_deg=config.elevation_range_deg)
    gt = GroundTruthField(config.object_id)
    t0 = time.perf_counter()
    if config.multiview_sets:
        if config.train_views % 4:
            raise ValueError(f"multiview_sets needs train_views in multiples of 4, got {config.train_views}")
        train_cameras = sample_multiview_cameras(cams_cfg, config.train_views // 4, 4, gen)
    else:
        train_cameras = sample_cameras(cams_cfg, config.train_views, gen)
    train = render_ground_truth(gt, train_cameras, config.gt_samples)
    test = render_ground_truth(gt, sample_cameras(cams_cfg, config.test_views, gen), config.gt_samples)
    gt_seconds = time.perf_counter() - t0

    model = build_field(config.field, config.triplane, config.hashgrid, gen)
    # Adam as in text-to-3D training (tri-planes in their own group), with a larger epsilon.
    optimizer = build_optimizer(model, OptimConfig(lr=config.lr, plane_lr=config.plane_lr, eps=1e-8))
    decay = config.final_lr_fraction ** (1.0 / max(config.steps, 1))
    scheduler = torch.optim.lr_scheduler.ExponentialLR(optimizer, decay)
    grid = OccupancyGrid(config.occupancy)
    render_config = RenderConfig(num_samples=config.num_samples, randomize=True, return_samples=config.distortion > 0)
    t1 = time.perf_counter()
    for step in range(config.steps):
        grid.update(model, step, gen)
        index = torch.randint(0, len(train.rays), (config.rays_per_step,), generator=gen)
        background = random_solid_colors(config.rays_per_step, generator=gen)  # [n, 3] per ray
        out = render_rays(model, train.rays[index], render_config, occupancy=grid, generator=gen)
        pred = out.rgb_foreground + (1 - out.opacity) * background
        loss = ((pred - train.over(background, index)) ** 2).mean()
        if isinstance(model, TriplaneField) and config.triplane_tv > 0:
            loss = loss + config.triplane_tv * triplane_tv_loss(model.planes)
        if config.distortion > 0:
            loss = loss + config.distortion * distortion_loss(out.samples)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if verbose and (step % config.log_every == 0 or step == config.steps - 1):
            print(
                f"step {step:5d}  loss {loss.item():.5f}  train psnr {-10 * math.log10(max(loss.item(), 1e-10)):.2f}  "
                f"occupied {grid.occupied_fraction:.3f}  {time.perf_counter() - t1:.1f}s",
                flush=True,
            )
    fit_seconds = time.perf_counter() - t1

    with torch.no_grad():
        eval_config = replace(render_config, randomize=False)
        white = SolidBackground()
        rendered = render_cameras(model, test.cameras, eval_config, white, occupancy=grid)
        test_psnr = psnr(rendered.rgb.reshape(-1, 3), test.over(torch.ones(3)))
        # White hides a missing white part (the mushroom's stem): also score over colours.
        colours = random_solid_colors(config.test_views, generator=torch.Generator().manual_seed(1))  # [V, 3]
        pixel_colours = colours.repeat_interleave(config.image_size**2, dim=0)  # [V*H*W, 3]
        fg = rendered.rgb.reshape(-1, 3) - (1 - rendered.opacity.reshape(-1, 1))  # premultiplied foreground
        test_psnr_colour = psnr(fg + (1 - rendered.opacity.reshape(-1, 1)) * pixel_colours, test.over(pixel_colours))
    result = {
        "field": config.field.value,
        "steps": config.steps,
        "gt_render_s": round(gt_seconds, 1),
        "fit_s": round(fit_seconds, 1),
        "test_psnr_db": round(test_psnr, 2),
        "test_psnr_colour_bg_db": round(test_psnr_colour, 2),
        "voxel_iou": {
            f"density>{d:g}": round(field_voxel_iou(model, gt.occupancy, d, config.iou_resolution), 4)
            for d in config.iou_densities
        },
        "voxel_iou_filled": {
            f"density>{d:g}": round(field_voxel_iou(model, gt.occupancy, d, config.iou_resolution, fill_cavities=True), 4)
            for d in config.iou_densities
        },
        "occupied_fraction": round(grid.occupied_fraction, 3),
    }
    if verbose:
        print(json.dumps(result), flush=True)
    return result, model
