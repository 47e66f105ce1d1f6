"""Shared test fixtures: tiny components built in-process, and the gpu / blender markers."""
from __future__ import annotations

import shutil

import pytest
import torch


def pytest_collection_modifyitems(config, items):
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU")
    skip_blender = pytest.mark.skip(reason="blender is not installed (apt-get install -y blender)")
    has_blender = shutil.which("blender") is not None
    for item in items:
        if "gpu" in item.keywords and not torch.cuda.is_available():
            item.add_marker(skip_gpu)
        if "blender" in item.keywords and not has_blender:
            item.add_marker(skip_blender)


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    yield
