"""`load_prior`: any prior dream3d can distil from, by folder or cached model id, single- or multi-view.

The pipeline type comes from model_index.json's `_class_name` (`loading.read_prior_kind`); each
backend loads its own components (`priors.py` for single-view, `multiview.py` for multi-view).
"""
from __future__ import annotations

import os

import torch

from dream3d.guidance.loading import PriorKind, read_prior_kind, resolve_prior_folder
from dream3d.guidance.multiview import MultiViewPrimitivesPrior, MVDreamPrior
from dream3d.guidance.priors import (
    BundledPrimitivesPrior,
    DeepFloydIFPrior,
    DiffusionPrior,
    PriorRuntimeConfig,
    StableDiffusionPrior,
)


def default_dtype(device: torch.device, config: PriorRuntimeConfig) -> torch.dtype:
    """float16 on CUDA when `config.half_precision`, else float32."""
    return torch.float16 if device.type == "cuda" and config.half_precision else torch.float32


def load_prior(
    spec: str | os.PathLike | None = None,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    config: PriorRuntimeConfig = PriorRuntimeConfig(),
) -> DiffusionPrior:
    """Load a frozen prior from a local diffusers folder or a cached Hugging Face model id.

    spec: folder, model id ("stabilityai/stable-diffusion-2-1-base", must be in the local HF
    cache) or None for the bundled primitives prior. The pipeline type comes from
    model_index.json's `_class_name`. dtype: None picks `default_dtype(device, config)`.
    Raises PriorNotFoundError (one line) when the prior is missing or incomplete.
    """
    device = torch.device(device)
    dtype = default_dtype(device, config) if dtype is None else dtype
    folder = resolve_prior_folder(spec)
    kind = read_prior_kind(folder)
    if kind is PriorKind.STABLE_DIFFUSION:
        return StableDiffusionPrior.from_folder(folder, device, dtype, config)
    if kind is PriorKind.DEEPFLOYD_IF:
        return DeepFloydIFPrior.from_folder(folder, device, dtype, config)
    if kind is PriorKind.PRIMITIVES_MULTIVIEW:
        return MultiViewPrimitivesPrior.from_folder(folder, device, dtype)
    if kind is PriorKind.MVDREAM:
        return MVDreamPrior.from_folder(folder, device, dtype, config)
    return BundledPrimitivesPrior.from_folder(folder, device, dtype)
