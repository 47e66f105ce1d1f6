"""The `dream3d` command as a user runs it: a real run folder, resume, export/video, bad input.

Runs use the bundled prior with tiny sizes (32-pixel views, a 32^3 mesh grid, 4 video frames)
so each takes seconds on a CPU.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from dream3d import cli
from dream3d.config import RunConfig, apply_overrides, config_from_plain, list_presets, load_preset
from dream3d.train import read_checkpoint

TINY_SETS = [
    "cameras.image_size=32",
    "render.num_samples=24",
    "triplane.resolution=32",
    "export.mesh.resolution=32",
    "export.texture_size=64",
    "video.num_frames=4",
    "video.image_size=32",
    "video.num_samples=24",
    "train.log_every=1",
]
"""Tiny sizes as config overrides (`overrides=` of the Python API)."""
TINY = [arg for override in TINY_SETS for arg in ("--set", override)]
"""The same as command-line flags."""
RUN_FILES = ("model.glb", "model.obj", "model.mtl", "model.png", "model.ply", "turntable.mp4", "turntable.gif",
             "preview.png", "config.yaml", "checkpoint.pt", "metrics.jsonl", "mesh.json")


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "dream3d.cli", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "mushroom"
    result = run_cli("a red mushroom", "--steps", "3", "--seed", "1", "--out", str(out), "--quiet", *TINY)
    assert result.returncode == 0, result.stderr
    assert f"done: {out}" in result.stdout
    return out


def test_the_cli_writes_a_complete_run_folder(finished_run):
    for name in RUN_FILES:
        path = finished_run / name
        assert path.is_file() and path.stat().st_size > 0, f"{name} missing or empty"
    leftovers = [p.name for p in finished_run.iterdir() if p.name.startswith(".")]
    assert leftovers == [], f"temporary files left behind: {leftovers}"
    config = config_from_plain(yaml.safe_load((finished_run / "config.yaml").read_text()))
    assert config.prompt == "a red mushroom" and config.train.steps == 3 and config.seed == 1
    assert config.cameras.image_size == 32 and config.device == "cpu"
    lines = [json.loads(line) for line in (finished_run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == [1, 2, 3]
    assert all(np.isfinite(m["loss"]) for m in lines)
    assert read_checkpoint(finished_run / "checkpoint.pt")["step"] == 3
    mesh = json.loads((finished_run / "mesh.json").read_text())  # how the mesh was cut from the field
    assert mesh["faces"] > 0 and np.isfinite(mesh["iso"]["level"]) and 0.0 <= mesh["iso"]["silhouette_iou"] <= 1.0


def test_run_outputs_open_as_what_they_claim(finished_run):
    import imageio.v3 as iio
    import trimesh

    glb = trimesh.load(finished_run / "model.glb", force="mesh")
    assert len(glb.faces) > 0
    assert len(iio.imread(finished_run / "turntable.gif", index=None)) == 4
    frames = iio.imread(finished_run / "turntable.mp4", index=None, plugin="pyav") if _has_pyav() else None
    if frames is not None:
        assert len(frames) == 4
    assert iio.imread(finished_run / "preview.png").shape == (32, 32, 3)


def _has_pyav() -> bool:
    try:
        import av  # noqa: F401
    except ImportError:
        return False
    return True


def test_export_and_video_subcommands_rewrite_outputs(finished_run):
    glb = finished_run / "model.glb"
    before = glb.stat().st_mtime_ns
    time.sleep(0.01)
    result = run_cli("export", str(finished_run), "--format", "glb")
    assert result.returncode == 0, result.stderr
    assert glb.stat().st_mtime_ns > before and str(glb) in result.stdout
    result = run_cli("video", str(finished_run), "--frames", "3", "--size", "24")
    assert result.returncode == 0, result.stderr
    import imageio.v3 as iio

    assert len(iio.imread(finished_run / "turntable.gif", index=None)) == 3


def test_checkpoints_of_older_releases_still_load(finished_run, tmp_path):
    """A checkpoint whose config holds a since-retired field resumes and exports; the payload it
    came from is not modified; a field that never existed is still refused."""
    import copy

    from dream3d.train import load_checkpoint, save_checkpoint

    payload = read_checkpoint(finished_run / "checkpoint.pt")
    payload["config"]["export"]["mesh"]["albedo_inset_voxels"] = 0.5  # retired 2026-11-23
    before = copy.deepcopy(payload["config"])
    config = config_from_plain(payload["config"])
    assert payload["config"] == before
    assert config.train.steps == 3
    old = tmp_path / "old.pt"
    torch.save(payload, old)
    config, state = load_checkpoint(old, torch.device("cpu"))
    assert state.step == 3
    save_checkpoint(tmp_path / "resaved.pt", config, state)
    assert "albedo_inset_voxels" not in read_checkpoint(tmp_path / "resaved.pt")["config"]["export"]["mesh"]
    payload["config"]["export"]["mesh"]["no_such_field"] = 1
    with pytest.raises(Exception, match="no_such_field"):
        config_from_plain(payload["config"])


def _field_of(run: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(run / "checkpoint.pt")["field"]


def test_interrupted_then_resumed_run_matches_an_uninterrupted_one(tmp_path):
    from dream3d.api import generate, resume
    from dream3d.train import TrainingInterrupted

    sets = TINY_SETS + ["train.checkpoint_every=2"]
    whole = generate("a blue cube", steps=5, seed=3, out=tmp_path / "whole", overrides=sets, progress=False)
    with pytest.raises(TrainingInterrupted, match="dream3d resume"):
        generate("a blue cube", steps=5, seed=3, out=tmp_path / "split", overrides=sets, progress=False, stop_after=3)
    assert read_checkpoint(tmp_path / "split" / "checkpoint.pt")["step"] == 3
    assert not (tmp_path / "split" / "model.glb").exists()
    resumed = resume(tmp_path / "split", progress=False)
    assert (resumed.root / "model.glb").is_file()
    a, b = _field_of(whole.root), _field_of(resumed.root)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), f"{key} differs after resume"
    steps = [json.loads(line)["step"] for line in (resumed.root / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4, 5]


def test_hash_grid_run_on_the_cpu_with_a_triplane_tv_weight(tmp_path):
    """One set of regulariser weights serves both fields: tri-plane TV is skipped for the hash grid."""
    from dream3d.api import generate

    sets = TINY_SETS + ["regularizers.triplane_tv=10"]
    run = generate("a red ball", steps=2, seed=0, representation="nerf", out=tmp_path / "nerf", overrides=sets,
                   progress=False)
    assert run.config.regularizers.triplane_tv == 10
    field = _field_of(run.root)
    assert "encoding.table" in field and "planes" not in field  # it really was the hash grid
    assert (run.root / "model.glb").is_file()


def test_ctrl_c_saves_a_checkpoint_and_says_how_to_resume(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "dream3d.cli", "a red ball", "--steps", "10000", "--out", str(out),
                             "--quiet", *TINY], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.time() + 120
    while not (out / "metrics.jsonl").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "dream3d resume" in stderr and "Traceback" not in stderr
    step = read_checkpoint(out / "checkpoint.pt")["step"]
    assert 1 <= step < 10000


# ----------------------------------------------------------------------------- bad input


def _main(capsys, *argv: str) -> tuple[int, str]:
    code = cli.main(list(argv))
    return code, capsys.readouterr().err


def assert_one_clear_line(code: int, err: str, *needles: str) -> None:
    assert code != 0
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line, got:\n{err}"
    assert lines[0].startswith("dream3d: error:") and "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.parametrize(
    "argv, needles",
    [
        (["", "--out", "{out}"], ["prompt is empty"]),
        (["   ", "--out", "{out}"], ["prompt is empty"]),
        (["a red ball", "--preset", "nope", "--out", "{out}"], ["unknown preset 'nope'", "cpu-draft"]),
        (["a red ball", "--bogus-flag", "--out", "{out}"], ["--bogus-flag"]),
        (["a red ball", "--steps", "-3", "--out", "{out}"], ["steps must be >= 0"]),
        (["a red ball", "--representation", "voxels", "--out", "{out}"], ["invalid choice"]),
        (["a red ball", "--set", "train.nonsense=1", "--out", "{out}"], ["unknown field 'nonsense'"]),
        (["a red ball", "--set", "train.steps=many", "--out", "{out}"], ["--set train.steps=many: train.steps: expected an integer"]),
        (["a red ball", "--set", "sds.timesteps.t_min=2", "--out", "{out}"], ["t_min must be a fraction"]),
        (["a red ball", "--set", "train.occupancy.resolution=300", "--out", "{out}"], ["resolution must be 1..256"]),
        (["a red ball", "--prior", "{missing}", "--out", "{out}"], ["not found", "no-such-folder"]),
        (["a red ball", "--prior", "{not_diffusers}", "--out", "{out}"], ["model_index.json"]),
        (["a red ball", "--prior", "nobody/no-such-model", "--out", "{out}"], ["nobody/no-such-model"]),
        (["a red ball", "--device", "cuda", "--out", "{out}"], ["no CUDA GPU"]),
        (["generate", "resume", "--steps", "-1", "--out", "{out}"], ["steps must be >= 0"]),
    ],
)
def test_bad_input_is_one_line_and_leaves_no_output(capsys, tmp_path, monkeypatch, argv, needles):
    if "cuda" in argv and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    (tmp_path / "not-diffusers").mkdir()
    (tmp_path / "not-diffusers" / "readme.txt").write_text("hello")
    out = tmp_path / "out"
    values = {"out": str(out), "missing": str(tmp_path / "no-such-folder"), "not_diffusers": str(tmp_path / "not-diffusers")}
    code, err = _main(capsys, *[a.format(**values) for a in argv])
    assert_one_clear_line(code, err, *needles)
    assert not out.exists(), "bad input must not create the run folder"


def test_unwritable_output_folder(capsys, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    code, err = _main(capsys, "a red ball", "--steps", "1", "--out", str(blocker / "run"), "--quiet", *TINY)
    assert_one_clear_line(code, err, "cannot write to output folder", "--out")


def test_corrupt_checkpoint(capsys, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"\x00garbage" * 100)
    code, err = _main(capsys, "resume", str(run))
    assert_one_clear_line(code, err, "corrupt")
    code, err = _main(capsys, "export", str(tmp_path / "nowhere"))
    assert_one_clear_line(code, err, "no checkpoint")


def test_out_of_memory_is_one_line_with_advice(capsys, tmp_path, monkeypatch):
    import dream3d.train

    def explode(*args, **kwargs):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(dream3d.train, "train_step", explode)
    code, err = _main(capsys, "a red ball", "--steps", "2", "--out", str(tmp_path / "run"), "--quiet", *TINY)
    assert_one_clear_line(code, err, "out of memory")


def test_debug_shows_the_traceback(tmp_path):
    result = run_cli("a red ball", "--steps", "-1", "--out", str(tmp_path / "x"), "--debug")
    assert result.returncode != 0 and "Traceback" in result.stderr


def test_prompt_outside_the_primitives_world_is_flagged(capsys):
    from dream3d.api import _load_prior, warn_if_outside_world

    prior = _load_prior(None, torch.device("cpu"))
    assert warn_if_outside_world("a cathedral made of glass", prior) is not None
    assert "--prior" in capsys.readouterr().err
    assert warn_if_outside_world("a red mushroom", prior) is None


def test_every_preset_loads_strictly():
    assert {"cpu-draft", "cpu-quality", "sd-nerf", "if-nerf"} <= set(list_presets())
    for name in list_presets():
        config = apply_overrides(RunConfig(), [(name, load_preset(name))])
        assert config.train.steps > 0


def test_config_layers_apply_in_order():
    from dream3d.api import resolve_config

    config, device = resolve_config("a red ball", "cpu-draft", {"train": {"steps": 7}}, ["train.steps=9", "video.fps=12"])
    assert device.type == "cpu" and config.device == "cpu"
    assert config.train.steps == 9  # --set wins over the flag, which wins over the preset
    assert config.export.texture_size == 256  # from the preset
    assert config.video.fps == 12
    from dream3d.guidance.loading import PriorKind
    from dream3d.guidance.sds import default_sds_config

    assert config.sds == default_sds_config(PriorKind.PRIMITIVES)  # the bundled prior's SDS defaults


def test_help_lists_the_subcommands(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for name in ("resume", "export", "video", "sample", "avatar", "--preset", "--set"):
        assert name in out


def test_sample_help_states_the_real_default_guidance(capsys):
    from dream3d.priors.sample import DEFAULT_GUIDANCE

    with pytest.raises(SystemExit):
        cli.main(["sample", "--help"])
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps help lines
    assert f"(default {DEFAULT_GUIDANCE:g};" in out
