"""scripts/train_mv_prior.py on a tiny single-view prior: the run saves a multi-view prior that
loads, with ground truth rendered in the training process or in worker processes, on the CPU or
on a GPU."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dream3d.priors.model import PriorConfig, build_prior, save_bundled_prior
from dream3d.priors.multiview import is_multiview_prior_folder, load_multiview_prior

SCRIPTS = str(Path(__file__).resolve().parents[1] / "scripts")


@pytest.fixture
def tiny_single_prior(tmp_path):
    folder = tmp_path / "single"
    save_bundled_prior(build_prior(PriorConfig.tiny(), seed=0), folder)
    return folder


def _train(monkeypatch, tmp_path, init_from, *extra):
    monkeypatch.syspath_prepend(SCRIPTS)  # spawned render workers import train_mv_prior by name
    import train_mv_prior

    out = tmp_path / "mv"
    code = train_mv_prior.main(["--init-from", str(init_from), "--out", str(out), "--max-steps", "3", "--sets", "1",
                                "--warmup-steps", "1", "--log", str(tmp_path / "log.txt"), *extra])
    assert code == 0
    return out


@pytest.mark.parametrize("workers", [0, 1])
def test_a_short_run_saves_a_multiview_prior_that_loads(monkeypatch, tmp_path, tiny_single_prior, workers):
    out = _train(monkeypatch, tmp_path, tiny_single_prior, "--workers", str(workers))
    assert is_multiview_prior_folder(out)
    assert json.loads((out / "training_state.json").read_text())["step"] == 3
    prior = load_multiview_prior(out)
    gates = torch.cat([p.detach().flatten() for p in prior.gates.parameters()])
    assert gates.abs().max() > 0  # the zero-initialised gates were trained


def test_cuda_without_a_gpu_is_one_line(monkeypatch, tmp_path, tiny_single_prior):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit, match="no CUDA GPU"):
        _train(monkeypatch, tmp_path, tiny_single_prior, "--device", "cuda")


@pytest.mark.gpu
def test_a_bf16_run_on_cuda_saves_a_prior_that_loads_on_the_cpu(monkeypatch, tmp_path, tiny_single_prior):
    out = _train(monkeypatch, tmp_path, tiny_single_prior, "--device", "cuda", "--bf16", "--workers", "2")
    prior = load_multiview_prior(out, device="cpu")
    assert all(p.device.type == "cpu" for p in prior.parameters())
