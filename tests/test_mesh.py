"""Field -> mesh: radius, automatic iso-level that matches the render, empty fields, floaters, baking."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dream3d.fields.base import Field, FieldOutput
from dream3d.mesh import (
    EmptyMeshError,
    Mesh,
    MeshConfig,
    bake_texture,
    extract_mesh,
    opacity_masks,
    density_grid,
    sample_texture,
    silhouette_masks,
    mask_iou,
    seen_albedo,
    signed_volume,
    BakeConfig,
)

RED, BLUE = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])


class Spheres(Field):
    """Solid balls of constant density; albedo red above y = 0, blue below."""

    def __init__(self, centres, radii, density: float = 200.0):
        super().__init__()
        self.centres = torch.tensor(centres, dtype=torch.float32)  # [K, 3]
        self.radii = torch.tensor(radii, dtype=torch.float32)  # [K]
        self.density = density

    def forward(self, points):
        d = torch.cdist(points, self.centres) - self.radii  # [N, K]
        inside = (d < 0).any(dim=-1, keepdim=True).float()
        albedo = torch.where(points[:, 1:2] > 0, RED, BLUE)
        return FieldOutput(inside * self.density, albedo)


class GaussianFog(Field):
    """A soft blob: density peak * exp(-r^2 / (2 s^2)), grey."""

    def __init__(self, peak: float, sigma: float):
        super().__init__()
        self.peak, self.sigma = peak, sigma

    def forward(self, points):
        r2 = (points**2).sum(-1, keepdim=True)
        return FieldOutput(self.peak * torch.exp(-r2 / (2 * self.sigma**2)), torch.full_like(points, 0.5))


def test_sphere_mesh_has_the_right_radius_and_matches_the_render():
    config = MeshConfig(resolution=48)
    mesh = extract_mesh(Spheres([[0.0, 0.0, 0.0]], [0.5]), config)
    voxel = 2.0 / (config.resolution - 1)
    radius = np.linalg.norm(mesh.vertices, axis=1)
    assert mesh.vertices.dtype == np.float32 and mesh.faces.dtype == np.int64
    assert np.abs(radius - 0.5).max() <= voxel
    assert mesh.iso.silhouette_iou >= 0.95 and not mesh.iso.fell_back
    assert mesh.iso.boundary_edge_fraction == 0.0  # closed surface
    # Outward normals: positive enclosed volume, close to 4/3 pi r^3.
    tri = mesh.vertices[mesh.faces].astype(np.float64)
    volume = np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0
    assert volume == pytest.approx(4.0 / 3.0 * np.pi * 0.125, rel=0.1)
    # Vertex albedo follows the field: red on top, blue at the bottom.
    top, bottom = mesh.vertices[:, 1] > 0.1, mesh.vertices[:, 1] < -0.1
    assert np.allclose(mesh.vertex_colors[top], [1, 0, 0]) and np.allclose(mesh.vertex_colors[bottom], [0, 0, 1])


def test_dense_meshes_are_simplified_without_changing_the_shape():
    """A 96^3 sphere (~26k faces) capped at 3000 faces keeps its radius, volume and closed surface."""
    full = extract_mesh(Spheres([[0.0, 0.0, 0.0]], [0.6]), MeshConfig(resolution=96, max_faces=None))
    light = extract_mesh(Spheres([[0.0, 0.0, 0.0]], [0.6]), MeshConfig(resolution=96, max_faces=3000))
    assert full.faces.shape[0] > 20000 and 2000 <= light.faces.shape[0] <= 3000
    assert light.iso.boundary_edge_fraction == 0.0
    assert np.abs(np.linalg.norm(light.vertices, axis=1) - 0.6).max() <= 2.0 / 95

    def volume(m):
        tri = m.vertices[m.faces].astype(np.float64)
        return np.einsum("ij,ij->i", tri[:, 0], np.cross(tri[:, 1], tri[:, 2])).sum() / 6.0

    assert volume(light) == pytest.approx(volume(full), rel=0.02)
    assert light.vertex_colors.shape == light.vertices.shape


def test_soft_field_gets_a_level_that_matches_the_rendered_opacity():
    # Peak density 12 is below the alpha-0.5 level for a voxel step (~16), so that fixed rule
    # would give an empty mesh -- yet the blob renders nearly opaque through its middle.
    field = GaussianFog(peak=12.0, sigma=0.3)
    config = MeshConfig(resolution=40)
    mesh = extract_mesh(field, config)
    assert mesh.faces.shape[0] > 100
    assert mesh.iso.level < 12.0 and mesh.iso.silhouette_iou >= 0.9
    grid = density_grid(field, config.resolution, 1.0, config.chunk_size)
    target = opacity_masks(grid, 2.0 / (config.resolution - 1))
    sil = silhouette_masks(mesh.vertices, mesh.faces, config.resolution, 1.0)
    assert min(mask_iou(s, t, tolerance_px=2) for s, t in zip(sil, target)) >= 0.85


class SpongeBall(Field):
    """What score distillation often makes: a ball of radius 0.6 whose dense skin (0.55 < r <
    0.6, red) wraps a noisy, less dense inside (green, never seen in a render)."""

    def forward(self, points):
        r = points.norm(dim=-1, keepdim=True)
        noise = torch.sin(23.0 * points[:, :1]) * torch.sin(19.0 * points[:, 1:2]) * torch.sin(29.0 * points[:, 2:])
        density = torch.where(r < 0.55, 8.0 + 6.0 * noise, torch.full_like(r, 200.0)) * (r < 0.6).float()
        albedo = torch.where(r > 0.55, RED, torch.tensor([0.0, 1.0, 0.0]))
        return FieldOutput(density, albedo.expand(points.shape[0], 3))


def test_spongy_inside_still_meshes_as_one_solid():
    field = SpongeBall()
    config = MeshConfig(resolution=64, max_faces=None, iso_level=12.0)  # a level between inside and skin
    solid = extract_mesh(field, config)
    hollow = extract_mesh(field, MeshConfig(resolution=64, max_faces=None, iso_level=12.0, solid_interior=False))
    ball = 4.0 / 3.0 * np.pi * 0.6**3
    assert signed_volume(solid.vertices, solid.faces) == pytest.approx(ball, rel=0.08)
    assert signed_volume(hollow.vertices, hollow.faces) < 0.7 * ball  # skin and sponge: inner surfaces
    assert solid.iso.filled_interior_voxels > 0 and solid.iso.boundary_edge_fraction == 0.0
    # The texture shows the red skin, not the unseen green inside, even on a mesh under the skin.
    inner = np.array([[0.53, 0.0, 0.0], [0.0, -0.53, 0.0], [0.0, 0.0, 0.53]], np.float32)
    colours = seen_albedo(field, inner, inner / 0.53, BakeConfig())
    assert np.allclose(colours, [1.0, 0.0, 0.0], atol=0.05)
    assert np.allclose(field.query_albedo(torch.from_numpy(inner)).numpy(), [0.0, 1.0, 0.0])


def test_seen_albedo_of_a_trainable_field_where_the_march_meets_nothing():
    """Baking outside torch.no_grad, on empty space: the albedo at the point, as plain numbers."""
    from dream3d.fields import BlobShape, DensityBlobConfig, TriplaneDecoderConfig, TriplaneField, TriplaneFieldConfig

    blob = DensityBlobConfig(strength=10.0, radius=0.5, shape=BlobShape.LINEAR)  # empty far from the centre
    field = TriplaneField(TriplaneFieldConfig(resolution=8, decoder=TriplaneDecoderConfig(channels=4, blob=blob)))
    far = np.array([[0.95, 0.95, 0.95]], np.float32)
    colours = seen_albedo(field, far, far / np.linalg.norm(far), BakeConfig())
    with torch.no_grad():
        expected = field.query_albedo(torch.from_numpy(far)).numpy()
    assert np.allclose(colours, expected, atol=1e-6)


def test_empty_field_raises_a_clear_error():
    with pytest.raises(EmptyMeshError, match="no surface"):
        extract_mesh(Spheres([[0.0, 0.0, 0.0]], [0.5], density=0.0), MeshConfig(resolution=24))


def test_floaters_are_removed():
    # The small ball holds ~0.8 % of the surface area: a floater by the 99 % rule.
    field = Spheres([[0.0, 0.0, 0.0], [0.8, 0.8, 0.8]], [0.5, 0.045])
    mesh = extract_mesh(field, MeshConfig(resolution=64))
    assert np.linalg.norm(mesh.vertices, axis=1).max() < 0.56  # nothing left near the small ball
    assert 0.0 < mesh.iso.removed_area_fraction < 0.01


def test_baked_texture_reproduces_the_albedo_pattern():
    field = Spheres([[0.0, 0.0, 0.0]], [0.5])
    mesh = extract_mesh(field, MeshConfig(resolution=32))
    textured = bake_texture(mesh, field, texture_size=256)
    assert textured.texture.shape == (256, 256, 3) and textured.texture.dtype == np.uint8
    assert textured.uv.shape == (textured.vertices.shape[0], 2)
    assert (textured.uv >= 0).all() and (textured.uv <= 1).all()
    colours = sample_texture(textured.texture, textured.uv)  # bilinear, as a viewer would
    y = textured.vertices[:, 1]
    away = np.abs(y) > 0.05  # the red/blue boundary runs through triangles at y = 0
    expected = np.where(y[:, None] > 0, [1.0, 0.0, 0.0], [0.0, 0.0, 1.0])
    assert np.abs(colours - expected)[away].max() < 0.05
    # Same surface: seams only duplicate vertices.
    assert set(map(tuple, np.round(textured.vertices, 5))) == set(map(tuple, np.round(mesh.vertices, 5)))


def test_volumetric_iou_of_a_sphere_mesh():
    from dream3d.evaluation import volumetric_iou

    mesh = extract_mesh(Spheres([[0.0, 0.0, 0.0]], [0.5]), MeshConfig(resolution=64))
    same = volumetric_iou(mesh, lambda p: np.linalg.norm(p, axis=-1) < 0.5, resolution=80)
    shifted = volumetric_iou(mesh, lambda p: np.linalg.norm(p - [0.25, 0.0, 0.0], axis=-1) < 0.5, resolution=80)
    assert same > 0.93
    assert shifted < 0.6


def test_primitives_world_object_meshes_faithfully_and_rotation_search_finds_its_front():
    from dream3d.evaluation import volumetric_iou
    from dream3d.priors.world import GroundTruthField

    # IoU is measured on a 100^3 lattice, not the 64^3 one the mesh came from (that would flatter it).
    field = GroundTruthField("mushroom")
    mesh = extract_mesh(field, MeshConfig(resolution=64))
    occupancy = lambda p: field.occupancy(torch.as_tensor(p, dtype=torch.float32)).numpy()  # noqa: E731
    assert volumetric_iou(mesh, occupancy, resolution=100) >= 0.93
    # The table (1.5 m x 1.0 m top) turned a quarter about +Y no longer fits, unless the search undoes it.
    table = GroundTruthField("table")
    mesh = extract_mesh(table, MeshConfig(resolution=64))
    occupancy = lambda p: table.occupancy(torch.as_tensor(p, dtype=torch.float32)).numpy()  # noqa: E731
    upright = volumetric_iou(mesh, occupancy, resolution=64)
    quarter_turn = np.array([[0, 0, 1], [0, 1, 0], [-1, 0, 0]], np.float32)  # 90 degrees about +Y
    turned = Mesh(mesh.vertices @ quarter_turn.T, mesh.faces, mesh.vertex_colors)
    plain = volumetric_iou(turned, occupancy, resolution=64)
    searched = volumetric_iou(turned, occupancy, resolution=64, rotations_about_y=(0, 90, 180, 270))
    assert searched == pytest.approx(upright, abs=0.02) and searched > plain + 0.2


def test_uv_seams_do_not_split_normals():
    field = Spheres([[0.0, 0.0, 0.0]], [0.5])
    mesh = extract_mesh(field, MeshConfig(resolution=24))
    textured = bake_texture(mesh, field, texture_size=64)
    assert textured.vertices.shape[0] > mesh.vertices.shape[0]  # the atlas did split vertices
    # Every copy of a vertex gets the normal the unsplit surface has there.
    unsplit = dict(zip(map(tuple, mesh.vertices), mesh.vertex_normals()))
    expected = np.stack([unsplit[tuple(v)] for v in textured.vertices])
    assert np.allclose(textured.vertex_normals(), expected, atol=1e-5)


def test_mesh_silhouettes_match_the_volume_renderer():
    """What the user sees: the exported mesh covers the same pixels as the field's render."""
    from dream3d.cameras import orbit_cameras
    from dream3d.evaluation import mesh_masks
    from dream3d.mesh import mask_iou
    from dream3d.priors.world import GroundTruthField
    from dream3d.renderer import RenderConfig, SolidBackground, render_cameras

    field = GroundTruthField("mushroom")
    mesh = extract_mesh(field, MeshConfig(resolution=64))
    cameras = orbit_cameras(3, elevation_deg=20.0, image_size=48, start_azimuth_deg=30.0)
    with torch.no_grad():
        render = render_cameras(
            field, cameras, RenderConfig(num_samples=128, randomize=False, return_samples=False), SolidBackground()
        )
    rendered = (render.opacity[..., 0] > 0.5).numpy()
    meshed = mesh_masks(mesh, cameras)
    for view in range(3):
        assert mask_iou(meshed[view], rendered[view]) > 0.95
    # The check can fail: the same mesh seen from cameras 40 degrees further round does not match.
    turned = mesh_masks(mesh, orbit_cameras(3, elevation_deg=60.0, image_size=48, start_azimuth_deg=70.0))
    assert min(mask_iou(turned[v], rendered[v]) for v in range(3)) < 0.9


