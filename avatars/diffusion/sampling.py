"""DDIM sampling of the base model (guidance, template anchoring, classifier guidance), then one
upsampler pass."""
from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from avatars.diffusion.conditioning import AvatarCondition
from avatars.diffusion.config import AvatarDiffusionConfig
from avatars.diffusion.model import AvatarDiffusion
from avatars.diffusion.prediction import classifier_shift
from avatars.plane_classifier import (
    PlaneAttributeClassifier,
    guidance_gradient,
)
from avatars.rollout import roll_in, roll_out
from dream3d.diffusion_math import add_noise


def initial_noise(config: AvatarDiffusionConfig, batch: int, generator: torch.Generator) -> Tensor:
    """The base model's starting noise [B, C, r, 3r]. Keep it to regenerate or edit an avatar:
    DDIM with eta 0 is deterministic given this noise and the condition."""
    r = config.low_resolution
    return torch.randn((batch, config.plane_channels, r, 3 * r), generator=generator)


def lowpass_planes(x: Tensor, factor: int) -> Tensor:
    """Rolled-out planes [B, C, r, 3r] -> their coarse content, same shape: each plane averaged
    over factor x factor texel blocks and bilinearly upsampled back (r divisible by factor)."""
    b, c, r = x.shape[0], x.shape[1], x.shape[2]
    planes = roll_in(x).reshape(b * 3, c, r, r)
    coarse = nn.functional.interpolate(nn.functional.avg_pool2d(planes, factor), size=(r, r), mode="bilinear",
                                       align_corners=False)
    return roll_out(coarse.reshape(b, 3, c, r, r))


def timesteps_from(timesteps: Tensor, t_start: int) -> Tensor:
    """A DDIM schedule's timesteps (descending) -> the ones a sample started at step t_start
    visits: from the last one <= t_start on (SDEdit's start, `sample_low`'s `start`). Raises
    ValueError when t_start is below them all."""
    kept = timesteps[timesteps <= t_start]
    if len(kept) == 0:
        raise ValueError(f"start t={t_start} is below the first of {len(timesteps)} DDIM steps")
    return kept


@torch.no_grad()
def sample_low(model: AvatarDiffusion, cond: AvatarCondition | None, noise: Tensor, steps: int = 50,
               guidance_scale: float = 3.0, start: tuple[Tensor, int] | None = None, anchor: int = 0,
               classifier: PlaneAttributeClassifier | None = None, classifier_scale: float = 0.0) -> Tensor:
    """DDIM (eta 0) with classifier-free guidance from `noise` [B, C, r, 3r].
    cond: B conditions, or None for unconditional samples. start: (normalised low planes
    [B, 3, C, r, r], t) to begin from those planes noised with `noise` to the last DDIM step
    <= t (SDEdit: how much of an avatar the model keeps from step t) instead of pure noise.
    anchor: 0, or a factor f dividing r: after every step the sample's content at r/f texels
    is replaced by that of the condition's template guess (`anchor_planes`) noised to the same
    step (ILVR, Choi et al. 2021), which keeps colours where the template puts them.
    Returns normalised low planes [B, 3, C, r, r]."""
    scheduler = model.ddim_scheduler()
    scheduler.set_timesteps(steps)
    device = model.plane_mean.device
    embedding = None if cond is None else cond.embedding.to(device)  # [B, D]
    weights = None if cond is None else cond.attributes.to(device)  # [B, K]
    spatial = None if weights is None else model.template(weights)  # [B, C, r, 3r] or None
    timesteps = scheduler.timesteps
    alphas_cumprod = model.ddpm_scheduler().alphas_cumprod.to(device)  # for noising planes to a step
    if start is None:
        x = noise.to(device) * scheduler.init_noise_sigma
    else:
        planes, t_start = start
        timesteps = timesteps_from(timesteps, t_start)
        x = add_noise(roll_out(planes.to(device)), noise.to(device), alphas_cumprod, timesteps[:1].expand(noise.shape[0]))
    reference = None if weights is None or not anchor else model.anchor_planes(weights)
    step_size = model.config.num_train_timesteps // steps
    for t in timesteps:
        if cond is None or guidance_scale == 1.0:
            out = model.base(x, t, embedding, spatial=spatial)  # v or eps, as trained
        else:
            out = model.base.guided(x, t, embedding, guidance_scale, spatial)
        if classifier is not None and classifier_scale and weights is not None:
            out = out + classifier_shift(model.config.prediction, alphas_cumprod[t], classifier_scale,
                                         guidance_gradient(classifier, x, t, weights))
        x = scheduler.step(out, t, x, eta=0.0).prev_sample
        t_prev = int(t) - step_size
        if reference is not None and t_prev > 0:
            # ILVR: the sample's coarse content becomes the template's, noised to the same step
            # with the starting noise (so a seed still fixes the avatar, as editing needs).
            noised = add_noise(reference, noise.to(device), alphas_cumprod, torch.full((x.shape[0],), t_prev, device=device))
            x = x - lowpass_planes(x, anchor) + lowpass_planes(noised, anchor)
    return roll_in(x)


@dataclass
class GeneratedPlanes:
    """Planes [B, 3, C, R, R] (dataset scale, ready for `avatar_field`) and their low-res stage."""

    planes: Tensor
    low: Tensor
    """[B, 3, C, r, r] at dataset scale."""
    timings: dict[str, float]
    """Seconds: {"diffusion", "upsampling"}."""


@torch.no_grad()
def generate_planes(model: AvatarDiffusion, cond: AvatarCondition | None, noise: Tensor, steps: int = 50,
                    guidance_scale: float = 3.0, anchor: int = 0, classifier: PlaneAttributeClassifier | None = None,
                    classifier_scale: float = 0.0) -> GeneratedPlanes:
    """B conditions (None: unconditional) + noise [B, C, r, 3r] -> base sample (anchored: see
    `sample_low`) -> upsample -> planes."""
    model.eval()
    t0 = time.perf_counter()
    low = sample_low(model, cond, noise, steps, guidance_scale, anchor=anchor, classifier=classifier,
                     classifier_scale=classifier_scale)  # [B, 3, C, r, r] normalised
    t1 = time.perf_counter()
    level = torch.full((low.shape[0],), model.config.upsampler_noise_sample, device=low.device)
    high = model.upsample(low, None if cond is None else cond.embedding.to(low.device), level)  # [B, 3, C, R, R] normalised
    t2 = time.perf_counter()
    return GeneratedPlanes(model.denormalize(high), model.denormalize_low(low),
                           {"diffusion": t1 - t0, "upsampling": t2 - t1})
