"""The one place that imports Anny: probe it, build the body model once per process, say when
the one-time cache is being built.

Anny is Z-up with its front toward -Y; our world is +Y up, +Z front (metres both), so
`ANNY_TO_WORLD` is applied once, to everything that leaves this package's body code.
"""
from __future__ import annotations

import functools
import importlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np

from dream3d.errors import Dream3DError

INSTALL_HINT = "pip install 'dream3d[avatar]' (or: pip install anny==0.6.2 pygltflib)"

ANNY_TO_WORLD = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])
"""Rotation taking Anny's (x, y, z) (Z up, front -Y) to ours (x, z, -y) (+Y up, +Z front)."""


class AnnyMissingError(Dream3DError):
    """Anny (or pygltflib) is not installed."""


@dataclass(frozen=True)
class AnnyModelConfig:
    """Which Anny model the avatar engine builds (each combination is built and cached once)."""

    rig: str = "makehuman"
    """MakeHuman's full rig: keeps the face bones (jaw, eyes) that the default `anny` rig prunes."""
    topology: str = "anny"
    """The full-body mesh (13,718 vertices); the bust is cut from it."""
    local_changes: str = "all"
    """All 254 local MakeHuman targets (face shape: chin, cheeks, head ...)."""
    facial_actions: str = "all"
    """The 52 ARKit-named facial blendshapes."""
    phenotypes: str = "all"
    """The 6 default phenotypes plus the african/asian/caucasian blend."""
    skinning_method: str = "lbs"
    """Plain linear blend skinning: no Warp kernel compiled on first use."""


def anny_installed() -> bool:
    """Whether `import anny` would work (without importing it)."""
    return importlib.util.find_spec("anny") is not None


def require_anny() -> ModuleType:
    """The anny module, or one clear line saying how to install it."""
    try:
        return importlib.import_module("anny")
    except ImportError as error:
        raise AnnyMissingError(f"the Anny body model is not installed ({error}); install: {INSTALL_HINT}") from None


def cache_folder() -> Path:
    """Where Anny caches built model data ($ANNY_CACHE_DIR, default ~/.cache/anny)."""
    return Path(os.environ.get("ANNY_CACHE_DIR", Path.home() / ".cache" / "anny"))


def _cache_is_built(config: AnnyModelConfig) -> bool:
    """Whether Anny's cache already holds this configuration's compacted model data."""
    import hashlib
    import json

    from anny.models import (
        RigConfig,
        TopologyConfig,
        build_compact_model_data,
        model_data,
    )

    meta = model_data._get_builder_metadata(
        build_compact_model_data.__wrapped__,
        rig=RigConfig.from_string(config.rig),
        topology=TopologyConfig.from_string(config.topology),
        local_changes=config.local_changes,
        facial_actions=config.facial_actions,
        phenotypes=config.phenotypes,
        rank=None,
    )
    key = hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:32]
    path = model_data.get_anny_cache_path() / f"v{model_data.CURRENT_DATA_VERSION}"
    return (path / f"build_compact_model_data_{key}.safetensors").exists()


@functools.lru_cache(maxsize=2)
def load_anny(config: AnnyModelConfig = AnnyModelConfig(), say: Callable[[str], None] = print):
    """The Anny torch module for `config` (float32, eval mode), built once per process.

    The first use of a configuration builds Anny's model data and caches it (~1.2 GB on disk,
    about a minute on 2 CPU cores); `say` is told so before it starts.
    """
    anny = require_anny()
    import torch

    try:
        cached = _cache_is_built(config)
    except Exception:  # noqa: BLE001 - a private helper of Anny's; only decides whether to warn
        cached = True
    if not cached:
        say(f"building the Anny body model's cache in {cache_folder()} (once; about a minute, ~1.2 GB)")
    model = anny.Anny(
        rig=config.rig,
        topology=config.topology,
        local_changes=config.local_changes,
        facial_actions=config.facial_actions,
        phenotypes=config.phenotypes,
        skinning_method=config.skinning_method,
    )
    return model.to(torch.float32).eval()
