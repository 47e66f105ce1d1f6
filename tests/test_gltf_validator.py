"""The Khronos glTF validator (npm gltf-validator) finds no errors or warnings in an exported textured GLB.

Install it like .ci/run does: mkdir -p tests/.node && cd tests/.node && npm install gltf-validator@2.0.0-dev.3.10
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from dream3d.export import export_glb
from dream3d.fields.base import Field, FieldOutput
from dream3d.mesh import Mesh, MeshConfig, bake_texture, extract_mesh

VALIDATOR = Path(__file__).parent / ".node" / "node_modules" / "gltf-validator"

NODE_SCRIPT = """
const fs = require('fs');
const validator = require(process.argv[2]);
const data = new Uint8Array(fs.readFileSync(process.argv[3]));
validator.validateBytes(data, {maxIssues: 200})
  .then((report) => console.log(JSON.stringify(report.issues)))
  .catch((error) => { console.error(String(error)); process.exit(2); });
"""


def _validate(path: Path, tmp_path: Path) -> dict:
    if shutil.which("node") is None:
        pytest.skip("node is not installed (apt-get install -y nodejs)")
    if not VALIDATOR.is_dir():
        pytest.skip(f"gltf-validator is not installed in {VALIDATOR.parent} (see .ci/run)")
    script = tmp_path / "validate.js"
    script.write_text(NODE_SCRIPT)
    out = subprocess.run(["node", str(script), str(VALIDATOR), str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


class Ball(Field):
    def forward(self, points):
        sdf = points.norm(dim=-1, keepdim=True) - 0.5
        albedo = torch.where(points[:, 1:2] > 0, torch.tensor([0.9, 0.2, 0.1]), torch.tensor([0.1, 0.3, 0.8]))
        return FieldOutput(100.0 * torch.sigmoid(-100.0 * sdf), albedo)


def _problems(issues: dict) -> list[dict]:
    return [m for m in issues["messages"] if m["severity"] <= 1]  # 0 = error, 1 = warning


def test_textured_glb_passes_the_khronos_validator(tmp_path):
    textured = bake_texture(extract_mesh(Ball(), MeshConfig(resolution=24)), Ball(), texture_size=64)
    issues = _validate(export_glb(textured, tmp_path / "ball.glb"), tmp_path)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, _problems(issues)
    assert issues["messages"] == []  # not even infos or hints


def test_vertex_coloured_glb_passes_the_khronos_validator(tmp_path):
    v = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    f = np.array([[0, 2, 1], [0, 1, 3], [0, 3, 2], [1, 2, 3]], np.int64)
    issues = _validate(export_glb(Mesh(v, f, np.random.rand(4, 3).astype(np.float32)), tmp_path / "t.glb"), tmp_path)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, _problems(issues)
    assert issues["messages"] == []  # not even infos or hints
