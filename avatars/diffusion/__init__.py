"""RODIN's generative side at small scale: hierarchical tri-plane diffusion, conditioned on text or a portrait.

    model = AvatarDiffusion(AvatarDiffusionConfig(), plane_stats(dataset_planes))
    loss, parts = training_loss(model, TrainingBatch(planes, prompts, full_prompts, portraits), generator)
    cond = model.condition_text(["an old man with short gray hair wearing glasses"])      # AvatarCondition, B = 1
    noise = initial_noise(model.config, 1, torch.Generator().manual_seed(0))              # [1, C, r, 3r]
    planes = generate_planes(model, cond, noise).planes                                   # [1, 3, C, R, R]
    edited = generate_planes(model, model.condition_text(["... wearing a cap"]), noise)   # same noise: an edit
    save_model(folder, model, decoder, triplane_config); model, decoder, triplane = load_model(folder)

A base DDPM over rolled-out low-resolution planes (v prediction, DDIM sampling with
classifier-free guidance, attribute templates and optional classifier guidance), then a learned
deterministic upsampler to the full plane resolution. The design and the measurements behind it:
docs/avatar-diffusion.md.
"""
from __future__ import annotations

from avatars.diffusion.conditioning import (
    ATTRIBUTE_VALUES,
    AvatarCondition,
    attribute_templates,
    attribute_vectors,
    prompt_attribute_vectors,
)
from avatars.diffusion.config import AvatarDiffusionConfig, LowPlanes
from avatars.diffusion.io import (
    CONFIG_FILE,
    MODEL_FILE,
    is_model_folder,
    load_model,
    load_weights,
    save_model,
    with_attribute_templates,
    with_plane_classifier,
    with_portrait_reader,
    with_scale_shift,
)
from avatars.diffusion.model import AvatarDiffusion, count_parameters
from avatars.diffusion.planes import (
    PlaneStats,
    downsample_planes,
    plane_stats,
    upsample_planes,
)
from avatars.diffusion.prediction import (
    Prediction,
    classifier_shift,
    prediction_target,
    x0_from_prediction,
)
from avatars.diffusion.sampling import (
    GeneratedPlanes,
    generate_planes,
    initial_noise,
    lowpass_planes,
    sample_low,
    timesteps_from,
)
from avatars.diffusion.training import (
    TrainingBatch,
    attribute_loss,
    attribute_targets,
    training_loss,
)

__all__ = [
    "ATTRIBUTE_VALUES",
    "AvatarCondition",
    "AvatarDiffusion",
    "AvatarDiffusionConfig",
    "CONFIG_FILE",
    "GeneratedPlanes",
    "LowPlanes",
    "MODEL_FILE",
    "PlaneStats",
    "Prediction",
    "TrainingBatch",
    "attribute_loss",
    "attribute_targets",
    "attribute_templates",
    "attribute_vectors",
    "classifier_shift",
    "count_parameters",
    "downsample_planes",
    "generate_planes",
    "initial_noise",
    "is_model_folder",
    "load_model",
    "load_weights",
    "lowpass_planes",
    "plane_stats",
    "prediction_target",
    "prompt_attribute_vectors",
    "sample_low",
    "save_model",
    "timesteps_from",
    "training_loss",
    "upsample_planes",
    "with_attribute_templates",
    "with_plane_classifier",
    "with_portrait_reader",
    "with_scale_shift",
    "x0_from_prediction",
]
