"""Export round trips: what comes back from GLB / OBJ / PLY is the object we wrote, upright, sized, coloured."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dream3d.evaluation import load_mesh
from dream3d.export import export_glb, export_mesh, export_obj, export_ply, srgb_to_linear
from dream3d.fields.base import Field, FieldOutput
from dream3d.mesh import Mesh, MeshConfig, bake_texture, extract_mesh, sample_texture

RED, GREEN, BLUE = torch.tensor([1.0, 0.0, 0.0]), torch.tensor([0.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 1.0])


class Totem(Field):
    """A 0.4 x 1.0 x 0.3 m block standing along +Y with a green bump (r = 0.1) on its +Z front.

    Red above y = 0, blue below. True bounds: x [-0.2, 0.2], y [-0.5, 0.5], z [-0.15, 0.25].
    """

    def forward(self, points):
        q = points.abs() - torch.tensor([0.2, 0.5, 0.15])
        box = q.clamp(min=0).norm(dim=-1) + q.max(dim=-1).values.clamp(max=0)
        bump = (points - torch.tensor([0.0, 0.2, 0.15])).norm(dim=-1) - 0.1
        sdf = torch.minimum(box, bump)
        density = 200.0 * torch.sigmoid(-200.0 * sdf)
        albedo = torch.where(points[:, 1:2] > 0, RED, BLUE)
        albedo = torch.where((bump < box)[:, None], GREEN, albedo)
        return FieldOutput(density[:, None], albedo)


TRUE_LO, TRUE_HI = np.array([-0.2, -0.5, -0.15]), np.array([0.2, 0.5, 0.25])


@pytest.fixture(scope="module")
def meshes():
    mesh = extract_mesh(Totem(), MeshConfig(resolution=48))
    return mesh, bake_texture(mesh, Totem(), texture_size=128)


def test_extracted_totem_has_its_true_size(meshes):
    mesh, _ = meshes
    voxel = 2.0 / 47
    assert np.allclose(mesh.vertices.min(0), TRUE_LO, atol=0.5 * voxel)
    assert np.allclose(mesh.vertices.max(0), TRUE_HI, atol=0.5 * voxel)


def _colour_at(loaded, vertices_mask) -> np.ndarray:
    """Mean colour of the loaded mesh's masked vertices, from its texture or vertex colours."""
    visual = loaded.visual
    if visual.kind == "texture":
        image = np.asarray(visual.material.baseColorTexture.convert("RGB")) if hasattr(visual.material, "baseColorTexture") and visual.material.baseColorTexture is not None else np.asarray(visual.material.image.convert("RGB"))
        return sample_texture(image, np.asarray(visual.uv)[vertices_mask]).mean(0)
    return np.asarray(visual.vertex_colors)[vertices_mask, :3].mean(0) / 255.0


def test_glb_round_trip_keeps_frame_size_normals_and_texture(meshes, tmp_path):
    _, textured = meshes
    path = export_glb(textured, tmp_path / "totem.glb")
    loaded = load_mesh(path)
    assert np.allclose(loaded.bounds, [textured.vertices.min(0), textured.vertices.max(0)], atol=1e-5)
    extent = loaded.bounds[1] - loaded.bounds[0]
    assert extent[1] == pytest.approx(1.0, abs=2.0 / 47)  # tallest along +Y (within a voxel): stands up
    assert loaded.bounds[1][2] > -loaded.bounds[0][2] + 0.05  # the bump is on +Z (front)
    material = loaded.visual.material
    assert material.baseColorTexture.size == (128, 128)
    assert material.metallicFactor == 0.0
    v = np.asarray(loaded.vertices)
    top = (v[:, 1] > 0.3) & (v[:, 2] < 0.1)
    bottom = v[:, 1] < -0.3
    front = v[:, 2] > 0.22
    assert np.allclose(_colour_at(loaded, top), [1, 0, 0], atol=0.05)
    assert np.allclose(_colour_at(loaded, bottom), [0, 0, 1], atol=0.05)
    assert np.allclose(_colour_at(loaded, front), [0, 1, 0], atol=0.1)
    # Normals came through and point outwards.
    normals = np.asarray(loaded.vertex_normals)
    assert (np.einsum("ij,ij->i", normals, v - v.mean(0)) > 0).mean() > 0.9
    assert list(tmp_path.iterdir()) == [path]  # atomic: no temporary files left behind


