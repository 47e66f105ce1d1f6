"""Frozen diffusion priors and score distillation sampling.

    prior = load_prior("stabilityai/stable-diffusion-2-1-base", device="cuda")  # or a folder, or None
    embeddings = build_prompt_embeddings(prior, "a red ball")                    # dream3d.prompts
    out = score_distillation(prior, images, embeddings.for_cameras(cameras), step, total_steps,
                             default_sds_config(prior.kind), generator)
    out.loss.backward()
"""
from dream3d.guidance.loading import PriorKind, PriorNotFoundError, resolve_prior_folder
from dream3d.guidance.priors import (
    BundledPrimitivesPrior,
    DeepFloydIFPrior,
    DiffusionPrior,
    PriorRuntimeConfig,
    StableDiffusionPrior,
)
from dream3d.guidance.select import load_prior
from dream3d.guidance.schedules import Annealing, TimestepSchedule, Weighting, sample_timesteps, sds_weight, t_range
from dream3d.guidance.sds import GuidanceOutput, SDSConfig, default_sds_config, score_distillation

__all__ = [
    "Annealing",
    "BundledPrimitivesPrior",
    "DeepFloydIFPrior",
    "DiffusionPrior",
    "GuidanceOutput",
    "PriorKind",
    "PriorNotFoundError",
    "PriorRuntimeConfig",
    "SDSConfig",
    "StableDiffusionPrior",
    "TimestepSchedule",
    "Weighting",
    "default_sds_config",
    "load_prior",
    "resolve_prior_folder",
    "sample_timesteps",
    "score_distillation",
    "sds_weight",
    "t_range",
]
