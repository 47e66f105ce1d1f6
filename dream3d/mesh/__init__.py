"""Field -> triangle mesh: density grid, marching cubes at a checked iso-level, floaters removed,
albedo at the vertices, and optionally a UV atlas with the albedo baked into a texture.

The iso-level is the part users of other text-to-3D tools most often get wrong (an empty mesh,
or a mesh fatter or thinner than what the renderer shows). Here it is chosen from the
renderer's own quantity: rays are alpha-composited through the density grid along the three
axes, and the level is the median density where their transmittance first falls to 0.5 (the
surface the render shows). A fixed per-step rule such as `1 - exp(-sigma * step) = 0.5`
depends on the step and, for sharp fields, puts the surface ~0.4 voxel too far out; it is
kept as a fallback candidate. The level is then checked: the mesh's silhouettes along the three
axes must agree with the field's opacity (alpha-composited through the same density grid)
along those axes. When they disagree, candidate levels from the density distribution are
tried and the best-agreeing one is kept; the choice and its figures travel with the mesh
(`Mesh.iso`).

All arrays are numpy, in the world frame (+Y up, +Z front, metres).
"""
from __future__ import annotations

from dream3d.mesh.data import EmptyMeshError, IsoLevelReport, Mesh
from dream3d.mesh.topology import vertex_normals, face_components, remove_floaters, drop_unused_vertices, boundary_edge_fraction, marching_cubes, decimate, signed_volume
from dream3d.mesh.grid import grid_coordinates, query_field_chunked, field_device, density_grid, alpha_iso_level, depth_surface_level, opacity_masks
from dream3d.mesh.raster import rasterize_triangles, silhouette_masks, mask_iou
from dream3d.mesh.extract import MeshConfig, outside_region, fill_deep_interior, lowest_faithful_level, candidate_levels, voxel_silhouette_iou, extract_mesh
from dream3d.mesh.texture import BakeConfig, seen_albedo, bake_texture, sample_texture

__all__ = [
    "EmptyMeshError",
    "IsoLevelReport",
    "Mesh",
    "vertex_normals",
    "face_components",
    "remove_floaters",
    "drop_unused_vertices",
    "boundary_edge_fraction",
    "marching_cubes",
    "decimate",
    "signed_volume",
    "grid_coordinates",
    "query_field_chunked",
    "field_device",
    "density_grid",
    "alpha_iso_level",
    "depth_surface_level",
    "opacity_masks",
    "rasterize_triangles",
    "silhouette_masks",
    "mask_iou",
    "MeshConfig",
    "outside_region",
    "fill_deep_interior",
    "lowest_faithful_level",
    "candidate_levels",
    "voxel_silhouette_iou",
    "extract_mesh",
    "BakeConfig",
    "seen_albedo",
    "bake_texture",
    "sample_texture",
]
