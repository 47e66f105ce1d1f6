"""The one place that probes optional heavy dependencies: CUDA, tinycudann, nerfacc, gradio, ray.

Everything else asks here and imports lazily, so `import dream3d` never pulls them in and a
missing package produces an install hint instead of an ImportError deep in a stack.
"""
from __future__ import annotations

import functools
import importlib
import os
import warnings
from types import ModuleType

import torch

INSTALL_HINTS = {
    "tinycudann": "pip install git+https://github.com/NVlabs/tiny-cuda-nn/#subdirectory=bindings/torch "
    "(needs CUDA and a compiler; dream3d falls back to its pure-PyTorch hash grid without it)",
    "nerfacc": "pip install 'dream3d[cuda]' (nerfacc renders on CUDA only; dream3d falls back to its "
    "pure-PyTorch sampler without it)",
    "gradio": 'pip install -e ".[web]" in a dream3d clone, or pip install "gradio>=6"',
    "ray": "pip install 'dream3d[batch]' (or pip install 'ray>=2.9')",
}
CUDA_ONLY = ("tinycudann", "nerfacc")


class MissingDependencyError(RuntimeError):
    """An optional dependency was asked for explicitly and is not installed."""


def cuda_available() -> bool:
    return torch.cuda.is_available()


@functools.lru_cache(maxsize=None)
def _try_import(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except Exception:  # noqa: BLE001 - broken CUDA builds raise all sorts of errors at import
        return None


def tinycudann() -> ModuleType | None:
    """The tinycudann module when it is installed and CUDA is present, else None."""
    return _try_import("tinycudann") if cuda_available() else None


def nerfacc() -> ModuleType | None:
    """The nerfacc module when it is installed and CUDA is present (its kernels are CUDA-only)."""
    return _try_import("nerfacc") if cuda_available() else None


def gradio() -> ModuleType | None:
    """The gradio module (the web page of `dream3d serve`), else None. Its usage analytics are
    switched off before the import (gradio reads the variable then): the page stays on localhost."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    return _try_import("gradio")


def ray() -> ModuleType | None:
    """The ray module (the engine of `dream3d batch`) when it is installed, else None."""
    return _try_import("ray")


def require(name: str) -> ModuleType:
    """Import an optional dependency that the user asked for, or explain how to install it."""
    module = {"tinycudann": tinycudann, "nerfacc": nerfacc, "gradio": gradio}[name]()
    if module is None:
        cuda_missing = name in CUDA_ONLY and not cuda_available()
        reason = "CUDA is not available" if cuda_missing else f"{name} is not installed"
        raise MissingDependencyError(f"{name} was requested but {reason}. Install: {INSTALL_HINTS[name]}")
    return module


@functools.lru_cache(maxsize=None)
def warn_fallback_once(name: str, what: str) -> None:
    """One warning per process that an accelerated path is unavailable and `what` is used instead."""
    warnings.warn(f"{name} unavailable; using {what}. For speed: {INSTALL_HINTS[name]}", stacklevel=3)