def test_untextured_glb_stores_linear_vertex_colours(tmp_path):
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int64)
    mesh = Mesh(v, f, np.full((4, 3), 0.5, np.float32))
    loaded = load_mesh(export_glb(mesh, tmp_path / "t.glb"))
    # trimesh keeps COLOR_0 as a vertex attribute when the primitive has a material.
    stored = np.asarray(loaded.visual.vertex_attributes["color"])[:, :3]
    assert loaded.visual.material.metallicFactor == 0.0
    assert np.all(np.abs(stored.astype(int) - round(255 * float(srgb_to_linear(0.5)))) <= 1)  # 55, not 128


def test_obj_round_trip_writes_mtl_and_png(meshes, tmp_path):
    _, textured = meshes
    paths = export_obj(textured, tmp_path / "totem.obj")
    assert [p.name for p in paths] == ["totem.obj", "totem.mtl", "totem.png"]
    assert "map_Kd totem.png" in (tmp_path / "totem.mtl").read_text()
    loaded = load_mesh(paths[0])
    assert np.allclose(loaded.bounds, [textured.vertices.min(0), textured.vertices.max(0)], atol=1e-5)
    v = np.asarray(loaded.vertices)
    assert np.allclose(_colour_at(loaded, (v[:, 1] > 0.3) & (v[:, 2] < 0.1)), [1, 0, 0], atol=0.05)
    assert np.allclose(_colour_at(loaded, v[:, 1] < -0.3), [0, 0, 1], atol=0.05)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["totem.mtl", "totem.obj", "totem.png"]


def test_ply_round_trip_in_blender_frame_and_world_frame(meshes, tmp_path):
    mesh, _ = meshes
    blender = load_mesh(export_ply(mesh, tmp_path / "z_up.ply"))
    world = load_mesh(export_ply(mesh, tmp_path / "y_up.ply", z_up=False))
    lo, hi = mesh.vertices.min(0), mesh.vertices.max(0)
    assert np.allclose(world.bounds, [lo, hi], atol=1e-5)
    # Blender frame: (x, y, z) -> (x, -z, y): up along +Z, the bump (front) toward -Y.
    assert np.allclose(blender.bounds, [[lo[0], -hi[2], lo[1]], [hi[0], -lo[2], hi[1]]], atol=1e-5)
    colours = np.asarray(world.visual.vertex_colors)[:, :3]
    v = np.asarray(world.vertices)
    assert np.all(colours[(v[:, 1] > 0.3) & (v[:, 2] < 0.1)] == [255, 0, 0])


def test_export_mesh_picks_the_format_from_the_suffix(meshes, tmp_path):
    _, textured = meshes
    assert [p.name for p in export_mesh(textured, tmp_path / "a.glb")] == ["a.glb"]
    assert [p.name for p in export_mesh(textured, tmp_path / "b.OBJ")] == ["b.OBJ", "b.mtl", "b.png"]
    assert [p.name for p in export_mesh(textured, tmp_path / "c.ply")] == ["c.ply"]
    with pytest.raises(ValueError, match="use .glb, .obj or .ply"):
        export_mesh(textured, tmp_path / "d.stl")


def test_atomic_writes_give_files_the_usual_permissions(tmp_path):
    """Other users (a web server, a render farm) can read outputs, whoever wrote the bytes:
    a writer that replaces the temporary file (safetensors does) must not leave it 0600."""
    import os
    import stat

    from safetensors.torch import save_file

    from dream3d.atomic import write_text_atomic, write_with

    old = os.umask(0o022)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
        write_with(tmp_path / "w.safetensors", lambda tmp: save_file({"x": torch.zeros(2)}, str(tmp)))
    finally:
        os.umask(old)
    for name in ("a.txt", "w.safetensors"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o644, name
