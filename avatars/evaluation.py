"""How well a tri-plane avatar reproduces its engine avatar, and the dataset's portrait render.

`evaluate_fit` renders the engine's AvatarField and the fitted TriplaneField with the same
cameras and settings (dream3d.renderer.render_cameras, white background) and reports PSNR in
albedo and lambertian shading (light at the camera), the voxel IoU of {density > surface
density} against the engine's occupancy, and optionally the mesh IoU (dream3d.mesh marching
cubes, dream3d.evaluation.volumetric_iou).
"""
from __future__ import annotations

import time

import torch
from torch import Tensor

from avatars.engine import AvatarField, AvatarSDF
from avatars.triplane import AvatarTriplaneConfig
from dream3d.cameras import CameraSamplingConfig, Cameras, make_cameras, sample_cameras
from dream3d.evaluation import field_mesh_iou, field_voxel_iou, psnr
from dream3d.fields import Field
from dream3d.renderer import (
    OccupancyGrid,
    OccupancyGridConfig,
    RenderConfig,
    ShadingMode,
    SolidBackground,
    render_cameras,
)

PORTRAIT_SIZE = 64
"""Pixels a side of the dataset's frontal portrait."""


def occupancy_grid(field: Field, resolution: int = 64) -> OccupancyGrid:
    """A one-shot empty-space grid for rendering a fixed field (dilated: thin parts survive)."""
    grid = OccupancyGrid(OccupancyGridConfig(resolution=resolution, dilation=1))
    with torch.no_grad():  # its own generator: the same grid (and render) whatever ran before
        grid.update(field, step=0, generator=torch.Generator().manual_seed(0))
    return grid


def render(field: Field, cameras: Cameras, shading: ShadingMode = ShadingMode.LAMBERTIAN, num_samples: int = 128,
           occupancy: OccupancyGrid | None = None) -> Tensor:
    """[B, H, W, 3] renders over white; lambertian lights sit at the cameras."""
    config = RenderConfig(num_samples=num_samples, randomize=False, return_samples=False)
    occupancy = occupancy if occupancy is not None else occupancy_grid(field)
    with torch.no_grad():
        out = render_cameras(field, cameras, config, SolidBackground(), shading, cameras.positions, occupancy)
    return out.rgb.clamp(0.0, 1.0)


def portrait_cameras(size: int = PORTRAIT_SIZE) -> Cameras:
    """One camera straight in front (+Z), framing the head and shoulders."""
    one = torch.ones(1)
    return make_cameras(0.0 * one, 0.0 * one, 3.1 * one, 36.0 * one, size, size)


def render_portrait(field: Field, size: int = PORTRAIT_SIZE, num_samples: int = 128) -> Tensor:
    """[size, size, 3] uint8 frontal lambertian render over white."""
    image = render(field, portrait_cameras(size), ShadingMode.LAMBERTIAN, num_samples)[0]
    return (image * 255.0).round().to(torch.uint8)


def evaluation_cameras(views: int = 8, image_size: int = 64, seed: int = 1234) -> Cameras:
    """Random cameras from dream3d's training distribution (all around, elevation -10..80)."""
    return sample_cameras(CameraSamplingConfig(image_size=image_size), views, torch.Generator().manual_seed(seed))


def voxel_iou(field: Field, avatar: AvatarSDF, threshold: float, resolution: int = 128) -> float:
    """IoU of {field density > threshold} with the engine's occupancy on a resolution^3 grid."""
    return field_voxel_iou(field, avatar.occupancy, threshold, resolution)


def mesh_iou(field: Field, avatar: AvatarSDF, resolution: int = 96) -> float:
    """IoU of the field's dream3d mesh (auto iso-level) with the engine's solid."""
    return field_mesh_iou(field, avatar.occupancy, resolution)


def evaluate_fit(avatar: AvatarSDF, fitted: Field, model: AvatarTriplaneConfig = AvatarTriplaneConfig(),
                 views: int = 8, image_size: int = 64, num_samples: int = 128, with_mesh: bool = False,
                 iou_resolution: int = 128) -> dict[str, float]:
    """PSNR (albedo and lambertian) over `views` random cameras and voxel (and mesh) IoU."""
    t0 = time.perf_counter()
    truth = AvatarField(avatar, sharpness=model.sharpness)
    cameras = evaluation_cameras(views, image_size)
    gt_grid, fit_grid = occupancy_grid(truth), occupancy_grid(fitted)
    result: dict[str, float] = {}
    for shading in (ShadingMode.ALBEDO, ShadingMode.LAMBERTIAN):
        a = render(truth, cameras, shading, num_samples, gt_grid)
        b = render(fitted, cameras, shading, num_samples, fit_grid)
        result[f"psnr_{shading.value}"] = psnr(a.numpy(), b.numpy())
    result["voxel_iou"] = voxel_iou(fitted, avatar, model.surface_density, iou_resolution)
    if with_mesh:
        result["mesh_iou"] = mesh_iou(fitted, avatar)
    result["seconds"] = time.perf_counter() - t0
    return result