def test_fog_filling_the_scene_box_is_flagged():
    class Fog(Field):
        def forward(self, points):
            return FieldOutput(torch.full_like(points[:, :1], 2.0), torch.full_like(points, 0.5))

    with pytest.warns(UserWarning, match="sides of the scene box"):
        mesh = extract_mesh(Fog(), MeshConfig(resolution=16))
    assert mesh.iso.bound_sides_touched == 6
    assert extract_mesh(Spheres([[0.0, 0.0, 0.0]], [0.5]), MeshConfig(resolution=16)).iso.bound_sides_touched == 0


def test_colour_and_image_metrics():
    from dream3d.evaluation import delta_e, psnr, srgb_to_lab

    # Reference CIELAB values (D65) for sRGB primaries and white.
    assert np.allclose(srgb_to_lab([1.0, 1.0, 1.0]), [100.0, 0.0, 0.0], atol=0.01)
    assert np.allclose(srgb_to_lab([1.0, 0.0, 0.0]), [53.24, 80.09, 67.20], atol=0.05)
    assert delta_e([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]) == pytest.approx(0.0, abs=1e-9)
    assert delta_e([0.5, 0.5, 0.5], [0.51, 0.5, 0.5]) < 2.0  # barely visible
    assert delta_e([0.8, 0.1, 0.1], [0.1, 0.1, 0.8]) > 40.0  # red vs blue
    a = np.zeros((4, 4, 3))
    assert psnr(a, a + 0.1) == pytest.approx(20.0)
    assert psnr(torch.zeros(2, 3), torch.zeros(2, 3)) == float("inf")


def test_object_mask_finds_a_shaded_object_on_a_solid_background():
    from dream3d.evaluation import object_mask

    image = np.full((16, 16, 3), [0.2, 0.6, 0.9])  # a sky-blue backdrop
    image[4:10, 5:12] = [0.8, 0.1, 0.1]  # a red object ...
    image[4:10, 5:8] *= 0.5  # ... with a shaded side
    expected = np.zeros((16, 16), bool)
    expected[4:10, 5:12] = True
    assert (object_mask(image) == expected).all()
    image[8, 8] = [0.25, 0.6, 0.9]  # within the threshold of the backdrop: background
    assert not object_mask(image)[8, 8]
