"""Volume rendering: rays, sampling, compositing, shading, backgrounds."""
from dream3d.renderer.background import (
    Background,
    MLPBackground,
    MLPBackgroundConfig,
    RandomSolidBackground,
    RandomSolidConfig,
    SolidBackground,
)
from dream3d.renderer.occupancy import OccupancyGrid, OccupancyGridConfig
from dream3d.renderer.rays import RayBundle, camera_rays, intersect_aabb
from dream3d.renderer.render import (
    NormalMethod,
    RenderConfig,
    RenderOutput,
    RayRenderOutput,
    SampleData,
    ShadingMode,
    render_cameras,
    render_rays,
)

__all__ = [
    "Background",
    "MLPBackground",
    "MLPBackgroundConfig",
    "NormalMethod",
    "OccupancyGrid",
    "OccupancyGridConfig",
    "RandomSolidBackground",
    "RandomSolidConfig",
    "RayBundle",
    "RenderConfig",
    "RenderOutput",
    "RayRenderOutput",
    "SampleData",
    "ShadingMode",
    "SolidBackground",
    "camera_rays",
    "intersect_aabb",
    "render_cameras",
    "render_rays",
]
