"""The avatar model's reproduction path, run for real at tiny sizes: scripts/build_avatar_dataset.py
builds a dataset, scripts/train_avatar_diffusion.py trains on it, resumes, and starts a new run
from a model that has a portrait reader and a plane classifier (scripts/train_plane_classifier.py)
without losing either or their provenance."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from avatars.attribute_classifier import AttributeClassifier, AttributeClassifierConfig
from avatars.diffusion import load_model, save_model, with_portrait_reader
from avatars.engine import ATTRIBUTE_TYPES

REPO = Path(__file__).resolve().parents[1]


def run_script(name: str, *args: str) -> str:
    """Run scripts/NAME with one thread; fail the test with its output if it exits non-zero."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, str(REPO / "scripts" / name), *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("avatars") / "data"
    run_script("build_avatar_dataset.py", "--out", str(data), "-n", "3", "-k", "2", "--decoder-steps", "5",
               "--plane-steps", "5", "--resolution", "8", "--channels", "4", "--low-resolution", "4",
               "--low-plane-steps", "5")
    return data


def test_the_dataset_build_writes_the_same_bytes_again(tiny_dataset, tmp_path):
    """A rebuild with the same arguments is byte-identical (fit times stay in build.log; the
    portraits' occupancy grid has its own generator)."""
    again = tmp_path / "again"
    run_script("build_avatar_dataset.py", "--out", str(again), "-n", "3", "-k", "2", "--decoder-steps", "5",
               "--plane-steps", "5", "--resolution", "8", "--channels", "4", "--low-resolution", "4",
               "--low-plane-steps", "5")
    files = sorted(p.relative_to(tiny_dataset) for p in tiny_dataset.rglob("*.safetensors"))
    assert len(files) == 4
    for name in [*files, Path("manifest.json")]:
        assert (again / name).read_bytes() == (tiny_dataset / name).read_bytes(), name


def steps_of(folder: Path) -> int:
    return json.loads((folder / "config.json").read_text())["info"]["steps"]


def test_training_runs_checkpoints_and_resumes_where_it_stopped(tiny_dataset, tmp_path):
    out = tmp_path / "model"
    common = ["--data", str(tiny_dataset), "--out", str(out), "--tiny", "--batch-size", "2", "--checkpoint-every", "1"]
    run_script("train_avatar_diffusion.py", *common, "--steps", "2")
    assert steps_of(out) == 2
    log = run_script("train_avatar_diffusion.py", *common, "--steps", "3")
    assert "resumed at step 2" in log
    assert steps_of(out) == 3
    model, _, _, info = load_model(out)
    assert info["avatars"] == 3 and model.portrait_reader is None


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_training_on_cuda_without_a_gpu_is_one_line(tiny_dataset, tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "train_avatar_diffusion.py"), "--data",
                           str(tiny_dataset), "--out", str(tmp_path / "model"), "--tiny", "--device", "cuda"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    lines = done.stderr.strip().splitlines()
    assert done.returncode != 0 and len(lines) == 1 and "no CUDA GPU" in lines[0], done.stderr
    assert not (tmp_path / "model" / "model.safetensors").exists()


@pytest.mark.gpu
def test_training_on_cuda_checkpoints_a_model_that_loads_and_resumes_on_the_cpu(tiny_dataset, tmp_path):
    out = tmp_path / "model"
    common = ["--data", str(tiny_dataset), "--out", str(out), "--tiny", "--batch-size", "2", "--checkpoint-every", "1"]
    log = run_script("train_avatar_diffusion.py", *common, "--steps", "2", "--device", "cuda")
    assert "on cuda" in log and steps_of(out) == 2
    log = run_script("train_avatar_diffusion.py", *common, "--steps", "3", "--device", "cpu")
    assert "resumed at step 2" in log and steps_of(out) == 3
    model, _, _, _ = load_model(out)
    assert all(p.device.type == "cpu" and torch.isfinite(p).all() for p in model.parameters())


def test_a_run_started_from_a_model_keeps_its_portrait_reader_and_plane_classifier(tiny_dataset, tmp_path):
    first = tmp_path / "first"
    run_script("train_avatar_diffusion.py", "--data", str(tiny_dataset), "--out", str(first), "--tiny",
               "--batch-size", "2", "--steps", "1")
    # Install a reader the way scripts/train_avatar_classifier.py --into-model does.
    model, decoder, triplane, info = load_model(first)
    reader = AttributeClassifier(AttributeClassifierConfig(image_size=model.config.portrait.image_size, views=1,
                                                           widths=(8, 8), hidden_dim=16,
                                                           attributes=tuple(ATTRIBUTE_TYPES)))
    provenance = {"trained_on": "a test", "held_out_mean": 0.5}
    save_model(first, with_portrait_reader(model, reader.eval()), decoder, triplane,
               {**info, "portrait_reader": provenance})
    # And a plane classifier for classifier guidance, by its real script.
    log = run_script("train_plane_classifier.py", "--data", str(tiny_dataset), "--model", str(first), "--out",
                     str(tmp_path / "plane-classifier"), "--tiny", "--steps", "3", "--batch-size", "2",
                     "--holdout", "1", "--into-model", str(first))
    assert "2 training avatars, 1 held out" in log
    guided, _, _, guided_info = load_model(first)
    classifier_state = {k: v.clone() for k, v in guided.plane_classifier.state_dict().items()}
    assert guided_info["plane_classifier"]["steps"] == 3 and guided_info["portrait_reader"] == provenance

    second = tmp_path / "second"
    common = ["--data", str(tiny_dataset), "--out", str(second), "--tiny", "--batch-size", "2"]
    run_script("train_avatar_diffusion.py", *common, "--init-from", str(first), "--steps", "2")
    run_script("train_avatar_diffusion.py", *common, "--steps", "3")  # and a resume of that run
    trained, _, _, trained_info = load_model(second)
    assert trained_info["steps"] == 3
    assert trained_info["portrait_reader"] == provenance
    assert trained.portrait_reader is not None
    for name, value in reader.state_dict().items():  # frozen: the diffusion loss never trains it
        assert torch.equal(trained.portrait_reader.state_dict()[name], value), name
    assert trained_info["plane_classifier"] == guided_info["plane_classifier"]
    for name, value in classifier_state.items():  # frozen too
        assert torch.equal(trained.plane_classifier.state_dict()[name], value), name
