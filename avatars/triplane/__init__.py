"""Tri-plane avatars: ONE shared dream3d `TriplaneDecoder` and per-avatar planes [3, C, R, R].

An avatar's planes are fitted to 3D samples of the engine's ground truth (no renders): points
in a shell around the surface and uniform in the box, supervising log-density (the engine's
own density, sharpness * sigmoid(-sdf * sharpness)) and albedo near the surface.

    decoder, planes = fit_shared([AvatarSDF(sample_attributes(s)) for s in range(8)])  # (a) joint
    new = fit_planes(AvatarSDF(sample_attributes(100)), decoder)                      # (b) frozen decoder
    field = avatar_field(new, decoder)          # a dream3d TriplaneField: mesh export, turntable video
    save_decoder(folder, decoder); save_avatar(folder, record)                         # safetensors + JSON

Sizes (`AvatarTriplaneConfig` defaults): R = 48 texels a side, C = 12 channels; the decoder sums the
three plane features and has 2 hidden layers of 64, and its raw output is the log density, which
is what the fit regresses.
"""
from __future__ import annotations

from avatars.triplane.config import AvatarTriplaneConfig, avatar_field, make_decoder
from avatars.triplane.dataset import (
    AvatarRecord,
    attributes_from_json,
    attributes_to_json,
    avatar_path,
    decoder_path,
    load_avatar,
    load_dataset,
    load_decoder,
    save_avatar,
    save_decoder,
    stack_low_planes,
    stack_planes,
    write_json,
)
from avatars.triplane.fitting import (
    DECODER_FIT,
    PLANE_FIT,
    FitConfig,
    GroundTruthSamples,
    Progress,
    RobustDecoderConfig,
    SampleConfig,
    decoder_error,
    fit_loss,
    fit_planes,
    fit_shared,
    robust_decoder,
    sample_ground_truth,
)

__all__ = [
    "AvatarRecord",
    "AvatarTriplaneConfig",
    "DECODER_FIT",
    "FitConfig",
    "GroundTruthSamples",
    "PLANE_FIT",
    "Progress",
    "RobustDecoderConfig",
    "SampleConfig",
    "attributes_from_json",
    "attributes_to_json",
    "avatar_field",
    "avatar_path",
    "decoder_error",
    "decoder_path",
    "fit_loss",
    "fit_planes",
    "fit_shared",
    "load_avatar",
    "load_dataset",
    "load_decoder",
    "make_decoder",
    "robust_decoder",
    "sample_ground_truth",
    "save_avatar",
    "save_decoder",
    "stack_low_planes",
    "stack_planes",
    "write_json",
]
