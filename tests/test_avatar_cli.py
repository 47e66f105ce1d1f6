"""`dream3d avatar` as a user runs it: a complete run folder at tiny sizes, and bad input as one line."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from avatars import cli as avatar_cli
from dream3d import cli
from dream3d.errors import UsageError

TINY = ["--size", "24", "--frames", "3", "--samples", "24", "--mesh-resolution", "32", "--texture-size", "64"]
RUN_FILES = ("model.glb", "model.obj", "model.mtl", "model.png", "model.ply", "preview.png", "turntable.mp4",
             "turntable.gif", "avatar.json", "config.yaml")


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    code = cli.main(["avatar", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_run_folder(root: Path) -> dict:
    for name in RUN_FILES:
        path = root / name
        assert path.is_file() and path.stat().st_size > 0, name
    assert not list(root.glob(".*tmp*")), "temporary files left behind"
    assert (root / "model.glb").read_bytes()[:4] == b"glTF"
    return json.loads((root / "avatar.json").read_text())


def test_random_ground_truth_writes_every_file(tmp_path, capsys):
    torch.set_num_threads(1)
    code, out, err = run(["--random", "--seed", "3", "--engine", "sdf", "--out", str(tmp_path / "gt"), *TINY], capsys)
    assert code == 0, err
    info = assert_run_folder(tmp_path / "gt")
    assert info["source"] == "engine ground truth" and info["seed"] == 3
    from avatars.engine import sample_attributes
    from avatars.triplane import attributes_to_json

    assert info["attributes"] == attributes_to_json(sample_attributes(3))
    assert info["prompt"] and "done:" in out


def test_attributes_and_fitted(tmp_path, capsys):
    text = "an old man with short gray hair wearing glasses"
    code, out, err = run(["--attributes", text, "--seed", "5", "--fitted", "--fit-steps", "40",
                          "--out", str(tmp_path / "fit"), *TINY], capsys)
    assert code == 0, err
    info = assert_run_folder(tmp_path / "fit")
    a = info["attributes"]
    assert (a["age"], a["presentation"], a["hair_style"], a["hair_colour"]) == ("old", "man", "short", "gray")
    assert a["glasses"] != "none"
    assert info["source"] == "fitted tri-plane" and info["fit"]["mode"].startswith("planes and decoder")


def test_unknown_attribute_words_are_fine(tmp_path, capsys):
    argv = ["--attributes", "a wizard with a purple cloak", "--engine", "sdf", "--out", str(tmp_path / "w"), *TINY]
    code, out, _ = run(argv, capsys)
    assert code == 0
    assert "no attribute words recognised" not in out or "every attribute is random" in out


@pytest.mark.parametrize("argv, words", [
    (["a young woman with red hair"], "no avatar diffusion model in"),
    ([], "--random"),
    (["--random", "--seed", "-1"], "--seed"),
    (["--random", "--frames", "0"], "--frames"),
    (["--random", "--bogus"], "unrecognized"),
    (["--random", "--seed", "x"], "invalid int"),
    (["--random", "--decoder", "/nonexistent/decoder.safetensors", "--fitted"], "not found"),
    (["--attributes", "  "], "empty"),
    (["--random", "--blendshapes", "jawOpn=0.6"], "unknown blendshape 'jawOpn'"),
    (["--random", "--blendshapes", "jawOpen=2"], "outside 0..1"),
    (["--random", "--expression", "grin"], "unknown expression 'grin'"),
    (["--random", "--engine", "sdf", "--animate"], "need an Anny avatar"),
    (["--random", "--engine", "anny", "--fitted"], "--fitted"),
])
def test_bad_input_is_one_line(argv, words, capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("DREAM3D_AVATAR_MODEL_DIR", str(tmp_path / "no-weights"))  # missing weights are bad input too
    code, out, err = run(argv, capsys)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("dream3d: error:") and words in lines[0], err
    with pytest.raises(UsageError):
        avatar_cli.main(argv)


def test_unwritable_out_is_one_line(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    code, _, err = run(["--random", "--engine", "sdf", "--out", str(blocker / "sub"), *TINY], capsys)
    assert code != 0
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "cannot write to output folder" in lines[0]


@pytest.mark.blender
def test_avatar_glb_imports_upright_in_blender(tmp_path, capsys):
    """Blender's default glTF importer stands the bust up (world +Y -> Blender +Z) with its face
    (world +Z) toward Blender's -Y: the imported bounding box is the engine's, in Blender's frame."""
    from tests.test_blender import CHECK_SCRIPT, run_blender_check

    if shutil.which("blender") is None:
        pytest.skip("blender is not installed")
    code, _, err = run(["--random", "--seed", "3", "--engine", "sdf", "--out", str(tmp_path / "b"), *TINY], capsys)
    assert code == 0, err
    glb, report = tmp_path / "b" / "model.glb", tmp_path / "report.json"
    r = run_blender_check(CHECK_SCRIPT, [glb], report, timeout=180)[str(glb)]
    assert r["ok"], r.get("error")
    lo, hi = np.array(r["bbox_min"]), np.array(r["bbox_max"])
    # The engine's solid in the world frame (+Y up, +Z front) on a grid; Blender's is (x, -z, y).
    from avatars.engine import AvatarSDF, sample_attributes

    axis = torch.linspace(-1, 1, 64)
    points = torch.stack(torch.meshgrid(axis, axis, axis, indexing="ij"), -1).reshape(-1, 3)
    inside = points[AvatarSDF(sample_attributes(3)).occupancy(points)]
    w_lo, w_hi = inside.min(0).values.numpy(), inside.max(0).values.numpy()
    expected_lo = np.array([w_lo[0], -w_hi[2], w_lo[1]])
    expected_hi = np.array([w_hi[0], -w_lo[2], w_hi[1]])
    tolerance = 0.1  # a 32^3 mesh grid and a 64^3 sampling grid
    assert np.allclose(lo, expected_lo, atol=tolerance) and np.allclose(hi, expected_hi, atol=tolerance), (lo, hi)
    assert hi[2] - lo[2] > 1.5  # upright: head at +Z, chest at -Z (the bust is 1.9 m tall in the scene)


def test_a_missing_body_model_is_one_line_and_leaves_no_folder(tmp_path, capsys, monkeypatch):
    import avatars.anny.model as anny_model

    def missing():
        raise anny_model.AnnyMissingError(f"the Anny body model is not installed; install: {anny_model.INSTALL_HINT}")

    monkeypatch.setattr(anny_model, "require_anny", missing)
    out = tmp_path / "avatar"
    code, _, err = run(["--random", "--out", str(out)], capsys)
    lines = err.strip().splitlines()
    assert code != 0 and len(lines) == 1 and "not installed" in lines[0], err
    assert not out.exists()
