"""Headless Blender imports each exported format with its DEFAULT importer: the object stands
upright (+Z in Blender), at true size in metres, its front toward Blender's -Y (the side the
"Front" view shows), with its colours (image texture for GLB/OBJ, colour attribute for PLY).

One Blender process imports every file (tests/blender_import_check.py writes a JSON report).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dream3d.export import export_glb, export_obj, export_ply, srgb_to_linear, world_to_blender
from dream3d.fields.base import Field, FieldOutput
from dream3d.mesh import MeshConfig, bake_texture, extract_mesh

pytestmark = pytest.mark.blender

CHECK_SCRIPT = Path(__file__).parent / "blender_import_check.py"
# sRGB albedo of the regions (not pure primaries, so a missing or doubled sRGB conversion shows).
TOP, BOTTOM, BUMP = (0.8, 0.1, 0.1), (0.2, 0.4, 0.8), (0.1, 0.7, 0.2)
RESOLUTION = 40
VOXEL = 2.0 / (RESOLUTION - 1)


class Totem(Field):
    """A 0.4 x 1.0 x 0.3 m block standing along +Y, a bump (r = 0.1 m) on its +Z front.

    World bounds x [-0.2, 0.2], y [-0.5, 0.5], z [-0.15, 0.25]; top half TOP, bottom BOTTOM, bump BUMP.
    """

    def forward(self, points):
        q = points.abs() - torch.tensor([0.2, 0.5, 0.15])
        box = q.clamp(min=0).norm(dim=-1) + q.max(dim=-1).values.clamp(max=0)
        bump = (points - torch.tensor([0.0, 0.2, 0.15])).norm(dim=-1) - 0.1
        albedo = torch.where(points[:, 1:2] > 0, torch.tensor(TOP), torch.tensor(BOTTOM))
        albedo = torch.where((bump < box)[:, None], torch.tensor(BUMP), albedo)
        density = 200.0 * torch.sigmoid(-200.0 * torch.minimum(box, bump))
        return FieldOutput(density[:, None], albedo)


# Blender frame: (x, y, z)_world -> (x, -z, y).
BLENDER_LO, BLENDER_HI = np.array([-0.2, -0.25, -0.5]), np.array([0.2, 0.15, 0.5])


def blender_env() -> dict[str, str]:
    """Our environment minus this interpreter's bin directory on PATH.

    A distribution's Blender embeds the system libpython and locates its standard library from
    the first `python3` on PATH; under pytest that is this interpreter (pyenv, venv), whose
    stdlib it would then use -- without the system numpy its glTF importer needs.
    """
    ours = {os.path.dirname(sys.executable), os.path.dirname(os.path.realpath(sys.executable))}
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p not in ours)
    return env


def run_blender_check(script: Path, args: list[Path], report: Path, timeout: int) -> dict:
    """Run a check script inside headless Blender (`-- *args report`) and return the JSON report it
    wrote. Skips when Blender's Python lacks numpy (its glTF importer needs it); fails with
    Blender's output when no report was written."""
    cmd = ["blender", "-b", "--factory-startup", "--python", str(script), "--", *map(str, args), str(report)]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=blender_env(), check=False)
    if not report.exists():
        if "No module named 'numpy'" in run.stdout + run.stderr:
            pytest.skip("Blender's Python has no numpy, which its glTF importer needs (apt-get install -y python3-numpy)")
        pytest.fail(f"Blender wrote no report (exit {run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    return json.loads(report.read_text())


@pytest.fixture(scope="module")
def blender_report(tmp_path_factory):
    if shutil.which("blender") is None:
        pytest.skip("blender is not installed (apt-get install -y blender python3-numpy)")
    out = tmp_path_factory.mktemp("blender")
    mesh = extract_mesh(Totem(), MeshConfig(resolution=RESOLUTION))
    textured = bake_texture(mesh, Totem(), texture_size=128)
    files = {
        "glb": export_glb(textured, out / "totem.glb"),
        "obj": export_obj(textured, out / "totem.obj")[0],
        "ply": export_ply(mesh, out / "totem.ply"),
        "glb_vertex_colours": export_glb(mesh, out / "totem_vc.glb"),
    }
    data = run_blender_check(CHECK_SCRIPT, list(files.values()), out / "report.json", timeout=180)
    lo, hi = world_to_blender(mesh.vertices).min(0), world_to_blender(mesh.vertices).max(0)
    return {name: data[str(path)] for name, path in files.items()}, (lo, hi)


@pytest.mark.parametrize("fmt", ["glb", "obj", "ply", "glb_vertex_colours"])
def test_blender_import_is_upright_true_size_front_facing_and_coloured(blender_report, fmt):
    reports, (mesh_lo, mesh_hi) = blender_report
    r = reports[fmt]
    assert r["ok"], r.get("error")
    lo, hi = np.array(r["bbox_min"]), np.array(r["bbox_max"])
    # Exactly the mesh we wrote, in Blender's frame, in metres (no scale, no rotation) ...
    assert np.allclose(lo, mesh_lo, atol=1e-4) and np.allclose(hi, mesh_hi, atol=1e-4)
    # ... which is the true object within the meshing resolution.
    assert np.allclose(lo, BLENDER_LO, atol=0.6 * VOXEL) and np.allclose(hi, BLENDER_HI, atol=0.6 * VOXEL)
    size = hi - lo
    assert size[2] == pytest.approx(1.0, abs=1.2 * VOXEL) and size[2] > 2 * max(size[0], size[1])  # upright
    assert -lo[1] > hi[1] + 0.05  # the bump is on Blender's -Y: the front
    (obj,) = r["objects"]
    colours = obj["region_colours"]
    if fmt in ("glb", "obj"):
        (material,) = obj["materials"]
        assert material["image"] is not None and material["image"]["size"] == [128, 128]
        assert material["image"]["colorspace"] == "sRGB"
        measured, expected = colours["texture"], {"top": TOP, "bottom": BOTTOM, "front": BUMP}
    else:
        # Blender reports colour attributes linearised: the sRGB albedo must come out as its linear value.
        measured = colours["color_attribute"]
        expected = {k: srgb_to_linear(np.array(c)) for k, c in {"top": TOP, "bottom": BOTTOM, "front": BUMP}.items()}
    for region, value in expected.items():
        assert np.allclose(measured[region], value, atol=0.03), (region, measured[region], value)
