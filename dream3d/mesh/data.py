"""The mesh and the report of how it was cut from a field: the types every mesh stage shares."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dream3d.mesh.topology import vertex_normals


class EmptyMeshError(RuntimeError):
    """The field has nothing solid enough to mesh (and would also render as empty)."""




@dataclass(frozen=True)
class IsoLevelReport:
    """How the iso-level was chosen and how well the mesh agrees with the field's opacity."""

    level: float
    """The density level used."""
    proposed_level: float
    """The first level tried: the depth-surface level (see `depth_surface_level`) or the user's."""
    silhouette_iou: float
    """Mean IoU over the three axis views of mesh silhouette vs. field opacity > 0.5."""
    fell_back: bool
    """True when the proposed level failed the check and another level was chosen."""
    removed_area_fraction: float
    """Share of the surface area removed as floaters."""
    boundary_edge_fraction: float
    """Share of edges used by only one face (0 for a watertight mesh)."""
    bound_sides_touched: int
    """How many of the scene box's 6 sides the mesh reaches (the surface was cut by the box
    there); 4 or more usually means fog or background baked into the density."""
    filled_interior_voxels: int = 0
    """Grid voxels raised to make the interior solid (`MeshConfig.solid_interior`)."""


@dataclass(eq=False)  # numpy fields: compare meshes explicitly, not with ==
class Mesh:
    """A triangle mesh in the world frame (+Y up, +Z front, metres)."""

    vertices: np.ndarray
    """[V, 3] float32 positions in metres."""
    faces: np.ndarray
    """[F, 3] int64 vertex indices, counter-clockwise seen from outside (outward normals)."""
    vertex_colors: np.ndarray
    """[V, 3] float32 albedo in [0, 1], sRGB-encoded (as the field stores it)."""
    uv: np.ndarray | None = None
    """[V, 2] float32 texture coordinates, OpenGL/OBJ convention: v = 0 is the image's bottom row."""
    texture: np.ndarray | None = None
    """[H, W, 3] uint8 sRGB albedo texture (row 0 is the top of the image, v = 1)."""
    iso: IsoLevelReport | None = None
    """How the mesh was extracted (None for meshes built by hand)."""

    def vertex_normals(self) -> np.ndarray:
        """[V, 3] float32 unit normals, area-weighted average of the adjacent faces."""
        return vertex_normals(self.vertices, self.faces)
